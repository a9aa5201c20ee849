"""Per-execution control groups: a memory cap, a process cap, a peak-memory reading, and a
kill that reaches every process the program started.

Both cgroup versions are handled because machines differ: here the memory and pids
controllers live in v1 hierarchies while a v2 hierarchy offers `cgroup.kill`; a modern
distribution has everything in v2. Each worker owns a directory `r1kit-<worker pid>` in
every usable hierarchy (under the worker's own cgroup), and each execution gets a child
directory that is emptied and removed when the execution ends.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field

_PREFIX = "r1kit-"


@dataclass(frozen=True)
class Hierarchy:
    version: int  # 1 or 2
    controllers: frozenset[str]  # for v2: the controllers enabled for our children
    base: str  # the worker's directory


@dataclass
class ExecCgroup:
    """One execution's cgroup directories and the write-only fds its child joins through."""

    dirs: list[tuple[Hierarchy, str]]
    procs_fds: list[int] = field(default_factory=list)

    def close_fds(self) -> None:
        for fd in self.procs_fds:
            os.close(fd)
        self.procs_fds = []


def _mountinfo() -> list[tuple[str, str, str, set[str]]]:
    """(mount root, mount point, fs type, super options) of every cgroup mount."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields, post_fields = pre.split(), post.split()
            if post_fields and post_fields[0] in ("cgroup", "cgroup2"):
                opts = set(post_fields[2].split(",")) if len(post_fields) > 2 else set()
                mounts.append((fields[3], fields[4], post_fields[0], opts))
    return mounts


def _own_paths() -> dict[str, str]:
    """Map each v1 controller (and "" for v2) to this process's cgroup path."""
    paths = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for ctrl in ctrls.split(",") if ctrls else [""]:
                paths[ctrl] = path
    return paths


def _join(mount_root: str, mount_point: str, own: str) -> str:
    rel = own.removeprefix(mount_root)
    return os.path.join(mount_point, rel.lstrip("/"))


def discover(name: str) -> tuple[list[Hierarchy], list[str]]:
    """Create the worker's directories; return the usable hierarchies and why others are not."""
    usable, problems = [], []
    own = _own_paths()
    for root, point, fstype, opts in _mountinfo():
        if fstype == "cgroup":
            ctrls = {c for c in ("memory", "pids") if c in opts}
            if not ctrls:
                continue
            parent = _join(root, point, own.get(next(iter(ctrls)), "/"))
        else:
            ctrls = set()
            parent = _join(root, point, own.get("", "/"))
        base = os.path.join(parent, name)
        try:
            os.makedirs(base, exist_ok=True)
            if fstype == "cgroup2":
                ctrls = _enable_v2_controllers(parent, base)
        except OSError as exc:
            problems.append(f"{point}: {exc.strerror}")
            continue
        usable.append(Hierarchy(1 if fstype == "cgroup" else 2, frozenset(ctrls), base))
    return usable, problems


def _enable_v2_controllers(parent: str, base: str) -> set[str]:
    with open(os.path.join(parent, "cgroup.subtree_control")) as f:
        enabled = set(f.read().split())
    wanted = enabled & {"memory", "pids"}
    if wanted:
        try:
            with open(os.path.join(base, "cgroup.subtree_control"), "w") as f:
                f.write(" ".join(f"+{c}" for c in sorted(wanted)))
        except OSError:
            return set()
    return wanted


