"""The Open LLM Leaderboard's tasks (v1) and the paper's published averages over them.

``leaderboard`` in ``--tasks`` stands for the six tasks; each gets the leaderboard's few-shot count
and is reported with the leaderboard's metric.
"""

from __future__ import annotations

from typing import Any

from dataset_builder.errors import UserError

# The six tasks behind the paper's averages, their few-shot counts and the metric the leaderboard
# reports for each.
LEADERBOARD: dict[str, dict[str, Any]] = {
    "arc_challenge": {"num_fewshot": 25, "metric": "acc_norm,none"},
    "hellaswag": {"num_fewshot": 10, "metric": "acc_norm,none"},
    "mmlu": {"num_fewshot": 5, "metric": "acc,none"},
    "truthfulqa_mc2": {"num_fewshot": 0, "metric": "acc,none"},
    "winogrande": {"num_fewshot": 5, "metric": "acc,none"},
    "gsm8k": {"num_fewshot": 5, "metric": "exact_match,strict-match"},
}
# The paper's published averages over those six (percent). It gives no per-task numbers.
PAPER_AVERAGES = {"HuggingFaceH4/zephyr-7b-beta": 61.95, "zephyr-python-ru (merged adapter)": 60.1}


def expand_tasks(names: list[str]) -> tuple[str, ...]:
    """``leaderboard`` stands for the six leaderboard tasks; order kept, repeats dropped."""
    out: list[str] = []
    for name in names:
        for task in LEADERBOARD if name == "leaderboard" else [name]:
            if task not in out:
                out.append(task)
    if not out:
        raise UserError("--tasks: no task given")
    return tuple(out)
