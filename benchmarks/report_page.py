"""The report page of a 65k-row version with everything in it: its size and what it costs.

Builds, from a seed, the files of a version shaped like the paper's corpus (49.8k rows translated
EN->RU with their originals and an ``mt_quality`` score, 15.2k native Russian rows, code in every
answer, near-duplicate clusters, 6.5k rejected rows over seven reasons, decontamination hits with
their eval items) and runs, on those same files:
  ours      report_page.render_report + croissant.croissant (what publish writes)
  baseline  reading the same files once with pyarrow, every column (the least any page made
            from the version's rows pays)
Goal: the page under 5 MB; its time under 10% of the 65k-row build (benchmarks/build.py). Last line: JSON.

    python benchmarks/report_page.py [--rows 65000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from synthetic_corpus import SNIPPETS  # noqa: E402

from dataset_builder.rows import MESSAGES_TYPE, REJECTED_SCHEMA  # noqa: E402

QUALITY = pa.struct(
    [("round_trip_chrf", pa.float64()), ("length_ratio", pa.float64()), ("target_script_share", pa.float64()),
     ("repetition", pa.float64()), ("untranslated_share", pa.float64()), ("scored", pa.bool_())]
)  # fmt: skip


def _turns(rng: random.Random, i: int, russian: bool) -> list[dict]:
    s = SNIPPETS[i % len(SNIPPETS)]
    what = s.ru if russian else s.en
    ask = (
        f"Напишите функцию {s.name}, которая {what}."
        if russian
        else f"Write a function {s.name} that {what}."
    )
    ask += (
        f" (#{i})"
        + " "
        + " ".join(rng.choice(["data", "list", "text", "value"]) for _ in range(rng.randint(5, 60)))
    )
    answer = (
        "Вот решение:" if russian else "Here is a solution:"
    ) + f"\n\n```python\n{s.code}\n```\n\n`{s.name}` ok."
    return [{"role": "user", "content": ask}, {"role": "assistant", "content": answer}]


def write_version(folder: Path, rows: int, seed: int) -> tuple[dict, pa.Table, list[dict]]:
    rng = random.Random(seed)
    translated = int(rows * 0.766)
    records = []
    for i in range(rows):
        is_translated = i < translated
        quality = None
        if is_translated:
            chrf = None if rng.random() < 0.5 else rng.uniform(10, 95)
            quality = {"round_trip_chrf": chrf, "length_ratio": rng.uniform(0.6, 1.8),
                       "target_script_share": rng.uniform(0.5, 1.0), "repetition": rng.uniform(0, 0.2),
                       "untranslated_share": rng.uniform(0, 0.3), "scored": chrf is not None}  # fmt: skip
        records.append(
            {
                "row_id": f"{i:032x}",
                "source": "alpaca-en" if is_translated else "stackoverflow-ru",
                "source_key": f"data.jsonl:{i + 1}",
                "lang": "ru",
                "messages": _turns(rng, i, True),
                "source_messages": _turns(rng, i, False) if is_translated else None,
                "source_lang": "en" if is_translated else "ru",
                "dup_cluster": f"{i:032x}",
                "num_tokens": rng.randint(60, 1900),
                "mt_quality": quality,
            }
        )
    schema = pa.schema([("row_id", pa.string()), ("source", pa.string()), ("source_key", pa.string()),
                        ("lang", pa.string()), ("messages", MESSAGES_TYPE), ("source_messages", MESSAGES_TYPE),
                        ("source_lang", pa.string()), ("dup_cluster", pa.string()), ("num_tokens", pa.int32()),
                        ("mt_quality", QUALITY)])  # fmt: skip
    test = set(rng.sample(range(rows), rows // 20))
    splits = {}
    for split, keep in (("train", lambda i: i not in test), ("test", lambda i: i in test)):
        rel = f"data/{split}-00000-of-00001.parquet"
        (folder / "data").mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist([r for i, r in enumerate(records) if keep(i)], schema=schema)
        pq.write_table(table, folder / rel, row_group_size=10_000)
        splits[split] = {"file": rel, "rows": table.num_rows}
    reasons = [("near_dedup", "near_duplicate"), ("translate", "length_ratio"), ("translate", "wrong_language"),
               ("exact_dedup", "exact_duplicate"), ("quality", "empty_answer"), ("decontaminate", "contaminated"),
               ("format", "too_many_tokens")]  # fmt: skip
    rejected = []
    for k in range(rows // 10):
        stage, reason = reasons[k % len(reasons)]
        i = rng.randrange(rows)
        detail, dup, attempted = "", None, None
        if reason == "near_duplicate":
            dup, detail = f"{rng.randrange(200):032x}", "cluster of 3; Jaccard 0.912 with its nearest member"
        elif reason == "contaminated":
            detail = f"eval set 'humaneval' item HumanEval/{k % 164}: minhash: Jaccard 0.8{k % 10} on 5-grams, in the row's text (ru)"
        elif reason == "too_many_tokens":
            detail = f"{2048 + k} tokens > max_tokens 2048"
        elif stage == "translate":
            attempted, detail = (
                _turns(rng, i, True),
                "turn 1 (user): prose length ratio 4.09 outside [0.4, 3.5]",
            )
        rejected.append({"row_id": f"r{k:031x}", "source": "alpaca-en", "source_key": f"data.jsonl:{i}",
                         "stage": stage, "reason": reason, "detail": detail, "duplicate_of": dup,
                         "messages": _turns(rng, i, False), "raw": None, "attempted_messages": attempted})  # fmt: skip
    rejected_table = pa.Table.from_pylist(rejected, schema=REJECTED_SCHEMA)
    (folder / "rejected").mkdir(exist_ok=True)
    pq.write_table(rejected_table, folder / "rejected" / "rejected.parquet")
    manifest = {
        "name": "bench",
        "version": "1.0.0",
        "content_hash": "sha256:" + "0" * 64,
        "built_at": "2026-01-01T00:00:00+00:00",
        "tool": {"name": "dataset-builder", "version": "bench"},
        "recipe": {
            "dataset": {"description": "bench", "language": ["ru"]},
            "sources": [],
            "stages": [{"type": "format", "max_tokens": 2048}],
        },
        "recipe_sha256": "0" * 64,
        "inputs": [],
        "stages": [{"stage": "load", "seconds": 1.0, "counters": {}}],
        "splits": splits,
        "execution": {"executor": "local"},
    }
    funnel = [
        {"stage": "load", "in": {}, "added": {"alpaca-en": rows}, "rejected": {}, "out": {"alpaca-en": rows}}
    ]
    return manifest, rejected_table, funnel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=65_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from dataset_builder.publishing.croissant import croissant
    from dataset_builder.publishing.report_page import render_report

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifest, rejected, funnel = write_version(folder, args.rows, args.seed)
        # Warm the OS file cache for both sides alike.
        for meta in manifest["splits"].values():
            pq.read_table(folder / meta["file"])
        start = time.perf_counter()
        for meta in manifest["splits"].values():
            pq.read_table(folder / meta["file"])
        pq.read_table(folder / "rejected" / "rejected.parquet")
        baseline = time.perf_counter() - start
        start = time.perf_counter()
        page = render_report(folder, manifest, rejected, funnel).encode("utf-8")
        page_seconds = time.perf_counter() - start
        start = time.perf_counter()
        doc = json.dumps(croissant(folder, manifest)).encode("utf-8")
        croissant_seconds = time.perf_counter() - start
    ours = page_seconds + croissant_seconds
    print(f"input: {args.rows} rows (seed {args.seed}), {rejected.num_rows} rejected")
    print(f"ours:     {ours:6.2f} s  (page {page_seconds:.2f} s, {len(page) / 1e6:.2f} MB; croissant "
          f"{croissant_seconds:.2f} s, {len(doc) / 1e3:.0f} kB)")  # fmt: skip
    print(f"baseline: {baseline:6.2f} s  (pyarrow reads the split files and rejected rows, every column)")
    print(f"ours / baseline time: {ours / baseline:.2f}x  goal: page < 5 MB, time < 10% of the 65k build")
    print(
        json.dumps(
            {
                "benchmark": "report_page",
                "rows": args.rows,
                "ours_seconds": round(ours, 3),
                "page_seconds": round(page_seconds, 3),
                "croissant_seconds": round(croissant_seconds, 3),
                "page_bytes": len(page),
                "croissant_bytes": len(doc),
                "baseline_seconds": round(baseline, 3),
                "time_ratio": round(ours / baseline, 2),
                "page_under_5mb": len(page) < 5_000_000,
            }
        )
    )


if __name__ == "__main__":
    main()
