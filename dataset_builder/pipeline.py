"""Run a recipe: load sources, pass batches through the stages in recipe order, publish a version.

The pipeline knows the stage interface and nothing of any stage's insides: it wires iterators,
counts rows in and out, times each stage, gathers rejected rows, and hands the result to the
registry. Everything lands in a staging folder first; only a complete version is renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa

from dataset_builder import __version__
from dataset_builder.card import arrow_nbytes, render_card
from dataset_builder.errors import RejectLimitExceeded, UserError
from dataset_builder.progress import progress
from dataset_builder.recipe import Recipe
from dataset_builder.registry import MANIFEST, Registry, hash_files
from dataset_builder.report import TOKEN_PLOT, token_histogram, token_stats
from dataset_builder.rows import canonical_json
from dataset_builder.sources import LoadResult, load_sources
from dataset_builder.stages import StageContext, StageStats, stage_class
from dataset_builder.stages.base import RejectSink
from dataset_builder.writer import SplitWriter, split_file, write_table

LIBRARIES = (
    "pyarrow", "polars", "pandas", "datasets", "huggingface-hub", "datasketch", "langdetect",
    "argostranslate", "ctranslate2", "sentencepiece", "transformers", "jinja2",
)  # fmt: skip


@dataclass(frozen=True)
class BuildResult:
    ref: str
    path: Path
    content_hash: str
    published: bool
    manifest: dict[str, Any]


class _Meter:
    """Wraps an iterator of batches: counts rows and the time spent producing them (inclusive)."""

    def __init__(self, inner: Iterator[pa.Table]) -> None:
        self.inner = inner
        self.rows = 0
        self.seconds = 0.0

    def __iter__(self) -> Iterator[pa.Table]:
        while True:
            start = time.perf_counter()
            try:
                batch = next(self.inner)
            except StopIteration:
                self.seconds += time.perf_counter() - start
                return
            self.seconds += time.perf_counter() - start
            self.rows += batch.num_rows
            yield batch


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    """Installed versions of the named distributions (the ones not installed are left out)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _stage_names(recipe: Recipe) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for entry in recipe.stages:
        seen[entry.type] = seen.get(entry.type, 0) + 1
        names.append(entry.type if seen[entry.type] == 1 else f"{entry.type}#{seen[entry.type]}")
    return names


def _check_reject_limits(recipe: Recipe, rejects: RejectSink, rows_in: int) -> None:
    limit_rows = recipe.publish.max_rejected_rows
    limit_frac = recipe.publish.max_rejected_fraction
    over_rows = limit_rows is not None and rejects.count > limit_rows
    over_frac = rows_in > 0 and rejects.count / rows_in > limit_frac
    if not (over_rows or over_frac):
        return
    first = rejects.first()[0]
    limit = f"max_rejected_rows {limit_rows}" if over_rows else f"max_rejected_fraction {limit_frac}"
    raise RejectLimitExceeded(
        f"{first['source_key']}: {first['reason']} ({first['detail']}); "
        f"{rejects.count} of {rows_in} rows rejected, over {limit} in [publish]"
    )


