"""Python API behind :func:`dataset_builder.load`."""

from __future__ import annotations

from pathlib import Path

import datasets
import pyarrow.parquet as pq

from dataset_builder.errors import VerificationError
from dataset_builder.registry import Registry, VersionInfo


def resolve(ref: str, registry: str | Path | None = None) -> VersionInfo:
    """The local version behind ``NAME@VERSION`` or ``ORG/NAME@VERSION`` (pulled from the Hub into
    the local registry once, every checksum verified)."""
    reg = Registry(registry)
    if "/" in ref.split("@", 1)[0]:
        from dataset_builder.hub import local_ref, pull

        ref = local_ref(ref, reg) or pull(ref, reg).ref
    return reg.get(ref)


def load_version(
    ref: str, registry: str | Path | None = None, *, verify: bool = True
) -> datasets.DatasetDict:
    """``NAME@VERSION`` from the local registry, or ``ORG/NAME@VERSION`` from the Hub (pulled into
    the local registry once, every checksum verified)."""
    reg = Registry(registry)
    ref = resolve(ref, registry).ref
    if verify:
        problems = reg.verify(ref)
        if problems:
            raise VerificationError(f"{ref}: {problems[0]} ({len(problems)} problem(s)); refusing to load")
    return datasets.DatasetDict(
        {split: datasets.Dataset(pq.read_table(path)) for split, path in reg.data_files(ref).items()}
    )
