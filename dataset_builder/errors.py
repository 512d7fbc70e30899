"""User-facing errors.

Every problem a user can fix (a bad recipe, a bad input file, an unreachable Hub, a refused publish)
is raised as a :class:`UserError` whose message is one line naming the file, line or key. The CLI
prints that line and exits non-zero; tracebacks are reserved for ``--debug``.
"""

from __future__ import annotations

import argparse


class UserError(Exception):
    """A problem in the user's input or environment, reported as one line."""

    exit_code = 2


class InputError(UserError):
    """A source file cannot be read as declared (encoding, JSON syntax, missing column, empty)."""


class RecipeError(UserError):
    """The recipe is invalid: unknown key, wrong type, unknown source or stage type."""


class PublishError(UserError):
    """The registry refused a version (immutability) or the version does not exist."""

    exit_code = 3


class VerificationError(UserError):
    """A published version no longer matches its manifest."""

    exit_code = 4


class RejectLimitExceeded(UserError):
    """More rows were rejected than the recipe allows."""


class ConservationError(UserError):
    """Rows read do not equal rows published plus rows rejected: a stage lost (or invented) rows."""

    exit_code = 5


class BuildError(UserError):
    """A stage failed in a way no user input explains (a bug); the failure report holds the traceback."""

    exit_code = 1


def run_command(func, args, debug: bool) -> int:  # (Callable[[Namespace], int], Namespace, bool) -> int
    """Run a CLI command: user errors as one line on stderr and their exit code; tracebacks only
    when debugging."""
    import sys

    try:
        return func(args)
    except UserError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; nothing was published", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `dataset-builder show ... | head`
        sys.stderr.close()
        return 0


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose mistakes (a missing argument, a bad value) are one ``error:`` line
    naming the command and where its options are listed, instead of the usage block and a line."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")
        raise AssertionError("unreachable")  # exit() raises SystemExit
