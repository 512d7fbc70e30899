"""The Ray executor: row-wise stages on a Ray cluster's workers, the rest on the driver.

Row-wise stages (:class:`~dataset_builder.stages.base.RowStage` subclasses, and translation) look
at one batch at a time, so their batches go to a pool of worker actors (``concurrency`` of them,
each reserving ``num_cpus``, and ``num_gpus`` when the recipe translates), started at the first
row-wise batch and kept for the whole build: a worker loads a stage's model once, however many
rows stream through. Batches go out numbered and come back in that order, with the rows each
batch lost to rejects and the counters it added (:mod:`~dataset_builder.executors.ray_worker`);
the driver replays those into the stage's context, so stats, rejects and the conservation law
come out exactly as in a local build.

Stages that must see every row before deciding (exact and near dedup, split, decontamination,
replay) run on the driver, in recipe order, over the stream the
workers send back in first-seen order. Their correctness is global: which copy of a duplicate is
kept, which cluster a row falls in, which side of a split a group lands on depend on all rows and
on their order, and running them on the driver gives exactly the local answer.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from dataset_builder.errors import UserError
from dataset_builder.executors.base import BuildRun, Executor
from dataset_builder.recipe.schema import Recipe, RunSection, StageEntry
from dataset_builder.stages import RowStage, Stage, StageContext

INSTALL_HINT = (
    "the ray executor needs Ray: pip install 'dataset-builder[ray]' "
    "(in a checkout: .venv/bin/pip install -e '.[ray]'), or build with --executor local"
)
# Stages whose workers reserve the recipe's num_gpus (the others need no accelerator).
ACCELERATED = {"translate", "mt_quality"}
ROW_WISE_TYPES = {"translate", "mt_quality"}
# Batches queued per worker: one running, one ready to start the moment it finishes.
IN_FLIGHT_PER_WORKER = 2
# A worker that dies (killed, out of memory, its node lost) is restarted this often, and a batch
# it was running is run again: more is a batch that kills whatever runs it.
WORKER_RESTARTS = 3


def is_row_wise(stage: Stage, entry: StageEntry) -> bool:
    return isinstance(stage, RowStage) or entry.type in ROW_WISE_TYPES


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, settings: RunSection) -> None:
        self.settings = settings
        self._started = False
        self._accelerated = False
        self._workers: list[Any] = []
        self._busy: list[int] = []
        # Per translate stage: what the cache's owner was given to write (a record of the run).
        self._cache_writes: dict[str, dict[str, int]] = {}
        # Per row-wise stage: how many times a worker built it (loaded its model).
        self._starts: dict[str, int] = {}

    def __enter__(self) -> RayExecutor:
        try:
            import ray
        except ImportError:
            raise UserError(INSTALL_HINT) from None
        if not ray.is_initialized():
            # Joins the cluster at `address` ($RAY_ADDRESS when unset), else starts one here that
            # stops with the build.
            try:
                ray.init(
                    address=self.settings.address,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                )
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = self.settings.address or "a local Ray"
                raise UserError(
                    f"cannot start or reach {where}: {str(exc).strip().splitlines()[0]}"
                ) from None
            self._started = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            import ray

            ray.shutdown()

    def describe(self) -> dict[str, Any]:
        import ray

        resources = ray.cluster_resources()
        return {
            "executor": "ray",
            "concurrency": self.settings.concurrency,
            "num_cpus": self.settings.num_cpus,
            "num_gpus": self.settings.num_gpus,
            "cluster": {
                "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
                "cpus": resources.get("CPU", 0),
                "gpus": resources.get("GPU", 0),
            },
        }

    def execute(self, recipe: Recipe, run: BuildRun, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # Workers reserve an accelerator when any stage they will run needs one.
        self._accelerated = any(entry.type in ACCELERATED for entry in recipe.stages)
        try:
            return super().execute(recipe, run, *args, **kwargs)
        finally:
            if self._starts:
                run.execution["stage_starts"] = dict(self._starts)
            if self._cache_writes:
                run.execution["translation_cache"] = dict(self._cache_writes)
            self._stop_workers()

    def run_stage(
        self, stage: Stage, entry: StageEntry, batches: Iterator[pa.Table], ctx: StageContext
    ) -> Iterator[pa.Table]:
        if not is_row_wise(stage, entry):
            return stage.run(batches, ctx)
        return self._on_workers(entry, batches, ctx)

    def _start_workers(self) -> list[Any]:
        """The build's workers: ``concurrency`` actors, started at the first row-wise batch and
        kept to the build's end, each running every row-wise stage. One pool, not one per stage:
        stages stream into each other, and pools per stage would have to fit on the cluster at
        once. A worker that dies is restarted and its batches run again."""
        import ray

        from dataset_builder.executors.ray_worker import StageWorker

        if not self._workers:
            actor = ray.remote(StageWorker).options(
                num_cpus=self.settings.num_cpus,
                num_gpus=self.settings.num_gpus if self._accelerated else 0,
                max_restarts=WORKER_RESTARTS,
                max_task_retries=WORKER_RESTARTS,
            )
            self._workers = [actor.remote() for _ in range(self.settings.concurrency)]
            self._busy = [0] * len(self._workers)
        return self._workers

    def _stop_workers(self) -> None:
        import ray

        for worker in self._workers:
            ray.kill(worker)
        self._workers, self._busy = [], []

    def _on_workers(
        self, entry: StageEntry, batches: Iterator[pa.Table], ctx: StageContext
    ) -> Iterator[pa.Table]:
        import ray

        from dataset_builder.executors.ray_worker import CacheKeeper

        keeper = None
        cache_path = _cache_path(entry, ctx.base_dir)
        if cache_path is not None:
            # On the driver's node, so the SQLite file stays where a local build would keep it.
            here = ray.get_runtime_context().get_node_id()
            strategy = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(here, soft=False)
            keeper = (
                ray.remote(CacheKeeper)
                .options(num_cpus=0, scheduling_strategy=strategy)
                .remote(str(cache_path))
            )
        spec = {
            "stage_type": entry.type,
            "settings": entry.settings(),
            "stage_name": ctx.stage,
            "base_dir": str(ctx.base_dir),
            "source_options": ctx.source_options,
            "trust_code": ctx.trust_code,
            "cache_keeper": keeper,
        }
        workers = self._start_workers()
        try:
            yield from self._stream(spec, _cut(batches, self.settings.batch_rows), ctx)
            if keeper is not None:
                # Counted by the cache's one owner: the workers' own counts would depend on which
                # of them looked a sentence up first.
                for key, value in ray.get(keeper.lookups.remote()).items():
                    if key in ctx.stats.counters:
                        ctx.stats.counters[key] = value
                self._cache_writes[ctx.stage] = ray.get(keeper.writes.remote())
        except Exception as exc:
            if isinstance(exc, UserError) or not type(exc).__module__.startswith("ray"):
                raise  # the stage's own error, from an envelope
            raise _cause(exc) from None
        finally:
            # A stream closed after a failed build shut Ray down has no pool left; calling an
            # actor then would start a new local Ray instance, so there is nothing to release.
            if ray.is_initialized():
                if workers is self._workers:
                    for worker in workers:
                        worker.release.remote(ctx.stage)
                if keeper is not None:
                    ray.get(keeper.close.remote())
                    ray.kill(keeper)

    def _stream(
        self, spec: dict[str, Any], batches: Iterator[pa.Table], ctx: StageContext
    ) -> Iterator[pa.Table]:
        """Hand batches to the least busy worker, at most two per worker in flight, and yield
        what comes back in input order, whatever order the workers finish in."""
        import ray

        in_order = InOrder(ctx.stage)
        running: dict[Any, int] = {}  # the answer to come -> the worker computing it
        sent = 0
        more = True
        while True:
            # Answers held back behind a slower one count too: the driver holds at most this many.
            while more and len(running) + in_order.held() < IN_FLIGHT_PER_WORKER * len(self._workers):
                batch = next(batches, None)
                if batch is None:
                    more = False
                    break
                worker = self._busy.index(min(self._busy))
                running[self._workers[worker].feed.remote(spec, sent, batch)] = worker
                self._busy[worker] += 1
                sent += 1
            if not running:
                break
            ready, _ = ray.wait(list(running), num_returns=1)
            for answer in ready:
                self._busy[running.pop(answer)] -= 1
                for envelope in in_order.add(ray.get(answer)):
                    _replay(envelope, ctx)
                    if envelope.get("started"):
                        self._starts[ctx.stage] = self._starts.get(ctx.stage, 0) + 1
                    yield from envelope["outputs"]
        in_order.finish(sent)


class InOrder:
    """Puts numbered envelopes back in order. A number delivered twice, or one never sent, is an
    error: either would change what the stage published without anyone seeing it."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.waiting: dict[int, dict[str, Any]] = {}
        self.next = 0

    def add(self, envelope: dict[str, Any]) -> Iterator[dict[str, Any]]:
        seq = envelope["seq"]
        if seq < self.next or seq in self.waiting:
            raise RuntimeError(f"stage {self.stage!r}: batch {seq} was delivered twice")
        self.waiting[seq] = envelope
        while self.next in self.waiting:
            yield self.waiting.pop(self.next)
            self.next += 1

    def held(self) -> int:
        return len(self.waiting)

    def finish(self, sent: int) -> None:
        if self.waiting or self.next != sent:
            lost = sent - self.next
            raise RuntimeError(f"stage {self.stage!r}: {lost} batch(es) of {sent} never came back from Ray")


