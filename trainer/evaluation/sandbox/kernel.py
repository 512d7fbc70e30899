"""The kernel side of the sandbox: the bubblewrap command a worker runs in, and its cgroup.

A worker (one warm process, :mod:`trainer.evaluation.sandbox.boot`) runs under ``bwrap`` started by root
without a user namespace, so the uid a sample later switches to is a real, unprivileged uid of
the host that owns no file there. bwrap gives it new mount, PID, network, IPC, UTS (and, where the
kernel has them, cgroup) namespaces, ``no_new_privs``, a root file system that is an empty tmpfs
remounted read-only holding only: the system's ``/usr`` (and the ``/bin``, ``/lib``... links or
folders), a few files of ``/etc`` that the dynamic loader reads, the interpreter's own trees
(its virtual environment and the base installation it points to, wherever they are, even below a
0700 home: a bind mount needs no permission on the folders above), the boot script, a fresh
``/proc`` and ``/dev``, and a size-bounded tmpfs at ``/tmp`` as the only writable place.

A tree that lies under ``/tmp`` (a checkout cloned there, with its virtual environment) is bound
read-only at its own path *on top of* that tmpfs: bwrap applies mounts in argument order, so the
tmpfs comes first. The folders above such a tree are made in the tmpfs by root, 0755, so the
sample can neither write there nor remove or rename them (``/tmp`` is sticky); nothing else of the
host's ``/tmp`` is there. :func:`placed_in_scratch` names those folders, which the worker keeps
when it empties scratch.

Capabilities: bwrap keeps only CAP_SETUID, CAP_SETGID, CAP_KILL and CAP_SETPCAP; ``setpriv`` then
bounds the worker to the first three (it needs SETPCAP to do so, which is why it runs before any
uid change: dropping every capability first would leave nothing to switch uids with). The worker
needs them only to switch each sample's process to the sample uid (which clears permitted,
effective and ambient capabilities) and to kill what a sample leaves.

On x86-64 a seccomp filter (:mod:`trainer.evaluation.sandbox.seccomp`) is given to bwrap as well.

A cgroup per worker (v2, or v1's pids, memory and cpu controllers) bounds the processes, memory
(scratch tmpfs included) and CPU of the whole tree; where none can be made, the per-process
rlimits and the per-uid process limit are what bounds them, and :func:`cgroup_note` says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from functools import cache
from pathlib import Path

BOOT_INSIDE = "/sandbox/boot.py"
SCRATCH_INSIDE = "/tmp"
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime")
_WORKER_CAPS = ("setuid", "setgid", "kill")
_CPU_PERIOD_US = 100_000


def missing_tools() -> str | None:
    """Why the kernel layer cannot be used here, or None."""
    if os.geteuid() != 0:
        return (
            "not running as root: only root can give each sample a uid of its own that owns no file "
            "(a user namespace would map it back to the caller)"
        )
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (apt-get install bubblewrap; `make setup` does it as root)"
    if shutil.which("setpriv") is None:
        return "setpriv is not installed (apt-get install util-linux)"
    return None


def interpreter_trees(python: str) -> tuple[str, ...]:
    """The folders an interpreter needs: its prefixes (a virtual environment and its base), and
    the folder of the real executable, minus what the system folders already hold. A tree that
    holds the home or the working folder is refused (ValueError): it would show them. So is the
    scratch folder's place itself: bound there, it would show the host's whole ``/tmp`` and leave
    the sample no writable place. A tree below it is fine (see the module's documentation)."""
    trees = _trees(python)
    private = {os.path.realpath(p) for p in (os.path.expanduser("~"), os.getcwd())}
    for path in trees:
        if path == SCRATCH_INSIDE:
            raise ValueError(
                f"the interpreter's tree is {SCRATCH_INSIDE} itself, which the sandbox keeps as the program's "
                "own scratch folder: put the interpreter or virtual environment in a folder of its own"
            )
        if path == "/" or any(p == path or p.startswith(path + "/") for p in private):
            raise ValueError(
                f"the interpreter's tree {path} holds the home or working folder, which the sandbox must not "
                "show: use a virtual environment or Python installed elsewhere"
            )
    return trees


@cache
def _trees(python: str) -> tuple[str, ...]:
    probe = subprocess.run(
        [python, "-I", "-c",
         "import sys, os; print('\\n'.join([sys.prefix, sys.exec_prefix, sys.base_prefix, "
         "sys.base_exec_prefix, os.path.dirname(os.path.realpath(sys.executable))]))"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    found = {os.path.realpath(p) for p in probe.stdout.split("\n") if p.strip()}
    found.add(os.path.dirname(os.path.realpath(python)))
    trees: list[str] = []
    for path in sorted(found):
        if not any(path == d or path.startswith(d + "/") for d in ("/usr", *trees)):
            trees.append(path)
    return tuple(trees)


def placed_in_scratch(trees: tuple[str, ...]) -> list[str]:
    """The names in the scratch folder that the sandbox puts there: the top folders of the
    interpreter trees that lie under it."""
    prefix = SCRATCH_INSIDE + "/"
    return sorted({t.removeprefix(prefix).split("/")[0] for t in trees if t.startswith(prefix)})


def _reachable(python: str) -> str:
    """The interpreter's path as the sandbox sees it: its folder resolved (a virtual environment
    reached through a link is mounted at its real place), its own name kept, because a venv's
    interpreter finds its environment by the name it was started under."""
    return os.path.join(os.path.realpath(os.path.dirname(python)), os.path.basename(python))


def bwrap_command(
    python: str, boot: Path, config: str, scratch_bytes: int, seccomp_fd: int | None
) -> list[str]:
    cmd = [
        shutil.which("bwrap") or "bwrap",
        "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--die-with-parent", "--new-session", "--hostname", "sandbox", "--clearenv",
        "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8",
    ]  # fmt: skip
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            cmd += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            cmd += ["--ro-bind", path, path]
    trees = interpreter_trees(python)
    # The scratch tmpfs first: bwrap mounts in argument order, so a tree under it (a checkout in
    # /tmp) is bound on top of it below, rather than hidden by it.
    cmd += ["--perms", "1777", "--size", str(scratch_bytes), "--tmpfs", SCRATCH_INSIDE]
    # bwrap makes missing parents 0700, which the sample's uid could not pass: they are made
    # here first, in the sandbox's own root or scratch tmpfs, readable and owned by root (the
    # host's folders are not touched).
    for folder in _parents(["/etc/x", *trees, BOOT_INSIDE]):
        if folder != SCRATCH_INSIDE:
            cmd += ["--perms", "0755", "--dir", folder]
    for path in _ETC_FILES:
        cmd += ["--ro-bind-try", path, path]
    for tree in trees:
        cmd += ["--ro-bind", tree, tree]
    cmd += [
        "--ro-bind", str(boot), BOOT_INSIDE,
        "--proc", "/proc", "--dev", "/dev",
        "--remount-ro", "/", "--chdir", "/",
        *(["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []),
        "--cap-drop", "ALL", *[a for c in (*_WORKER_CAPS, "setpcap") for a in ("--cap-add", f"CAP_{c.upper()}")],
        "--", shutil.which("setpriv") or "setpriv",
        "--bounding-set", "-all," + ",".join(f"+{c}" for c in _WORKER_CAPS),
        "--inh-caps", "-all," + ",".join(f"+{c}" for c in _WORKER_CAPS),
        "--ambient-caps", "-all," + ",".join(f"+{c}" for c in _WORKER_CAPS),
        "--", _reachable(python), "-I", "-B", BOOT_INSIDE, config,
    ]  # fmt: skip
    return cmd


def _parents(paths: list[str]) -> list[str]:
    out: list[str] = []
    for path in paths:
        parts = Path(path).parts[1:-1]
        for i in range(1, len(parts) + 1):
            folder = "/" + "/".join(parts[:i])
            if folder not in out and not any(folder == d or folder.startswith(d + "/") for d in _SYSTEM_DIRS):
                out.append(folder)
    return out


# ---- cgroups ---------------------------------------------------------------------------------


def _own_cgroups() -> dict[str, tuple[Path, str]]:
    """controller -> (mount point, our path in it), for v1 controllers and v2 (key ``""``)."""
    mounts: dict[str, Path] = {}
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        for line in fh:
            _, point, kind, options, *_ = line.split()
            if kind == "cgroup2":
                mounts.setdefault("", Path(point))
            elif kind == "cgroup":
                for option in options.split(","):
                    if option in ("pids", "memory", "cpu"):
                        mounts[option] = Path(point)
    out: dict[str, tuple[Path, str]] = {}
    with open("/proc/self/cgroup", encoding="utf-8") as fh:
        for line in fh:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                if controller in mounts:
                    out[controller] = (mounts[controller], path.lstrip("/"))
    return out


class Cgroup:
    """The cgroup(s) one worker and everything it starts live in; removed with :meth:`remove`."""

    def __init__(self, name: str, memory_bytes: int, processes: int) -> None:
        self.dirs: list[Path] = []
        self.applied: list[str] = []
        self.v2 = False
        own = _own_cgroups()
        v2 = own.get("")
        if v2 and self._try_v2(v2[0] / v2[1], name, memory_bytes, processes):
            return
        for controller, settings in (
            ("pids", {"pids.max": processes}),
            ("memory", {"memory.limit_in_bytes": memory_bytes, "memory.memsw.limit_in_bytes": memory_bytes}),
            ("cpu", {"cpu.cfs_period_us": _CPU_PERIOD_US, "cpu.cfs_quota_us": _CPU_PERIOD_US}),
        ):
            if controller not in own:
                continue
            folder = own[controller][0] / own[controller][1] / name
            try:
                folder.mkdir()
            except OSError:
                continue
            self.dirs.append(folder)
            if self._write(folder, settings):
                self.applied.append(controller)

    def _try_v2(self, own: Path, name: str, memory_bytes: int, processes: int) -> bool:
        """v2 allows controllers below a cgroup only when it holds no process itself: ours can
        be given them when we are alone at the root; otherwise the nearest ancestor that already
        hands pids and memory down (a systemd slice) takes our cgroup, unchanged otherwise."""
        try:
            available = (own / "cgroup.controllers").read_text().split()
        except OSError:
            return False
        wanted = [c for c in ("pids", "memory", "cpu") if c in available]
        if "pids" not in wanted or "memory" not in wanted:
            return False
        folder = None
        with contextlib.suppress(OSError):
            (own / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
            folder = own / name
        parent = own
        while folder is None and parent != parent.parent and (parent.parent / "cgroup.controllers").exists():
            parent = parent.parent
            with contextlib.suppress(OSError):
                delegated = (parent / "cgroup.subtree_control").read_text().split()
                if "pids" in delegated and "memory" in delegated:
                    folder, wanted = parent / name, [c for c in wanted if c in delegated]
        if folder is None:
            return False
        try:
            folder.mkdir()
        except OSError:
            return False
        self.dirs, self.v2 = [folder], True
        settings = {"pids": {"pids.max": processes},
                    "memory": {"memory.max": memory_bytes, "memory.swap.max": 0},
                    "cpu": {"cpu.max": f"{_CPU_PERIOD_US} {_CPU_PERIOD_US}"}}  # fmt: skip
        self.applied = [c for c in wanted if self._write(folder, settings[c])]
        return True

    @staticmethod
    def _write(folder: Path, settings: dict[str, object]) -> bool:
        ok = True
        for key, value in settings.items():
            try:
                (folder / key).write_text(str(value))
            except OSError:
                ok = key.endswith(("memsw.limit_in_bytes", "swap.max")) and ok  # no swap accounting
        return ok

    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for folder in self.dirs:
            with contextlib.suppress(OSError):
                found |= {int(p) for p in (folder / "cgroup.procs").read_text().split()}
        return found

    def kill(self) -> None:
        for _ in range(200):
            left = self.pids()
            if not left:
                return
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)

    def remove(self) -> None:
        self.kill()
        for folder in self.dirs:
            for _ in range(100):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)

    def note(self) -> str:
        if not self.applied:
            return cgroup_note([])
        return f"cgroup {'v2' if self.v2 else 'v1'} per worker: " + ", ".join(self.applied)


def cgroup_note(applied: list[str]) -> str:
    if applied:
        return "cgroup per worker: " + ", ".join(applied)
    return (
        "no cgroup could be made here: processes are bounded per uid (RLIMIT_NPROC), memory, file "
        "size and CPU time per process (rlimits), the scratch tmpfs by its size"
    )


def in_cgroup(cgroup: Cgroup | None, command: list[str]) -> list[str]:
    """``command`` started inside ``cgroup``: a shell moves itself in, then becomes the command,
    so nothing the command starts is ever outside it."""
    if cgroup is None or not cgroup.dirs:
        return command
    script = (
        'for f in "$@"; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 111; shift; done; shift; exec "$@"'
    )
    return ["/bin/sh", "-c", script, "sh", *cgroup.procs_files(), "--", *command]
