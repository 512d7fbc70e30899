"""Deterministic train/test split by a hash of each row's group.

A row's split depends only on the seed and its own group key (its row id, or its near-duplicate
cluster when an earlier stage put one in ``group_column``), so a row keeps its split when other
rows come or go, and a cluster of near-copies never straddles train and test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pyarrow as pa
from pydantic import Field

from dataset_builder.stages.base import Stage, StageConfig, StageContext

SPLITS = ("train", "test")


class SplitConfig(StageConfig):
    test_ratio: float = Field(default=0.05, ge=0.0, le=1.0)
    seed: int = 42
    group_column: str = "dup_cluster"


def unit_interval(seed: int, key: str) -> float:
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class Split(Stage):
    name = "split"
    Config = SplitConfig

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        cfg: SplitConfig = self.config
        for batch in batches:
            if cfg.group_column in batch.schema.names:
                groups = batch.column(cfg.group_column).to_pylist()
                ids = batch.column("row_id").to_pylist()
                keys = [str(g) if g is not None else i for g, i in zip(groups, ids, strict=True)]
            else:
                keys = batch.column("row_id").to_pylist()
            splits = ["test" if unit_interval(cfg.seed, k) < cfg.test_ratio else "train" for k in keys]
            for name in SPLITS:
                ctx.count(f"rows_{name}", splits.count(name))
            if "split" in batch.schema.names:
                batch = batch.drop_columns(["split"])
            yield batch.append_column("split", pa.array(splits, pa.string()))
