"""Reading a TOML settings file the user names (training settings, eval sets): one error line that
names the file and the cause, never a traceback."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from dataset_builder.errors import RecipeError


def read_toml(path: str | Path, *, what: str, example: str) -> dict[str, Any]:
    """The file's tables. ``what`` names the file in "not found"; ``example`` is what to give
    instead of a folder ("a training settings file such as recipes/train-tiny.toml")."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise RecipeError(f"{path}: is a folder; give {example}") from None
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{path}: not valid UTF-8 ({exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: invalid TOML: {exc}") from None
