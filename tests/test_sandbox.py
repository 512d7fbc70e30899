"""The sandbox: every HumanEval canonical solution passes, wrong and hostile programs fail, and each
failure belongs to its own program only."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from trainer.humaneval import english_problems_file, program, read_problems_file
from trainer.sandbox import Limits, Sandbox
from trainer.sandbox_boot import READY

_BOOT_SCRIPT = "sandbox_boot.py"


def _sandbox_processes() -> list[int]:
    """Pids of processes still running our boot script (any sandbox program left behind)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if _BOOT_SCRIPT.encode() in cmdline and int(entry.name) != os.getpid():
                pids.append(int(entry.name))
    return pids


def test_all_canonical_solutions_pass_and_a_wrong_one_fails() -> None:
    problems = read_problems_file(english_problems_file())
    samples = [program(p, p.canonical_solution) for p in problems]
    # HumanEval/2 (truncate_number): returns the integer part instead of the decimal part.
    planted = 2
    samples[planted] = program(problems[planted], "    return number - (number - int(number))\n")
    started = time.monotonic()
    with Sandbox(Limits(timeout=10, workers=2)) as sandbox:
        outcomes = sandbox.run_many(samples)
    elapsed = time.monotonic() - started
    failed = [i for i, o in enumerate(outcomes) if not o.passed]
    assert failed == [planted]
    assert outcomes[planted].status == "failed" and outcomes[planted].detail.startswith("AssertionError")
    assert elapsed < 120  # about 7 s on 2 cores: one process per program stays cheap


HOSTILE = {
    "infinite_loop": "while True:\n    pass\n",
    "sleeper": "import time\ntime.sleep(3600)\n",
    "fork_bomb": "import os\nwhile True:\n    os.fork()\n",
    "multiprocessing_bomb": "import multiprocessing as mp\nwhile True:\n    mp.Process(target=print).start()\n",
    "huge_allocation": "block = bytearray(64 * 2**30)\n",
    "growing_allocation": "chunks = []\nwhile True:\n    chunks.append(bytearray(2**26))\n",
    "network": "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)\n",
    "subprocess": "import subprocess\nsubprocess.run(['true'])\n",
    "ctypes": "import ctypes\nctypes.CDLL(None).fork()\n",
    "huge_file": "with open('big', 'wb') as fh:\n    fh.write(b'x' * (64 * 2**20))\n",
}


def test_hostile_programs_fail_alone(tmp_path: Path) -> None:
    """Hostile programs interleaved with good ones in one pool: each hostile one is reported as a
    failure (or timeout) of its own, every good one still passes, nothing outside its scratch
    folder is written, and no process of theirs survives."""
    outside = tmp_path / "outside.txt"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    hostile = dict(HOSTILE)
    hostile["write_outside"] = f"open({str(outside)!r}, 'w').write('escaped')\n"
    hostile["delete_outside"] = f"import os\nos.remove({str(victim)!r})\n"
    hostile["write_via_os_open"] = (
        f"import os\nos.close(os.open({str(outside)!r}, os.O_WRONLY | os.O_CREAT))\n"
    )
    good = (
        "import os, tempfile\n"
        "assert os.getcwd() == os.environ['HOME'] == os.environ['TMPDIR']\n"
        "open('mine.txt', 'w').write('ok')\n"
        "tempfile.mkstemp()\n"
        "assert set(os.environ) <= {'PATH', 'HOME', 'TMPDIR', 'LANG', 'LC_CTYPE'}, sorted(os.environ)\n"
    )
    names, programs = [], []
    for name, source in hostile.items():
        names += [name, f"good after {name}"]
        programs += [source, good]
    with Sandbox(Limits(timeout=2, workers=2, memory_bytes=1 << 30, file_bytes=8 << 20)) as sandbox:
        outcomes = dict(zip(names, sandbox.run_many(programs), strict=True))
        isolation = sandbox.isolation()
    for name in hostile:
        assert not outcomes[name].passed, (name, outcomes[name])
        assert outcomes[f"good after {name}"].passed, (name, outcomes[f"good after {name}"])
    assert outcomes["infinite_loop"].status == outcomes["sleeper"].status == "timeout"
    assert "MemoryError" in outcomes["huge_allocation"].detail
    assert "File too large" in outcomes["huge_file"].detail  # Python ignores SIGXFSZ: EFBIG
    assert not outside.exists() and victim.read_text() == "keep me"
    assert _sandbox_processes() == []
    assert isolation["limits"]["timeout"] == 2 and isolation["guard"].startswith("audit hook")


