"""The `dataset-builder` command line: `main` is its entry point, `commands.py` the parser and
the commands, `check.py` what `check` and `build --dry-run` try before a long run."""

from dataset_builder.cli.commands import main

__all__ = ["main"]
