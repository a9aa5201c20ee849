"""The isolation steps themselves, in the order a sandboxed execution applies them.

An execution is two processes forked from a warm worker:

- the *monitor* enters fresh mount, PID, network, IPC and UTS namespaces (`enter_namespaces`),
  builds the file-system view (`build_filesystem`), forks the program's process and
  watches it (in `child.py`);
- the *program* process is PID 1 of the new PID namespace, so when it exits or is killed
  the kernel kills every process it left behind. It joins its cgroup, mounts its own
  /proc, sets rlimits, and drops every privilege (`confine`) before any untrusted code runs.

Each step is skipped when `layers` says it is unavailable on this machine (see layers.py).
"""

from __future__ import annotations

import math
import os
import resource
import socket
import stat
from dataclasses import dataclass

from sandbox import landlock, syscalls

SCRATCH = "/tmp"


@dataclass(frozen=True)
class Plan:
    """What the worker decided once, at start-up, for every execution it will run."""

    layers: frozenset[str]  # names of the layers that are on
    uid: int
    gid: int
    scratch_mb: int
    read_paths: tuple[str, ...]  # readable by the program (interpreter, libraries)
    hidden_parents: tuple[tuple[str, tuple[str, ...]], ...]  # (dir to hide, paths to re-expose)
    landlock_abi: int
    seccomp_bpf: bytes


@dataclass(frozen=True)
class Limits:
    time_limit: float
    memory_mb: int
    pids_max: int
    file_mb: int
    open_files: int = 256


def enter_namespaces(plan: Plan) -> None:
    flags = 0
    for layer, flag in (
        ("mount_namespace", syscalls.CLONE_NEWNS),
        ("pid_namespace", syscalls.CLONE_NEWPID),
        ("network_namespace", syscalls.CLONE_NEWNET),
        ("ipc_namespace", syscalls.CLONE_NEWIPC),
        ("uts_namespace", syscalls.CLONE_NEWUTS),
    ):
        if layer in plan.layers:
            flags |= flag
    if flags:
        syscalls.unshare(flags)
    if "uts_namespace" in plan.layers:
        socket.sethostname("sandbox")  # do not reveal the node's host name


def build_filesystem(plan: Plan) -> None:
    """Inside the new mount namespace: everything read-only, private tmpfs on /tmp and
    /dev/shm, and directories the program's uid may not enter (e.g. /root, which holds the
    pyenv interpreter here) replaced by an empty tmpfs with only the interpreter bound back.
    """
    if "mount_namespace" not in plan.layers:
        return
    # Private first, or the mounts below would propagate back to the host.
    syscalls.mount("none", "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE, None)
    if "readonly_root" in plan.layers:
        syscalls.make_tree_readonly("/")
    for parent, exposed in plan.hidden_parents:
        hide_except(parent, exposed)
    if os.path.isdir("/run") and not os.path.islink("/run"):
        # Daemon sockets (docker, dbus, systemd) live here; the program needs none of them.
        syscalls.mount(
            "tmpfs",
            "/run",
            "tmpfs",
            syscalls.MS_RDONLY | syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC,
            "size=4k,mode=0755",
        )
    if "scratch_tmpfs" in plan.layers:
        flags = syscalls.MS_NOSUID | syscalls.MS_NODEV
        size = f"size={plan.scratch_mb}m,nr_inodes=4096"
        syscalls.mount(
            "tmpfs", SCRATCH, "tmpfs", flags, f"{size},mode=0700,uid={plan.uid},gid={plan.gid}"
        )
        syscalls.mount(
            "tmpfs",
            "/dev/shm",
            "tmpfs",
            flags | syscalls.MS_NOEXEC,
            f"size=1m,nr_inodes=64,mode=0700,uid={plan.uid},gid={plan.gid}",
        )


def hide_except(parent: str, exposed: tuple[str, ...]) -> None:
    handles = [(path, os.open(path, os.O_PATH | os.O_CLOEXEC)) for path in exposed]
    try:
        syscalls.mount(
            "tmpfs",
            parent,
            "tmpfs",
            syscalls.MS_NOSUID | syscalls.MS_NODEV,
            "size=64k,nr_inodes=256,mode=0755",
        )
        for path, fd in handles:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                os.makedirs(path, mode=0o755, exist_ok=True)
            else:  # a file is bound onto an empty file
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
            # /proc/self/fd/N names the original directory even though `parent` now hides it.
            syscalls.mount(
                f"/proc/self/fd/{fd}", path, None, syscalls.MS_BIND | syscalls.MS_REC, None
            )
        syscalls.mount(
            "none",
            parent,
            None,
            syscalls.MS_REMOUNT | syscalls.MS_RDONLY | syscalls.MS_NOSUID | syscalls.MS_NODEV,
            None,
        )
    finally:
        for _, fd in handles:
            os.close(fd)


def plan_hidden_parents(paths: list[str], uid: int) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """For each path the program must read, find the highest ancestor its uid cannot
    traverse; that ancestor gets hidden and the path bound back inside it."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        parts = os.path.realpath(path).split("/")[1:]
        current = ""
        for part in parts:
            current += "/" + part
            st = os.stat(current)
            if st.st_uid != uid and not st.st_mode & stat.S_IXOTH:
                groups.setdefault(current, []).append(os.path.realpath(path))
                break
    plan = []
    for parent, found in sorted(groups.items()):
        unique = sorted(set(found))
        # A path inside another exposed path is already visible through it.
        outermost = [
            p
            for p in unique
            if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in unique)
        ]
        plan.append((parent, tuple(outermost)))
    return tuple(plan)


def mount_proc(plan: Plan) -> None:
    """A /proc that shows only this PID namespace (the program's own processes)."""
    if {"pid_namespace", "mount_namespace"} <= plan.layers:
        syscalls.mount(
            "proc",
            "/proc",
            "proc",
            syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC,
            None,
        )


def set_rlimits(limits: Limits, address_space: int) -> None:
    cpu = math.ceil(limits.time_limit) + 1
    # Soft < hard: SIGXCPU first, then SIGKILL one second later even if SIGXCPU is ignored.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    file_bytes = limits.file_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.pids_max, limits.pids_max))
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))
    resource.setrlimit(resource.RLIMIT_MSGQUEUE, (0, 0))


def confine(plan: Plan, scratch: str) -> None:
    """Drop to the program's final state: Landlock, unprivileged uid, no_new_privs, seccomp.

    Order matters: Landlock rules are built while paths can still be opened as root;
    no_new_privs must precede seccomp once CAP_SYS_ADMIN is gone with the uid.
    """
    if "no_new_privs" in plan.layers:
        syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
    if "landlock" in plan.layers:
        landlock.restrict(
            plan.landlock_abi,
            list(plan.read_paths),
            [scratch],
            ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"],
        )
    if "unprivileged_uid" in plan.layers:
        os.setgroups([])
        os.setresgid(plan.gid, plan.gid, plan.gid)
        os.setresuid(plan.uid, plan.uid, plan.uid)
        # Changing uid cleared "dumpable", which makes /proc/self root-owned and breaks
        # ordinary programs; core dumps stay off through RLIMIT_CORE=0.
        syscalls.prctl(syscalls.PR_SET_DUMPABLE, 1)
    if "seccomp" in plan.layers:
        syscalls.load_seccomp_bpf(plan.seccomp_bpf)


def current_address_space() -> int:
    """Bytes of virtual memory this process maps now (VmSize)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0