def create(hierarchies: list[Hierarchy], name: str, memory_bytes: int, pids_max: int) -> ExecCgroup:
    """Make the execution's directories with their limits and open their join fds."""
    group = ExecCgroup(dirs=[])
    try:
        for h in hierarchies:
            path = os.path.join(h.base, name)
            os.mkdir(path)
            group.dirs.append((h, path))
            _set_limits(h, path, memory_bytes, pids_max)
            group.procs_fds.append(os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY))
    except OSError:
        destroy(group)
        raise
    return group


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _set_limits(h: Hierarchy, path: str, memory_bytes: int, pids_max: int) -> None:
    if h.version == 1:
        if "memory" in h.controllers:
            _write(f"{path}/memory.limit_in_bytes", str(memory_bytes))
            if os.path.exists(f"{path}/memory.memsw.limit_in_bytes"):
                _write(f"{path}/memory.memsw.limit_in_bytes", str(memory_bytes))
        if "pids" in h.controllers:
            _write(f"{path}/pids.max", str(pids_max))
    else:
        if "memory" in h.controllers:
            _write(f"{path}/memory.max", str(memory_bytes))
            _write(f"{path}/memory.swap.max", "0")
        if "pids" in h.controllers:
            _write(f"{path}/pids.max", str(pids_max))


def _read_key(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[0] == key:
                    return int(parts[1])
    except OSError:
        pass
    return 0


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def memory_stats(group: ExecCgroup) -> tuple[int | None, bool]:
    """(peak bytes or None, whether the OOM killer fired) from the memory controller."""
    for h, path in group.dirs:
        if "memory" not in h.controllers:
            continue
        if h.version == 1:
            oom = _read_key(f"{path}/memory.oom_control", "oom_kill") > 0
            return _read_int(f"{path}/memory.max_usage_in_bytes"), oom
        oom = _read_key(f"{path}/memory.events", "oom_kill") > 0
        return _read_int(f"{path}/memory.peak"), oom
    return None, False


def _pids(path: str) -> list[int]:
    try:
        with open(f"{path}/cgroup.procs") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def kill_all(group: ExecCgroup, timeout: float = 2.0) -> bool:
    """SIGKILL everything left in the group; True once every directory is empty."""
    deadline = time.monotonic() + timeout
    while True:
        alive = False
        for h, path in group.dirs:
            pids = _pids(path)
            if not pids:
                continue
            alive = True
            if h.version == 2 and os.path.exists(f"{path}/cgroup.kill"):
                _write(f"{path}/cgroup.kill", "1")
            else:
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        if not alive:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)


def destroy(group: ExecCgroup) -> bool:
    """Kill what is left, then remove the directories; True if nothing was left running."""
    group.close_fds()
    empty = kill_all(group)
    for _, path in reversed(group.dirs):
        for _ in range(100):
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.005)  # the last processes are still exiting
    group.dirs = []
    return empty


def remove_worker_dirs(hierarchies: list[Hierarchy]) -> None:
    for h in hierarchies:
        try:
            os.rmdir(h.base)
        except OSError:
            pass


def sweep_stale() -> list[str]:
    """Remove directories left by workers that died without cleaning up; return them."""
    removed = []
    own = _own_paths()
    for root, point, fstype, opts in _mountinfo():
        ours = [c for c in ("memory", "pids") if c in opts]
        key = "" if fstype == "cgroup2" else (ours[0] if ours else None)
        if key is None:
            continue
        parent = _join(root, point, own.get(key, "/"))
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for entry in names:
            if not entry.startswith(_PREFIX) or _pid_alive(entry[len(_PREFIX) :]):
                continue
            stale = os.path.join(parent, entry)
            kill_all(
                ExecCgroup(
                    dirs=[
                        (Hierarchy(1, frozenset(), stale), os.path.join(stale, d))
                        for d in _subdirs(stale)
                    ]
                )
            )
            for sub in _subdirs(stale):
                _try_rmdir(os.path.join(stale, sub))
            if _try_rmdir(stale):
                removed.append(stale)
    return removed


def _subdirs(path: str) -> list[str]:
    try:
        return [d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d))]
    except OSError:
        return []


def _try_rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
        return True
    except OSError:
        return False


def _pid_alive(text: str) -> bool:
    if not text.isdigit():
        return True  # not ours to judge
    return os.path.exists(f"/proc/{text}")


def worker_dir_name() -> str:
    return f"{_PREFIX}{os.getpid()}"
