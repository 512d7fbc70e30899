"""Versions on disk: ``ROOT/NAME/VERSION/`` holding data, manifest and card.

A version is written in a staging folder beside its final place and renamed into place in one
``rename`` call, so a build killed at any moment leaves no partial version. Published versions are
immutable: publishing different content under an existing version is refused; identical content
is a no-op.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataset_builder.errors import PublishError, UserError, VerificationError
from dataset_builder.paths import DATA_HOME, user_path
from dataset_builder.sources.readers import file_sha256

REGISTRY_ENV = "DATASET_BUILDER_REGISTRY"
MANIFEST = "manifest.json"
_STAGING_PREFIX = ".staging-"
_REF = re.compile(r"^(?P<name>[^@\s]+)@(?P<version>[^@\s]+)$")


def parse_ref(ref: str) -> tuple[str, str]:
    match = _REF.match(ref)
    if not match:
        raise UserError(f"{ref!r}: expected NAME@VERSION")
    return match["name"], match["version"]


def default_registry_path(path: str | Path | None = None) -> Path:
    return user_path(path, REGISTRY_ENV, DATA_HOME / "registry")


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

    def version_dir(self, name: str, version: str) -> Path:
        return self.root / name / version

    def exists(self, name: str, version: str) -> bool:
        return (self.version_dir(name, version) / MANIFEST).is_file()

    def get(self, ref: str) -> VersionInfo:
        name, version = parse_ref(ref)
        path = self.version_dir(name, version)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            known = [v.version for v in self.versions(name)]
            hint = f" (published: {', '.join(known)})" if known else ""
            raise PublishError(f"{ref}: no such version in {self.root}{hint}")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise VerificationError(f"{manifest_path}: unreadable manifest ({exc})") from None
        return VersionInfo(name, version, path, manifest)

    def versions(self, name: str | None = None) -> list[VersionInfo]:
        names = (
            [name]
            if name
            else sorted(p.name for p in self.root.iterdir() if p.is_dir())
            if self.root.is_dir()
            else []
        )
        out = []
        for n in names:
            folder = self.root / n
            if not folder.is_dir():
                continue
            for child in sorted(folder.iterdir()):
                if child.name.startswith(".") or not (child / MANIFEST).is_file():
                    continue
                out.append(self.get(f"{n}@{child.name}"))
        return out

    @contextmanager
    def staging(self, name: str, version: str) -> Iterator[Path]:
        """A private folder for one build; removed unless published."""
        parent = self.root / name
        parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_staging(parent)
        path = parent / f"{_STAGING_PREFIX}{version}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        path.mkdir()
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    @staticmethod
    def _remove_stale_staging(parent: Path) -> None:
        for child in parent.glob(f"{_STAGING_PREFIX}*"):
            pid = child.name.rsplit("-", 2)[-2]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(child, ignore_errors=True)

    def publish(self, staging: Path, name: str, version: str, content_hash: str) -> bool:
        """Move a finished staging folder into place. True if published, False if identical exists."""
        target = self.version_dir(name, version)
        if not self.exists(name, version):
            try:
                os.rename(staging, target)
                _fsync_dir(target.parent)
                return True
            except OSError:
                if not self.exists(name, version):
                    raise
        existing = self.get(f"{name}@{version}").manifest.get("content_hash")
        if existing == content_hash:
            return False
        raise PublishError(
            f"{name}@{version}: already published with different content ({existing} != {content_hash}); "
            "versions are immutable: bump dataset.version in the recipe"
        )

    def verify(self, ref: str) -> list[str]:
        """Re-hash every file the manifest lists; return the problems found (empty: intact)."""
        info = self.get(ref)
        problems = []
        files: dict[str, dict[str, Any]] = info.manifest.get("files", {})
        for rel, expected in sorted(files.items()):
            path = info.path / rel
            if not path.is_file():
                problems.append(f"{rel}: missing")
            elif (actual := file_sha256(path)) != expected["sha256"]:
                problems.append(f"{rel}: sha256 {actual} != manifest {expected['sha256']}")
        listed = set(files) | {MANIFEST}
        for path in sorted(info.path.rglob("*")):
            rel = path.relative_to(info.path).as_posix()
            if path.is_file() and rel not in listed:
                problems.append(f"{rel}: not in the manifest")
        return problems

    def data_files(self, ref: str) -> dict[str, Path]:
        info = self.get(ref)
        return {split: info.path / meta["file"] for split, meta in info.manifest["splits"].items()}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def hash_files(root: Path) -> dict[str, dict[str, Any]]:
    return {
        path.relative_to(root).as_posix(): {"sha256": file_sha256(path), "bytes": path.stat().st_size}
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
