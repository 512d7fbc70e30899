"""What runs inside Ray workers: the build's row-wise stages, and the translation cache's one owner.

A :class:`StageWorker` actor lives for the whole build. It builds a stage at the stage's first
batch and keeps one long-lived ``stage.run`` generator going, fed one batch per call, until the
driver releases the stage at its end: a stage that loads something heavy when it starts
(translation: one CTranslate2 translator) loads it once per worker, however many rows stream
through. Each call answers with an envelope: the output batches, the rows the stage rejected with
their reasons, and the counters it added, so the driver can account for every row exactly as a
local build does.

The translation cache stays one SQLite file owned by one process: a :class:`CacheKeeper` actor
pinned to the driver's node. Workers look sentences up through it before translating (claiming the
ones nobody has, waiting for the ones another task is translating) and write each finished chunk
back through it, so a task retried after its worker died finds the chunks that worker finished
and translates only what is left, and no sentence is translated by two tasks.
"""

from __future__ import annotations

import hashlib
import pickle
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from dataset_builder.stages import StageContext, StageStats, stage_class
from dataset_builder.stages.base import RejectSink


class _Ready:
    """The stage asked for its next batch: everything it made of the last one has been yielded."""


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Pump:
    """Drives ``stage.run`` in a thread of its own, one input batch at a time: a batch goes in,
    and its outputs are whatever the stage yields before it asks for the next one."""

    def __init__(self, run: Any) -> None:
        self._run = run
        self._inbox: queue.Queue[pa.Table] = queue.Queue()
        self._outbox: queue.Queue[Any] = queue.Queue()
        self._waiting = False
        self._closing = False
        self._failed: BaseException | None = None
        threading.Thread(target=self._main, daemon=True).start()

    def _batches(self) -> Iterator[pa.Table]:
        while True:
            self._outbox.put(_Ready())
            batch = self._inbox.get()
            if batch is None:  # the stage's input has ended: let it finish (close its resources)
                return
            yield batch

    def _main(self) -> None:
        try:
            for out in self._run(self._batches()):
                self._outbox.put(out)
            if not self._closing:
                self._outbox.put(_Failed(RuntimeError("the stage stopped reading its input")))
            self._outbox.put(_Ready())
        except BaseException as exc:  # handed to the caller, who raises it in the Ray task
            self._outbox.put(_Failed(exc))

    def _until_ready(self) -> list[pa.Table]:
        outs = []
        while True:
            item = self._outbox.get()
            if isinstance(item, _Ready):
                return outs
            if isinstance(item, _Failed):
                self._failed = item.error
                raise item.error
            outs.append(item)

    def feed(self, batch: pa.Table) -> list[pa.Table]:
        if self._failed is not None:  # the stage's thread has ended: it fails every batch alike
            raise self._failed
        if not self._waiting:
            # The first call waits for the stage to start (loading models, opening caches).
            self._until_ready()
            self._waiting = True
        self._inbox.put(batch)
        return self._until_ready()

    def close(self) -> None:
        """End the stage's input; what it yields after its last batch is not delivered."""
        if self._failed is not None or not self._waiting:
            return
        self._closing = True
        self._inbox.put(None)  # type: ignore[arg-type]
        try:
            self._until_ready()
        except Exception:  # a failure while closing changes nothing already delivered
            return


class _RunningStage:
    """One stage inside a worker: built at its first batch, fed batch after batch."""

    def __init__(self, spec: dict[str, Any], workdir: Path) -> None:
        cls = stage_class(spec["stage_type"])
        self.stage = cls(cls.Config.model_validate(spec["settings"]))
        self.seq = -1
        keeper = spec.get("cache_keeper")
        if keeper is not None:
            self.stage.open_cache = lambda _path, namespace: RemoteCache(keeper, namespace, self.owner)
        self.ctx = StageContext(
            spec["stage_name"],
            StageStats(spec["stage_name"]),
            RejectSink(),
            workdir,
            False,
            Path(spec["base_dir"]),
            spec["source_options"],
            spec.get("trust_code", False),
        )
        self.pump = _Pump(lambda batches: self.stage.run(batches, self.ctx))

    def owner(self) -> str:
        """Who holds the cache claims made now: the batch, so that its retry holds them too."""
        return f"{self.ctx.stage}-batch-{self.seq}"


