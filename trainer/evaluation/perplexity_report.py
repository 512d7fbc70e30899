"""What the perplexity report says: its table (perplexity and bits per byte per set and model),
its notes (the conventions) and its chart; :mod:`trainer.evaluation.report` writes them as
``perplexity.json``, ``.md`` and ``.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.evaluation.report import Chart


def markdown_table(report: dict[str, Any]) -> str:
    models = list(report["results"])
    sets = list(report["sets"])
    head = "| set | " + " | ".join(f"{m} ppl | {m} bpb" for m in models) + " |"
    lines = [head, "|---|" + "---|---|" * len(models)]
    for name in sets:
        cells = []
        for m in models:
            r = report["results"][m][name]
            cells += [f"{r['perplexity']:.3f}", f"{r['bits_per_byte']:.4f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def notes(report: dict[str, Any]) -> str:
    conventions = report["conventions"]
    return (
        f"Base model `{report['base_model']}`; max_length {conventions['max_length']}, "
        f"stride {conventions['stride']}, BOS `{conventions['bos']}`. bpb = bits per byte."
    )


def perplexity_chart(report: dict[str, Any]) -> Chart:
    sets = list(report["sets"])
    return Chart(
        groups=sets,
        bars={m: [report["results"][m][s]["perplexity"] for s in sets] for m in report["results"]},
        ylabel="perplexity (lower is better)",
        title=f"Perplexity: {Path(report['base_model']).name} and adapters",
    )
