"""A seccomp filter for the sandbox: no new user namespace (``unshare``/``clone`` with
``CLONE_NEWUSER`` fail with ``EPERM``; ``clone3``, whose flags a classic filter cannot read,
fails with ``ENOSYS``, and the C library falls back to ``clone``). Inside a user namespace of
its own a notebook could mount a tmpfs of any size, outside every memory limit.

The filter is classic BPF (``struct sock_filter``: ``u16 code, u8 jt, u8 jf, u32 k``) over
``struct seccomp_data`` (``int nr`` at byte 0, ``u32 arch`` at 4, ``u64 args[6]`` from 16),
for x86-64 (whose x32 system calls are refused as a whole) and aarch64; bubblewrap loads it
(``--seccomp FD``). Elsewhere :func:`no_user_namespaces` returns None and the README says so.
"""
from __future__ import annotations

import os
import platform
import struct

CLONE_NEWUSER = 0x10000000
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000
_EPERM, _ENOSYS = 1, 38
_LD_ABS_W, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
# machine: (AUDIT_ARCH, unshare, clone, clone3)
_ARCHES = {"x86_64": (0xC000003E, 272, 56, 435), "aarch64": (0xC00000B7, 97, 220, 435)}


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def program(machine: str | None = None) -> bytes | None:
    """The filter for ``machine`` (``platform.machine()``), or None where none is written."""
    arch = _ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    audit, unshare, clone, clone3 = arch
    return b"".join([
        _insn(_LD_ABS_W, 4),                        # 0: A = arch
        _insn(_JEQ, audit, 1, 0),                   # 1: our arch? on to 3
        _insn(_RET, _ERRNO | _EPERM),               # 2: another ABI: refused
        _insn(_LD_ABS_W, 0),                        # 3: A = nr
        _insn(_JGE, 0x40000000, 0, 1),              # 4: an x32 system call?
        _insn(_RET, _ERRNO | _ENOSYS),              # 5: refused
        _insn(_JEQ, unshare, 3, 0),                 # 6: unshare -> 10
        _insn(_JEQ, clone, 2, 0),                   # 7: clone -> 10
        _insn(_JEQ, clone3, 5, 0),                  # 8: clone3 -> 14
        _insn(_RET, _ALLOW),                        # 9: anything else
        _insn(_LD_ABS_W, 16),                       # 10: A = low 32 bits of args[0], the flags
        _insn(_JSET, CLONE_NEWUSER, 0, 1),          # 11: CLONE_NEWUSER set?
        _insn(_RET, _ERRNO | _EPERM),               # 12: a new user namespace: refused
        _insn(_RET, _ALLOW),                        # 13
        _insn(_RET, _ERRNO | _ENOSYS),              # 14: clone3
    ])


def no_user_namespaces() -> int | None:
    """A readable file descriptor holding :func:`program` (for ``bwrap --seccomp FD``), or None."""
    prog = program()
    if prog is None:
        return None
    r, w = os.pipe()
    os.write(w, prog)  # a few hundred bytes: fits the pipe's buffer
    os.close(w)
    return r
