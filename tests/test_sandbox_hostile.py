"""A hostile catalogue: programs that try to pass without solving, to escape, to leave something
behind, or to carry a secret out in their report. Each is written so that it PASSES only if its
attack worked; every one must fail, alone: a probe program after each checks that the next sample
starts clean, and the host is checked for files, processes and connections afterwards.

The guard (the in-process audit hook) is on, as in production, and most attacks first switch it
off (through the boot module's globals or by rewriting its closure with ``gc``), so what stops
them is the kernel. All programs run once in one sandbox (a module fixture) to keep this cheap.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import stat
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import ROOT

from trainer.evaluation.sandbox.outcome import Outcome
from trainer.evaluation.sandbox.pool import Limits, Sandbox

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the kernel sandbox needs root (CI runs as root)")

# Switch the guard off: its tables are globals of the boot module, its path check a closure
# (the scratch folder, and the folders the sandbox placed in it).
BYPASS = """\
import sys, gc
_m = sys.modules['__main__']
_m._BLOCKED = frozenset(); _m._BLOCKED_MODULES = frozenset(); _m._PATH_EVENTS = frozenset()
for _f in gc.get_objects():
    if type(_f).__name__ == 'function' and _f.__name__ == 'allowed' and _f.__closure__:
        for _c in _f.__closure__:
            if isinstance(_c.cell_contents, str):
                _c.cell_contents = '/'
            elif isinstance(_c.cell_contents, tuple):
                _c.cell_contents = ()
"""
# Only the closure rewrite: enough for writes, which the globals do not govern.
BYPASS_GC = BYPASS.split("_m = ")[0] + BYPASS.split("frozenset()\n", 3)[-1]

# What /tmp holds before any program: the top folders of this interpreter's trees that lie under
# /tmp (a checkout cloned there), bound over the scratch tmpfs; usually nothing.
PLACED = sorted({
    os.path.realpath(p).split("/")[2]
    for p in (sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, sys.executable)
    if os.path.realpath(p).startswith("/tmp/")
})  # fmt: skip
PROBE = """\
import os, sys, math, json, builtins
assert os.getuid() >= 1_000_000_000 and os.getuid() == os.geteuid() == os.getgid()
assert os.getcwd() == '/tmp' and sorted(os.listdir('.')) == PLACED, os.listdir('.')
procs = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
assert procs == sorted({1, os.getppid(), os.getpid()}), procs
assert math.gcd(12, 18) == 6 and len([1, 2]) == 2 and json.dumps([1]) == '[1]' and abs(-1) == 1
assert os.environ.get('OMP_NUM_THREADS') == '1' and os.environ['HOME'] == '/tmp'
assert 'poison' not in sys.modules and not hasattr(builtins, 'poisoned') and sys.getrecursionlimit() == 1000
for kind in ('shm', 'sem', 'msg'):  # System V IPC objects outlive their process
    assert len(open(f'/proc/sysvipc/{kind}').read().splitlines()) == 1, kind
