"""Exact duplicate removal over normalized content; the first row seen is kept.

Rows arrive in a deterministic order (recipe source order, then file order), so "first seen" is
deterministic too. The key is either the whole conversation or only the user turns (the same
question answered twice is usually a duplicate worth dropping in synthetic sets).

A rejected duplicate's ``duplicate_of`` names the kept row by its place, ``SOURCE:SOURCE_KEY``:
a row id is a hash of source and content, so two identical rows of one source share their id and
the id alone could not tell the kept row from the dropped one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Literal

import pyarrow as pa

from dataset_builder.rows import canonical_json
from dataset_builder.stages.base import Stage, StageConfig, StageContext


class ExactDedupConfig(StageConfig):
    key: Literal["messages", "prompt"] = "messages"
    casefold: bool = False


class ExactDedup(Stage):
    name = "exact_dedup"
    Config = ExactDedupConfig

    def _key(self, messages: list[dict[str, str]]) -> bytes:
        cfg: ExactDedupConfig = self.config
        turns = [m for m in messages if cfg.key == "messages" or m["role"] == "user"]
        text = canonical_json([[m["role"], m["content"]] for m in turns])
        if cfg.casefold:
            text = text.casefold()
        return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        first_seen: dict[bytes, str] = {}  # key -> the kept row's SOURCE:SOURCE_KEY
        for batch in batches:
            keep_mask: list[bool] = []
            dropped, kept_rows = [], []
            rows = batch.select(["row_id", "source", "source_key", "messages"]).to_pylist()
            for row in rows:
                key = self._key(row["messages"])
                original = first_seen.get(key)
                if original is None:
                    first_seen[key] = f"{row['source']}:{row['source_key']}"
                    keep_mask.append(True)
                else:
                    keep_mask.append(False)
                    dropped.append(row)
                    kept_rows.append(original)
            details = [f"same {self.config.key} as the kept row {kept}" for kept in kept_rows]
            ctx.reject(dropped, "exact_duplicate", details, kept_rows)
            if any(keep_mask):
                yield batch.filter(pa.array(keep_mask))
        ctx.stats.counters["unique_keys"] = len(first_seen)
