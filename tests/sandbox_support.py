"""Shared helpers for the sandbox tests (no tests here): a checked pool, leftover detection."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator

import pytest

import sandbox


def checked_pool(**settings) -> Iterator[sandbox.Sandbox]:
    """A module's pool; afterwards no process its programs started survives and no file is left.

    Skips only where the machine cannot isolate at all (e.g. a container without namespaces).
    """
    try:
        pool = sandbox.Sandbox(workers=2, **settings)
    except sandbox.IsolationError as exc:
        pytest.skip(str(exc))
    uids, pids = sandbox_uids(pool), worker_pids(pool)
    yield pool
    pool.close()
    assert processes_with_uids(uids) == []
    assert leftover_files(pids) == []


def sandbox_uids(box: sandbox.Sandbox) -> set[int]:
    return {config["uid"] for config in box._configs}


def processes_with_uids(uids: set[int]) -> list[int]:
    """Host pids whose real uid is one of `uids` (programs that outlived their run)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) in uids:
                            found.append(int(entry))
                        break
        except OSError:
            continue  # exited while we looked
    return found


def worker_pids(box: sandbox.Sandbox) -> list[int]:
    return [proc.proc.pid for proc in box._procs if proc is not None]


def leftover_files(pids: list[int]) -> list[str]:
    """cgroup directories of these workers and host scratch directories."""
    paths = []
    for pid in pids:
        paths += glob.glob(f"/sys/fs/cgroup/**/r1kit-{pid}", recursive=True)
    paths += glob.glob("/tmp/r1kit-scratch-*")
    return paths
