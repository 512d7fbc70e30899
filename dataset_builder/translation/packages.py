"""Argos Translate packages in a folder the toolkit controls.

Packages (zip archives, as ``argostranslate.package.install_from_path`` reads them) are unpacked
into ``$DATASET_BUILDER_ARGOS_DIR`` (default ``~/.local/share/dataset-builder/argos-packages``):
first into a hidden temporary folder, flushed to disk, then renamed into place, so a package is
either wholly installed or not there (an install killed half-way leaves only a hidden folder,
removed by the next install). The archive's sha256 and a hash of the installed files are
recorded beside each package, so a manifest can name exactly which model translated a version and
the translation cache never mixes two models.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dataset_builder.durable import fsync_path, fsync_tree, pid_alive
from dataset_builder.errors import UserError
from dataset_builder.hashing import file_sha256
from dataset_builder.paths import DATA_HOME, user_path

PACKAGES_ENV = "DATASET_BUILDER_ARGOS_DIR"
_SIDECAR = ".dataset-builder.json"


class PackageError(UserError):
    """No usable translation package."""


def packages_dir(path: str | Path | None = None) -> Path:
    return user_path(path, PACKAGES_ENV, DATA_HOME / "argos-packages")


@dataclass(frozen=True)
class InstalledPackage:
    path: Path
    from_code: str
    to_code: str
    version: str
    code: str
    sha256: str
    target_prefix: str = ""

    def describe(self) -> dict[str, str]:
        return {"code": self.code, "version": self.version, "from": self.from_code, "to": self.to_code,
                "sha256": self.sha256}  # fmt: skip


def content_sha256(path: Path) -> str:
    """A hash of a package's files (names, sizes and bytes; our sidecar left out): the model
    itself, whatever archive it came from and whether or not the sidecar survived."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name != _SIDECAR)
    for file in files:
        rel = file.relative_to(path).as_posix()
        digest.update(f"{rel}\0{file.stat().st_size}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def _sidecar(path: Path) -> dict[str, str]:
    try:
        data = json.loads((path / _SIDECAR).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _read(path: Path) -> InstalledPackage | None:
    meta_path = path / "metadata.json"
    if not meta_path.is_file() or not (path / "model").is_dir():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(meta, dict) or meta.get("type", "translate") != "translate":
        return None
    if not isinstance(meta.get("from_code"), str) or not isinstance(meta.get("to_code"), str):
        return None
    # A package installed by other means has no sidecar: it is named by its files' hash instead.
    sha = _sidecar(path).get("sha256") or content_sha256(path)
    return InstalledPackage(
        path=path,
        from_code=meta["from_code"],
        to_code=meta["to_code"],
        version=str(meta.get("package_version", "0")),
        code=meta.get("code") or f"translate-{meta['from_code']}_{meta['to_code']}",
        sha256=sha,
        target_prefix=meta.get("target_prefix", ""),
    )


def installed(root: str | Path | None = None) -> list[InstalledPackage]:
    folder = packages_dir(root)
    if not folder.is_dir():
        return []
    # Hidden folders are installs in progress (or killed): never a package.
    found = [_read(p) for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    return [p for p in found if p is not None]


def _version_key(version: str) -> tuple:
    return tuple(int(x) if x.isdigit() else x for x in version.replace("-", ".").split("."))


def find(
    from_code: str, to_code: str, version: str | None = None, root: str | Path | None = None
) -> InstalledPackage:
    candidates = [p for p in installed(root) if p.from_code == from_code and p.to_code == to_code]
    if version is not None:
        candidates = [p for p in candidates if p.version == version]
    if not candidates:
        wanted = f"{from_code}->{to_code}" + (f" version {version}" if version else "")
        raise PackageError(
            f"no Argos package for {wanted} in {packages_dir(root)}; "
            f"install one with `dataset-builder models install PATH.argosmodel`"
        )
    return max(candidates, key=lambda p: _version_key(p.version))


def _members(archive: Path) -> tuple[zipfile.ZipFile, str]:
    """The open archive and its one top-level folder; every member must stay inside it."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise PackageError(f"{archive}: not an Argos package (not a readable zip archive: {exc})") from None
    names = zf.namelist()
    tops = {name.split("/", 1)[0] for name in names}
    if len(tops) != 1:
        zf.close()
        raise PackageError(
            f"{archive}: an Argos package holds exactly one top-level folder, found {len(tops)}"
        )
    top = tops.pop()
    for name in names:
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith("/") or ".." in parts or not top or top.startswith("."):
            zf.close()
            raise PackageError(f"{archive}: member {name!r} would land outside the package folder")
    return zf, top


def _remove_leftovers(folder: Path) -> None:
    """Hidden folders of installs whose process is gone."""
    for child in folder.glob(".*-*-*"):
        pid = child.name.rsplit("-", 2)[-2]
        if child.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(child, ignore_errors=True)


def install(archive: str | Path, root: str | Path | None = None) -> InstalledPackage:
    archive = Path(archive)
    if not archive.is_file():
        raise PackageError(
            f"{archive}: no such file; download an .argosmodel file "
            "(https://www.argosopentech.com/argospm/index/), or fetch one with `models install FROM TO`"
        )
    folder = packages_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(folder)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging = folder / f".installing-{tag}"
    staging.mkdir()
    try:
        zf, top = _members(archive)
        with zf:
            try:
                zf.extractall(staging)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise PackageError(f"{archive}: damaged archive ({exc})") from None
        unpacked = staging / top
        if _read(unpacked) is None:
            raise PackageError(f"{archive}: not a translation package (no model/ or metadata.json)")
        (unpacked / _SIDECAR).write_text(
            json.dumps(
                {
                    "sha256": file_sha256(archive),
                    "archive": archive.name,
                    "content_sha256": content_sha256(unpacked),
                }
            ),
            encoding="utf-8",
        )
        fsync_tree(unpacked)
        target = folder / top
        replaced = folder / f".replaced-{tag}"
        if target.exists():
            os.rename(target, replaced)
        os.rename(unpacked, target)
        fsync_path(folder)
        shutil.rmtree(replaced, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    package = _read(target)
    assert package is not None  # checked before the rename
    return package


def fetch_from_index(from_code: str, to_code: str, root: str | Path | None = None) -> InstalledPackage:
    """Download and install a package from the Argos index (needs a network)."""
    from dataset_builder.network import check_host_reachable

    # The index argostranslate itself reads: $ARGOS_PACKAGE_INDEX, else its default on GitHub.
    index = os.environ.get("ARGOS_PACKAGE_INDEX") or "https://raw.githubusercontent.com"
    check_host_reachable(
        index,
        what="the Argos package index",
        hint=(
            f"; on a machine with a network, download the {from_code}->{to_code} .argosmodel file "
            "(https://www.argosopentech.com/argospm/index/) and install it here with "
            "`dataset-builder models install PATH.argosmodel`"
        ),
    )
    os.environ["ARGOS_PACKAGES_DIR"] = str(packages_dir(root))
    import argostranslate.package

    argostranslate.package.update_package_index()
    for pkg in argostranslate.package.get_available_packages():
        if pkg.from_code == from_code and pkg.to_code == to_code:
            return install(pkg.download(), root)
    raise PackageError(f"the Argos index has no {from_code}->{to_code} package")
