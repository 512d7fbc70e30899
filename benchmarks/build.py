"""Full build of N synthetic rows (default 65,000): per-stage times and peak RSS.

Runs, on the same generated input and each in its own process (so peak RSS is its own):
  ours      dataset-builder's pipeline (load, normalize, quality, exact dedup, split, format, publish)
  baseline  the same steps written the way a curator would in pandas (read_json, apply, drop_duplicates,
            to_parquet), without provenance, rejected rows or a manifest
Goal for ours: 65k rows in at most 30 s on 2 cores, peak RSS at most 2 GB. Last line: JSON.

    python benchmarks/build.py [--rows 65000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SOURCES = [
    {"name": "alpaca", "adapter": "alpaca", "paths": ["alpaca.jsonl"]},
    {"name": "exercise", "adapter": "chat_rounds", "paths": ["chat_rounds.jsonl"]},
    {"name": "ru", "adapter": "qa", "paths": ["ru_qa.jsonl"], "language": "ru",
     "columns": {"question": "вопрос", "answer": "ответ"}},
]  # fmt: skip
STAGES = [
    {"type": "normalize"},
    {"type": "quality"},
    {"type": "exact_dedup"},
    {"type": "split", "test_ratio": 0.05},
    {"type": "format", "template": "zephyr", "system": "empty"},
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(data: Path) -> dict:
    import dataset_builder.publishing.publish as publish
    from dataset_builder.publishing.pipeline import build
    from dataset_builder.recipe.schema import load_recipe
    from dataset_builder.registry.store import Registry
    from dataset_builder.testing import KEEP_REJECTED, write_recipe

    # The files publish derives from the version (report page, Croissant), timed where publish calls them.
    derived = {"report.html": 0.0, "croissant.json": 0.0}

    def timed(name: str, func):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                derived[name] += time.perf_counter() - start

        return call

    publish.write_report_page = timed("report.html", publish.write_report_page)
    publish.write_croissant = timed("croissant.json", publish.write_croissant)
    write_recipe(data, SOURCES, STAGES, name="bench", version="1", publish=KEEP_REJECTED)
    start = time.perf_counter()
    result = build(load_recipe(data / "recipe.toml"), Registry(data / "registry"), show_progress=False)
    seconds = time.perf_counter() - start
    stages = {s["stage"]: s["seconds"] for s in result.manifest["stages"]}
    rows = {k: v["rows"] for k, v in result.manifest["splits"].items()}
    sizes = {name: (result.path / name).stat().st_size for name in derived}
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "stages": stages, "rows": rows,
            "derived_seconds": derived, "derived_bytes": sizes}  # fmt: skip


def run_baseline(data: Path) -> dict:
    import hashlib
    import unicodedata

    import pandas as pd

    start = time.perf_counter()
    a = pd.read_json(data / "alpaca.jsonl", lines=True)
    a["prompt"] = a["instruction"] + a["input"].where(a["input"].str.strip() != "", "").radd("\n").where(
        a["input"].str.strip() != "", ""
    )
    a["answer"] = a["output"]
    c = pd.read_json(data / "chat_rounds.jsonl", lines=True)
    c["prompt"] = c["chat_rounds"].map(lambda r: r[0]["content"])
    c["answer"] = c["chat_rounds"].map(lambda r: r[-1]["content"])
    r = pd.read_json(data / "ru_qa.jsonl", lines=True).rename(columns={"вопрос": "prompt", "ответ": "answer"})
    df = pd.concat(
        [a[["prompt", "answer"]], c[["prompt", "answer"]], r[["prompt", "answer"]]], ignore_index=True
    )

    def norm(text: str) -> str:
        text = unicodedata.normalize("NFC", text.replace("\r\n", "\n"))
        return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")

    df["prompt"] = df["prompt"].map(norm)
    df["answer"] = df["answer"].map(norm)
    df = df[(df["prompt"].str.len() > 0) & (df["answer"].str.len() > 0)]
    df = df.drop_duplicates(["prompt", "answer"])
    df["text"] = (
        "<|system|>\n</s>\n<|user|>\n" + df["prompt"] + "</s>\n<|assistant|>\n" + df["answer"] + "</s>\n"
    )
    u = df["prompt"].map(
        lambda p: int.from_bytes(hashlib.blake2b(p.encode(), digest_size=8).digest()) / 2**64
    )
    out = data / "baseline"
    out.mkdir(exist_ok=True)
    df[u >= 0.05].to_parquet(out / "train.parquet")
    df[u < 0.05].to_parquet(out / "test.parquet")
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "rows": {"train": int((u >= 0.05).sum()), "test": int((u < 0.05).sum())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=65_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        result = run_ours(args.data) if args.only == "ours" else run_baseline(args.data)
        print(json.dumps(result))
        return

    from synthetic_corpus import write_corpus

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        write_corpus(data, args.rows, args.seed)
        results = {}
        for which in ("ours", "baseline"):
            cmd = [sys.executable, __file__, "--only", which, "--data", str(data)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            results[which] = json.loads(out.strip().splitlines()[-1])
    ours, base = results["ours"], results["baseline"]
    print(f"input: {args.rows} synthetic rows (seed {args.seed})")
    print(f"ours:     {ours['seconds']:7.2f} s  peak RSS {ours['peak_rss_mb']:7.0f} MB  rows {ours['rows']}")
    for stage, secs in ours["stages"].items():
        print(f"            {stage:<12}{secs:7.2f} s")
    print(
        f"baseline: {base['seconds']:7.2f} s  peak RSS {base['peak_rss_mb']:7.0f} MB  rows {base['rows']}  (pandas, no provenance)"
    )
    spent = sum(ours["derived_seconds"].values())
    print(
        f"            derived files (in publish): {spent:.2f} s = {spent / ours['seconds']:.1%} of the build "
        + ", ".join(
            f"{k} {v:.2f} s {ours['derived_bytes'][k] / 1024:.0f} KiB"
            for k, v in ours["derived_seconds"].items()
        )
    )
    ratio = ours["seconds"] / base["seconds"]
    print(f"ours / baseline time: {ratio:.2f}x  goal: <= 30 s and <= 2048 MB for 65k rows")
    print(
        json.dumps(
            {
                "benchmark": "build",
                "rows": args.rows,
                "ours_seconds": round(ours["seconds"], 2),
                "ours_peak_rss_mb": round(ours["peak_rss_mb"]),
                "baseline_seconds": round(base["seconds"], 2),
                "baseline_peak_rss_mb": round(base["peak_rss_mb"]),
                "time_ratio": round(ratio, 2),
                "stages": ours["stages"],
                "derived_seconds": {k: round(v, 3) for k, v in ours["derived_seconds"].items()},
                "derived_share": round(spent / ours["seconds"], 4),
                "derived_bytes": ours["derived_bytes"],
                "goal_met": ours["seconds"] <= 30 and ours["peak_rss_mb"] <= 2048,
            }
        )
    )


if __name__ == "__main__":
    main()
