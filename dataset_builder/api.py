"""Python API behind :func:`dataset_builder.load`."""

from __future__ import annotations

from pathlib import Path

import datasets
import pyarrow.parquet as pq

from dataset_builder.errors import VerificationError
from dataset_builder.registry import Registry


def load_version(
    ref: str, registry: str | Path | None = None, *, verify: bool = True
) -> datasets.DatasetDict:
    reg = Registry(registry)
    if verify:
        problems = reg.verify(ref)
        if problems:
            raise VerificationError(f"{ref}: {problems[0]} ({len(problems)} problem(s)); refusing to load")
    return datasets.DatasetDict(
        {split: datasets.Dataset(pq.read_table(path)) for split, path in reg.data_files(ref).items()}
    )
