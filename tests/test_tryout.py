"""The offline try-out of docs/training.md is the README's: tests/test_readme.py runs the README's
commands, top to bottom, with no network."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from conftest import ROOT


def _commands(markdown: Path, heading: str) -> list[list[str]]:
    """The shell commands of the first ```bash block after ``heading``."""
    text = markdown.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, f"no bash block after {heading!r} in {markdown}"
    return [shlex.split(line) for line in block.group(1).replace("\\\n", " ").splitlines() if line.strip()]


def test_readme_shows_the_same_try_out() -> None:
    docs = _commands(ROOT / "docs" / "training.md", "## Try it offline")
    assert _commands(ROOT / "README.md", "## Try it offline") == docs
