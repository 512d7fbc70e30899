"""What every executor shares: the run's counts, metered stage edges, and the wiring of stages.

An executor decides where a stage's work happens (this process, or workers of a cluster); it never
changes what a stage does. The wiring is the same for all: ``load`` feeds the stages in recipe
order, each stage's input and output are counted per source where they are read and yielded (two
counts, not one copied into the other), and the last stage feeds the split writer. An executor
only supplies :meth:`Executor.run_stage`, which turns a stage's input batches into its output
batches and routes its rejected rows and counters into the stage's context.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dataset_builder.progress import progress
from dataset_builder.publishing import conservation
from dataset_builder.publishing.writer import SplitWriter
from dataset_builder.recipe.schema import Recipe, StageEntry
from dataset_builder.sources import LoadResult, load_sources
from dataset_builder.stages import Stage, StageContext, StageStats, stage_class
from dataset_builder.stages.base import RejectSink


@dataclass
class BuildRun:
    """Everything a build has counted so far: what publishing, or a failure report, is made of."""

    loaded: LoadResult = field(default_factory=LoadResult)
    rejects: RejectSink = field(default_factory=RejectSink)
    stats: list[StageStats] = field(default_factory=list)
    failed_stage: str | None = None
    writer: SplitWriter | None = None
    # How the stages were run, for the manifest: {"executor": "local"} or the Ray cluster's shape.
    execution: dict[str, Any] = field(default_factory=dict)

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


class Meter:
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


def stage_names(recipe: Recipe) -> list[str]:
    """Each stage's name in stats and rejects: its type, numbered from its second use on."""
    seen: dict[str, int] = {}
    names = []
    for entry in recipe.stages:
        seen[entry.type] = seen.get(entry.type, 0) + 1
        names.append(entry.type if seen[entry.type] == 1 else f"{entry.type}#{seen[entry.type]}")
    return names


class Executor:
    """Runs a recipe's stages over its batches. Subclasses decide where a stage runs."""

    name = "base"

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        """What the manifest records of how the build ran."""
        return {"executor": self.name}

    def run_stage(
        self, stage: Stage, entry: StageEntry, batches: Iterator[pa.Table], ctx: StageContext
    ) -> Iterator[pa.Table]:
        """The stage's output batches; its rejects and counters land in ``ctx``."""
        return stage.run(batches, ctx)

    def execute(
        self,
        recipe: Recipe,
        run: BuildRun,
        staging: Path,
        limit: int | None,
        show_progress: bool,
        label: str,
    ) -> dict[str, Any]:
        """Run the stages in recipe order, batches streaming through generators, and write what
        comes out into the split files. Fills ``run`` as it goes; returns the writer's summary."""
        run.execution = self.describe()
        workdir = staging / ".work"
        workdir.mkdir()
        base = recipe.base_dir()
        options = {s.name: {"language": s.language, "translate": s.needs_translation} for s in recipe.sources}
        load_stats = StageStats("load")
        load_ctx = StageContext("load", load_stats, run.rejects, workdir, show_progress, base, options)
        run.stats.append(load_stats)
        outputs = [Meter(load_sources(recipe, load_ctx, run.loaded, limit))]
        inputs: list[Meter | None] = [None]
        for entry, stage_name in zip(recipe.stages, stage_names(recipe), strict=True):
            stage = stage_class(entry.type)(entry.config)
            stats = StageStats(stage_name)
            ctx = StageContext(
                stage_name, stats, run.rejects, workdir, show_progress, base, options, recipe.trust_code
            )
            # Rows in are counted where the stage reads them, not copied from the stage before.
            inputs.append(Meter(iter(outputs[-1])))
            outputs.append(Meter(self.run_stage(stage, entry, iter(inputs[-1]), ctx)))
            run.stats.append(stats)
        write_stats = StageStats("write")
        write_ctx = StageContext("write", write_stats, run.rejects, workdir, show_progress, base, options)
        run.stats.append(write_stats)
        inputs.append(Meter(iter(outputs[-1])))
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
