"""The evaluators' one report writer: ``NAME.json`` (every number and setting), ``NAME.md`` (a
title, notes and a table) and ``NAME.png`` (grouped bars: one group per table row, one bar per
model)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Chart:
    groups: list[str]  # one group of bars per label
    bars: dict[str, list[float | None]]  # model -> its value in each group (None draws nothing)
    ylabel: str
    title: str
    value_format: str = "%.2f"
    # label -> value, drawn as a dashed line over the last group (published numbers beside ours)
    lines: dict[str, float] = field(default_factory=dict)


def report_files(name: str) -> tuple[str, str, str]:
    return f"{name}.json", f"{name}.md", f"{name}.png"


def write_report(out: Path, name: str, report: dict[str, Any], title: str, notes: str, table: str,
                 chart: Chart) -> list[Path]:  # fmt: skip
    """Write the three files into ``out``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    data, text, image = (out / f for f in report_files(name))
    data.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    text.write_text(f"# {title}\n\n{notes}\n\n{table}\n", encoding="utf-8")
    fig, ax = plt.subplots(figsize=(max(6, 1.5 * len(chart.groups)), 4), dpi=100)
    width = 0.8 / max(len(chart.bars), 1)
    x = np.arange(len(chart.groups))
    for k, (model, values) in enumerate(chart.bars.items()):
        heights = [0.0 if v is None else v for v in values]
        bars = ax.bar(x + k * width - 0.4 + width / 2, heights, width, label=model)
        ax.bar_label(bars, labels=["" if v is None else chart.value_format % v for v in values], fontsize=7)
    last = len(chart.groups) - 1
    for label, value in chart.lines.items():
        ax.plot([last - 0.4, last + 0.4], [value, value], linestyle="--", linewidth=1, label=label)
    ax.set_xticks(x, chart.groups, rotation=15, ha="right")
    ax.set_ylabel(chart.ylabel)
    ax.set_title(chart.title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(image, metadata={"Software": None})
    plt.close(fig)
    return [data, text, image]
