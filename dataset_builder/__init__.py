"""dataset-builder: regenerate, version and publish the Russian Python instruction corpus."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pathlib import Path

    import datasets


def load(ref: str, registry: str | Path | None = None, *, verify: bool = True) -> datasets.DatasetDict:
    """Load a published version ``NAME@VERSION`` as a ``datasets.DatasetDict``.

    The files are checked against the manifest first (``verify=False`` skips the re-hash).
    """
    from dataset_builder.api import load_version

    return load_version(ref, registry, verify=verify)


__all__ = ["__version__", "load"]
