"""Writes that survive a crash: flushing files and folders to disk, and telling a live writer's
leftovers from a dead one's.

A rename is atomic but says nothing about the data behind the names: after a power loss, a folder
renamed into place before its files reached the disk could hold empty or torn files. Whatever is
published or installed by a rename is flushed first.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_path(path: Path | str) -> None:
    """Flush one file or folder entry to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file and folder under ``root`` (and ``root`` itself) to disk."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fsync_path(os.path.join(dirpath, name))
        fsync_path(dirpath)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (a staging folder named after it is still in use)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
