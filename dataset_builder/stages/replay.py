"""Replay mix: add a share of rows from another dataset (e.g. the base model's own instruction
data) so fine-tuning keeps the base model's behaviour.

The stage passes every row through, counting them, then adds ``round(ratio * rows)`` rows of the
replay source, chosen by a seeded hash of each row's id (the same seed and data pick the same rows
on any machine). Replay rows keep their own source name and language, so the card and the
manifest show exactly what was mixed in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pyarrow as pa
from pydantic import Field

from dataset_builder.recipe.schema import SourceConfig
from dataset_builder.sources import LoadResult, load_source
from dataset_builder.stages.base import Stage, StageConfig, StageContext


class ReplayConfig(StageConfig):
    source: SourceConfig
    ratio: float = Field(gt=0.0, le=10.0)
    seed: int = 0
    max_row_bytes: int = Field(default=1_000_000, ge=1)


class Replay(Stage):
    name = "replay"
    Config = ReplayConfig

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        cfg: ReplayConfig = self.config
        seen = 0
        schema = None
        for batch in batches:
            seen += batch.num_rows
            schema = batch.schema
            yield batch
        wanted = round(cfg.ratio * seen)
        ctx.stats.counters.update({"from": cfg.source.hub_id or ", ".join(cfg.source.paths),
                                   "ratio": cfg.ratio, "seed": cfg.seed, "rows_added": 0})  # fmt: skip
        if not wanted:
            return
        # Unusable replay records are rejected under this stage, like any other row problem; they
        # and the rows mixed in are the rows this stage brings into the build (ctx.read). Records
        # the seeded sample leaves out never enter it.
        loaded = LoadResult()
        tables = list(load_source(cfg.source, ctx.base_dir, ctx, loaded, max_row_bytes=cfg.max_row_bytes))
        ctx.stats.counters["inputs"] = loaded.inputs
        unusable = loaded.rows_per_source.get(cfg.source.name, 0) - sum(t.num_rows for t in tables)
        if not tables:
            ctx.read(cfg.source.name, unusable)
            return
        pool = pa.concat_tables(tables)
        ids = pool.column("row_id").to_pylist()
        rank = sorted(
            range(len(ids)),
            key=lambda i: hashlib.blake2b(f"{cfg.seed}\x00{ids[i]}".encode(), digest_size=8).digest(),
        )
        chosen = sorted(rank[:wanted])
        picked = pool.take(chosen)
        ctx.read(cfg.source.name, unusable + picked.num_rows)
        ctx.stats.counters["rows_added"] = picked.num_rows
        ctx.stats.counters["rows_available"] = pool.num_rows
        if schema is not None and set(schema.names) != set(picked.schema.names):
            for name in schema.names:
                if name not in picked.schema.names:
                    picked = picked.append_column(name, pa.nulls(picked.num_rows, schema.field(name).type))
            picked = picked.select(schema.names)
        yield picked
