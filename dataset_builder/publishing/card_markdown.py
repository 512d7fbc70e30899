"""Markdown pieces of the dataset card, and the rule that keeps the building machine out of it."""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

# An absolute POSIX path (not the path part of a URL) or a Windows drive path, in free text.
_ABS_PATH = re.compile(r"(?<![\w:/.~-])(?:~/|/)[^\s;,'\"`()\[\]]+|\b[A-Za-z]:\\[^\s;,'\"`()\[\]]+")


def shown_path(path: str) -> str:
    """A source path as the card shows it: relative to the recipe as written, or only the file
    name when it would say where things are on the building machine."""
    parts = PurePosixPath(path).parts
    if PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute() or path.startswith("~"):
        return PurePosixPath(path.replace("\\", "/")).name
    return PurePosixPath(*parts).name if ".." in parts else path


def public_text(text: str) -> str:
    """Free text (an error message kept in the manifest) without the building machine's paths."""
    return _ABS_PATH.sub(lambda m: "…/" + PurePosixPath(m.group(0).replace("\\", "/")).name, text)


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def md_counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) or "-"
