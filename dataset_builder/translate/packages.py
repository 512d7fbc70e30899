"""Argos Translate packages in a folder the toolkit controls.

Packages are installed with ``argostranslate.package.install_from_path`` into
``$DATASET_BUILDER_ARGOS_DIR`` (default ``~/.local/share/dataset-builder/argos-packages``); the
archive's sha256 is recorded beside each package, so a manifest can name exactly which model
translated a version.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from dataset_builder.errors import UserError
from dataset_builder.paths import DATA_HOME, user_path
from dataset_builder.sources.readers import file_sha256

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


def _read(path: Path) -> InstalledPackage | None:
    meta_path = path / "metadata.json"
    if not meta_path.is_file() or not (path / "model").is_dir():
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("type", "translate") != "translate":
        return None
    sidecar = path / _SIDECAR
    sha = json.loads(sidecar.read_text(encoding="utf-8"))["sha256"] if sidecar.is_file() else "unknown"
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
    found = [_read(p) for p in sorted(folder.iterdir()) if p.is_dir()]
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


def install(archive: str | Path, root: str | Path | None = None) -> InstalledPackage:
    archive = Path(archive)
    if not archive.is_file():
        raise PackageError(f"{archive}: no such file")
    folder = packages_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    # argostranslate reads its settings at import time: point it at our folder first.
    os.environ["ARGOS_PACKAGES_DIR"] = str(folder)
    import zipfile

    try:
        with zipfile.ZipFile(archive) as zf:
            tops = {name.split("/", 1)[0] for name in zf.namelist()}
    except zipfile.BadZipFile:
        raise PackageError(f"{archive}: not an Argos package (not a zip archive)") from None
    if len(tops) != 1:
        raise PackageError(
            f"{archive}: an Argos package holds exactly one top-level folder, found {len(tops)}"
        )
    import argostranslate.package
    import argostranslate.settings

    argostranslate.settings.package_data_dir = folder
    argostranslate.settings.package_dirs = [folder]
    argostranslate.package.install_from_path(archive)
    target = folder / tops.pop()
    (target / _SIDECAR).write_text(
        json.dumps({"sha256": file_sha256(archive), "archive": archive.name}), encoding="utf-8"
    )
    package = _read(target)
    if package is None:
        raise PackageError(
            f"{archive}: installed, but it is not a translation package (no model/ or metadata)"
        )
    return package


def fetch_from_index(from_code: str, to_code: str, root: str | Path | None = None) -> InstalledPackage:
    """Download and install a package from the Argos index (needs a network)."""
    from dataset_builder.sources.readers import check_host_reachable

    check_host_reachable("https://raw.githubusercontent.com", what="the Argos package index")
    os.environ["ARGOS_PACKAGES_DIR"] = str(packages_dir(root))
    import argostranslate.package

    argostranslate.package.update_package_index()
    for pkg in argostranslate.package.get_available_packages():
        if pkg.from_code == from_code and pkg.to_code == to_code:
            return install(pkg.download(), root)
    raise PackageError(f"the Argos index has no {from_code}->{to_code} package")
