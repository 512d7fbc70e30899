"""Python API behind :func:`dataset_builder.load`."""

from __future__ import annotations

from pathlib import Path

import datasets
import pyarrow.parquet as pq

from dataset_builder.errors import UserError, VerificationError
from dataset_builder.registry.names import LATEST, is_hub_ref, parse_hub_ref
from dataset_builder.registry.store import Registry, VersionInfo


def resolve(ref: str, registry: str | Path | None = None) -> VersionInfo:
    """The local version behind ``NAME@VERSION`` or ``ORG/NAME@VERSION`` (pulled from the Hub into
    the local registry once, every checksum verified); ``@latest`` names the newest version."""
    if not isinstance(ref, str):
        raise UserError(f"{ref!r}: expected NAME@VERSION or ORG/NAME@VERSION as a string")
    reg = Registry(registry)
    if is_hub_ref(ref):
        from dataset_builder.hub.transfer import latest_tag, local_ref, pull

        repo_id, version = parse_hub_ref(ref)
        if version == LATEST:  # only the Hub knows its newest tag
            version = latest_tag(repo_id)
        hub_ref = f"{repo_id}@{version}"
        ref = local_ref(hub_ref, reg) or pull(hub_ref, reg).ref
    return reg.get(ref)


def load_version(
    ref: str, registry: str | Path | None = None, *, verify: bool = True
) -> datasets.DatasetDict:
    """``NAME@VERSION`` from the local registry, or ``ORG/NAME@VERSION`` from the Hub (pulled into
    the local registry once, every checksum verified); ``@latest`` names the newest version."""
    reg = Registry(registry)
    ref = resolve(ref, registry).ref
    if verify:
        problems = reg.verify(ref)
        if problems:
            raise VerificationError(f"{ref}: {problems[0]} ({len(problems)} problem(s)); refusing to load")
    return datasets.DatasetDict(
        {split: datasets.Dataset(pq.read_table(path)) for split, path in reg.data_files(ref).items()}
    )
