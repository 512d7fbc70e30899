"""The translate stage under each executor, against a tuned plain CTranslate2 call, on real rows.

    python benchmarks/scale.py [--rows 200] [--package PATH.argosmodel] [--rows-file FILE] [--beam 4]

The same real rows (CodeAlpaca, a seeded sample) are built four ways with the same recipe, each
with an empty translation cache of its own: the local executor; Ray with 1 worker (2 CPUs, 2
translator threads); Ray with 2 workers (1 CPU and 1 thread each), both with the rows cut into
batches of ``--batch-rows`` (the unit a worker takes); and, as the baseline, the
sentences our stage translated (read back from the local run's cache, so both translate exactly
the same set) through one ``ctranslate2.Translator(..., inter_threads=2, intra_threads=1)
.translate_batch(all_sentences, max_batch_size=32)`` call, the way an expert would write it.
Ours is timed as the translate stage's own seconds in the manifest (segmentation, cache and
checks included; for Ray also starting the actors and loading the model in each). A local Ray
with 2 CPUs is started once, before timing, as a running cluster would be. Each is run
``--repeat`` times, interleaved, and the fastest counts (on a shared machine the slow runs measure
the neighbours). Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
SHARED = HERE.parent.parent / "shared"
PACKAGE = SHARED / "models" / "translate-en_ru-bench.argosmodel"
ROWS = SHARED / "data" / "codealpaca-new-4.5k" / "new_codealpaca.json"


def write_rows(rows_file: Path, n: int, out: Path, seed: int = 0) -> int:
    records = json.loads(rows_file.read_text(encoding="utf-8"))
    picked = random.Random(seed).sample(records, min(n, len(records)))
    with out.open("w", encoding="utf-8") as fh:
        for r in picked:
            row = {"instruction": r["instruction"], "input": r.get("input", ""), "output": r["output"]}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(picked)


def recipe_text(
    packages_dir: Path, cache: Path, beam: int, executor: str, workers: int, threads: int, batch_rows: int
) -> str:
    # The package's outputs are noise: the output checks are opened wide so every row is timed
    # through to the end, as real translations would be.
    return f"""
[dataset]
name = "scale"
version = "1.0.0"

[[sources]]
name = "codealpaca"
adapter = "alpaca"
paths = ["rows.jsonl"]

[[stages]]
type = "translate"
packages_dir = "{packages_dir}"
cache_path = "{cache}"
beam_size = {beam}
inter_threads = {threads}
intra_threads = 1
detect_language = false
verify_language = false
check_repetition = false
min_length_ratio = 0.0
max_length_ratio = 1000.0

[[stages]]
type = "split"

[publish]
max_rejected_fraction = 1.0

