"""The seccomp filter: which system calls a sandboxed program may not make.

A deny-list with allow-by-default: an interpreter needs hundreds of ordinary calls, and the
other layers (unprivileged uid, namespaces, Landlock) already remove most of what the
remaining calls could reach. The list closes the kernel attack surface an unprivileged
process can still touch and the routes out of the namespaces: creating or joining
namespaces, mounting, ptrace and cross-process memory access, bpf/perf/io_uring, key
rings, and every socket family except AF_UNIX (no TCP/UDP, raw or packet sockets).

The filter is compiled to BPF once per worker with libseccomp (through `pyseccomp`); each
sandboxed child then installs the bytes with a single prctl.
"""

from __future__ import annotations

import errno
import os

from sandbox.syscalls import CLONE_NS_FLAGS

_AF_UNIX = 1

_DENIED = (
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "fanotify_init",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
    "name_to_handle_at",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "syslog",
    "vhangup",
    "iopl",
    "ioperm",
    "uselib",
)


def compile_filter() -> bytes:
    """Build the filter and return it as raw BPF; raises ImportError/OSError when unavailable."""
    try:
        import pyseccomp
    except RuntimeError as exc:  # pyseccomp raises RuntimeError when libseccomp is missing
        raise ImportError(str(exc)) from exc

    deny = pyseccomp.ERRNO(errno.EPERM)
    filt = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for name in _DENIED:
        try:
            filt.add_rule(deny, name)
        except (ValueError, OSError):
            continue  # the call does not exist on this architecture
    # clone is allowed for threads and fork, but not with any namespace flag set.
    bit = 1
    while bit <= CLONE_NS_FLAGS:
        if CLONE_NS_FLAGS & bit:
            filt.add_rule(deny, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, bit, bit))
        bit <<= 1
    # clone3 passes its flags in memory, which seccomp cannot read: ENOSYS makes libc
    # fall back to clone, where the flags are checked above.
    filt.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    filt.add_rule(pyseccomp.ERRNO(errno.EACCES), "socket", pyseccomp.Arg(0, pyseccomp.NE, _AF_UNIX))
    filt.add_rule(
        pyseccomp.ERRNO(errno.EACCES), "socketpair", pyseccomp.Arg(0, pyseccomp.NE, _AF_UNIX)
    )
    return _export(filt)


def _export(filt: object) -> bytes:
    read_fd, write_fd = os.pipe()
    try:

        class _Fd:
            def fileno(self) -> int:
                return write_fd

        filt.export_bpf(_Fd())  # type: ignore[attr-defined]
        os.close(write_fd)
        write_fd = -1
        chunks = []
        while chunk := os.read(read_fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
