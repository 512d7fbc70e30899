"""The Ray executor: row-wise stages on a Ray cluster's workers, the rest on the driver.

Row-wise stages (:class:`~dataset_builder.stages.base.RowStage` subclasses, and translation) look
at one batch at a time, so each runs as a Ray Data ``map_batches`` over Arrow batches, on a pool
of actors (``concurrency`` of them, each reserving ``num_cpus``, and translation's ``num_gpus``).
Batches go out tagged with their position and come back in that order, with the rows each batch
lost to rejects and the counters it added (:mod:`~dataset_builder.executors.ray_worker`); the
driver replays those into the stage's context, so stats, rejects and the conservation law come
out exactly as in a local build.

Stages that must see every row before deciding (exact and near dedup, split, decontamination,
replay) run on the driver, in recipe order, over the stream the
workers send back in first-seen order. Their correctness is global: which copy of a duplicate is
kept, which cluster a row falls in, which side of a split a group lands on depend on all rows and
on their order, and running them on the driver gives exactly the local answer.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from dataset_builder.errors import UserError
from dataset_builder.executors.base import Executor
from dataset_builder.recipe import RunSection, StageEntry
from dataset_builder.stages import RowStage, Stage, StageContext

INSTALL_HINT = (
    "the ray executor needs Ray: pip install 'dataset-builder[ray]' "
    "(in a checkout: .venv/bin/pip install -e '.[ray]'), or build with --executor local"
)
# Stages whose workers reserve the recipe's num_gpus (the others need no accelerator).
ACCELERATED = {"translate", "mt_quality"}
ROW_WISE_TYPES = {"translate", "mt_quality"}


def is_row_wise(stage: Stage, entry: StageEntry) -> bool:
    return isinstance(stage, RowStage) or entry.type in ROW_WISE_TYPES


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, settings: RunSection) -> None:
        self.settings = settings
        self._started = False

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
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.execution_options.preserve_order = True
        logging.getLogger("ray.data").setLevel(logging.ERROR)
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

    def run_stage(
        self, stage: Stage, entry: StageEntry, batches: Iterator[pa.Table], ctx: StageContext
    ) -> Iterator[pa.Table]:
        if not is_row_wise(stage, entry):
            return stage.run(batches, ctx)
        return self._on_workers(entry, batches, ctx)

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
        try:
            window: list[pa.Table] = []
            rows = 0
            for batch in _cut(batches, self.settings.batch_rows):
                window.append(batch)
                rows += batch.num_rows
                if rows >= self.settings.window_rows:
                    yield from self._window(entry, window, ctx, keeper)
                    window, rows = [], 0
            if window:
                yield from self._window(entry, window, ctx, keeper)
            if keeper is not None:
                ctx.stats.counters.update(ray.get(keeper.counts.remote()))
        finally:
            if keeper is not None:
                ray.get(keeper.close.remote())
                ray.kill(keeper)

    def _window(
        self, entry: StageEntry, window: list[pa.Table], ctx: StageContext, keeper: Any
    ) -> Iterator[pa.Table]:
        import ray

        from dataset_builder.executors.ray_worker import SEQ, StageWorker, from_ipc

        tagged = [t.append_column(SEQ, pa.array([i] * t.num_rows, pa.int64())) for i, t in enumerate(window)]
        # A class of the stage's name, so a worker's process title says which stage it runs.
        worker = type(f"StageWorker_{entry.type}", (StageWorker,), {})
        dataset = ray.data.from_arrow(tagged).map_batches(
            worker,
            fn_constructor_kwargs={
                "stage_type": entry.type,
                "settings": entry.settings(),
                "stage_name": ctx.stage,
                "base_dir": str(ctx.base_dir),
                "source_options": ctx.source_options,
                "trust_code": ctx.trust_code,
                "cache_keeper": keeper,
            },
            batch_format="pyarrow",
            batch_size=None,  # one input block, one batch: the stage sees the batches a local run sees
            compute=ray.data.ActorPoolStrategy(size=self.settings.concurrency),
            num_cpus=self.settings.num_cpus,
            num_gpus=self.settings.num_gpus if entry.type in ACCELERATED else 0,
        )
        pending: dict[int, dict[str, Any]] = {}
        following = 0
        try:
            for envelopes in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
                for envelope in envelopes.to_pylist():
                    pending[envelope[SEQ]] = envelope
                # In input order, whatever order the workers finish in.
                while following in pending:
                    envelope = pending.pop(following)
                    _replay(envelope, ctx, from_ipc)
                    for data in envelope["outputs"]:
                        yield from_ipc(data)
                    following += 1
        except Exception as exc:
            if isinstance(exc, UserError) or not type(exc).__module__.startswith("ray"):
                raise  # the stage's own error, from an envelope
            raise _cause(exc) from None
        if following != len(window):
            raise RuntimeError(
                f"{len(window) - following} batch(es) of {len(window)} never came back from Ray"
            )


def _cut(batches: Iterator[pa.Table], size: int) -> Iterator[pa.Table]:
    """Batches of at most ``size`` rows, in order; empty ones left out (a row-wise stage makes
    nothing of them)."""
    for batch in batches:
        for start in range(0, batch.num_rows, size):
            yield batch.slice(start, size)


def _replay(envelope: dict[str, Any], ctx: StageContext, from_ipc: Any) -> None:
    """Put one batch's rejects and counters into the driver's context, as if the stage ran here;
    raise the stage's error when it failed on that batch."""
    if envelope["error"] is not None:
        raise pickle.loads(envelope["error"])
    extra = json.loads(envelope["counters"])
    for key, value in extra["counters"].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            ctx.stats.counters[key] = ctx.stats.counters.get(key, 0) + value
        else:
            ctx.stats.counters[key] = value
    for source, n in extra["read_by_source"].items():
        ctx.read(source, n)
    rejected = from_ipc(envelope["rejected"]).to_pylist()
    # Runs of one reason, in the order the stage rejected them (the rejected table's order).
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
    from dataset_builder.translate.cache import default_cache_path

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