class StageWorker:
    """A Ray actor that runs the build's row-wise stages, one batch per call.

    The driver starts ``concurrency`` of them for the whole build and gives each stage's batches
    to whichever is least busy. A stage is built in a worker at its first batch there and kept
    until the driver releases it at the stage's end, so translation loads its model once per
    worker and stage, however many rows stream through."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="dataset-builder-worker-"))
        self.running: dict[str, _RunningStage] = {}

    def feed(self, spec: dict[str, Any], seq: int, batch: pa.Table) -> dict[str, Any]:
        """Run batch ``seq`` through the stage ``spec`` names; answer with its envelope: the output
        batches, the rows the stage rejected, the counters it added, or its error."""
        name = spec["stage_name"]
        _title(f"ray::StageWorker.feed:{spec['stage_type']}")
        try:
            running = self.running.get(name)
            started = running is None
            if running is None:
                running = self.running[name] = _RunningStage(spec, self.workdir)
            running.seq = seq
            outputs = running.pump.feed(batch)
        except Exception as exc:
            # Sent back as data, not raised: a stage's error fails the build with its own message
            # (and is not retried, since it would fail again).
            return {
                "seq": seq,
                "outputs": [],
                "rejected": None,
                "counters": {},
                "read_by_source": {},
                "error": _pickled(exc),
            }
        ctx = running.ctx
        envelope = {
            "seq": seq,
            "outputs": outputs,
            "rejected": ctx.rejects.table(),
            "counters": ctx.stats.counters,
            "read_by_source": dict(ctx.stats.read_by_source),
            "error": None,
            # The stage was built for this batch (its model loaded): once per worker, unless the
            # worker died and was restarted.
            "started": started,
        }
        # Fresh counters and reject sink for the next batch (the stage reaches both through ctx);
        # what the stage counted while starting goes out with its first batch.
        ctx.stats = StageStats(ctx.stage)
        ctx.rejects = RejectSink()
        return envelope

    def release(self, stage_name: str) -> None:
        """The stage has no more batches: let it finish and free what it holds (a model)."""
        running = self.running.pop(stage_name, None)
        if running is not None:
            running.pump.close()

    def __del__(self) -> None:
        shutil.rmtree(getattr(self, "workdir", ""), ignore_errors=True)


def _title(title: str) -> None:
    """Name what this worker runs in its process title (ps, the Ray dashboard)."""
    try:
        import ray

        ray._raylet.setproctitle(title)
    except Exception:  # a Ray without it: the title is only a convenience
        return


# A sentence claimed by a task that has written nothing for this long is given to the next task
# that asks (its worker is gone and its retry has not come): a safety valve, not the normal path.
CLAIM_LEASE_S = 600.0


def _pickled(exc: BaseException) -> bytes:
    import traceback

    exc.add_note("on a Ray worker:\n" + "".join(traceback.format_exception(exc)))
    try:
        return pickle.dumps(exc)
    except Exception:  # an exception that cannot be pickled goes back as its type and message
        return pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))


class RemoteCache:
    """The translation cache as a worker sees it: every read and write goes to the keeper. A
    lookup claims the sentences nobody has yet, which this task then translates; sentences another
    running task has claimed are waited for, so a sentence shared by batches running at the same
    time is translated once."""

    def __init__(self, keeper: Any, namespace: str, owner: Callable[[], str]) -> None:
        self.keeper = keeper
        self.namespace = namespace
        self.owner = owner

    def get_many(self, texts: list[str]) -> dict[str, str]:
        import ray

        found, theirs = ray.get(self.keeper.claim.remote(self.namespace, texts, self.owner()))
        pause = 0.02
        while theirs:
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
            more, theirs = ray.get(self.keeper.claim.remote(self.namespace, theirs, self.owner()))
            found.update(more)
        return found

    def put_many(self, pairs: dict[str, str]) -> None:
        import ray

        ray.get(self.keeper.put_many.remote(self.namespace, pairs, self.owner()))

    def close(self) -> None:
        return None


class CacheKeeper:
    """Owns the SQLite translation cache for a build (a Ray actor on the driver's node) and the
    claims on sentences being translated. Counts what it is given to write, and what it was given
    that it already held: a sentence written twice would mean it was translated twice."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.caches: dict[str, Any] = {}
        # (namespace, sentence) -> (owner, when the owner last wrote anything)
        self.claims: dict[tuple[str, str], tuple[str, float]] = {}
        self.written = 0
        self.rewritten = 0
        # Distinct sentences at their first lookup in the build, found or not: the stage's
        # cache_hits and cache_misses, counted as a local build counts them (one Translator there
        # sees every lookup; here the workers' own counts would depend on who looked first).
        self.looked_up: set[tuple[str, bytes]] = set()
        self.hits = 0
        self.misses = 0

    def _cache(self, namespace: str) -> Any:
        from dataset_builder.translation.cache import TranslationCache

        if namespace not in self.caches:
            self.caches[namespace] = TranslationCache(self.path, namespace)
        return self.caches[namespace]

    def claim(self, namespace: str, texts: list[str], owner: str) -> tuple[dict[str, str], list[str]]:
        """Cached translations of ``texts``, and the ones another live task is translating. The
        rest are now ``owner``'s (a retried task is the same owner, so it takes back its own)."""
        found = self._cache(namespace).get_many(texts)
        for text in texts:
            key = (namespace, hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest())
            if key not in self.looked_up:
                self.looked_up.add(key)
                if text in found:
                    self.hits += 1
                else:
                    self.misses += 1
        now = time.monotonic()
        theirs = []
        for text in texts:
            if text in found:
                continue
            held = self.claims.get((namespace, text))
            if held is None or held[0] == owner or now - held[1] > CLAIM_LEASE_S:
                self.claims[(namespace, text)] = (owner, now)
            else:
                theirs.append(text)
        return found, theirs

    def put_many(self, namespace: str, pairs: dict[str, str], owner: str) -> None:
        cache = self._cache(namespace)
        self.rewritten += len(cache.get_many(list(pairs)))
        self.written += len(pairs)
        cache.put_many(pairs)
        for text in pairs:
            self.claims.pop((namespace, text), None)
        now = time.monotonic()
        for key, (held_by, _) in self.claims.items():
            if held_by == owner:
                self.claims[key] = (owner, now)

    def lookups(self) -> dict[str, int]:
        return {"cache_hits": self.hits, "cache_misses": self.misses}

    def writes(self) -> dict[str, int]:
        """Sentences written, and written again (translated twice): how the cluster behaved."""
        return {"sentences_written": self.written, "sentences_rewritten": self.rewritten}

    def close(self) -> None:
        for cache in self.caches.values():
            cache.close()
        self.caches = {}
