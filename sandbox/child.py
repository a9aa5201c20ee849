"""The two processes of one execution: the monitor and the confined program.

Both are forked from the warm worker and end with `os._exit`, never returning into the
worker's code. The monitor reports what it observed (exit status, rusage, whether it had
to kill) as JSON on its status pipe; the program reports only whether its set-up
succeeded, on a set-up pipe it closes before any untrusted code runs, so the program
cannot forge either report.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from typing import NoReturn

from sandbox import harness, isolation
from sandbox.isolation import Limits, Plan

_SETUP_FAILED_EXIT = 121


@dataclass
class Pipes:
    """Pipe ends of one execution; the worker keeps the *_r / stdin_w / ctl_w sides."""

    stdin_r: int
    stdin_w: int
    stdout_r: int
    stdout_w: int
    stderr_r: int
    stderr_w: int
    result_r: int
    result_w: int
    setup_r: int
    setup_w: int
    status_r: int
    status_w: int
    ctl_r: int
    ctl_w: int

    @classmethod
    def open(cls) -> Pipes:
        fds: list[int] = []
        for _ in range(7):
            fds.extend(os.pipe())
        return cls(*fds)

    def worker_side(self) -> list[int]:
        return [
            self.stdin_w,
            self.stdout_r,
            self.stderr_r,
            self.result_r,
            self.setup_r,
            self.status_r,
            self.ctl_w,
        ]

    def child_side(self) -> list[int]:
        return [
            self.stdin_r,
            self.stdout_w,
            self.stderr_w,
            self.result_w,
            self.setup_w,
            self.status_w,
            self.ctl_r,
        ]


def _close(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def run_monitor(
    plan: Plan, limits: Limits, job: dict, pipes: Pipes, cgroup_fds: list[int]
) -> NoReturn:
    """Body of the monitor process (forked by the worker)."""
    report: dict = {}
    scratch = None
    pid = 0
    try:
        _close(pipes.worker_side())
        isolation.enter_namespaces(plan)
        isolation.build_filesystem(plan)
        scratch = _make_scratch(plan)
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            run_program(plan, limits, job, pipes, cgroup_fds, scratch or isolation.SCRATCH)
        _close(
            [pipes.stdin_r, pipes.stdout_w, pipes.stderr_w, pipes.result_w, pipes.setup_w]
            + cgroup_fds
        )
        report = _watch(pid, start, limits.time_limit, pipes.ctl_r, plan)
    except BaseException as exc:  # noqa: BLE001 - every failure must become a report
        report = {"error": f"monitor: {exc!r}"}
        if pid:
            _kill_program(pid, plan)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    try:
        os.write(pipes.status_w, json.dumps(report).encode())
    finally:
        os._exit(0)


def _make_scratch(plan: Plan) -> str | None:
    """Without a private tmpfs, fall back to a fresh host directory owned by the program."""
    if "scratch_tmpfs" in plan.layers:
        return None
    path = tempfile.mkdtemp(prefix="r1kit-scratch-")
    if "unprivileged_uid" in plan.layers:
        os.chown(path, plan.uid, plan.gid)
    return path


def _watch(pid: int, start: float, time_limit: float, ctl_r: int, plan: Plan) -> dict:
    """Wait for the program to end, killing it at the wall-clock deadline or on request."""
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(ctl_r, select.POLLIN)
    timed_out = killed_on_request = False
    deadline = start + time_limit
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        events = dict(poller.poll(remaining * 1000))
        if pidfd in events:
            break
        if ctl_r in events:
            killed_on_request = True
            break
    if timed_out or killed_on_request:
        _kill_program(pid, plan)
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - start
    if "pid_namespace" not in plan.layers:
        _kill_group(pid)
    os.close(pidfd)
    return {
        "wait_status": status,
        "wall_time": wall,
        "timed_out": timed_out,
        "killed_on_request": killed_on_request,
        "cpu_time": usage.ru_utime + usage.ru_stime,
        "max_rss_kb": usage.ru_maxrss,
    }


def _kill_program(pid: int, plan: Plan) -> None:
    # As PID 1 of its namespace the program takes every process inside down with it.
    if "pid_namespace" not in plan.layers:
        _kill_group(pid)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _install_fds(sources: list[int]) -> None:
    """Make sources[i] the program's fd i, then close every other descriptor."""
    # Move everything high first so that dup2 onto a low number never clobbers a source.
    high = [os.dup2(fd, 200 + i, inheritable=True) for i, fd in enumerate(sources)]
    for target, fd in enumerate(high):
        os.dup2(fd, target, inheritable=True)
    os.closerange(len(sources), 2**30)  # close_range(2) under the hood


def run_program(
    plan: Plan, limits: Limits, job: dict, pipes: Pipes, cgroup_fds: list[int], scratch: str
) -> NoReturn:
    """Body of the program process: confine itself, then hand over to the harness."""
    try:
        for fd in cgroup_fds:
            os.write(fd, b"0")  # "0" = the writing process: join before anything else runs
        isolation.mount_proc(plan)
        # Own session and process group: kill(0, ...) or killpg from the program reaches
        # only its own processes, and without a PID namespace the monitor kills the group.
        os.setsid()
        _install_fds([pipes.stdin_r, pipes.stdout_w, pipes.stderr_w, pipes.result_w, pipes.setup_w])
        os.chdir(scratch)
        if job.get("binary"):
            _write_executable(os.path.join(scratch, "prog"), base64.b64decode(job["binary"]))
        if job.get("source_name"):
            with open(os.path.join(scratch, job["source_name"]), "w") as f:
                f.write(job["code"])
        base = isolation.current_address_space() if job["mode"] in harness.PYTHON_MODES else 0
        isolation.set_rlimits(limits, base + (limits.memory_mb + 64) * 1024 * 1024)
        isolation.confine(plan, scratch)
        os.environ.clear()
    except BaseException as exc:  # noqa: BLE001 - reported as sandbox_error
        os.write(4, f"E{type(exc).__name__}: {exc}".encode()[:2000])
        os._exit(_SETUP_FAILED_EXIT)
    os.write(4, b"R")
    os.close(4)
    harness.run(job)


def _write_executable(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
