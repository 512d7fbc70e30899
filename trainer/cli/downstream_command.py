"""The ``qlora-trainer benchmark`` command: its options, and printing what it wrote."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from dataset_builder.errors import UserError

EPILOG = """\
examples:
  qlora-trainer benchmark --base HuggingFaceH4/zephyr-7b-beta --adapter adapters/zephyr-python-ru \\
      --tasks leaderboard --load-in-4bit --out reports/leaderboard
  qlora-trainer benchmark --base HuggingFaceH4/zephyr-7b-beta --adapter adapters/zephyr-python-ru \\
      --tasks humaneval,humaneval-ru --registry registry --out reports/humaneval
  qlora-trainer benchmark --tasks humaneval --samples completions.jsonl --out reports/given

'leaderboard' stands for arc_challenge, hellaswag, mmlu, truthfulqa_mc2, winogrande and gsm8k with the
Open LLM Leaderboard's few-shot counts. See docs/evaluation.md."""


def cmd_benchmark(args: argparse.Namespace) -> int:
    from trainer.evaluation.downstream import BenchmarkSettings, run_benchmark
    from trainer.evaluation.leaderboard import expand_tasks

    settings = BenchmarkSettings(
        tasks=expand_tasks([t.strip() for t in args.tasks.split(",") if t.strip()]),
        num_fewshot=args.num_fewshot, batch_size=args.batch_size, limit=args.limit,
        load_in_4bit=args.load_in_4bit, device=args.device, include_path=args.include_path, seed=args.seed,
        samples_per_problem=args.samples_per_problem, temperature=args.temperature, top_p=args.top_p,
        max_gen_toks=args.max_gen_toks, timeout=args.timeout, workers=args.workers, memory_mb=args.memory_mb,
        humaneval_ru=args.humaneval_ru, registry=args.registry, unsafe_no_sandbox=args.unsafe_no_sandbox,
    )  # fmt: skip
    _harness_data_reachable(settings.tasks, args.include_path, args.samples)
    try:
        report = run_benchmark(
            args.base,
            args.adapter or [],
            args.out,
            settings,
            samples_file=args.samples,
            overwrite=args.overwrite,
        )
    except ConnectionError as exc:  # what `datasets` raises for a task's data set it cannot fetch
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"{first}; a harness task's data set is not in the Hugging Face cache: run once where the Hub "
            "can be reached, or give local tasks with --include-path"
        ) from None
    print(report["markdown"])
    print(f"\nwritten: {', '.join(report['files'])}")
    return 0


def _harness_data_reachable(tasks: tuple[str, ...], include_path: str | None, samples: str | None) -> None:
    """lm-evaluation-harness reads its tasks' data from the Hub and retries for about a minute
    when the Hub cannot be reached: found here in seconds, before any model loads."""
    from trainer.evaluation.downstream import HUMANEVAL_TASKS
    from trainer.hub_access import hub_endpoint, hub_offline, hub_unreachable

    harness = [t for t in tasks if t not in HUMANEVAL_TASKS]
    if not harness or samples or include_path or hub_offline():
        return
    reason = hub_unreachable()
    if reason:
        raise UserError(
            f"--tasks {','.join(harness)}: lm-evaluation-harness reads these tasks' data from the Hub "
            f"{hub_endpoint()}, which is unreachable ({reason}); set HF_HUB_OFFLINE=1 to use data sets "
            "already in the Hugging Face cache, or run where the Hub can be reached"
        )


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def add_benchmark(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add(
        "benchmark",
        cmd_benchmark,
        "lm-evaluation-harness tasks and sandboxed HumanEval (pass@k) for a base model and adapters",
        EPILOG,
    )
    p.add_argument("--base", default=None, metavar="MODEL", help="base model: Hub id or local folder")
    p.add_argument("--adapter", action="append", metavar="ADAPTER",
                   help="adapter folder written by train, evaluated on the same tasks (repeatable)")  # fmt: skip
    p.add_argument("--tasks", required=True, metavar="A,B",
                   help="harness task names, 'leaderboard', 'humaneval', 'humaneval-ru' (comma-separated)")  # fmt: skip
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder for benchmark.json, .md, .png, samples/ and tasks/ (must be empty or new)",
    )
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty --out written by an earlier qlora-trainer command")  # fmt: skip
    p.add_argument("--include-path", default=None, metavar="DIR", help="folder of local harness YAML tasks")
    p.add_argument("--num-fewshot", type=int, default=None,
                   help="few-shot examples for every harness task (default: the leaderboard's, else the task's)")  # fmt: skip
    p.add_argument("--batch-size", type=_positive(int), default=8, help="harness batch size")
    p.add_argument(
        "--limit", type=_positive(int), default=None, help="at most N documents per task (testing only)"
    )
    p.add_argument("--load-in-4bit", action="store_true", help="load the base in 4-bit NF4 (bitsandbytes)")
    p.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: cuda when available"
    )
    p.add_argument("--seed", type=int, default=1234, help="the harness's seeds (sampling, few-shot choice)")
    g = p.add_argument_group("HumanEval")
    g.add_argument("--samples", default=None, metavar="FILE.jsonl",
                   help="score these completions (task_id, completion) instead of generating; no model needed")  # fmt: skip
    g.add_argument("--samples-per-problem", type=_positive(int), default=1,
                   help="n completions per problem: 1 is greedy, more samples with --temperature (pass@k for k <= n)")  # fmt: skip
    g.add_argument(
        "--temperature", type=_positive(float), default=0.2, help="sampling temperature when n > 1"
    )
    g.add_argument("--top-p", type=_positive(float), default=0.95, help="nucleus sampling when n > 1")
    g.add_argument("--max-gen-toks", type=_positive(int), default=512, help="most tokens per completion")
    g.add_argument("--timeout", type=_positive(float), default=3.0, help="seconds each program may run")
    g.add_argument("--workers", type=_positive(int), default=2, help="programs run at once")
    g.add_argument("--memory-mb", type=_positive(int), default=1024, help="address space per program (MiB)")
    g.add_argument("--humaneval-ru", default="humaneval-ru@latest", metavar="NAME@VERSION",
                   help="the published Russian HumanEval (built from recipes/humaneval-ru.toml)")  # fmt: skip
    g.add_argument("--registry", default=None, metavar="DIR", help="registry holding --humaneval-ru")
    g.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run generated code even where the kernel sandbox is unavailable (not root, no bwrap): "
                        "it then runs with your rights; the report records it")  # fmt: skip
