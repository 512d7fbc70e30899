"""Run a recipe: load sources, pass batches through the stages in recipe order, publish a version.

The pipeline knows the stage interface and nothing of any stage's insides: it wires iterators,
counts rows in and out (per source) at every stage's edges, times each stage, gathers rejected
rows, and hands the result to the registry. Everything lands in a staging folder first; only a
complete version whose every row read is published or rejected (the conservation law) is flushed
to disk and renamed into place. A build that fails after reading data leaves a failure report.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dataset_builder import __version__, conservation
from dataset_builder.card import arrow_nbytes, render_card
from dataset_builder.errors import BuildError, RejectLimitExceeded, UserError
from dataset_builder.failures import clear_report, top_reasons, write_report
from dataset_builder.progress import progress
from dataset_builder.recipe import Recipe
from dataset_builder.registry import MANIFEST, Registry, hash_files
from dataset_builder.report import TOKEN_PLOT, token_histogram, token_stats
from dataset_builder.rows import canonical_json
from dataset_builder.sources import LoadResult, load_sources
from dataset_builder.stages import StageContext, StageStats, stage_class
from dataset_builder.stages.base import RejectSink
from dataset_builder.writer import SplitWriter, fsync_tree, split_file, write_table

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
    """Wraps an iterator of batches: counts rows (in all and per source), the time spent producing
    them (inclusive), whether it was read to its end, and whether an error passed through it."""

    def __init__(self, inner: Iterator[pa.Table]) -> None:
        self.inner = inner
        self.rows = 0
        self.by_source: Counter[str] = Counter()
        self.seconds = 0.0
        self.exhausted = False
        self.failed = False

    def __iter__(self) -> Iterator[pa.Table]:
        while True:
            start = time.perf_counter()
            try:
                batch = next(self.inner)
            except StopIteration:
                self.seconds += time.perf_counter() - start
                self.exhausted = True
                return
            except BaseException:
                self.failed = True
                raise
            self.seconds += time.perf_counter() - start
            self.rows += batch.num_rows
            _count_sources(self.by_source, batch)
            yield batch


def _count_sources(counter: Counter[str], batch: pa.Table) -> None:
    if not batch.num_rows:
        return
    for item in pc.value_counts(batch.column("source")).to_pylist():
        counter[str(item["values"])] += item["counts"]


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


@dataclass
class _Run:
    """Everything a build has counted so far: what publishing, or a failure report, is made of."""

    loaded: LoadResult = field(default_factory=LoadResult)
    rejects: RejectSink = field(default_factory=RejectSink)
    stats: list[StageStats] = field(default_factory=list)
    failed_stage: str | None = None
    writer: SplitWriter | None = None

    def rows_read(self) -> int:
        return sum(self.loaded.rows_per_source.values()) + sum(s.rows_added for s in self.stats[1:])

    def published_by_source(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for counts in (self.writer.counts if self.writer else {}).values():
            out.update(counts["source"])
        return out

    def rows_by_source(self) -> dict[str, dict[str, int]]:
        return conservation.rows_by_source(
            self.stats, self.rejects.by_stage_source, self.published_by_source()
        )


def _execute(
    recipe: Recipe, run: _Run, staging: Path, limit: int | None, show_progress: bool, label: str
) -> dict[str, Any]:
    """Run the stages in recipe order, one process, batches streaming through generators, and
    write what comes out into the split files. Fills ``run`` as it goes; returns the writer's
    summary. Everything publishing needs is in ``run`` afterwards, whichever way stages ran."""
    workdir = staging / ".work"
    workdir.mkdir()
    base = recipe.base_dir()
    options = {s.name: {"language": s.language, "translate": s.needs_translation} for s in recipe.sources}
    load_stats = StageStats("load")
    load_ctx = StageContext("load", load_stats, run.rejects, workdir, show_progress, base, options)
    run.stats.append(load_stats)
    outputs = [_Meter(load_sources(recipe, load_ctx, run.loaded, limit))]
    inputs: list[_Meter | None] = [None]
    for entry, stage_name in zip(recipe.stages, _stage_names(recipe), strict=True):
        stage = stage_class(entry.type)(entry.config)
        stats = StageStats(stage_name)
        ctx = StageContext(stage_name, stats, run.rejects, workdir, show_progress, base, options)
        # Rows in are counted where the stage reads them, not copied from the stage before.
        inputs.append(_Meter(iter(outputs[-1])))
        outputs.append(_Meter(stage.run(iter(inputs[-1]), ctx)))
        run.stats.append(stats)
    write_stats = StageStats("write")
    write_ctx = StageContext("write", write_stats, run.rejects, workdir, show_progress, base, options)
    run.stats.append(write_stats)
    inputs.append(_Meter(iter(outputs[-1])))
    run.writer = SplitWriter(staging)

    def collect() -> None:
        previous = 0.0
        for stats, source, sink in zip(run.stats, inputs, [*outputs, None], strict=True):
            if source is not None:
                stats.rows_in = source.rows
                stats.in_by_source = Counter(source.by_source)
                stats.input_exhausted = source.exhausted
            if sink is not None:
                stats.rows_out = sink.rows
                stats.out_by_source = Counter(sink.by_source)
                stats.seconds = sink.seconds - previous
                previous = sink.seconds
        load_stats.read_by_source = Counter(run.loaded.rows_per_source)
        load_stats.rows_in = sum(run.loaded.rows_per_source.values())
        write_stats.out_by_source = run.published_by_source()
        write_stats.rows_out = sum(write_stats.out_by_source.values())

    try:
        with progress(desc=f"build {label}", unit="rows", enabled=show_progress) as bar:
            for batch in inputs[-1]:
                unrouted = run.writer.write(batch)
                if unrouted is not None:
                    _reject_unrouted(unrouted, write_ctx)
                bar.update(batch.num_rows)
        written = run.writer.close()
    except BaseException:
        failed = [name for name, meter in zip(run.stats, outputs, strict=False) if meter.failed]
        run.failed_stage = failed[0].name if failed else "write"
        raise
    finally:
        collect()
    shutil.rmtree(workdir, ignore_errors=True)
    return written


def _reject_unrouted(rows: pa.Table, ctx: StageContext) -> None:
    labels = rows.column("split").to_pylist()
    records = rows.select(["row_id", "source", "source_key", "messages"]).to_pylist()
    missing = [r for r, label in zip(records, labels, strict=True) if label is None]
    ctx.reject(
        missing,
        "no_split",
        "no split label: a stage after `split` added this row; put `split` after every stage that adds rows",
    )
    unknown = [(r, label) for r, label in zip(records, labels, strict=True) if label is not None]
    ctx.reject(
        [r for r, _ in unknown],
        "unknown_split",
        [f"split label {label!r} is neither 'train' nor 'test'" for _, label in unknown],
    )


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


def build(
    recipe: Recipe, registry: Registry, *, limit: int | None = None, show_progress: bool = True
) -> BuildResult:
    name = recipe.dataset.name
    version = recipe.dataset.version if limit is None else f"{recipe.dataset.version}+limit{limit}"
    started = datetime.now(UTC)
    run = _Run()
    with registry.staging(name, version) as staging:
        try:
            written = _execute(recipe, run, staging, limit, show_progress, f"{name}@{version}")
            published = publish_build(recipe, registry, staging, name, version, started, run, written)
        except BaseException as exc:
            raise_with_report(exc, registry, recipe, name, version, run)
            raise
    clear_report(registry.root, name, version)
    info = registry.get(f"{name}@{version}")
    return BuildResult(info.ref, info.path, written["content_hash"], published, info.manifest)


def raise_with_report(
    exc: BaseException, registry: Registry, recipe: Recipe, name: str, version: str, run: _Run
) -> None:
    """For a build that fails after reading data: write its failure report and raise one line
    naming the top reject reasons and the report. Returns (and the caller re-raises ``exc``) when
    no data was read, or for interrupts other than Ctrl-C."""
    if isinstance(exc, GeneratorExit | SystemExit) or run.rows_read() == 0:
        return
    try:
        where = write_report(
            registry.root,
            name,
            version,
            error=exc,
            failed_stage=run.failed_stage,
            stages=[s.as_dict() for s in run.stats],
            rejects=run.rejects,
            # Nothing was published: what reached the split files is reported as written.
            rows_by_source={
                source: {"read": n["read"], "written": n["published"], "rejected": n["rejected"]}
                for source, n in run.rows_by_source().items()
            },
            recipe=recipe.resolved(),
        )
        look = f"stage counts and rejected rows in {where}"
    except OSError as report_error:
        look = f"no failure report ({report_error.strerror or report_error})"
    if isinstance(exc, KeyboardInterrupt):
        return
    so_far = (
        f"; rejected so far: {top_reasons(run.rejects)}"
        if run.rejects.count and not isinstance(exc, RejectLimitExceeded)
        else ""
    )
    message = f"{exc}{so_far}; nothing published; {look}"
    if isinstance(exc, UserError):
        exc.args = (message,)
        return
    if isinstance(exc, Exception):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        stage = f"stage {run.failed_stage!r} failed" if run.failed_stage else "the build failed"
        raise BuildError(
            f"{stage}: {type(exc).__name__}: {first}{so_far}; nothing published; {look} (with the traceback)"
        ) from exc


def publish_build(
    recipe: Recipe,
    registry: Registry,
    staging: Path,
    name: str,
    version: str,
    started: datetime,
    run: _Run,
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
    manifest["previous_version"] = recipe.dataset.previous_version or _latest_version(registry, name, version)
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
