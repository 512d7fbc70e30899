"""Folders and files under the registry, reached through open folders, never through a link.

Checking a path and then using it are two steps, and a symbolic link swapped in between redirects
the use. So nothing here checks first: a folder is opened once (``O_DIRECTORY | O_NOFOLLOW``), and
every folder, file, rename and delete below it is made relative to that open folder, one path
component at a time, each opened with ``O_NOFOLLOW``: the kernel refuses a link at the moment of
use. Recursive deletes are the standard library's ``rmtree`` relative to the open parent, which
never follows a link. A folder handed to code that only takes paths (a Parquet writer, a Hub
download) is handed as ``/proc/self/fd/N``: that names the open folder itself, whatever is
renamed or swapped above it afterwards.

Names of entries are checked by :func:`dataset_builder.registry.names.check_relpath`, the same rule every
other path of the registry goes through.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import uuid
from pathlib import Path

from dataset_builder.errors import UserError
from dataset_builder.registry.names import check_relpath

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PROC_FD = Path("/proc/self/fd")

if not shutil.rmtree.avoids_symlink_attacks:  # pragma: no cover - every Linux Python has it
    raise ImportError("this platform's shutil.rmtree can be redirected by a symbolic link")


class LinkRefused(UserError):
    """A folder or file of the registry is a symbolic link, or not a folder where one belongs."""


def _entry(name: str) -> str:
    """One path component: no ``/``, and what :func:`check_relpath` accepts (dot files allowed:
    staging and temporary entries are hidden on purpose)."""
    check_relpath(name, "registry entry", allow_hidden=True)
    if "/" in name:
        raise UserError(f"registry entry {name!r}: one path component expected")
    return name


class Folder:
    """An open folder; ``path`` is only for messages and for :meth:`fd_path`'s fallback."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    @classmethod
    def open_root(cls, path: Path, *, create: bool = False) -> Folder:
        """The registry's own folder. Its path may lead through links (a registry on another
        disk); the folder itself must not be one."""
        if create:
            path.mkdir(parents=True, exist_ok=True)
        try:
            return cls(os.open(path, _DIR), path)
        except OSError as exc:
            raise _refused(exc, path) from None

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def open(self, name: str, *, create: bool = False) -> Folder:
        """The folder ``name`` inside this one (made first if ``create``); a link is refused."""
        _entry(name)
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, dir_fd=self.fd)
        try:
            return Folder(os.open(name, _DIR, dir_fd=self.fd), self.path / name)
        except OSError as exc:
            raise _refused(exc, self.path / name) from None

    def open_path(self, rel: str, where: str) -> Folder:
        """``rel`` (``a/b/c``) below this folder, each component opened without following a link."""
        check_relpath(rel, where)
        folder = Folder(os.dup(self.fd), self.path)
        for part in rel.split("/"):
            try:
                inner = folder.open(part)
            finally:
                folder.close()
            folder = inner
        return folder

    def make_private(self, prefix: str) -> str:
        """A new empty folder ``PREFIX{pid}-{random}`` (the process id tells a dead owner's
        leftover from a live one's); returns its name. ``mkdir`` never follows a link."""
        name = _entry(f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.mkdir(name, dir_fd=self.fd)
        return name

    def lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.stat(_entry(name), dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def names(self) -> list[str]:
        return sorted(os.listdir(self.fd))

    def rename(self, src: str, dst: str, *, into: Folder | None = None, replace: bool = False) -> None:
        """Rename an entry of this folder to ``dst`` in ``into`` (default: this folder). A link
        is renamed as a link, never followed. Without ``replace`` an existing non-empty folder or
        a file at ``dst`` makes it fail."""
        move = os.replace if replace else os.rename
        move(_entry(src), _entry(dst), src_dir_fd=self.fd, dst_dir_fd=(into or self).fd)

    def remove_tree(self, name: str, *, ignore_errors: bool = False) -> None:
        """Delete the entry ``name``: a folder with everything in it, a file, or a link (the link
        only, never what it points to). Missing is fine."""
        try:
            st = self.lstat(name)
            if st is None:
                return
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(name, dir_fd=self.fd)
            else:
                os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            return
        except OSError:
            if not ignore_errors:
                raise

    def read_bytes(self, name: str) -> bytes:
        """The content of the plain file ``name``; a link is refused (:class:`LinkRefused`)."""
        try:
            fd = os.open(_entry(name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError as exc:
            raise _refused(exc, self.path / name) from None
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise LinkRefused(f"{self.path / name}: not a plain file")
            return fh.read()

    def write_bytes(self, name: str, data: bytes) -> None:
        """Replace the file ``name`` with ``data`` atomically: a temporary file created new
        (``O_EXCL | O_NOFOLLOW``: whatever sat at its name, a link included, is removed, never
        written through), flushed, then renamed over ``name`` (a link at ``name`` is replaced,
        not followed)."""
        tmp = _entry(f".{_entry(name).lstrip('.')}.{os.getpid()}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o644, dir_fd=self.fd)
        except FileExistsError:  # a leftover of a dead process with this id, or a planted link
            self.remove_tree(tmp)
            fd = os.open(tmp, flags, 0o644, dir_fd=self.fd)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            self.remove_tree(tmp, ignore_errors=True)
            raise
        self.fsync()

    def copy_in(self, rel: str, source: Path, where: str) -> str:
        """Copy the file ``source`` to ``rel`` below this folder as a new file, its folders made
        as needed (none of them, nor the file, through a link); returns the sha256 of the bytes
        written, so what is checked is what landed."""
        check_relpath(rel, where)
        *parts, leaf = rel.split("/")
        folder = Folder(os.dup(self.fd), self.path)
        try:
            for part in parts:
                inner = folder.open(part, create=True)
                folder.close()
                folder = inner
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            digest = hashlib.sha256()
            with (
                open(source, "rb") as src,
                os.fdopen(os.open(leaf, flags, 0o644, dir_fd=folder.fd), "wb") as dst,
            ):
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            return digest.hexdigest()
        finally:
            folder.close()

    def fsync(self) -> None:
        os.fsync(self.fd)

    def same_as(self, other: Folder) -> bool:
        a, b = os.fstat(self.fd), os.fstat(other.fd)
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def fd_path(self) -> Path:
        """A path naming this open folder itself (``/proc/self/fd/N``), for code that takes
        paths: writes through it land in this folder even if a link replaces a folder above it.
        Without ``/proc`` (not Linux), the folder's path."""
        proc = _PROC_FD / str(self.fd)
        return proc if _PROC_FD.is_dir() else self.path


def _refused(exc: OSError, path: Path) -> OSError | UserError:
    """An ``open`` the kernel refused because of a link or a non-folder, as one line; any other
    error as it is. (Linux answers a link with ``ELOOP`` or, with ``O_DIRECTORY``, ``ENOTDIR``:
    which of the two it was is looked up for the message only, after the refusal.)"""
    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
        return exc
    if exc.errno == errno.ELOOP or path.is_symlink():
        return LinkRefused(f"{path}: goes through a symbolic link; refusing to follow it (remove the link)")
    return LinkRefused(f"{path}: not a folder (remove it)")
