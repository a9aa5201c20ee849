"""Landlock: confine the file system to a read-only interpreter plus a writable scratch dir.

Landlock is an unprivileged LSM (Linux 5.13+). A process restricts itself and every
descendant; the rules can only ever get tighter. Each ABI version handles more kinds of
access, so the handled set is chosen from the probed ABI: an access right the kernel does
not know cannot be requested, and one it knows but we forget to handle stays allowed.
"""

from __future__ import annotations

import ctypes
import os
import stat

from sandbox import syscalls

_SYS_CREATE_RULESET = 444
_SYS_ADD_RULE = 445
_SYS_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
_ABI1_ALL = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5
_NET_BIND_TCP = 1 << 0  # ABI 4
_NET_CONNECT_TCP = 1 << 1
_SCOPE_ABSTRACT_UNIX = 1 << 0  # ABI 6
_SCOPE_SIGNAL = 1 << 1

READ_ONLY = EXECUTE | READ_FILE | READ_DIR
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel struct is __attribute__((packed))
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def abi_version() -> int:
    """The Landlock ABI the kernel offers; raises OSError when Landlock is off or missing."""
    return syscalls.raw_syscall(_SYS_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION)


def handled_fs(abi: int) -> int:
    rights = _ABI1_ALL
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


def restrict(
    abi: int, read_paths: list[str], write_paths: list[str], device_paths: list[str]
) -> None:
    """Allow reading `read_paths`, everything under `write_paths`, read/write on
    `device_paths` (e.g. /dev/null), and nothing else; also deny TCP bind/connect (ABI 4)
    and signals or abstract UNIX sockets that reach outside the sandbox (ABI 6).

    Paths that do not exist are skipped. Needs no_new_privs or CAP_SYS_ADMIN.
    """
    fs = handled_fs(abi)
    attr = _RulesetAttr(fs, 0, 0)
    size = 8
    if abi >= 4:
        attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL
        size = 24
    ruleset = syscalls.raw_syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), size, 0)
    try:
        grants = [(p, READ_ONLY) for p in read_paths] + [(p, fs) for p in write_paths]
        grants += [(p, READ_FILE | WRITE_FILE | TRUNCATE | IOCTL_DEV) for p in device_paths]
        for path, rights in grants:
            _add_path(ruleset, path, rights & fs)
        syscalls.raw_syscall(_SYS_RESTRICT_SELF, ruleset, 0)
    finally:
        os.close(ruleset)


def _add_path(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= _FILE_RIGHTS  # the kernel rejects directory-only rights on a file
        rule = _PathBeneathAttr(rights, fd)
        syscalls.raw_syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0)
    finally:
        os.close(fd)
