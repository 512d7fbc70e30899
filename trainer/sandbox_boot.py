"""The first code that runs inside a sandboxed sample process (``python -I -B sandbox_boot.py CONFIG``).

Standard library only, and nothing of the toolkit: the sample must not find our modules on its path.
In order: resource limits, then (when started as root) a switch to the worker's own unprivileged
uid, then the guard, and only then the sample. The guard is a ``sys.addaudithook`` hook, which
cannot be removed once installed: it refuses writes outside the scratch folder, destructive file
operations, new processes, sockets, ctypes and raising limits. It is one layer among several
(rlimits, uid, network namespace): a determined native-code escape is stopped by those, not by it.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys

# The parent reads this line on stderr to know that set-up succeeded and the sample started.
READY = "\x1esandbox-ready\x1e"

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_BLOCKED = frozenset(
    {
        "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "os.startfile",
        "subprocess.Popen", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill",
        "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname",
        "socket.sendto", "socket.sendmsg",
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


def _limits(cfg: dict) -> None:
    memory = cfg["memory_bytes"]
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (cfg["file_bytes"], cfg["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_NPROC, (cfg["processes"], cfg["processes"]))
    resource.setrlimit(resource.RLIMIT_CPU, (cfg["cpu_seconds"], cfg["cpu_seconds"]))


def _drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise OSError(f"could not switch to uid {uid}")


def _install_guard(scratch: str) -> None:
    inside = os.path.realpath(scratch) + os.sep
    realpath = os.path.realpath

    def allowed(path: object) -> bool:
        if isinstance(path, int):
            return True  # an already open descriptor: opening it was checked
        if isinstance(path, bytes):
            path = path.decode("utf-8", "surrogateescape")
        return (realpath(str(path)) + os.sep).startswith(inside)

    def hook(event: str, args: tuple) -> None:
        if event in _BLOCKED:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "import" and args[0] in _BLOCKED_MODULES:
            raise PermissionError(f"sandbox: importing {args[0]} is not allowed")
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


def _stay_init(child: int) -> None:
    """As the first process of a PID namespace of its own, the program would ignore signals it
    sends itself and leave orphans unreaped; so this process stays init: it reaps, and when the
    program ends it exits with its status (128 + signal), taking the namespace down with it."""
    while True:
        pid, status = os.wait()
        if pid == child:
            break
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        sys.stderr.write(f"\nkilled by {signal.Signals(number).name}\n")
        sys.stderr.flush()
        os._exit(128 + number)
    os._exit(os.WEXITSTATUS(status))


def main() -> None:
    if os.getpid() == 1:
        child = os.fork()
        if child:
            _stay_init(child)
    with open(sys.argv[1], encoding="utf-8") as fh:
        cfg = json.load(fh)
    with open(cfg["program"], encoding="utf-8") as fh:
        source = fh.read()
    _limits(cfg)
    if cfg.get("uid") is not None:
        _drop_privileges(cfg["uid"])
    os.chdir(cfg["scratch"])
    if cfg["guard"]:
        _install_guard(cfg["scratch"])
    sys.stderr.write(READY + "\n")
    sys.stderr.flush()
    # Compiling is the program's business: a syntax error is its failure, not the sandbox's.
    code = compile(source, "sample.py", "exec")
    del cfg, source, fh
    exec(code, {"__name__": "__main__", "__builtins__": __builtins__})


if __name__ == "__main__":
    main()