status = open('/proc/self/status').read()
assert 'CapEff:\\t0000000000000000' in status and 'NoNewPrivs:\\t1' in status, status
""".replace("PLACED", repr(PLACED))


def catalogue(env: dict[str, str]) -> dict[str, str]:
    """name -> program; ``env`` holds the host's paths, port and pid the attacks aim at."""
    e = env
    p = {
        # -- passing without solving (the check never finishes) --
        "sys_exit_0": "import sys\nsys.exit(0)\nassert False\n",
        "exit_builtin": "exit()\nassert False\n",
        "quit_builtin": "quit()\nassert False\n",
        "raise_system_exit_0": "raise SystemExit(0)\n",
        "os_exit_0": "import os\nos._exit(0)\n",
        "atexit_hook": "import atexit, os\natexit.register(os._exit, 0)\nassert False\n",
        "excepthook": "import sys, os\nsys.excepthook = lambda *a: os._exit(0)\nassert False\n",
        "main_block": "import sys\nif __name__ == '__main__':\n    sys.exit(0)\nassert False\n",
        "thread_exit": "import threading, os, time\nthreading.Thread(target=os._exit, args=(0,)).start()\n"
        "time.sleep(3)\nassert False\n",
        "alarm_exit": "import signal, os\nsignal.signal(signal.SIGALRM, lambda *a: os._exit(0))\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.2)\nwhile True:\n    pass\n",
        "kill_self_sigterm": BYPASS + "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n",
        # -- secrets in the report --
        "system_exit_shadow": "raise SystemExit(open('/etc/shadow').read())\n",
        "system_exit_host_secret": f"raise SystemExit(open({e['secret_path']!r}).read())\n",
        "system_exit_message": f"raise SystemExit({e['token']!r})\n",
        "exception_message": f"raise ValueError({e['token']!r})\n",
        "exception_class_name": f"raise type({e['token']!r}, (Exception,), {{}})()\n",
        "oserror_filename": f"raise FileNotFoundError(2, 'x', {e['token']!r})\n",
        "report_table_poison": "import sys\n_m = sys.modules['__main__']\n"
        f"_m._BUILTIN_EXCEPTIONS[AssertionError] = {e['token']!r}\nassert False\n",
        "forged_setup_report": "import os\nfor fd in os.listdir('/proc/self/fd'):\n    if int(fd) > 2:\n"
        f"        try:\n            os.write(int(fd), b'setup ' + {e['token']!r}.encode())\n"
        "        except OSError:\n            pass\nos._exit(70)\n",
        "secret_via_proc_root": f"raise SystemExit(open('/proc/1/root' + {e['secret_path']!r}).read())\n",
        "secret_via_test_pid": f"raise SystemExit(open('/proc/{e['test_pid']}/root' + {e['secret_path']!r}).read())\n",
        # -- the file system --
        "delete_outside": BYPASS + f"import os\nos.remove({e['victim']!r})\n",
        "write_outside": BYPASS_GC + f"open({e['outside'] + '/written'!r}, 'w').write('escaped')\n",
        "write_project": BYPASS_GC + f"open({e['project'] + '/PWNED'!r}, 'w').write('x')\n",
        "see_project": f"import os\nassert os.path.exists({e['project'] + '/trainer/evaluation/sandbox/pool.py'!r})\n",
        "see_host_folder": f"import os\nassert os.listdir({e['outside']!r})\n",  # a registry would be one
        "see_home": "import os\nassert set(os.listdir('/root')) - {'.pyenv'}, os.listdir('/root')\n",
        "write_venv": BYPASS_GC + f"open({e['venv'] + '/backdoor.pth'!r}, 'w').write('import os')\n",
        "write_usr": BYPASS_GC + "open('/usr/lib/pwned', 'w').write('x')\n",
        "write_root_fs": BYPASS_GC + "import os\nos.mkdir('/pwned')\n",
        "write_dev_shm": BYPASS_GC + "open('/dev/shm/pwned', 'w').write('x')\n",
        "rename_out_of_scratch": BYPASS + "import os\nopen('f', 'w').write('x')\nos.rename('f', '/usr/f')\n",
        "sqlite_anywhere": BYPASS + f"import sqlite3\nc = sqlite3.connect({e['outside'] + '/db.sqlite'!r})\n"
        "c.execute('create table t (x)')\nc.commit()\n",
        "sqlite_guarded": f"import sqlite3\nsqlite3.connect({e['outside'] + '/db2.sqlite'!r}).execute('create table t (x)')\n",
        "chmod_system": BYPASS + "import os\nos.chmod('/usr/bin/id', 0o4777)\n",
        "fill_scratch": "written = 0\ntry:\n    for i in range(60):\n"
        "        open(f'f{i}', 'wb').write(b'x' * (8 << 20))\n        written += 8 << 20\n"
        "finally:\n    pass\nassert written >= 300 << 20\n",
        "plant_for_next": BYPASS
        + "import os\nos.makedirs('a/b')\nopen('a/b/planted', 'w').write('x')\nos.chmod('a', 0)\n"
        "os.symlink('/usr/bin', 'link')\nassert False\n",
        # Scratch the cleanup cannot walk (deeper than PATH_MAX; odd entries), and a process that
        # keeps planting links and folders while the worker would clean up.
        "deep_scratch_for_next": BYPASS + "import os, socket\nos.mkfifo('fifo')\n"
        "socket.socket(socket.AF_UNIX).bind('sock')\nopen('new\\nline \\udcff', 'w')\nos.symlink('/tmp', 'loop')\n"
        "for _ in range(3000):\n    os.mkdir('d')\n    os.chdir('d')\nopen('leaf', 'w')\nos.chmod('..', 0)\nassert False\n",
        "writer_racing_cleanup": BYPASS + "import os\nif os.fork() == 0:\n    os.setsid()\n    i = 0\n"
        "    while True:\n        try:\n            os.makedirs(f'w{i}/a')\n            os.symlink('/usr', f'w{i}/a/l')\n"
        "        except OSError:\n            pass\n        i += 1\nassert False\n",
        # System V and POSIX IPC objects outlive the program in the worker's IPC namespace, where
        # the next program (same uid) could read them: passes if any could be made.
        "ipc_for_next": BYPASS + "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "rt = ctypes.CDLL('librt.so.1', use_errno=True)\nmade = [libc.shmget(0x5151, 4096, 0o1666) >= 0,\n"
        "        libc.semget(0x5252, 1, 0o1666) >= 0, libc.msgget(0x5353, 0o1666) >= 0,\n"
        "        rt.mq_open(b'/next', os.O_CREAT | os.O_RDWR, 0o666, None) >= 0]\n"
        "assert any(made), ctypes.get_errno()\n",
        # -- identity and privileges --
        "subprocess_id_root": BYPASS + "import subprocess\n"
        "out = subprocess.run(['id', '-u'], capture_output=True, text=True).stdout\nassert out.strip() == '0', out\n",
        "setuid_root": BYPASS + "import os\nos.setuid(0)\n",
        "user_namespace_secret": BYPASS + "import subprocess\n"
        f"out = subprocess.run(['unshare', '-r', 'cat', {e['secret_path']!r}], capture_output=True, text=True)\n"
        "raise SystemExit(out.stdout + out.stderr)\n",
        "user_namespace_mount": BYPASS + "import subprocess\n"
        "r = subprocess.run(['unshare', '-rm', 'sh', '-c', 'mount -t tmpfs none /tmp && echo mounted'],\n"
        "                   capture_output=True, text=True)\nassert 'mounted' in r.stdout, r.stderr\n",
        "io_uring_and_bpf": BYPASS + "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "params = ctypes.create_string_buffer(120)\nfd = libc.syscall(425, 8, params)\n"
        "assert fd >= 0 or libc.syscall(321, 0, None, 0) >= 0, ctypes.get_errno()\n",
        "threads_still_work": "import threading\nt = threading.Thread(target=print)\nt.start()\nt.join()\nassert False\n",
        "mount_tmpfs": BYPASS + "import subprocess\n"
        "subprocess.run(['mount', '-t', 'tmpfs', 'none', '/usr'], check=True)\n",
        "kill_worker": BYPASS + "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
        "ptrace_worker": BYPASS + "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "assert libc.ptrace(16, os.getppid(), 0, 0) == 0, ctypes.get_errno()\n",
        "read_worker_memory": "import os\nopen(f'/proc/{os.getppid()}/mem', 'rb').read(1)\n",
        "read_init_environ": "open('/proc/1/environ', 'rb').read()\n",
        "sethostname": BYPASS + "import socket\nsocket.sethostname('pwned')\n",
        "kill_everyone": BYPASS + "import os\nos.kill(-1, 9)\nassert False\n",
        # -- processes --
        "fork_bomb": BYPASS + "import os, time\nn = 0\nwhile n < 200:\n"
        "    if os.fork() == 0:\n        time.sleep(30)\n        os._exit(0)\n    n += 1\n",
        "multiprocessing_bomb": BYPASS + "import multiprocessing as mp, time\n"
        "ps = [mp.Process(target=time.sleep, args=(30,)) for _ in range(100)]\nfor p in ps:\n    p.start()\n",
        "orphan_survivor": BYPASS + "import os, time\nif os.fork() == 0:\n    os.setsid()\n"
        "    if os.fork() == 0:\n        time.sleep(30)\n        open('/tmp/survivor', 'w').write('x')\n"
        "    os._exit(0)\nassert False\n",
        "infinite_loop": "while True:\n    pass\n",
        "sleeper": "import time\ntime.sleep(3600)\n",
        "threads_spinning": "import threading\nfor _ in range(8):\n"
        "    threading.Thread(target=lambda: [None for _ in iter(int, 1)], daemon=True).start()\n"
        "import time\ntime.sleep(3600)\n",
        "recursion": "def f():\n    return f()\nf()\n",
        # -- memory --
        "huge_allocation": "block = bytearray(64 * 2**30)\n",
        "growing_allocation": "chunks = []\nwhile True:\n    chunks.append(b'x' * 2**26)\n",
        "memory_across_forks": BYPASS + "import os\nkids = []\nfor _ in range(4):\n    pid = os.fork()\n"
        "    if pid == 0:\n        block = b'x' * (700 << 20)\n        os._exit(0)\n    kids.append(pid)\n"
        "assert all(os.waitpid(k, 0)[1] == 0 for k in kids)\n",
        # -- the network --
        "connect_host_listener": BYPASS
        + f"import socket\nsocket.create_connection(('127.0.0.1', {e['port']}), 1)\n",
        "connect_internet": BYPASS + "import socket\nsocket.create_connection(('1.1.1.1', 53), 1)\n",
        "udp_to_host": BYPASS + "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"s.sendto(b'x', ('127.0.0.1', {e['udp_port']}))\ns.settimeout(1)\ns.recv(1)\n",
        "abstract_unix_socket": BYPASS + "import socket\ns = socket.socket(socket.AF_UNIX)\n"
        f"s.connect({e['abstract']!r})\n",
        "nsenter_parent_net": BYPASS + "import os, subprocess\nok = False\n"
        "for pid in [p for p in os.listdir('/proc') if p.isdigit()] + ['1', " + repr(e["test_pid"]) + "]:\n"
        "    r = subprocess.run(['nsenter', f'--net=/proc/{pid}/ns/net', 'python3', '-c',\n"
        f"        'import socket; socket.create_connection((\"127.0.0.1\", {e['port']}), 1)'], capture_output=True)\n"
        "    ok = ok or r.returncode == 0\nassert ok\n",
        "setns_ctypes": BYPASS + "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "fd = os.open('/proc/1/ns/net', os.O_RDONLY)\nassert libc.setns(fd, 0) == 0, ctypes.get_errno()\n"
        f"import socket\nsocket.create_connection(('127.0.0.1', {e['port']}), 1)\n",
        # -- state for the next sample --
        "poison_modules": "import math, sys, builtins, json\nmath.gcd = lambda a, b: 0\nbuiltins.abs = lambda x: 0\n"
        "builtins.poisoned = True\nsys.modules['poison'] = math\njson.dumps = None\nsys.setrecursionlimit(50)\n"
        "assert False\n",
    }
    return p


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every hostile program once, each followed by the probe, in one sandbox (2 workers), with
    real listeners on the host's loopback."""
    base = tmp_path_factory.mktemp("hostile")
    outside = base / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("keep me")
    secret = secrets.token_hex(16)
    secret_path = base / "secret.txt"
    secret_path.write_text(secret)
    secret_path.chmod(0o600)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    abstract = f"\0qlora-sandbox-test-{secrets.token_hex(4)}"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(abstract)
    unix.listen()
    unix.setblocking(False)
    env = {
        "outside": str(outside), "victim": str(victim), "secret_path": str(secret_path),
        "token": "tok" + secrets.token_hex(12), "port": str(listener.getsockname()[1]),
        "udp_port": str(udp.getsockname()[1]), "abstract": abstract, "test_pid": str(os.getpid()),
        "project": str(ROOT), "venv": sysconfig.get_paths()["purelib"],
    }  # fmt: skip
    programs = catalogue(env)
    names, sources = [], []
    for name, source in programs.items():
        names += [name, f"probe after {name}"]
        sources += [source, PROBE]
    limits = Limits(timeout=2, workers=2, processes=16, scratch_bytes=64 << 20)
    with Sandbox(limits) as sandbox:
        cgroup = sandbox.isolation()["cgroup"]
        outcomes = dict(zip(names, sandbox.run_many(sources), strict=True))
        bypass_works = sandbox.run(
            BYPASS + "import os\nif os.fork() == 0:\n    os._exit(0)\nopen('x', 'w')\n"
        )
    connections = []
    for sock in (listener, unix):
        with contextlib.suppress(BlockingIOError):
            connections.append(sock.accept())
    with contextlib.suppress(BlockingIOError):
        connections.append(udp.recvfrom(16))
    for sock in (listener, udp, unix):
        sock.close()
    return {"outcomes": outcomes, "env": env, "secret": secret, "names": list(programs),
            "connections": connections, "bypass_works": bypass_works, "outside": outside, "cgroup": cgroup}  # fmt: skip


NAMES = list(catalogue(dict.fromkeys(
    ["outside", "victim", "secret_path", "token", "port", "udp_port", "abstract", "test_pid", "project", "venv"], "0"
)))  # fmt: skip


# Only a cgroup bounds memory across processes; rlimits bound each process alone.
NEEDS_MEMORY_CGROUP = {"memory_across_forks"}


def test_catalogue_is_large() -> None:
    assert len(NAMES) >= 40


@pytest.mark.parametrize("name", NAMES)
def test_attack_fails_alone_and_says_nothing(attacked: dict, name: str) -> None:
    outcome: Outcome = attacked["outcomes"][name]
    if name in NEEDS_MEMORY_CGROUP and "memory" not in attacked["cgroup"]:
        pytest.skip(f"a memory bound for the whole tree needs a cgroup: {attacked['cgroup']}")
    assert not outcome.passed, (name, outcome)
    probe = attacked["outcomes"][f"probe after {name}"]
    assert probe.passed, (name, probe)
    for text in (attacked["secret"], attacked["env"]["token"]):
        assert text not in outcome.detail and text not in repr(outcome)


def test_each_early_exit_has_its_own_detail(attacked: dict) -> None:
    o = attacked["outcomes"]
    assert o["sys_exit_0"].detail == o["raise_system_exit_0"].detail == "ended early: SystemExit(0)"
    assert o["exit_builtin"].detail == o["quit_builtin"].detail == "ended early: SystemExit(None)"
    assert o["os_exit_0"].detail == "ended before the check finished (exit status 0)"
    assert o["thread_exit"].detail == o["alarm_exit"].detail == o["os_exit_0"].detail
    assert o["atexit_hook"].detail == o["excepthook"].detail == o["main_block"].detail == "AssertionError"
    assert o["kill_self_sigterm"].detail == "killed by SIGTERM before the check finished"
    assert o["system_exit_message"].detail == "ended early: SystemExit with a code that is not an integer"
    assert o["exception_class_name"].detail == "Exception (a subclass)"
    assert o["report_table_poison"].status == "failed" and o["infinite_loop"].status == "timeout"
    assert (
        o["forged_setup_report"].detail
        == "the sandbox could not prepare it: ended with a report the sandbox does not recognise"
    )
    assert o["sleeper"].status == o["threads_spinning"].status == "timeout"


def test_the_kernel_is_what_stopped_them(attacked: dict) -> None:
    """The guard bypass works (a fork and a write it would refuse go through), so the failures
    above are the kernel's doing: read-only mounts, no view of the host, an unprivileged uid,
    limits, namespaces."""
    o = attacked["outcomes"]
    assert attacked["bypass_works"].passed, attacked["bypass_works"]
    assert (
        "Read-only file system" in o["write_usr"].detail and "Read-only file system" in o["write_venv"].detail
    )
    assert o["delete_outside"].detail.startswith("FileNotFoundError")  # the host's folders are not there
    assert o["see_home"].detail == o["see_project"].detail == "AssertionError"
    assert o["subprocess_id_root"].detail == "AssertionError"  # id ran, as an unprivileged uid
    assert o["setuid_root"].detail.startswith("PermissionError")
    assert o["kill_worker"].detail.startswith("PermissionError")
    assert o["fill_scratch"].detail.startswith("OSError: [Errno 28]")  # the tmpfs is full
    assert o["fork_bomb"].detail.startswith("BlockingIOError")  # RLIMIT_NPROC binds a non-root uid
    assert o["huge_allocation"].detail == "MemoryError"
    assert o["connect_host_listener"].detail.startswith("ConnectionRefusedError")  # its own loopback
    assert o["connect_internet"].detail.startswith("OSError: [Errno 101]")  # no route out
    assert o["nsenter_parent_net"].detail == "AssertionError"  # nsenter ran and failed everywhere
    assert o["user_namespace_mount"].detail == "AssertionError"  # seccomp: no namespaces of its own
    assert o["threads_still_work"].detail == "AssertionError"  # clone3 refused, clone without flags is not
    assert o["setns_ctypes"].detail.startswith("PermissionError")  # root's namespaces are closed to it
    assert o["ipc_for_next"].detail.startswith("AssertionError")  # seccomp: no IPC object of its own


def test_nothing_is_left_on_the_host(attacked: dict) -> None:
    assert attacked["connections"] == []
    outside: Path = attacked["outside"]
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    assert (outside / "victim.txt").read_text() == "keep me"
    assert (
        not (ROOT / "PWNED").exists() and not Path("/usr/lib/pwned").exists() and not Path("/pwned").exists()
    )
    venv = Path(attacked["env"]["venv"])
    assert not (venv / "backdoor.pth").exists()
    assert not stat.S_ISUID & Path("/usr/bin/id").stat().st_mode
    assert socket.gethostname() != "pwned"
    left, ours = [], 1_000_000_000 + (os.getpid() % 4_000_000) * 64
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                uid = int((entry / "status").read_text().split("\nUid:\t", 1)[1].split()[0])
            except (OSError, IndexError):
                continue
            if ours <= uid < ours + 64:  # this test process's block of sandbox uids
                left.append(int(entry.name))
    assert left == []
    cgroups = [p for p in Path("/sys/fs/cgroup").glob(f"**/qlora-sandbox-{os.getpid()}-*") if p.is_dir()]
    assert cgroups == []
