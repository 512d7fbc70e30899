"""The `qlora-trainer` command line: `main` is its entry point, `commands.py` the parser and the
commands, `downstream_command.py` the options of `benchmark`."""

from trainer.cli.commands import main

__all__ = ["main"]
