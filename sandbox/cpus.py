"""How many CPUs this process may use: its affinity mask and its cgroup's CPU quota, shared
among the training processes of this node (LOCAL_WORLD_SIZE, set by torchrun and accelerate)."""

from __future__ import annotations

import math
import os
from pathlib import Path

_CGROUP = Path("/sys/fs/cgroup")


def usable_cpus() -> int:
    """CPUs for this process's worker pools, at least 1.

    A node with 224 CPUs and 8 training processes gives each 28; a container limited to 2.5
    CPUs by its quota gives 2, whatever `os.cpu_count()` reports.
    """
    count = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
    quota = cgroup_cpu_quota()
    if quota is not None:
        count = min(count, max(1, math.floor(quota)))
    local = int(os.environ.get("LOCAL_WORLD_SIZE") or 1)
    return max(1, count // max(1, local))


def cgroup_cpu_quota(root: Path = _CGROUP) -> float | None:
    """CPUs' worth of time per period the cgroup allows (v2 `cpu.max`, v1 CFS quota); None: no
    limit."""
    try:
        quota, period = (
            (root / "cpu.max").read_text().split()
        )  # v2: "max 100000" or "200000 100000"
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None
