"""A seccomp filter for the ``code`` node's sandbox, as the raw BPF bubblewrap loads.

Why by hand: libseccomp's Python binding is not on PyPI (Debian packages it for the
system interpreter only), and the filter is a short deny-list: a classic BPF program of
``sock_filter`` records (``struct.pack("HBBI", code, jt, jf, k)``) over ``seccomp_data``.
bubblewrap reads it from a file descriptor (``--seccomp FD``) and loads it in the sandboxed
process just before it executes the interpreter, so it holds for the whole job and for
anything the job executes (filters survive ``execve`` and cannot be removed).

What it refuses, with ``EPERM`` (the job sees ``PermissionError``): creating processes
(``fork``, ``vfork``, ``clone`` without ``CLONE_THREAD``; ``clone3`` answers ``ENOSYS`` so
that the C library falls back to ``clone``, where the flags can be read), sockets, and the
calls that reach other processes or change the sandbox (``ptrace``, mounts, namespaces,
keyrings, BPF, io_uring...). Threads stay allowed. Any architecture but x86-64 (a 32-bit or
x32 system call made to dodge the list) kills the process.

>>> program = filter_program()
>>> len(program) % 8, len(program) // 8 > 40
(0, True)
"""

from __future__ import annotations

import errno
import platform
import struct

# Classic BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000
_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000
_CLONE_THREAD = 0x00010000
# Offsets in struct seccomp_data: nr, arch, then args[] from 16 (low 32 bits first).
_NR, _ARCH, _ARG0 = 0, 4, 16

# x86-64 system call numbers (asm/unistd_64.h) the job may not make.
DENIED: dict[str, int] = {
    "fork": 57,
    "vfork": 58,
    "execveat": 322,
    "socket": 41,
    "socketpair": 53,
    "ptrace": 101,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "pidfd_getfd": 438,
    "unshare": 272,
    "setns": 308,
    "mount": 165,
    "umount2": 166,
    "pivot_root": 155,
    "chroot": 161,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
    "bpf": 321,
    "perf_event_open": 298,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "keyctl": 250,
    "add_key": 248,
    "request_key": 249,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "kexec_load": 246,
    "kexec_file_load": 320,
    "init_module": 175,
    "finit_module": 313,
    "delete_module": 176,
    "personality": 135,
    "syslog": 103,
    "acct": 163,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "iopl": 172,
    "ioperm": 173,
    "modify_ldt": 154,
    "quotactl": 179,
}
_CLONE = 56
_CLONE3 = 435


def supported() -> bool:
    """Whether this machine's system calls are the ones the filter names (x86-64)."""
    return platform.machine() in ("x86_64", "AMD64")


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def filter_program() -> bytes:
    """The filter, as the bytes of a ``sock_filter`` array."""
    deny = _op(_RET_K, _RET_ERRNO | errno.EPERM)
    ops = [
        _op(_LD_W_ABS, _ARCH),
        _op(_JEQ_K, _AUDIT_ARCH_X86_64, jt=1),
        _op(_RET_K, _RET_KILL_PROCESS),
        _op(_LD_W_ABS, _NR),
        _op(_JGE_K, _X32_SYSCALL_BIT, jf=1),
        _op(_RET_K, _RET_KILL_PROCESS),
    ]
    for number in DENIED.values():
        ops += [_op(_JEQ_K, number, jf=1), deny]
    ops += [
        _op(_JEQ_K, _CLONE3, jf=1),
        _op(_RET_K, _RET_ERRNO | errno.ENOSYS),
        _op(_JEQ_K, _CLONE, jf=3),
        # clone: a thread shares everything with its process; anything else is a new one.
        _op(_LD_W_ABS, _ARG0),
        _op(_JSET_K, _CLONE_THREAD, jt=1),
        deny,
        _op(_RET_K, _RET_ALLOW),
    ]
    return b"".join(ops)
