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
import pyarrow.compute as pc

from dataset_builder.rows import content_keys
from dataset_builder.stages.base import Stage, StageConfig, StageContext
from dataset_builder.stages.turn_columns import Turns


class ExactDedupConfig(StageConfig):
    key: Literal["messages", "prompt"] = "messages"
    casefold: bool = False


class ExactDedup(Stage):
    name = "exact_dedup"
    Config = ExactDedupConfig

    def _keys(self, batch: pa.Table) -> list[bytes]:
        """Each row's key: a hash of its ``[[role, content], ...]`` (all turns, or the user turns),
        written without ambiguity: each role and content after its length in bytes, all of it
        built by Arrow; or, case-folded when asked (or for a column with nulls), the canonical
        JSON of the turns (case folding changes lengths, never the JSON's quotes or escapes)."""
        cfg: ExactDedupConfig = self.config
        turns = None if cfg.casefold else Turns.of(batch.column("messages"))
        if turns is not None:
            if cfg.key == "prompt":
                turns = turns.keep(pc.equal(turns.roles, "user").to_numpy(zero_copy_only=False))
            per_turn = pc.binary_join_element_wise(
                pc.cast(pc.binary_length(turns.roles), pa.string()),
                turns.roles,
                pc.cast(pc.binary_length(turns.contents), pa.string()),
                turns.contents,
                ":",
            )
            rows = pa.ListArray.from_arrays(pa.array(turns.starts, pa.int32()), per_turn)
            written = pc.binary_join(rows, "").cast(pa.binary()).to_pylist()
            return [hashlib.blake2b(text, digest_size=16).digest() for text in written]
        texts = content_keys(batch.column("messages"), None if cfg.key == "messages" else ("user",))
        if cfg.casefold:
            texts = [text.casefold() for text in texts]
        return [hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest() for text in texts]

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        # key -> the kept row's (source, source_key), written SOURCE:SOURCE_KEY when a copy turns up
        first_seen: dict[bytes, tuple[str, str]] = {}
        for batch in batches:
            if not batch.num_rows:
                continue
            keep_mask: list[bool] = []
            dropped: list[int] = []
            kept_rows: list[str] = []
            sources = batch.column("source").to_pylist()
            source_keys = batch.column("source_key").to_pylist()
            for i, key in enumerate(self._keys(batch)):
                original = first_seen.get(key)
                if original is None:
                    first_seen[key] = (sources[i], source_keys[i])
                    keep_mask.append(True)
                else:
                    keep_mask.append(False)
                    dropped.append(i)
                    kept_rows.append(f"{original[0]}:{original[1]}")
            if dropped:
                rows = batch.select(["row_id", "source", "source_key", "messages"]).take(dropped).to_pylist()
                details = [f"same {self.config.key} as the kept row {kept}" for kept in kept_rows]
                ctx.reject(rows, "exact_duplicate", details, kept_rows)
            if not dropped:
                yield batch
            elif len(dropped) < batch.num_rows:
                yield batch.filter(pa.array(keep_mask))
        ctx.stats.counters["unique_keys"] = len(first_seen)
