"""Versions on disk: ``ROOT/NAME/VERSION/`` holding data, manifest and card.

A version is written in a staging folder beside its final place and renamed into place in one
``rename`` call, so a build killed at any moment leaves no partial version. Published versions are
immutable: publishing different content under an existing version is refused; identical content
is a no-op. Names, versions and the file paths a manifest lists become paths only through
:mod:`dataset_builder.registry.names`, so nothing read from a manifest or a ref can point outside the root.
Every folder the registry makes, renames or deletes (staging, downloads, versions) is reached
through :mod:`dataset_builder.registry.anchored`: relative to an open folder, never through a link.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataset_builder.durable import pid_alive
from dataset_builder.errors import PublishError, UserError, VerificationError
from dataset_builder.hashing import file_sha256
from dataset_builder.paths import DATA_HOME, user_path
from dataset_builder.registry.anchored import Folder
from dataset_builder.registry.names import (
    LATEST,
    NotFoundError,
    check_name,
    check_relpath,
    check_version,
    inside,
    parse_ref,
    suggest,
)

REGISTRY_ENV = "DATASET_BUILDER_REGISTRY"
MANIFEST = "manifest.json"
_STAGING_PREFIX = ".staging-"

__all__ = [
    "MANIFEST",
    "Registry",
    "VersionInfo",
    "check_manifest",
    "default_registry_path",
    "parse_ref",
    "version_key",
]


def version_key(version: str) -> tuple:
    """Order for ``latest``: PEP 440 (0.10.0 > 0.9.0, 1.0.0rc1 < 1.0.0); a version that is not
    PEP 440 sorts below every one that is, then by its text."""
    from packaging.version import InvalidVersion, Version

    try:
        return (1, Version(version), version)
    except InvalidVersion:
        return (0, version, version)


def is_trial(version: str) -> bool:
    """A version with a local label (``0.1.0+limit100``, what ``build --limit`` publishes)."""
    return "+" in version


def default_registry_path(path: str | Path | None = None) -> Path:
    return user_path(path, REGISTRY_ENV, DATA_HOME / "registry")


@dataclass(frozen=True)
class _Staged:
    """A staging folder handed out by :meth:`Registry.staging`: where it was made, open."""

    name: str
    parent: Folder
    entry: str
    folder: Folder


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    path: Path
    manifest: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class Registry:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = default_registry_path(root).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise UserError(
                f"registry {self.root}: is a file, not a folder; give --registry (or "
                f"${REGISTRY_ENV}) a folder, a new one or one that holds published versions"
            )
        self._staged: dict[Path, _Staged] = {}

    def version_dir(self, name: str, version: str) -> Path:
        where = f"{name}@{version}"
        check_name(name, where)
        check_version(version, where)
        return inside(self.root, f"{name}/{version}", where)

    def exists(self, name: str, version: str) -> bool:
        return (self.version_dir(name, version) / MANIFEST).is_file()

    def names(self) -> list[str]:
        """The datasets with at least one published version (not, say, the ``failed/`` reports)."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and not p.is_symlink() and _valid_name(p.name) and self._version_names(p.name)
        )

    def resolve(self, ref: str) -> tuple[str, str]:
        """``NAME@VERSION`` or ``NAME@latest`` -> (name, version) of a published version."""
        name, version = parse_ref(ref)
        if version != LATEST:
            return name, version
        self._unknown_name(name, ref)
        every = self._version_names(name)
        published = [v for v in every if not is_trial(v)]
        if not published:
            trials = ", ".join(sorted(every, key=version_key))
            raise PublishError(f"{ref}: {name} has only trial versions ({trials}); name one explicitly")
        return name, max(published, key=version_key)

    def get(self, ref: str) -> VersionInfo:
        name, version = self.resolve(ref)
        path = self.version_dir(name, version)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            self._unknown_name(name, ref)
            known = self._version_names(name)
            hint = f" (published: {', '.join(known)})" if known else ""
            raise PublishError(f"{name}@{version}: no such version in {self.root}{hint}")
        if manifest_path.is_symlink():
            raise VerificationError(f"{manifest_path}: is a symbolic link; refusing to read it")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise VerificationError(f"{manifest_path}: unreadable manifest ({exc})") from None
        check_manifest(manifest, str(manifest_path))
        if (manifest.get("name"), manifest.get("version")) != (name, version):
            raise VerificationError(
                f"{manifest_path}: says {manifest.get('name')!r}@{manifest.get('version')!r}, "
                f"but lives at {name}@{version}"
            )
        return VersionInfo(name, version, path, manifest)

    def versions(self, name: str | None = None) -> list[VersionInfo]:
        names = [check_name(name, name)] if name else self.names()
        out = []
        for n in names:
            for version in sorted(self._version_names(n), key=version_key):
                out.append(self.get(f"{n}@{version}"))
        return out

    def _version_names(self, name: str) -> list[str]:
        folder = self.root / name
        if folder.is_symlink() or not folder.is_dir():
            return []
        return [
            child.name
            for child in folder.iterdir()
            if _valid_version(child.name) and not child.is_symlink() and (child / MANIFEST).is_file()
        ]

    def _unknown_name(self, name: str, ref: str) -> None:
        """Raise if the registry has no dataset called ``name``, suggesting close names."""
        if not self._version_names(name):
            raise NotFoundError(
                f"{ref}: no dataset named {name!r} in {self.root}{suggest(name, self.names())}"
            )

    def check_known(self, name: str) -> None:
        """:class:`NotFoundError` (with close names) unless ``name`` has a published version."""
        check_name(name, name)
        self._unknown_name(name, name)

    @contextmanager
    def staging(self, name: str, version: str) -> Iterator[Path]:
        """A private folder for one build, beside the versions of ``name``; removed unless
        published. The path handed out names the open folder itself (see
        :meth:`Folder.fd_path`), so a link swapped in above it later cannot redirect a write."""
        where = f"{name}@{version}"
        check_name(name, where)
        check_version(version, where)
        if version == LATEST:
            raise UserError(f"{where}: {LATEST!r} is reserved (NAME@{LATEST} means the newest version)")
        made = [p for p in (self.root, self.root / name) if not p.exists()]
        try:
            with self._open_root(create=True) as root, root.open(name, create=True) as parent:
                _remove_stale_staging(root)  # download folders that pulls once made here
                _remove_stale_staging(parent)
                with self._private(parent, f"{_STAGING_PREFIX}{version}-", name) as path:
                    yield path
        finally:
            # A failed first build leaves no empty NAME/ (or registry) folder behind; rmdir removes
            # only an empty folder (never a link), so a version or a failure report stays.
            for folder in reversed(made):
                with contextlib.suppress(OSError):
                    folder.rmdir()

    def staged_folder(self, staging: Path) -> Folder:
        """The open folder behind a path :meth:`staging` handed out (to write into it by fd)."""
        staged = self._staged.get(staging)
        if staged is None:
            raise PublishError(f"{staging} is not a staging folder of {self.root}")
        return staged.folder

    def _open_root(self, *, create: bool = False) -> Folder:
        return Folder.open_root(self.root, create=create)

    @contextmanager
    def _private(self, parent: Folder, prefix: str, name: str) -> Iterator[Path]:
        entry = parent.make_private(prefix)
        try:
            with parent.open(entry) as folder:
                path = folder.fd_path()
                self._staged[path] = _Staged(name, parent, entry, folder)
                try:
                    yield path
                finally:
                    del self._staged[path]
        finally:
            parent.remove_tree(entry, ignore_errors=True)

    def publish(self, staging: Path, name: str, version: str, content_hash: str) -> bool:
        """Move a finished staging folder into place. True if published, False if identical exists.

        The rename is made inside the open folder the staging folder was made in, then checked:
        if ``ROOT/NAME/VERSION`` reached from the root without following a link is not the folder
        just renamed (``NAME`` was swapped for a link meanwhile), the rename is undone."""
        where = f"{name}@{version}"
        check_name(name, where)
        check_version(version, where)
        staged = self._staged.get(staging)
        if staged is None or staged.name != name:
            raise PublishError(f"{where}: {staging} is not a staging folder of {name} in {self.root}")
        try:
            staged.parent.rename(staged.entry, version)
        except OSError:
            if not self.exists(name, version):
                raise
            self.publish_check(name, version, content_hash)
            return False
        try:
            with self._open_root() as root, root.open_path(f"{name}/{version}", where) as placed:
                moved = not placed.same_as(staged.folder)
        except (OSError, UserError):
            moved = True
        if moved:
            staged.parent.rename(version, staged.entry)
            raise PublishError(
                f"{where}: {self.root / name} was replaced (by a symbolic link?) while publishing; "
                "nothing published; remove what replaced it and build again"
            )
        staged.parent.fsync()
        return True

    def publish_check(
        self,
        name: str,
        version: str,
        content_hash: str,
        hint: str = "build it as a new version with --set-version",
    ) -> None:
        """Refuse ``content_hash`` for a version that is published with other content."""
        existing = self.get(f"{name}@{version}").manifest.get("content_hash")
        if existing != content_hash:
            raise PublishError(
                f"{name}@{version}: already published with different content ({_short(existing)} then, "
                f"{_short(content_hash)} now); versions are immutable: {hint}"
            )

    def verify(self, ref: str) -> list[str]:
        """Re-hash every file the manifest lists; return the problems found (empty: intact)."""
        info = self.get(ref)
        problems = []
        files = check_manifest(info.manifest, str(info.path / MANIFEST))
        for rel, sha256 in sorted(files.items()):
            try:
                path = inside(info.path, rel, f"{MANIFEST} key files")
            except UserError as exc:  # a symbolic link on the way
                problems.append(str(exc))
                continue
            if not path.is_file():
                problems.append(f"{rel}: missing")
            elif (actual := file_sha256(path)) != sha256:
                problems.append(f"{rel}: sha256 {actual} != manifest {sha256}")
        listed = set(files) | {MANIFEST}
        for dirpath, dirnames, filenames in os.walk(info.path):
            for entry in sorted([*dirnames, *filenames]):
                path = Path(dirpath) / entry
                rel = path.relative_to(info.path).as_posix()
                if path.is_symlink():
                    problems.append(f"{rel}: is a symbolic link")
                elif path.is_file() and rel not in listed:
                    problems.append(f"{rel}: not in the manifest")
        return problems

    def data_files(self, ref: str) -> dict[str, Path]:
        """The Parquet file of each split, each one listed in the manifest's ``files``."""
        info = self.get(ref)
        out = {}
        for split, meta in info.manifest["splits"].items():
            rel = meta["file"]  # one of the manifest's files: checked by get()
            where = f"{info.path / MANIFEST} key splits.{split}.file"
            try:
                out[split] = inside(info.path, rel, where)
            except UserError as exc:
                raise VerificationError(str(exc)) from None
        return out


