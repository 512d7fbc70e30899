"""Checksums of files: what manifests record and every download and install is checked against."""

from __future__ import annotations

import hashlib
from pathlib import Path

from dataset_builder.errors import InputError


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return digest.hexdigest()
