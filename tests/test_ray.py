"""The Ray executor against the local one: same content hash, same rejects and counts, and the
translation cache right when a worker is killed mid-run. One local Ray (2 CPUs) per module."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import ray

from dataset_builder.publishing.pipeline import build
from dataset_builder.recipe.schema import load_recipe
from dataset_builder.registry.store import Registry
from dataset_builder.testing import KEEP_REJECTED, alpaca_source, translate_stage, write_recipe

ENGLISH = [
    "Write a function that returns the sum of two numbers.",
    "Explain how a list comprehension works in Python.",
    "Sort the list of names in reverse alphabetical order.",
    "Create a class that stores a bank balance and lets you deposit money.",
    "Read a text file and count how many lines it has.",
]
RUSSIAN = [
    "Напишите функцию, которая возвращает сумму двух чисел.",
    "Объясните, как работает генератор списков в Python.",
    "Отсортируйте список имён в обратном алфавитном порядке.",
]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _records(n: int, unique_sentences: int = 2) -> list[dict]:
    out = []
    for i in range(n):
        words = " ".join(f"item{i}x{k}" for k in range(unique_sentences))
        out.append(
            {
                "instruction": f"{ENGLISH[i % len(ENGLISH)]} Number {i} uses {words}.",
                "input": "",
                "output": f"Here it is: `f({i})` returns {i}.\n\n```python\ndef f(x):\n    return x + {i}\n```",
            }
        )
    return out


def _recipe(
    folder: Path, packages_dir: Path, executor: str, cache: str, *, chunk: int = 64, **run_settings: object
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    en = folder / "en.jsonl"
    ru = folder / "ru.jsonl"
    if not en.exists():
        rows = _records(60)
        rows += rows[:5]  # exact duplicates: rejected by exact_dedup, first seen kept
        en.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        ru_rows = [
            {"instruction": f"{RUSSIAN[i % 3]} Вариант {i}.", "input": "", "output": f"Ответ {i}: `x + {i}`."}
            for i in range(30)
        ]
        ru_rows.append({"instruction": "", "input": "", "output": "пусто"})  # rejected by quality
        ru.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ru_rows), encoding="utf-8")
    run = {"executor": executor, **run_settings}
    stages = _stages(packages_dir, cache, chunk_sentences=chunk)
    return write_recipe(folder, SOURCES, stages, name="raytest", publish=KEEP_REJECTED, run=run)


SOURCES = [alpaca_source("en.jsonl", name="en"), alpaca_source("ru.jsonl", name="ru", language="ru")]


def _stages(packages_dir: Path, cache: str, **translate: object) -> list[dict]:
    return [
        {"type": "normalize"},
        {"type": "quality"},
        {"type": "exact_dedup"},
        translate_stage(
            packages_dir=packages_dir, cache_path=cache, inter_threads=1, intra_threads=1, **translate
        ),
        {"type": "split", "test_ratio": 0.2, "seed": 3},
        {"type": "format"},
    ]


def _cached(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=30) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM translations").fetchone()[0]
        except sqlite3.OperationalError:  # the table is not there yet
            return 0


def _translate_workers() -> list[int]:
    import psutil

    return [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if "StageWorker.feed:translate" in " ".join(p.info["cmdline"] or [])
    ]


def test_a_killed_translation_worker_translates_nothing_twice(
    tmp_path: Path, tiny_argos: dict, local_ray: None
) -> None:
    packages = tiny_argos["packages_dir"]
    folder = tmp_path / "b"
    cache = folder / "cache-ray.sqlite"
    recipe = _recipe(folder, packages, "ray", str(cache), chunk=2)
    killed: dict[str, int] = {}

    def kill_mid_run() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = _cached(cache)
            workers = _translate_workers()
            if done > 0 and workers:
                killed["cached_before"] = done
                killed["pid"] = workers[0]
                os.kill(workers[0], signal.SIGKILL)
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_mid_run)
    killer.start()
    remote = build(load_recipe(recipe), Registry(tmp_path / "reg-ray"), show_progress=False)
    killer.join()
    local = build(
        load_recipe(_recipe(folder, packages, "local", "cache-local.sqlite", chunk=2)),
        Registry(tmp_path / "reg-local"),
        show_progress=False,
    )
    assert "pid" in killed, "no translation worker was seen with a finished chunk"
    counters = {s["stage"]: s["counters"] for s in remote.manifest["stages"]}["translate"]
    local_counters = {s["stage"]: s["counters"] for s in local.manifest["stages"]}["translate"]
    total = local_counters["sentences_translated"]
    # The kill landed mid-run: some chunks were in the cache, not all of them.
    assert 0 < killed["cached_before"] < total
    # The retried batch found the dead worker's chunks: no sentence reached the cache twice (one
    # translated again would be written again), and the cache holds each sentence once.
    writes = remote.manifest["execution"]["translation_cache"]["translate"]
    assert writes["sentences_rewritten"] == 0
    assert writes["sentences_written"] == _cached(cache) == total
    # Lookups are counted once per sentence, by the cache's owner, the retry's included.
    assert (counters["cache_hits"], counters["cache_misses"]) == (0, local_counters["cache_misses"])
    # What the model was sent for batches that came back: the dead worker's chunks are not in it.
    assert counters["sentences_translated"] <= total - killed["cached_before"]
    assert remote.content_hash == local.content_hash


def test_a_stage_error_on_a_worker_is_one_line_naming_it(tmp_path: Path, local_ray: None) -> None:
    from dataset_builder.errors import UserError

    empty = tmp_path / "no-packages"
    empty.mkdir()
    recipe = _recipe(tmp_path / "c", empty, "ray", "cache.sqlite")
    with pytest.raises(UserError) as err:
        build(load_recipe(recipe), Registry(tmp_path / "reg"), show_progress=False)
    message = str(err.value)
    assert "\n" not in message
    assert "en->ru" in message or "package" in message
    assert "Ray" not in message and "ray." not in message
    assert "nothing published" in message
    assert not list((tmp_path / "reg").glob("raytest/*"))


def _interleaved_sources(folder: Path) -> None:
    """Two sources whose rejects, from four stages, fall in many batches of 16 rows: load (a
    record that is not an object), quality (empty prompts, an empty answer), exact_dedup
    (duplicates, within a source and across sources) and format (a template error)."""
    folder.mkdir(parents=True, exist_ok=True)
    en = [json.dumps(r, ensure_ascii=False) for r in _records(40)]
    en[5] = en[1]  # en.jsonl:6 repeats :2
    en[11] = json.dumps({"instruction": "Say nothing.", "input": "", "output": ""})
    en[19] = json.dumps(["not", "an", "object"])
    en[30] = json.dumps({"instruction": "", "input": "", "output": "no prompt"})
    en[37] = en[22]
    ru = [
        json.dumps(
            {"instruction": f"{RUSSIAN[i % 3]} Вариант {i}.", "input": "", "output": f"Ответ {i}."},
            ensure_ascii=False,
        )
        for i in range(24)
    ]
    ru[2] = json.dumps({"instruction": "", "input": "", "output": "пусто"}, ensure_ascii=False)
    ru[9] = ru[4]
    ru[17] = json.dumps({"instruction": "BAD-TEMPLATE", "input": "", "output": "x"})
    (folder / "en.jsonl").write_text("\n".join(en) + "\n", encoding="utf-8")
    (folder / "ru.jsonl").write_text("\n".join(ru) + "\n", encoding="utf-8")


BAD_ROW_TEMPLATE = (
    "{% for m in messages %}{% if m.content == 'BAD-TEMPLATE' %}{{ raise_exception('bad row') }}"
    "{% endif %}<|{{ m.role }}|>\n{{ m.content }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _without_run_record(manifest: dict) -> str:
    """The manifest as text, in its own key order, less what records how and when the build ran."""
    kept = {k: v for k, v in manifest.items() if k not in ("execution", "built_at", "files")}
    kept["stages"] = [{k: v for k, v in s.items() if k != "seconds"} for s in manifest["stages"]]
    return json.dumps(kept, ensure_ascii=False, indent=1)


def test_rejects_from_several_stages_across_batches_publish_the_same_bytes(
    tmp_path: Path, tiny_argos: dict, local_ray: None
) -> None:
    folder = tmp_path / "d"
    _interleaved_sources(folder)
    packages = tiny_argos["packages_dir"]
    stages = _stages(packages, "cache.sqlite")
    stages[2] = {"type": "exact_dedup", "key": "prompt"}
    stages[4] = {"type": "split", "test_ratio": 0.25, "seed": 5}
    # Fails on one row: the format stage rejects it (on the workers, under Ray).
    stages[5] = {"type": "format", "template": "jinja", "jinja": BAD_ROW_TEMPLATE}
    builds = {}
    for executor, run in (("local", {}), ("ray", {"concurrency": 2, "batch_rows": 16})):
        for stale in folder.glob("cache.sqlite*"):  # each build starts from an empty cache
            stale.unlink()
        recipe = write_recipe(
            folder,
            SOURCES,
            stages,
            name="interleaved",
            publish=KEEP_REJECTED,
            run={"executor": executor, **run},
        )
        builds[executor] = build(
            load_recipe(recipe), Registry(tmp_path / f"reg-{executor}"), show_progress=False
        )
    local, remote = builds["local"], builds["ray"]

    # Rejects came from several stages, and a later stage's reject sits in an earlier batch than
    # an earlier stage's: the case where arrival order differs between executors.
    rejected = pq.read_table(local.path / "rejected" / "rejected.parquet").to_pylist()
    stages = [r["stage"] for r in rejected]
    assert {"load", "quality", "exact_dedup", "format"} <= set(stages), stages
    # Canonical order, checked without the build's code: stages in recipe order, then sources in
    # recipe order, then line number.
    order = ["load", "normalize", "quality", "exact_dedup", "translate", "split", "format", "write"]
    expected = sorted(
        rejected,
        key=lambda r: (
            order.index(r["stage"]),
            ["en", "ru"].index(r["source"]),
            int(r["source_key"].rsplit(":", 1)[1]),
        ),
    )
    assert [(r["stage"], r["source_key"]) for r in rejected] == [
        (r["stage"], r["source_key"]) for r in expected
    ]

    local_files = sorted(p.relative_to(local.path) for p in local.path.rglob("*") if p.is_file())
    remote_files = sorted(p.relative_to(remote.path) for p in remote.path.rglob("*") if p.is_file())
    assert local_files == remote_files
    for name in local_files:
        if name.name not in ("manifest.json", "croissant.json", "report.html"):
            assert (remote.path / name).read_bytes() == (local.path / name).read_bytes(), name
    # The files derived from the manifest differ only where they say when and how the build ran.
    croissant = [json.loads((b.path / "croissant.json").read_text(encoding="utf-8")) for b in (local, remote)]
    undated = [{k: v for k, v in c.items() if k != "datePublished"} for c in croissant]
    assert undated[0] == undated[1]
    pages = [(b.path / "report.html").read_text(encoding="utf-8") for b in (local, remote)]
    ran = re.compile(r'<section id="execution">.*?</section>', re.DOTALL)
    assert all(len(ran.findall(page)) == 1 for page in pages)
    assert ran.sub("", pages[0]) == ran.sub("", pages[1])
    assert _without_run_record(remote.manifest) == _without_run_record(local.manifest)
    derived = ("croissant.json", "report.html")  # compared above
    assert {k: v for k, v in remote.manifest["files"].items() if k not in derived} == {
        k: v for k, v in local.manifest["files"].items() if k not in derived
    }
    assert remote.manifest["execution"]["executor"] == "ray"
    # Batches on two workers share sentences (every fifth instruction, "Here it is:"): each is
    # translated once, by whichever task claimed it first; the cache gets what a local run translates.
    local_counters = {s["stage"]: s["counters"] for s in local.manifest["stages"]}["translate"]
    writes = remote.manifest["execution"]["translation_cache"]["translate"]
    assert writes["sentences_rewritten"] == 0
    assert writes["sentences_written"] == local_counters["cache_misses"] > 0
    assert local_counters["rows_translated"] > 0
    # Each row-wise stage saw many batches, and was built (its model loaded) at most once per
    # worker: the two workers live for the whole build.
    assert remote.manifest["stages"][1]["rows_in"] > 3 * 16
    starts = remote.manifest["execution"]["stage_starts"]
    assert set(starts) == {"normalize", "quality", "translate", "format"}
    assert all(1 <= n <= 2 for n in starts.values()), starts


def test_a_python_engine_and_mt_quality_on_ray_match_local(tmp_path: Path, local_ray: None) -> None:
    from test_mt_quality import project

    recipe = load_recipe(project(tmp_path, "dictionary", {"min_round_trip_chrf": 90}, record=False))
    local = build(recipe.trusting_code(), Registry(tmp_path / "reg-local"), show_progress=False)
    on_ray = recipe.trusting_code().with_run(executor="ray", batch_rows=2)
    (tmp_path / "cache.sqlite").unlink()
    remote = build(on_ray, Registry(tmp_path / "reg-ray"), show_progress=False)
    assert remote.content_hash == local.content_hash and remote.manifest["execution"]["executor"] == "ray"
    scored = {s["stage"]: s["counters"] for s in remote.manifest["stages"]}["mt_quality"]
    assert scored["rows_scored"] == 6 and scored["round_trip_chrf_90_100"] == 6
    assert (
        scored["cache_misses"]
        == {s["stage"]: s["counters"] for s in local.manifest["stages"]}["mt_quality"]["cache_misses"]
    )
    # The user's permission travels to the workers, and so does its absence.
    from dataset_builder.errors import UserError

    with pytest.raises(UserError, match="--trust-code"):
        build(recipe.with_run(executor="ray"), Registry(tmp_path / "reg-untrusted"), show_progress=False)


def test_a_failed_build_leaves_no_ray_behind(tmp_path: Path) -> None:
    """A build that started Ray and failed shuts it down; the stage's stream, closed afterwards,
    must not call an actor (that would start a new local Ray instance) nor raise while closing."""
    import subprocess
    import sys

    from conftest import ROOT

    empty = tmp_path / "no-packages"
    empty.mkdir()
    recipe = _recipe(tmp_path / "c", empty, "ray", "cache.sqlite")
    code = (
        "import gc, ray\n"
        "from dataset_builder.errors import UserError\n"
        "from dataset_builder.publishing.pipeline import build\n"
        "from dataset_builder.recipe.schema import load_recipe\n"
        "from dataset_builder.registry.store import Registry\n"
        "try:\n"
        f"    build(load_recipe({str(recipe)!r}), Registry({str(tmp_path / 'reg')!r}), show_progress=False)\n"
        "except UserError as exc:\n"
        "    print('failed:', exc)\n"
        "gc.collect()\n"
        "print('ray still up' if ray.is_initialized() else 'ray down')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "RAY_ADDRESS": ""}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    assert "failed:" in done.stdout, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("ray down"), done.stdout + done.stderr
    assert "Exception ignored" not in done.stderr, done.stderr