[run]
executor = "{executor}"
concurrency = {workers}
num_cpus = {2 // workers}
# Batches small enough that the rows spread over every worker (the source yields one of 2,048).
batch_rows = {batch_rows}
"""


def run_ours(
    work: Path, packages_dir: Path, beam: int, executor: str, workers: int, threads: int, batch_rows: int
) -> dict:
    from dataset_builder.publishing.pipeline import build
    from dataset_builder.recipe.schema import load_recipe
    from dataset_builder.registry.store import Registry

    label = f"{executor}-{workers}-{time.monotonic_ns()}"
    cache = work / f"cache-{label}.sqlite"
    recipe = work / f"{label}.toml"
    recipe.write_text(
        recipe_text(packages_dir, cache, beam, executor, workers, threads, batch_rows), encoding="utf-8"
    )
    start = time.perf_counter()
    result = build(load_recipe(recipe), Registry(work / f"registry-{label}"), show_progress=False)
    wall = time.perf_counter() - start
    stage = next(s for s in result.manifest["stages"] if s["stage"] == "translate")
    sentences = stage["counters"]["sentences_translated"]
    return {
        "executor": executor,
        "workers": workers,
        "rows": stage["rows_in"],
        "sentences": sentences,
        "seconds": round(stage["seconds"], 2),
        "build_seconds": round(wall, 2),
        "sentences_per_s": round(sentences / stage["seconds"], 1),
        "rows_per_s": round(stage["rows_in"] / stage["seconds"], 2),
        "content_hash": result.content_hash,
        "cache": cache,
    }


def run_plain(package_dir: Path, sentences: list[str], rows: int, beam: int) -> dict:
    import ctranslate2
    import sentencepiece as spm

    translator = ctranslate2.Translator(str(package_dir / "model"), inter_threads=2, intra_threads=1)
    sp = spm.SentencePieceProcessor(model_file=str(package_dir / "sentencepiece.model"))
    start = time.perf_counter()
    tokens = sp.encode(sentences, out_type=str)
    results = translator.translate_batch(
        tokens, max_batch_size=32, beam_size=beam, length_penalty=0.2, max_decoding_length=256
    )
    [sp.decode_pieces(r.hypotheses[0]) for r in results]
    seconds = time.perf_counter() - start
    return {
        "executor": "plain ctranslate2 (inter_threads=2, intra_threads=1, max_batch_size=32)",
        "workers": 1,
        "rows": rows,
        "sentences": len(sentences),
        "seconds": round(seconds, 2),
        "sentences_per_s": round(len(sentences) / seconds, 1),
        "rows_per_s": round(rows / seconds, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--package", type=Path, default=PACKAGE)
    parser.add_argument("--rows-file", type=Path, default=ROWS)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--batch-rows", type=int, default=256, help="[run] batch_rows of the Ray runs (256)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="runs of each, interleaved; the fastest counts (shared machines)",
    )
    args = parser.parse_args(argv)
    import ray

    from dataset_builder.translation import packages

    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        work = Path(tmp)
        package = packages.install(args.package, work / "packages")
        write_rows(args.rows_file, args.rows, work / "rows.jsonl")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        shapes = [("local", 1, 2), ("ray", 1, 2), ("ray", 2, 1)]
        tries: list[list[dict]] = [[] for _ in shapes]
        plains: list[dict] = []
        try:
            for _ in range(args.repeat):
                for i, (executor, workers, threads) in enumerate(shapes):
                    tries[i].append(
                        run_ours(
                            work, work / "packages", args.beam, executor, workers, threads, args.batch_rows
                        )
                    )
                with sqlite3.connect(tries[0][0]["cache"]) as db:
                    sentences = [s for (s,) in db.execute("SELECT source FROM translations ORDER BY rowid")]
                plains.append(run_plain(package.path, sentences, tries[0][0]["rows"], args.beam))
        finally:
            ray.shutdown()
        runs = [min(t, key=lambda r: r["seconds"]) for t in tries]
        plain = min(plains, key=lambda r: r["seconds"])
    for r in runs:
        r.pop("cache")
    for r in [*runs, plain]:
        print(
            f"{r['executor'][:24]:<25}{r['workers']:>3} worker(s)  {r['sentences']:>6} sentences "
            f"{r['seconds']:>8.2f} s  {r['sentences_per_s']:>7.1f} sent/s  {r['rows_per_s']:>6.2f} rows/s"
        )
    local, ray1, ray2 = runs
    summary = {
        "benchmark": "scale",
        "beam": args.beam,
        "repeat": args.repeat,
        "all_seconds": {
            "local": [r["seconds"] for r in tries[0]],
            "ray1": [r["seconds"] for r in tries[1]],
            "ray2": [r["seconds"] for r in tries[2]],
            "plain": [r["seconds"] for r in plains],
        },
        "rows": local["rows"],
        "runs": [*runs, plain],
        "same_content_hash": len({r["content_hash"] for r in runs}) == 1,
        "local_vs_plain": round(local["sentences_per_s"] / plain["sentences_per_s"], 3),
        "ray1_vs_local": round(ray1["sentences_per_s"] / local["sentences_per_s"], 3),
        "ray2_vs_local": round(ray2["sentences_per_s"] / local["sentences_per_s"], 3),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
