"""Output folders: never mixed, never half-written, never someone else's.

A folder a command writes carries ``.qlora-trainer.json`` (the command, the tool's version, and for
``train`` what makes two runs the same run). A non-empty ``--out`` is refused unless the user says
``--resume`` (train: continue that run) or ``--overwrite`` (replace it), and ``--overwrite`` only
ever deletes a folder that carries the marker, so a mistyped ``--out ~`` deletes nothing.

``merge``, ``perplexity`` and ``tiny-model`` write into a hidden sibling folder and rename it into
place at the end: an interrupted command leaves no partial output under ``--out``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dataset_builder.errors import UserError
from trainer.preflight import Located

MARKER = ".qlora-trainer.json"


def tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dataset-builder-ru-code")
    except PackageNotFoundError:
        return "unknown"


def read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UserError(f"{folder / MARKER}: unreadable ({exc})") from None
    return data if isinstance(data, dict) else None


def write_marker(folder: Path, command: str, **extra: Any) -> None:
    record = {
        "command": command,
        "version": tool_version(),
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }
    (folder / MARKER).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _non_empty(folder: Path) -> bool:
    try:
        return any(folder.iterdir())
    except OSError as exc:
        raise UserError(f"--out {folder}: cannot read ({exc.strerror or exc})") from None


def check_out(out: Path, command: str, *, overwrite: bool, resume: bool = False) -> dict[str, Any] | None:
    """Refuse an ``--out`` this command may not write; return its marker when it has one. Changes
    nothing on disk."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if not out.is_dir() or not _non_empty(out):
        return None
    marker = read_marker(out)
    if resume:
        if marker is None or marker.get("command") != "train":
            raise UserError(
                f"--out {out}: not a training run of qlora-trainer (no {MARKER}); nothing to resume"
            )
        return marker
    if not overwrite:
        if marker is None:
            raise UserError(
                f"--out {out}: not empty, and not an output of qlora-trainer; choose another folder"
            )
        if command == "train" and marker.get("command") == "train":
            raise UserError(
                f"--out {out}: holds an earlier training run; use --resume to continue it, --overwrite "
                "to replace it, or choose another folder"
            )
        raise UserError(
            f"--out {out}: holds an earlier '{marker.get('command')}' output; use --overwrite to replace "
            "it, or choose another folder"
        )
    if marker is None:
        raise UserError(
            f"--out {out}: not empty and not written by qlora-trainer (no {MARKER}); refusing to delete it "
            "with --overwrite: remove it yourself or choose another folder"
        )
    return marker


def check_inputs_outside(out: Path, inputs: list[tuple[str, Located]]) -> None:
    """Refuse an ``--out`` that is, or holds, a local folder the command reads (``--overwrite``
    would delete the base model it is about to load)."""
    target = out.expanduser().resolve()
    for option, found in inputs:
        if found.where != "folder":
            continue
        folder = found.ref
        path = Path(folder).expanduser().resolve()
        if path == target or target in path.parents:
            raise UserError(f"--out {out}: is where {option} {folder} is read from; choose another folder")


def clear(out: Path) -> None:
    """Empty a folder that ``check_out`` allowed to be overwritten."""
    try:
        shutil.rmtree(out)
        out.mkdir(parents=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot clear ({exc.strerror or exc})") from None


def make(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create ({exc.strerror or exc})") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def staged(out: Path, command: str, **marker: Any) -> Iterator[Path]:
    """A fresh folder beside ``out`` to write into; on success it replaces ``out`` (which
    ``check_out`` has allowed), on any failure it is removed."""
    out = out.absolute()
    make(out.parent)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        # mkdtemp makes a private (0700) folder; the output is the user's, made as mkdir would.
        work.chmod(0o777 & ~_umask())
        yield work
        write_marker(work, command, **marker)
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            work.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