def check_manifest(manifest: Any, where: str) -> dict[str, str]:
    """``{path: sha256}`` of a manifest whose every field a path or a name comes from is checked;
    :class:`VerificationError` naming ``where`` and the key otherwise."""

    def checked(check: Callable[[], object]) -> None:
        try:
            check()
        except UserError as exc:
            raise VerificationError(f"{where}: {exc}") from None

    if not isinstance(manifest, dict):
        raise VerificationError(f"{where}: not a manifest (a JSON object)")
    checked(lambda: check_name(manifest.get("name"), "key name"))
    checked(lambda: check_version(manifest.get("version"), "key version"))
    if not isinstance(manifest.get("content_hash"), str):
        raise VerificationError(f"{where}: no content_hash")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise VerificationError(f"{where}: no 'files' table")
    out = {}
    for rel, meta in files.items():
        checked(lambda rel=rel: check_relpath(rel, "key files"))
        sha256 = meta.get("sha256") if isinstance(meta, dict) else None
        if rel == MANIFEST or not isinstance(sha256, str):
            raise VerificationError(f"{where}: key files.{rel}: not a data file with a sha256")
        out[rel] = sha256
    splits = manifest.get("splits")
    if not isinstance(splits, dict) or not splits:
        raise VerificationError(f"{where}: no 'splits' table")
    for split, meta in splits.items():
        if not isinstance(meta, dict) or meta.get("file") not in out:
            raise VerificationError(f"{where}: key splits.{split}.file is not one of the manifest's files")
    return out


def _short(content_hash: object) -> str:
    """``sha256:0123456789ab``: enough of a hash to tell two apart in a message."""
    text = str(content_hash)
    algorithm, _, digest = text.rpartition(":")
    return f"{algorithm}:{digest[:12]}" if algorithm else text[:12]


def _remove_stale_staging(parent: Folder) -> None:
    """Staging folders of processes that no longer run (killed builds)."""
    for child in parent.names():
        if child.startswith(_STAGING_PREFIX):
            pid = child.rsplit("-", 2)[-2]
            if pid.isdigit() and not pid_alive(int(pid)):
                parent.remove_tree(child, ignore_errors=True)


def _valid_name(name: str) -> bool:
    try:
        check_name(name, name)
    except UserError:
        return False
    return True


def _valid_version(version: str) -> bool:
    try:
        check_version(version, version)
    except UserError:
        return False
    return True


def hash_files(root: Path) -> dict[str, dict[str, Any]]:
    return {
        path.relative_to(root).as_posix(): {"sha256": file_sha256(path), "bytes": path.stat().st_size}
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
