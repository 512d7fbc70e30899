"""Near-duplicate removal with MinHash LSH, verified by exact Jaccard, in clusters.

Holds every row back until it has seen them all (duplicates can be anywhere), then: word n-gram
shingles of the chosen roles' text, MinHash signatures, datasketch ``MinHashLSH`` candidates,
exact Jaccard on the shingle sets for every candidate, union-find clusters, one keeper per cluster
by the recipe's policy. ``action = "drop"`` rejects the others (``duplicate_of`` names the keeper);
``"mark"`` keeps everyone and lets ``dup_cluster`` keep whole clusters on one side of the split.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from dataset_builder.dedup.engine import find_near_duplicates
from dataset_builder.dedup.index import clusters, lsh_params
from dataset_builder.stages.base import Stage, StageConfig, StageContext, gather

Role = Literal["system", "user", "assistant"]


class NearDedupConfig(StageConfig):
    fields: list[Role] = Field(default_factory=lambda: ["user", "assistant"], min_length=1)
    ngram: int = Field(default=5, ge=1, le=32)
    num_perm: int = Field(default=128, ge=16, le=1024)
    threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    seed: int = 1
    keep: Literal["first", "longest_answer", "source_priority"] = "first"
    source_priority: list[str] = Field(default_factory=list)
    action: Literal["drop", "mark"] = "drop"


def row_text(messages: list[dict[str, str]], roles: list[str]) -> str:
    return "\n".join(m["content"] for m in messages if m["role"] in roles)


class NearDedup(Stage):
    name = "near_dedup"
    Config = NearDedupConfig

    def _rank(self, row: dict[str, Any], index: int) -> tuple:
        """Lower ranks win; ties fall back to the order rows arrived in."""
        cfg: NearDedupConfig = self.config
        if cfg.keep == "longest_answer":
            answer = sum(len(m["content"]) for m in row["messages"] if m["role"] == "assistant")
            return (-answer, index)
        if cfg.keep == "source_priority":
            order = {name: i for i, name in enumerate(cfg.source_priority)}
            return (order.get(row["source"], len(order)), index)
        return (index,)

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        cfg: NearDedupConfig = self.config
        table = gather(batches)
        if table is None:
            return
        rows = table.select(["row_id", "source", "source_key", "messages"]).to_pylist()
        texts = [row_text(r["messages"], cfg.fields) for r in rows]
        pairs = find_near_duplicates(
            texts, n=cfg.ngram, num_perm=cfg.num_perm, threshold=cfg.threshold, seed=cfg.seed
        )
        groups = clusters(len(rows), pairs)
        best_j: dict[int, float] = {}
        for x, y, j in pairs:
            best_j[x] = max(best_j.get(x, 0.0), j)
            best_j[y] = max(best_j.get(y, 0.0), j)

        cluster_of = [r["row_id"] for r in rows]
        size_of = [1] * len(rows)
        dropped: list[int] = []
        for members in groups.values():
            keeper = min(members, key=lambda i: self._rank(rows[i], i))
            for i in members:
                cluster_of[i] = rows[keeper]["row_id"]
                size_of[i] = len(members)
                if i != keeper:
                    dropped.append(i)

        bands, rows_per_band = lsh_params(cfg.threshold, cfg.num_perm)
        ctx.stats.counters.update(
            {
                "verified_pairs": len(pairs),
                "clusters": len(groups),
                "rows_in_clusters": sum(len(m) for m in groups.values()),
                "largest_cluster": max((len(m) for m in groups.values()), default=0),
                "lsh_bands": bands,
                "lsh_rows_per_band": rows_per_band,
            }
        )
        table = table.drop_columns(
            [c for c in ("dup_cluster", "dup_cluster_size") if c in table.schema.names]
        )
        table = table.append_column("dup_cluster", pa.array(cluster_of, pa.string()))
        table = table.append_column("dup_cluster_size", pa.array(size_of, pa.int32()))
        if cfg.action == "mark" or not dropped:
            yield table
            return
        dropped.sort()
        ctx.reject(
            [rows[i] for i in dropped],
            "near_duplicate",
            [f"cluster of {size_of[i]}; Jaccard {best_j[i]:.3f} with its nearest member" for i in dropped],
            [cluster_of[i] for i in dropped],
        )
        keep_mask = [True] * len(rows)
        for i in dropped:
            keep_mask[i] = False
        yield table.filter(pa.array(keep_mask))
