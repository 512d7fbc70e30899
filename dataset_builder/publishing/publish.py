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
import re
import sys
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa

from dataset_builder import __version__
from dataset_builder.durable import fsync_tree
from dataset_builder.errors import RejectLimitExceeded, UserError
from dataset_builder.executors.base import BuildRun
from dataset_builder.publishing import conservation
from dataset_builder.publishing.card import arrow_nbytes, render_card
from dataset_builder.publishing.conservation import stage_funnel
from dataset_builder.publishing.croissant import write_croissant
from dataset_builder.publishing.failures import top_reasons
from dataset_builder.publishing.features import card_features
from dataset_builder.publishing.report_page import write_report_page
from dataset_builder.publishing.stats import TOKEN_PLOT, token_histogram, token_stats
from dataset_builder.publishing.writer import SplitWriter, split_file, write_table
from dataset_builder.recipe.schema import Recipe
from dataset_builder.registry.store import MANIFEST, Registry, hash_files
from dataset_builder.rows import canonical_json
from dataset_builder.sources import LoadResult
from dataset_builder.stages import StageStats
from dataset_builder.stages.base import RejectSink

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


def canonical_order(rejected: pa.Table, stages: list[str], sources: list[str]) -> pa.Table:
    """The rejected rows in an order that depends on the rows alone, not on when they arrived.

    Rows arrive in the order stages reject them, which is the order batches happen to flow in: a
    later stage may reject a row of the first batch before an earlier stage rejects one of the
    second, and batch sizes differ between executors. So the table is sorted by the stage's place
    in the build (load, the recipe's stages, write), then the source's place in the recipe, then the
    row's place in its source (``file:line`` / ``split[index]`` by name, then number), then row id:
    the file reads like the recipe, and the same recipe writes the same bytes under any executor.
    """
    if rejected.num_rows < 2:
        return rejected
    stage_rank = {name: i for i, name in enumerate(stages)}
    source_rank = {name: i for i, name in enumerate(sources)}
    columns = rejected.select(["stage", "source", "source_key", "row_id", "reason", "detail"]).to_pydict()

    def key(i: int) -> tuple[Any, ...]:
        stage, source = columns["stage"][i], columns["source"][i]
        return (
            stage_rank.get(stage, len(stage_rank)),
            stage or "",
            source_rank.get(source, len(source_rank)),
            source or "",
            _place(columns["source_key"][i] or ""),
            columns["row_id"][i] or "",
            columns["reason"][i] or "",
            columns["detail"][i] or "",
        )

    return rejected.take(sorted(range(rejected.num_rows), key=key))


def _place(source_key: str) -> tuple[str, int, str]:
    """``en.jsonl:31`` -> ("en.jsonl:", 31, ""): line 6 sorts before line 31 of the same file."""
    found = _LAST_NUMBER.match(source_key)
    if found is None:
        return (source_key, -1, "")
    return (found.group(1), int(found.group(2)), found.group(3))


_LAST_NUMBER = re.compile(r"^(.*?)(\d+)(\D*)$", re.DOTALL)


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

    rejected = canonical_order(
        run.rejects.table(), [s.name for s in run.stats], [s.name for s in recipe.sources]
    )
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
    (staging / "README.md").write_text(render_card(manifest, card_features(writer.schema)), encoding="utf-8")
    # Derived from the version, hashed in its files but not part of its content hash.
    write_croissant(staging, manifest)
    write_report_page(staging, manifest, rejected, stage_funnel(run.stats, run.rejects.by_stage_source))
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
        # Counters by name: in the order a stage first counted them they would follow its batches.
        "stages": [{**s.as_dict(), "counters": dict(sorted(s.counters.items()))} for s in stats],
        "splits": splits,
        "rejected": {
            "rows": rejected.num_rows,
            "file": "rejected/rejected.parquet",
            "by_stage_reason": by_reason,
        },
    }
