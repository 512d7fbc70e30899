"""What the benchmark's report says: its table (base vs adapters per task, the paper's published
numbers beside ours and labelled as the paper's), its notes (how the numbers were made) and its
chart; :mod:`trainer.evaluation.report` writes them as ``benchmark.json``, ``.md`` and ``.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.evaluation.leaderboard import LEADERBOARD, PAPER_AVERAGES
from trainer.evaluation.report import Chart


def _value(result: dict[str, Any]) -> float | None:
    """A task's headline number in percent: the harness metric, or pass@1."""
    value = result.get("value", result.get("pass@1"))
    return None if value is None else 100.0 * value


def rows(report: dict[str, Any]) -> list[tuple[str, str, dict[str, float | None]]]:
    """``(task, what is measured, {model: percent})``, and the leaderboard average when all six
    leaderboard tasks were run."""
    models = list(report["results"])
    out = []
    for task, info in report["tasks"].items():
        what = (
            f"{info['metric'].split(',')[0]}, {info['num_fewshot']}-shot"
            if info["kind"] == "harness"
            else "pass@1"
        )
        out.append(
            (
                task,
                what,
                {m: _value(report["results"][m][task]) for m in models if task in report["results"][m]},
            )
        )
    if all(t in report["tasks"] for t in LEADERBOARD):
        averages: dict[str, float | None] = {}
        for m in models:
            values = [_value(report["results"][m][t]) for t in LEADERBOARD]
            averages[m] = None if None in values else sum(v for v in values if v is not None) / len(values)
        out.append(("leaderboard average", "mean of the six", averages))
    return out


def markdown_table(report: dict[str, Any]) -> str:
    models = list(report["results"])
    table = rows(report)
    with_paper = any(task == "leaderboard average" for task, _, _ in table)
    paper = list(PAPER_AVERAGES) if with_paper else []
    head = "| task | metric | " + " | ".join(models + [f"paper: {p}" for p in paper]) + " |"
    lines = [head, "|---|---|" + "---|" * (len(models) + len(paper))]
    for task, what, values in table:
        cells = ["" if values.get(m) is None else f"{values[m]:.2f}" for m in models]
        cells += [f"{PAPER_AVERAGES[p]:.2f}" if task == "leaderboard average" else "" for p in paper]
        lines.append(f"| {task} | {what} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def notes(report: dict[str, Any]) -> str:
    parts = [f"Base model `{report['base_model']}`" if report.get("base_model") else
             f"Completions from `{report.get('samples_file')}`"]  # fmt: skip
    parts.append(f"lm-evaluation-harness {report['versions'].get('lm_eval')}; numbers in percent")
    text = "; ".join(parts) + "."
    if any(task == "leaderboard average" for task, _, _ in rows(report)):
        text += (
            " Columns `paper: ...` are the paper's published Open LLM Leaderboard averages, not our"
            " runs; the paper gives no per-task numbers, so those cells are empty."
        )
    code = [t for t, i in report["tasks"].items() if i["kind"] == "humaneval"]
    if code:
        text += f" HumanEval ({', '.join(code)}): {_code_settings(report, code)},"
        text += f" executed in the sandbox (network: {report['sandbox']['network']})."
        if report["sandbox"].get("kernel"):
            text += f" Kernel sandbox: {report['sandbox']['boundary']}; {report['sandbox']['user']}."
        if report["sandbox"].get("unsafe_no_sandbox"):
            text += (
                " **Unsafe: generated code ran without the kernel sandbox (--unsafe-no-sandbox:"
                f" {report['sandbox']['boundary']}).**"
            )
    return text


def _code_settings(report: dict[str, Any], code: list[str]) -> str:
    """How the completions were made and how many problems they cover, as the results say: a
    samples file can hold any number per problem and any subset of the problems."""
    scored = [r[t] for r in report["results"].values() for t in code if isinstance(r.get(t), dict)]
    coverage = sorted({(r.get("problems_scored"), r.get("problems_in_set")) for r in scored} - {(None, None)})
    covered = "; ".join(f"{n} of {total} problems scored" for n, total in coverage)
    if report.get("samples_file"):
        per = sorted({r.get("samples_per_problem") for r in scored})
        counts = "an uneven number of" if per == [None] or None in per else "/".join(map(str, per))
        made = f"completions given in `{Path(report['samples_file']).name}`, {counts} sample(s) per problem"
    else:
        s = report["settings"]
        n = s["samples_per_problem"]
        made = f"{n} sample(s) per problem, {'greedy' if n == 1 else 'temperature ' + str(s['temperature'])}"
    return f"{made}, {covered}" if covered else made


def scores_chart(report: dict[str, Any]) -> Chart:
    """Grouped bars of every task's headline number, with the paper's averages as lines over the
    leaderboard average when it was run."""
    data = rows(report)
    with_paper = any(task == "leaderboard average" for task, _, _ in data)
    return Chart(
        groups=[task for task, _, _ in data],
        bars={m: [values.get(m) for _, _, values in data] for m in report["results"]},
        ylabel="percent (higher is better)",
        title="Benchmark: base and adapters",
        value_format="%.1f",
        lines={f"paper: {p}": value for p, value in PAPER_AVERAGES.items()} if with_paper else {},
    )
