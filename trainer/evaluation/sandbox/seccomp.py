"""A seccomp filter for the sandbox: the kernel interfaces a program has no business with.

Namespaces (``unshare``, ``setns``, and ``clone`` with a namespace flag: a user namespace gives a
program capabilities over a world of its own, and with them much more kernel surface), mounts,
keyrings, BPF, perf events, io_uring, userfaultfd, ptrace, module and kexec loading, System V and
POSIX message-queue IPC objects (they would outlive the program, for the next one to read), and the
other administrative calls fail with EPERM. ``clone3`` fails with ENOSYS, so that the C library falls
back to ``clone``, whose flags a classic BPF filter can see. A call from another architecture's
ABI (x32, i386 on x86-64) ends the process.

The filter is classic BPF handed to ``bwrap --seccomp FD``; it is built for x86-64 only (the
syscall numbers are per architecture). Elsewhere :func:`seccomp_filter` returns None, and the
sandbox records that it runs without one.
"""

from __future__ import annotations

import platform
import struct

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000
_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _ERRNO, _KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
_EPERM, _ENOSYS = 1, 38
_NAMESPACE_FLAGS = (
    0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x80
)
# x86-64 numbers (arch/x86/entry/syscalls/syscall_64.tbl).
_REFUSED_X86_64 = {
    "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
    "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298,
    "userfaultfd": 323, "ptrace": 101, "kexec_load": 246, "kexec_file_load": 320, "init_module": 175,
    "finit_module": 313, "delete_module": 176, "reboot": 169, "swapon": 167, "swapoff": 168, "acct": 163,
    "quotactl": 179, "syslog": 103, "open_by_handle_at": 304, "name_to_handle_at": 303,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    "lookup_dcookie": 212, "uselib": 134, "vhangup": 153, "iopl": 172, "ioperm": 173,
    # IPC objects outlive the program in the worker's IPC namespace, where the next program (the
    # same uid) would find them; emptying scratch does not reach them.
    "shmget": 29, "semget": 64, "msgget": 68, "mq_open": 240,
}  # fmt: skip
_CLONE_X86_64, _CLONE3_X86_64 = 56, 435


def seccomp_filter() -> bytes | None:
    """The filter as ``struct sock_filter`` records, or None where it is not built."""
    if platform.machine() != "x86_64":
        return None
    program: list[tuple[int, int, int, int]] = []  # (code, jt, jf, k), jumps as labels first

    # Labels are resolved to forward offsets at the end: "allow", "eperm", "enosys", "kill".
    def jump(code: int, k: int, true: str | None, false: str | None) -> None:
        program.append((code, true, false, k))  # type: ignore[arg-type]

    program.append((_LD_W_ABS, 0, 0, 4))  # seccomp_data.arch
    jump(_JEQ, _AUDIT_ARCH_X86_64, None, "kill")
    program.append((_LD_W_ABS, 0, 0, 0))  # seccomp_data.nr
    jump(_JGE, _X32_BIT, "kill", None)
    for number in sorted(_REFUSED_X86_64.values()):
        jump(_JEQ, number, "eperm", None)
    jump(_JEQ, _CLONE3_X86_64, "enosys", None)
    jump(_JEQ, _CLONE_X86_64, None, "allow")
    program.append((_LD_W_ABS, 0, 0, 16))  # low half of seccomp_data.args[0]: clone's flags
    jump(_JSET, _NAMESPACE_FLAGS, "eperm", "allow")
    # cBPF jumps only forward: the verdicts come last.
    labels = {"allow": len(program)}
    program.append((_RET, 0, 0, _ALLOW))
    labels["eperm"] = len(program)
    program.append((_RET, 0, 0, _ERRNO | _EPERM))
    labels["enosys"] = len(program)
    program.append((_RET, 0, 0, _ERRNO | _ENOSYS))
    labels["kill"] = len(program)
    program.append((_RET, 0, 0, _KILL_PROCESS))
    out = bytearray()
    for index, (code, true, false, k) in enumerate(program):
        offsets = [0 if t is None or isinstance(t, int) else labels[t] - index - 1 for t in (true, false)]
        if any(not 0 <= o <= 255 for o in offsets):
            raise ValueError("seccomp filter jump out of range")
        out += struct.pack("<HBBI", code, offsets[0], offsets[1], k)
    return bytes(out)


def refused_calls() -> list[str]:
    return sorted([*_REFUSED_X86_64, "clone with namespace flags", "clone3 (ENOSYS)"])
