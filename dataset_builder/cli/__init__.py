"""The `dataset-builder` command line."""
