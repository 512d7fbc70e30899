"""Building and publishing a version: the pipeline, conservation of rows, rejected rows, the files publish writes (Parquet, card, Croissant, report page)."""
