"""Publish a finished run: the last step of every build, whichever executor ran its stages.

Checks what the run counted (rows left, reject limits, the conservation law), writes the rejected
rows, the manifest (with token statistics) and the dataset card into the staging folder, flushes it
to disk and hands it to the registry. It reads only the counts in a :class:`BuildRun`, never how
stages were executed, so a build on one process and one spread over a cluster publish alike.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa

from dataset_builder import __version__, conservation
from dataset_builder.card import arrow_nbytes, render_card
from dataset_builder.croissant import write_croissant
from dataset_builder.durable import fsync_tree
from dataset_builder.errors import RejectLimitExceeded, UserError
from dataset_builder.executors.base import BuildRun
from dataset_builder.failures import top_reasons
from dataset_builder.recipe import Recipe
from dataset_builder.registry import MANIFEST, Registry, hash_files
from dataset_builder.report import TOKEN_PLOT, token_histogram, token_stats
from dataset_builder.report_page import stage_funnel, write_report
from dataset_builder.rows import canonical_json
from dataset_builder.sources import LoadResult
from dataset_builder.stages import StageStats
from dataset_builder.stages.base import RejectSink
from dataset_builder.writer import SplitWriter, split_file, write_table

LIBRARIES = (
    "pyarrow", "polars", "pandas", "datasets", "huggingface-hub", "datasketch", "langdetect",
    "argostranslate", "ctranslate2", "sentencepiece", "transformers", "jinja2", "ray",
)  # fmt: skip


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    """Installed versions of the named distributions (the ones not installed are left out)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def check_reject_limits(recipe: Recipe, rejects: RejectSink, rows_read: int) -> None:
    limit_rows = recipe.publish.max_rejected_rows
    limit_frac = recipe.publish.max_rejected_fraction
    over_rows = limit_rows is not None and rejects.count > limit_rows
    over_frac = rows_read > 0 and rejects.count / rows_read > limit_frac
    if not (over_rows or over_frac):
        return
    limit = f"max_rejected_rows {limit_rows}" if over_rows else f"max_rejected_fraction {limit_frac}"
    raise RejectLimitExceeded(
        f"{rejects.count} of {rows_read} rows rejected, over {limit} in [publish]: {top_reasons(rejects)}"
    )


def publish_build(
    recipe: Recipe,
    registry: Registry,
    staging: Path,
    name: str,
    version: str,
    started: datetime,
    run: BuildRun,
    written: dict[str, Any],
) -> bool:
    """Check a finished run (rows left, reject limits, conservation), write rejected rows, the
    manifest and the card into ``staging``, flush it to disk and publish it. Depends only on what
    the run counted, not on how its stages were executed."""
    writer = run.writer
    assert writer is not None
    if writer.schema is None or sum(written["rows"].values()) == 0:
        raise UserError(
            f"{recipe.path}: no rows survived the pipeline ({run.rejects.count} rejected); nothing published"
        )
    check_reject_limits(recipe, run.rejects, run.rows_read())
    account = conservation.check(run.stats, run.rejects.by_stage_source, run.published_by_source())

    rejected = run.rejects.table()
    write_table(staging / "rejected" / "rejected.parquet", rejected)

    manifest = _manifest(
        recipe, name, version, started, run.loaded, run.stats, written, writer, rejected, staging
    )
    manifest["rows_by_source"] = account
    # How the stages ran (executor, workers): not part of the recipe, whose data it must not change.
    manifest["execution"] = run.execution
    manifest["previous_version"] = recipe.dataset.previous_version or _latest_version(registry, name, version)
    files = {split: staging / split_file(split) for split in written["rows"]}
    manifest["tokens"] = token_stats(files)
    if manifest["tokens"] and token_histogram(files, staging / TOKEN_PLOT, f"{name} {version}"):
        manifest["plots"] = {"token_lengths": TOKEN_PLOT}
    from datasets import Features

    features = Features.from_arrow_schema(writer.schema)._to_yaml_list()
    (staging / "README.md").write_text(render_card(manifest, features), encoding="utf-8")
    # Derived from the version, hashed in its files but not part of its content hash.
    write_croissant(staging, manifest)
    write_report(staging, manifest, rejected, stage_funnel(run.stats, run.rejects.by_stage_source))
    manifest["files"] = hash_files(staging)
    (staging / MANIFEST).write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=False) + "\n",
        encoding="utf-8",
    )
    fsync_tree(staging)
    return registry.publish(staging, name, version, written["content_hash"])


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
