"""lm-evaluation-harness, driven on a model this process loaded.

Tasks run through ``lm_eval.simple_evaluate`` on an ``HFLM`` wrapping the loaded model (the base,
or the base with an adapter put on it). The Open LLM Leaderboard's tasks get the leaderboard's
few-shot counts and metrics; any other harness task (including local YAML tasks under
``--include-path``) its own defaults unless ``--num-fewshot`` says otherwise. HumanEval's
completions are generated through a local ``generate_until`` task written here (the original
harness's stop sequences; greedy, or sampling when more than one sample per problem is asked).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dataset_builder.errors import UserError
from trainer.evaluation.humaneval import STOP_SEQUENCES, Problem
from trainer.evaluation.leaderboard import LEADERBOARD

if TYPE_CHECKING:
    from trainer.evaluation.downstream import BenchmarkSettings


def require_harness() -> None:
    try:
        import lm_eval  # noqa: F401
    except ModuleNotFoundError:
        raise UserError("lm-evaluation-harness is not installed: pip install -e '.[eval]'") from None


def harness_model(model: Any, tokenizer: Any, settings: BenchmarkSettings) -> Any:
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


def run_task(
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
    task: str, problems: list[Problem], settings: BenchmarkSettings, folder: Path
) -> str:
    """A local generate_until task over the problems' prompts (JSON is YAML); returns its name."""
    folder.mkdir(parents=True, exist_ok=True)
    name = "qlora_" + task.replace("-", "_")
    data = folder / f"{name}.jsonl"
    with data.open("w", encoding="utf-8") as fh:
        for p in problems:
            fh.write(json.dumps({"task_id": p.task_id, "prompt": p.prompt}, ensure_ascii=False) + "\n")
    n = settings.samples_per_problem
    gen: dict[str, Any] = {"until": list(STOP_SEQUENCES), "max_gen_toks": settings.max_gen_toks}
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


def relative_data_path(path: Path) -> None:
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
