"""Statistics and plots of a built version, for its card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

TOKEN_PLOT = "plots/token_lengths.png"


def token_stats(files: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Per split: rows, total, mean, median, p95 and max of ``num_tokens`` (empty if not counted)."""
    out = {}
    for split, path in files.items():
        if "num_tokens" not in pq.read_schema(path).names:
            return {}
        counts = pq.read_table(path, columns=["num_tokens"]).column("num_tokens").to_numpy()
        if not len(counts):
            continue
        out[split] = {
            "rows": len(counts),
            "total": int(counts.sum()),
            "mean": round(float(counts.mean()), 1),
            "median": int(np.median(counts)),
            "p95": int(np.percentile(counts, 95)),
            "max": int(counts.max()),
        }
    return out


def token_histogram(files: dict[str, Path], out: Path, title: str) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = {}
    for split, path in files.items():
        if "num_tokens" in pq.read_schema(path).names:
            data[split] = pq.read_table(path, columns=["num_tokens"]).column("num_tokens").to_numpy()
    if not any(len(v) for v in data.values()):
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    upper = max(int(v.max()) for v in data.values() if len(v))
    bins = np.linspace(0, upper + 1, 41)
    for split, values in data.items():
        ax.hist(values, bins=bins, alpha=0.6, label=f"{split} ({len(values)} rows)")
    ax.set_xlabel("tokens per row (text column, with BOS)")
    ax.set_ylabel("rows")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    # Fixed metadata so the same data gives the same bytes.
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)
    return out
