"""Near-duplicate removal with MinHash LSH, verified by exact Jaccard, in clusters.

Holds every row back until it has seen them all (duplicates can be anywhere), but not in memory:
incoming batches are written to Arrow files in a folder of the stage's workdir while their text
(the chosen roles) is shingled and signed into spill files (:mod:`dataset_builder.similarity.near_pairs`).
Then: candidates band by band, exact Jaccard on the shingle sets for every candidate, union-find
clusters, one keeper per cluster by the recipe's policy, and the rows are read back batch by batch.
``action = "drop"`` rejects the others (``duplicate_of`` names the keeper); ``"mark"`` keeps
everyone and lets ``dup_cluster`` keep whole clusters on one side of the split.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from dataset_builder.rows import Role, row_texts, turn_contents
from dataset_builder.similarity.index import clusters
from dataset_builder.similarity.near_pairs import NearDuplicateFinder
from dataset_builder.stages.base import Stage, StageConfig, StageContext

_OWN_COLUMNS = ("dup_cluster", "dup_cluster_size")


class NearDedupConfig(StageConfig):
    fields: list[Role] = Field(default_factory=lambda: ["user", "assistant"], min_length=1)
    ngram: int = Field(default=5, ge=1, le=32)
    num_perm: int = Field(default=128, ge=16, le=1024)
    threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    seed: int = 1
    keep: Literal["first", "longest_answer", "source_priority"] = "first"
    source_priority: list[str] = Field(default_factory=list)
    action: Literal["drop", "mark"] = "drop"


class _Spill:
    """The stage's input rows in Arrow IPC files, one file per run of batches with one schema."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: list[Path] = []
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None or table.schema != self._schema:
            self.close()
            self.files.append(self.folder / f"rows-{len(self.files):05d}.arrow")
            self._schema = table.schema
            self._writer = pa.ipc.new_file(self.files[-1], table.schema)
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def batches(self) -> Iterator[pa.Table]:
        self.close()
        for path in self.files:
            with pa.memory_map(str(path)) as source:
                reader = pa.ipc.open_file(source)
                for k in range(reader.num_record_batches):
                    yield pa.Table.from_batches([reader.get_batch(k)])


class NearDedup(Stage):
    name = "near_dedup"
    Config = NearDedupConfig

    def _rank_key(self, table: pa.Table) -> np.ndarray | None:
        """Per row, the part of its rank before its arrival index (None: arrival order alone).
        Lower ranks win; ties fall back to the order rows arrived in."""
        cfg: NearDedupConfig = self.config
        if cfg.keep == "longest_answer":
            answers = turn_contents(table.column("messages"), ["assistant"])
            lengths = pc.list_flatten(answers)
            owner = pc.list_parent_indices(answers).to_numpy(zero_copy_only=False)
            chars = pc.utf8_length(lengths).to_numpy(zero_copy_only=False).astype(np.int64)
            return -np.bincount(owner, weights=chars, minlength=table.num_rows).astype(np.int64)
        if cfg.keep == "source_priority":
            order = {name: i for i, name in enumerate(cfg.source_priority)}
            sources = table.column("source").to_pylist()
            return np.array([order.get(s, len(order)) for s in sources], dtype=np.int64)
        return None

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        folder = Path(tempfile.mkdtemp(prefix="near_dedup-", dir=ctx.workdir))
        try:
            yield from self._run(batches, ctx, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _run(self, batches: Iterator[pa.Table], ctx: StageContext, folder: Path) -> Iterator[pa.Table]:
        cfg: NearDedupConfig = self.config
        finder = NearDuplicateFinder(
            folder / "signatures", n=cfg.ngram, num_perm=cfg.num_perm, threshold=cfg.threshold, seed=cfg.seed
        )
        spill = _Spill(folder)
        row_ids: list[pa.Array] = []
        ranks: list[np.ndarray] = []
        for batch in batches:
            if not batch.num_rows:
                continue
            batch = batch.drop_columns([c for c in _OWN_COLUMNS if c in batch.schema.names])
            spill.write(batch)
            finder.add(row_texts(batch.column("messages"), list(cfg.fields)))
            row_ids.append(batch.column("row_id").combine_chunks())
            rank = self._rank_key(batch)
            if rank is not None:
                ranks.append(rank)
        n = finder.num_docs
        if not n:
            return
        pairs = finder.pairs()
        groups = clusters(n, pairs)
        best_j: dict[int, float] = {}
        for x, y, j in pairs:
            best_j[x] = max(best_j.get(x, 0.0), j)
            best_j[y] = max(best_j.get(y, 0.0), j)

        rank = np.concatenate(ranks) if ranks else None
        # One array, not chunks: taking from many chunks would combine them on every batch.
        ids = pa.concat_arrays([a.cast(pa.large_string()) for a in row_ids])
        # Per row: its keeper (itself when alone) and its cluster's size.
        keeper_of = np.arange(n, dtype=np.int64)
        size_of = np.ones(n, dtype=np.int32)
        for members in groups.values():
            keeper = min(members, key=lambda i: (int(rank[i]), i)) if rank is not None else members[0]
            keeper_of[members] = keeper
            size_of[members] = len(members)
        dropped = keeper_of != np.arange(n)

        ctx.stats.counters.update(
            {
                "verified_pairs": len(pairs),
                "clusters": len(groups),
                "rows_in_clusters": sum(len(m) for m in groups.values()),
                "largest_cluster": max((len(m) for m in groups.values()), default=0),
                "lsh_bands": finder.bands,
                "lsh_rows_per_band": finder.rows,
            }
        )
        first = 0
        for table in spill.batches():
            last = first + table.num_rows
            keepers = keeper_of[first:last]
            table = table.append_column("dup_cluster", ids.take(pa.array(keepers)).cast(pa.string()))
            table = table.append_column("dup_cluster_size", pa.array(size_of[first:last], pa.int32()))
            gone = dropped[first:last]
            if cfg.action == "drop" and gone.any():
                mask = pa.array(gone)
                removed = np.flatnonzero(gone) + first
                ctx.reject(
                    table.filter(mask).select(["row_id", "source", "source_key", "messages"]).to_pylist(),
                    "near_duplicate",
                    [
                        f"cluster of {size_of[i]}; Jaccard {best_j[i]:.3f} with its nearest member"
                        for i in removed
                    ],
                    ids.take(pa.array(keeper_of[removed])).to_pylist(),
                )
                table = table.filter(pc.invert(mask))
            first = last
            yield table
