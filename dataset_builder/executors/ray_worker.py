"""What runs inside Ray workers: one stage per actor, and the translation cache's one owner.

A :class:`StageWorker` actor builds its stage once and keeps one long-lived ``stage.run``
generator going, fed one batch per call, so a stage that loads something heavy when it starts
(translation: one CTranslate2 translator per actor) loads it once per actor, not once per batch.
Each call answers with an envelope: one row per input batch holding the output batches, the rows
the stage rejected with their reasons, and the counters it added, so the driver can account for
every row exactly as a local build does.

The translation cache stays one SQLite file owned by one process: a :class:`CacheKeeper` actor
pinned to the driver's node. Workers look sentences up through it before translating (claiming the
ones nobody has, waiting for the ones another task is translating) and write each finished chunk
back through it, so a task retried after its worker died finds the chunks that worker finished
and translates only what is left, and no sentence is translated by two tasks.
"""

from __future__ import annotations

import json
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
import pyarrow.compute as pc

from dataset_builder.stages import StageContext, StageStats, stage_class
from dataset_builder.stages.base import RejectSink

# The column that carries an input batch's position through the cluster (dropped before a stage
# sees the rows): outputs are put back in input order by it, so first seen stays first.
SEQ = "__dataset_builder_seq"
ENVELOPE = pa.schema(
    [
        pa.field(SEQ, pa.int64()),
        pa.field("outputs", pa.list_(pa.binary())),
        pa.field("rejected", pa.binary()),
        pa.field("counters", pa.string()),
        # The stage's error, pickled: Ray's own wrapping drops the original exception on the way
        # back, and with it a user error's one-line message.
        pa.field("error", pa.binary()),
    ]
)


def to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


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
        self._failed: BaseException | None = None
        threading.Thread(target=self._main, daemon=True).start()

    def _batches(self) -> Iterator[pa.Table]:
        while True:
            self._outbox.put(_Ready())
            yield self._inbox.get()

    def _main(self) -> None:
        try:
            for out in self._run(self._batches()):
                self._outbox.put(out)
            self._outbox.put(_Failed(RuntimeError("the stage stopped reading its input")))
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


class StageWorker:
    """Ray Data callable class: runs one stage over the batches it is given, one actor at a time."""

    def __init__(
        self,
        stage_type: str,
        settings: dict[str, Any],
        stage_name: str,
        base_dir: str,
        source_options: dict[str, dict[str, Any]],
        cache_keeper: Any = None,
        trust_code: bool = False,
    ) -> None:
        cls = stage_class(stage_type)
        self.stage = cls(cls.Config.model_validate(settings))
        if cache_keeper is not None:
            self.stage.open_cache = lambda _path, namespace: RemoteCache(cache_keeper, namespace, self.owner)
        self.workdir = Path(tempfile.mkdtemp(prefix="dataset-builder-worker-"))
        self.ctx = StageContext(
            stage_name,
            StageStats(stage_name),
            RejectSink(),
            self.workdir,
            False,
            Path(base_dir),
            source_options,
            trust_code,
        )
        self.pump = _Pump(lambda batches: self.stage.run(batches, self.ctx))
        self.seq = -1

    def owner(self) -> str:
        """Who holds the cache claims made now: the batch, so that its retry holds them too."""
        return f"batch-{self.seq}"

    def __call__(self, batch: pa.Table) -> pa.Table:
        envelopes = []
        # Ray Data may hand over several input batches at once: each is run and answered apart.
        for seq in sorted(pc.unique(batch.column(SEQ)).to_pylist()):
            part = batch.filter(pc.equal(batch.column(SEQ), seq)).drop_columns([SEQ])
            self.seq = seq
            try:
                outputs = self.pump.feed(part)
            except Exception as exc:
                # Sent back as data, not raised: a stage's error fails the build with its own
                # message (and is not retried, since it would fail again).
                envelopes.append(
                    {SEQ: seq, "outputs": [], "rejected": None, "counters": "{}", "error": _pickled(exc)}
                )
                continue
            envelopes.append(
                {
                    SEQ: seq,
                    "outputs": [to_ipc(t) for t in outputs],
                    "rejected": to_ipc(self.ctx.rejects.table()),
                    "counters": json.dumps(
                        {
                            "counters": self.ctx.stats.counters,
                            "read_by_source": dict(self.ctx.stats.read_by_source),
                        }
                    ),
                }
            )
            # Fresh counters and reject sink for the next batch (the stage reaches both through
            # ctx); what the stage counted while starting goes out with its first batch.
            self.ctx.stats = StageStats(self.ctx.stage)
            self.ctx.rejects = RejectSink()
        return pa.Table.from_pylist(envelopes, schema=ENVELOPE)

    def __del__(self) -> None:
        shutil.rmtree(getattr(self, "workdir", ""), ignore_errors=True)


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

    def _cache(self, namespace: str) -> Any:
        from dataset_builder.translate.cache import TranslationCache

        if namespace not in self.caches:
            self.caches[namespace] = TranslationCache(self.path, namespace)
        return self.caches[namespace]

    def claim(self, namespace: str, texts: list[str], owner: str) -> tuple[dict[str, str], list[str]]:
        """Cached translations of ``texts``, and the ones another live task is translating. The
        rest are now ``owner``'s (a retried task is the same owner, so it takes back its own)."""
        found = self._cache(namespace).get_many(texts)
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

    def counts(self) -> dict[str, int]:
        return {"cache_sentences_written": self.written, "cache_sentences_rewritten": self.rewritten}

    def close(self) -> None:
        for cache in self.caches.values():
            cache.close()
        self.caches = {}