def build(
    recipe: Recipe, registry: Registry, *, limit: int | None = None, show_progress: bool = True
) -> BuildResult:
    name = recipe.dataset.name
    version = recipe.dataset.version if limit is None else f"{recipe.dataset.version}+limit{limit}"
    started = datetime.now(UTC)
    with registry.staging(name, version) as staging:
        workdir = staging / ".work"
        workdir.mkdir()
        rejects = RejectSink()
        load_stats = StageStats("load")
        loaded = LoadResult()
        base = recipe.base_dir()
        options = {s.name: {"language": s.language, "translate": s.needs_translation} for s in recipe.sources}
        load_ctx = StageContext("load", load_stats, rejects, workdir, show_progress, base, options)
        meters = [_Meter(load_sources(recipe, load_ctx, loaded, limit))]
        all_stats = [load_stats]
        for entry, stage_name in zip(recipe.stages, _stage_names(recipe), strict=True):
            stage = stage_class(entry.type)(entry.config)
            stats = StageStats(stage_name)
            ctx = StageContext(stage_name, stats, rejects, workdir, show_progress, base, options)
            meters.append(_Meter(stage.run(iter(meters[-1]), ctx)))
            all_stats.append(stats)

        writer = SplitWriter(staging)
        with progress(desc=f"build {name}@{version}", unit="rows", enabled=show_progress) as bar:
            for batch in meters[-1]:
                writer.write(batch)
                bar.update(batch.num_rows)
        written = writer.close()

        previous = 0.0
        for i, (stats, meter) in enumerate(zip(all_stats, meters, strict=True)):
            stats.rows_out = meter.rows
            if i > 0:
                stats.rows_in = meters[i - 1].rows
            stats.seconds = meter.seconds - previous
            previous = meter.seconds

        if writer.schema is None or sum(written["rows"].values()) == 0:
            raise UserError(
                f"{recipe.path}: no rows survived the pipeline ({rejects.count} rejected); nothing published"
            )
        _check_reject_limits(recipe, rejects, load_stats.rows_in)

        rejected = rejects.table()
        write_table(staging / "rejected" / "rejected.parquet", rejected)
        shutil.rmtree(workdir, ignore_errors=True)

        manifest = _manifest(
            recipe, name, version, started, loaded, all_stats, written, writer, rejected, staging
        )
        manifest["previous_version"] = recipe.dataset.previous_version or _latest_version(
            registry, name, version
        )
        files = {split: staging / split_file(split) for split in written["rows"]}
        manifest["tokens"] = token_stats(files)
        if manifest["tokens"] and token_histogram(files, staging / TOKEN_PLOT, f"{name} {version}"):
            manifest["plots"] = {"token_lengths": TOKEN_PLOT}
        from datasets import Features

        features = Features.from_arrow_schema(writer.schema)._to_yaml_list()
        (staging / "README.md").write_text(render_card(manifest, features), encoding="utf-8")
        manifest["files"] = hash_files(staging)
        (staging / MANIFEST).write_text(
            json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=False) + "\n",
            encoding="utf-8",
        )
        published = registry.publish(staging, name, version, written["content_hash"])
    info = registry.get(f"{name}@{version}")
    return BuildResult(info.ref, info.path, written["content_hash"], published, info.manifest)


def _latest_version(registry: Registry, name: str, version: str) -> str | None:
    """The version most recently built before this one: what this one was built after."""
    others = [v for v in registry.versions(name) if v.version != version]
    return max(others, key=lambda v: v.manifest["built_at"]).version if others else None


def _manifest(
    recipe: Recipe,
    name: str,
    version: str,
    started: datetime,
    loaded: LoadResult,
    stats: list[StageStats],
    written: dict[str, Any],
    writer: SplitWriter,
    rejected: pa.Table,
    staging: Path,
) -> dict[str, Any]:
    resolved = recipe.resolved()
    by_reason: dict[str, int] = {}
    for stage, reason in zip(
        rejected.column("stage").to_pylist(), rejected.column("reason").to_pylist(), strict=True
    ):
        key = f"{stage}/{reason}"
        by_reason[key] = by_reason.get(key, 0) + 1
    splits = {}
    for split, rows in written["rows"].items():
        counts = writer.counts.get(split, {"source": {}, "lang": {}})
        path = staging / split_file(split)
        splits[split] = {
            "file": split_file(split),
            "rows": rows,
            "bytes": path.stat().st_size,
            "arrow_bytes": arrow_nbytes(path),
            "per_source": dict(sorted(counts["source"].items())),
            "per_lang": dict(sorted(counts["lang"].items())),
        }
    return {
        "format_version": 1,
        "name": name,
        "version": version,
        "previous_version": recipe.dataset.previous_version,
        "content_hash": written["content_hash"],
        "built_at": started.isoformat(timespec="seconds"),
        "tool": {"name": "dataset-builder", "version": __version__},
        "environment": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "libraries": library_versions(),
        },
        "recipe": resolved,
        "recipe_sha256": hashlib.sha256(canonical_json(resolved).encode()).hexdigest(),
        "inputs": loaded.inputs,
        "rows_read_per_source": loaded.rows_per_source,
        "stages": [s.as_dict() for s in stats],
        "splits": splits,
        "rejected": {
            "rows": rejected.num_rows,
            "file": "rejected/rejected.parquet",
            "by_stage_reason": by_reason,
        },
    }
