"""Worker pools sized from the CPUs a process may use, shared among a node's training processes."""

from __future__ import annotations

import logging
import os

import pytest

import sandbox
from sandbox.cpus import cgroup_cpu_quota, usable_cpus
from sandbox.pool import pool_size


@pytest.fixture
def cpus_224(monkeypatch):
    """A node that reports 224 CPUs (the affinity mask is what the kernel reports to a process)."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(224)))
    monkeypatch.setattr("sandbox.cpus.cgroup_cpu_quota", lambda: None)


def test_a_224_cpu_node_shared_by_8_ranks_starts_a_pool_per_rank(cpus_224, monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert usable_cpus() == 28
    with sandbox.Sandbox() as box:
        assert len(box._configs) == 28
        assert box.execute("print(6 * 7)").stdout == "42\n"


def test_more_cpus_than_the_cap_gives_the_cap_and_a_note(cpus_224, monkeypatch, caplog):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    with caplog.at_level(logging.WARNING, logger="sandbox.pool"):
        assert pool_size(None) == 64
    assert "224 workers requested, using 64" in caplog.text
    assert pool_size(3) == 3


def test_cgroup_quota_v2_and_v1(tmp_path):
    (tmp_path / "cpu.max").write_text("250000 100000\n")
    assert cgroup_cpu_quota(tmp_path) == 2.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("150000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota(tmp_path) == 1.5
