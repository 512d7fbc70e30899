"""Remove training rows that overlap evaluation data.

Evaluation sets are the build's own test split and any external sets the recipe names (a local
file or a Hub dataset, with the columns to compare). ``method = "ngram"`` rejects a training row
sharing at least ``min_overlap`` word n-grams (default 13, as GPT-3's decontamination) with any
evaluation text; ``"minhash"`` rejects one whose Jaccard with an evaluation text reaches
``threshold``. Only rows of the train split (or rows without a split) are ever removed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from dataset_builder.dedup.engine import find_near_duplicates
from dataset_builder.dedup.shingles import shingle
from dataset_builder.errors import InputError
from dataset_builder.sources.readers import READERS, detect_format, expand_paths, read_hub
from dataset_builder.stages.base import Stage, StageConfig, StageContext, gather
from dataset_builder.stages.near_dedup import Role, row_text


class EvalSet(StageConfig):
    name: str
    paths: list[str] = Field(default_factory=list)
    format: Literal["auto", "jsonl", "json", "parquet", "csv"] = "auto"
    hub_id: str | None = None
    revision: str | None = None
    split: str = "test"
    data_files: list[str] | None = None
    columns: list[str] = Field(default_factory=lambda: ["prompt"], min_length=1)

    @model_validator(mode="after")
    def _check(self) -> EvalSet:
        if bool(self.paths) == bool(self.hub_id):
            raise ValueError("an eval set needs either 'paths' or 'hub_id'")
        return self


class DecontaminateConfig(StageConfig):
    test_split: bool = True
    eval_sets: list[EvalSet] = Field(default_factory=list)
    fields: list[Role] = Field(default_factory=lambda: ["user", "assistant"], min_length=1)
    test_fields: list[Role] = Field(default_factory=lambda: ["user"], min_length=1)
    method: Literal["ngram", "minhash"] = "ngram"
    ngram: int = Field(default=13, ge=1, le=64)
    min_overlap: int = Field(default=1, ge=1)
    threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    num_perm: int = Field(default=128, ge=16, le=1024)


def _eval_texts(spec: EvalSet, base: Path) -> list[str]:
    if spec.hub_id:
        records: Iterator[tuple[str, Any, int]] = read_hub(
            spec.hub_id, spec.revision, spec.split, spec.data_files
        )
        origin = spec.hub_id
    else:
        files = expand_paths(spec.paths, base)
        records = (rec for path in files for rec in READERS[detect_format(path, spec.format)](path))
        origin = ", ".join(spec.paths)
    texts, seen = [], set()
    for _, record, _ in records:
        if not isinstance(record, dict):
            continue
        seen.update(record)
        parts = [str(record[c]) for c in spec.columns if record.get(c) not in (None, "")]
        if parts:
            texts.append("\n".join(parts))
    missing = [c for c in spec.columns if c not in seen]
    if missing:
        raise InputError(
            f"eval set {spec.name!r} ({origin}): no column {missing[0]!r} (found: {', '.join(sorted(seen))})"
        )
    return texts


class Decontaminate(Stage):
    name = "decontaminate"
    Config = DecontaminateConfig

    def _hits(self, train: list[str], evals: list[str]) -> np.ndarray:
        """For each training text, how strongly it overlaps the evaluation texts (0: not at all)."""
        cfg: DecontaminateConfig = self.config
        if not train or not evals:
            return np.zeros(len(train))
        if cfg.method == "minhash":
            pairs = find_near_duplicates(evals + train, n=5, num_perm=cfg.num_perm, threshold=cfg.threshold)
            best = np.zeros(len(train))
            for x, y, j in pairs:
                if x < len(evals) <= y:
                    best[y - len(evals)] = max(best[y - len(evals)], j)
            return best
        eval_grams = np.unique(shingle(evals, n=cfg.ngram).hashes)
        sh = shingle(train, n=cfg.ngram)
        found = np.isin(sh.hashes, eval_grams).astype(np.int64)
        counts = np.zeros(len(train), dtype=np.int64)
        has = sh.counts() > 0
        if found.size:
            counts[has] = np.add.reduceat(found, sh.offsets[:-1][has])
        return np.where(counts >= cfg.min_overlap, counts, 0)

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        cfg: DecontaminateConfig = self.config
        table = gather(batches)
        if table is None:
            return
        rows = table.select(["row_id", "source", "source_key", "messages"]).to_pylist()
        splits = table.column("split").to_pylist() if "split" in table.schema.names else ["train"] * len(rows)
        train_idx = [i for i, s in enumerate(splits) if s == "train"]
        train_texts = [row_text(rows[i]["messages"], cfg.fields) for i in train_idx]

        eval_sets: list[tuple[str, list[str]]] = []
        if cfg.test_split:
            eval_sets.append(
                (
                    "test_split",
                    [
                        row_text(rows[i]["messages"], cfg.test_fields)
                        for i, s in enumerate(splits)
                        if s == "test"
                    ],
                )
            )
        eval_sets += [(spec.name, _eval_texts(spec, ctx.base_dir)) for spec in cfg.eval_sets]

        removed: dict[int, tuple[str, float]] = {}
        for name, texts in eval_sets:
            ctx.stats.counters[f"eval_texts:{name}"] = len(texts)
            hits = self._hits(train_texts, texts)
            n = 0
            for k in np.flatnonzero(hits):
                i = train_idx[k]
                if i not in removed:
                    removed[i] = (name, float(hits[k]))
                    n += 1
            ctx.stats.counters[f"contaminated:{name}"] = n
        if not removed:
            yield table
            return
        unit = "shared n-grams" if cfg.method == "ngram" else "Jaccard"
        order = sorted(removed)
        ctx.reject(
            [rows[i] for i in order],
            "contaminated",
            [f"overlaps eval set {removed[i][0]!r} ({unit}: {removed[i][1]:g})" for i in order],
        )
        keep = np.ones(len(rows), dtype=bool)
        keep[order] = False
        yield table.filter(pa.array(keep))