def _cut(batches: Iterator[pa.Table], size: int) -> Iterator[pa.Table]:
    """Batches of at most ``size`` rows, in order; empty ones left out (a row-wise stage makes
    nothing of them)."""
    for batch in batches:
        for start in range(0, batch.num_rows, size):
            yield batch.slice(start, size)


def _replay(envelope: dict[str, Any], ctx: StageContext) -> None:
    """Put one batch's rejects and counters into the driver's context, as if the stage ran here;
    raise the stage's error when it failed on that batch."""
    if envelope["error"] is not None:
        raise pickle.loads(envelope["error"])
    for key, value in envelope["counters"].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            ctx.stats.counters[key] = ctx.stats.counters.get(key, 0) + value
        else:
            ctx.stats.counters[key] = value
    for source, n in envelope["read_by_source"].items():
        ctx.read(source, n)
    rejected = envelope["rejected"].to_pylist()
    # Runs of one reason, in the order the stage rejected them.
    start = 0
    while start < len(rejected):
        end = start
        while end < len(rejected) and rejected[end]["reason"] == rejected[start]["reason"]:
            end += 1
        rows = rejected[start:end]
        ctx.reject(rows, rows[0]["reason"], [r["detail"] for r in rows], [r["duplicate_of"] for r in rows])
        start = end


def _cache_path(entry: StageEntry, base_dir: Path) -> Path | None:
    """Where a translate stage keeps its cache, resolved as the stage resolves it; None: no cache."""
    if entry.type not in ("translate", "mt_quality") or not entry.config.cache:
        return None
    from dataset_builder.translation.cache import default_cache_path

    path = Path(entry.config.cache_path) if entry.config.cache_path else default_cache_path()
    return path if path.is_absolute() else base_dir / path


def _cause(exc: BaseException) -> BaseException:
    """The error a worker raised, out of Ray's wrappers: a user error stays one line."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in chain) and len(chain) < 20:
        chain.append(current)
        current = getattr(current, "cause", None) or current.__cause__
    users = [e for e in chain if isinstance(e, UserError)]
    return users[-1] if users else chain[-1]
