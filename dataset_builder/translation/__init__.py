"""Code-safe machine translation on Argos Translate packages: packages, engine, segmenter,
sentence splitter, cache, language checks and quality checks."""