def test_kernel_limits_hold_without_the_guard(tmp_path: Path) -> None:
    """With the in-process guard off, the kernel layers still stop what they are there for: the
    address-space limit, the file-size limit, the timeout with the process-group kill, and the
    network namespace where one is permitted."""
    with Sandbox(Limits(timeout=2, workers=2, file_bytes=1 << 20), guard=False) as sandbox:
        net = sandbox.network.startswith("network namespace")
        programs = [
            "block = bytearray(64 * 2**30)\n",
            "open('big', 'wb').write(b'x' * (4 * 2**20))\n",
            # The child sleeps on after its parent times out: the group kill takes it too.
            "import os, time\nif os.fork() == 0:\n    time.sleep(3600)\nwhile True:\n    pass\n",
            "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)\n",
        ]
        outcomes = sandbox.run_many(programs)
    assert "MemoryError" in outcomes[0].detail
    assert "File too large" in outcomes[1].detail
    assert outcomes[2].status == "timeout"
    assert not outcomes[3].passed
    if net:
        assert "Network is unreachable" in outcomes[3].detail or "gaierror" in outcomes[3].detail
    time.sleep(0.2)
    assert _sandbox_processes() == []


def test_setup_failure_is_not_a_program_failure(tmp_path: Path) -> None:
    """The parent tells the sandbox's own start-up apart from the program by a marker line."""
    from trainer.sandbox import SandboxError

    with Sandbox(Limits(timeout=5)) as sandbox:
        outcome = sandbox.run(f"import sys\nsys.stderr.write({READY!r})\nraise SystemExit(3)\n")
        assert outcome.status == "failed" and outcome.returncode == 3
        sandbox.prefix = ["/bin/false", "--"]  # as if the namespace command failed: nothing starts
        with pytest.raises(SandboxError, match="could not start a program"):
            sandbox.run("pass\n")


def test_processes_that_leave_the_session_die_with_the_program(tmp_path: Path) -> None:
    """A child that calls setsid escapes a process-group kill; the PID namespace (or, as root,
    the per-slot uid) still ends it when its program ends. Guard off, so nothing else stops it."""
    witness = tmp_path / "still-alive"
    escapee = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    time.sleep(1.5)\n"
        f"    open({str(witness)!r}, 'w').write('escaped')\n"
        "    os._exit(0)\n"
    )
    with Sandbox(Limits(timeout=5), guard=False) as sandbox:
        if "PID namespace" not in sandbox.network and not sandbox.as_root:
            pytest.skip(f"neither a PID namespace nor a uid switch here: {sandbox.isolation()['user']}")
        assert sandbox.run(escapee).passed
    time.sleep(2.5)
    assert not witness.exists()


def _python_for_other_uids() -> str | None:
    """An interpreter an unprivileged uid can run (the system's), when we are root."""
    from trainer.sandbox import uid_can_run

    if os.geteuid() != 0:
        return None
    for python in (os.path.realpath(sys.executable), "/usr/bin/python3", "/usr/local/bin/python3"):
        if Path(python).exists() and uid_can_run(python, 1_999_999_999):
            return python
    return None


def test_uid_layer_stops_what_the_guard_would(tmp_path: Path) -> None:
    """As root with an interpreter other uids can run, each slot runs as its own uid: with the
    guard off, RLIMIT_NPROC stops a fork bomb and file permissions stop writes outside scratch."""
    python = _python_for_other_uids()
    if python is None:
        pytest.skip("not root, or no interpreter that an unprivileged uid can run")
    outside = tmp_path / "outside.txt"
    programs = [
        "import os\nwhile True:\n    os.fork()\n",
        f"open({str(outside)!r}, 'w').write('escaped')\n",
        "import math\nassert math.gcd(12, 18) == 6\n",
    ]
    with Sandbox(Limits(timeout=3, workers=2, processes=8), guard=False, python=python) as sandbox:
        assert sandbox.as_root and sandbox.isolation()["user"].startswith("own unprivileged uid")
        bomb, write, good = sandbox.run_many(programs)
    assert bomb.status in ("failed", "timeout") and not write.passed and good.passed
    assert "Permission denied" in write.detail and not outside.exists()
    time.sleep(0.2)
    assert _sandbox_processes() == []
