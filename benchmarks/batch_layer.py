"""The batch layer between stages: pyarrow Tables (ours) against polars DataFrames, on the
operations the stages do to 65,000 canonical rows (nested ``messages``): rows to Python dicts
and back (row-at-a-time stages), a boolean filter (dedup, decontamination), appending a column
(split, format), and writing Parquet (the writer). Same data, one run, last line JSON.

    python benchmarks/batch_layer.py [--rows 65000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def rows(n: int) -> list[dict]:
    from synthetic_corpus import generate

    from dataset_builder.rows import make_row_id

    out = []
    corpus = generate(n, 0)
    for i, rec in enumerate(corpus["alpaca"] + corpus["ru_qa"] + corpus["chat_rounds"]):
        if "instruction" in rec:
            messages = [
                {"role": "user", "content": rec["instruction"]},
                {"role": "assistant", "content": rec["output"]},
            ]
        elif "вопрос" in rec:
            messages = [
                {"role": "user", "content": rec["вопрос"]},
                {"role": "assistant", "content": rec["ответ"]},
            ]
        else:
            messages = [
                {"role": "user" if t["role"] == "human" else "assistant", "content": t["content"]}
                for t in rec["chat_rounds"]
            ]
        out.append(
            {
                "row_id": make_row_id("s", messages),
                "source": "s",
                "source_key": str(i),
                "lang": "en",
                "messages": messages,
            }
        )
    return out[:n]


def timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=65_000)
    args = parser.parse_args()
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dataset_builder.rows import CANONICAL_SCHEMA

    data = rows(args.rows)
    table = pa.Table.from_pylist(data, schema=CANONICAL_SCHEMA)
    frame = pl.from_arrow(table)
    mask = [i % 7 != 0 for i in range(len(data))]
    splits = ["test" if i % 20 == 0 else "train" for i in range(len(data))]
    results: dict[str, dict[str, float]] = {"pyarrow": {}, "polars": {}}
    with tempfile.TemporaryDirectory() as tmp:
        ops = {
            "from_python_rows": (lambda: pa.Table.from_pylist(data, schema=CANONICAL_SCHEMA),
                                 lambda: pl.DataFrame(data)),
            "to_python_rows": (lambda: table.to_pylist(), lambda: frame.to_dicts()),
            "filter": (lambda: table.filter(pa.array(mask)), lambda: frame.filter(pl.Series(mask))),
            "append_column": (lambda: table.append_column("split", pa.array(splits)),
                              lambda: frame.with_columns(pl.Series("split", splits))),
            "write_parquet": (lambda: pq.write_table(table, f"{tmp}/a.parquet", compression="zstd"),
                              lambda: frame.write_parquet(f"{tmp}/b.parquet", compression="zstd")),
        }  # fmt: skip
        for name, (arrow_op, polars_op) in ops.items():
            results["pyarrow"][name] = min(timed(arrow_op) for _ in range(3))
            results["polars"][name] = min(timed(polars_op) for _ in range(3))
    print(f"{len(data)} canonical rows; best of 3, seconds")
    print(f"{'operation':<18}{'pyarrow':>10}{'polars':>10}{'polars/pyarrow':>16}")
    for name in results["pyarrow"]:
        a, p = results["pyarrow"][name], results["polars"][name]
        print(f"{name:<18}{a:>10.3f}{p:>10.3f}{p / a:>16.2f}")
    total_a, total_p = sum(results["pyarrow"].values()), sum(results["polars"].values())
    print(f"{'total':<18}{total_a:>10.3f}{total_p:>10.3f}{total_p / total_a:>16.2f}")
    print(
        json.dumps(
            {
                "benchmark": "batch_layer",
                "rows": len(data),
                **results,
                "ratio_polars_over_pyarrow": round(total_p / total_a, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
