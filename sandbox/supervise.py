"""Run one execution from the worker: fork the monitor, feed stdin, collect capped output,
and turn what was observed into a status.

The status comes from the supervisor's own observations (the monitor's wait status and
rusage, the cgroup's OOM counter, whether a limit had to be enforced), never from what
the program printed or the exit code alone.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import json
import os
import select
import signal
import time
from dataclasses import dataclass, field

from sandbox import cgroups, child
from sandbox.isolation import Limits, Plan

STDERR_KEPT = 64 * 1024
_SETUP_CAP = 4096
_STATUS_CAP = 65536
_BACKSTOP_SLACK = 10.0  # seconds past the limit before the worker stops trusting the monitor
_DRAIN_GRACE = 1.0  # seconds to wait for pipe holders after the monitor has reported


@dataclass(frozen=True)
class Caps:
    output_bytes: int
    result_bytes: int


@dataclass
class Collected:
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    result: bytearray = field(default_factory=bytearray)
    setup: bytearray = field(default_factory=bytearray)
    status: bytearray = field(default_factory=bytearray)
    stderr_total: int = 0
    output_exceeded: bool = False
    result_exceeded: bool = False
    backstop: bool = False
    leftovers: bool = False


def execute(
    plan: Plan,
    limits: Limits,
    caps: Caps,
    hierarchies: list[cgroups.Hierarchy],
    job: dict,
    name: str,
) -> dict:
    try:
        group = cgroups.create(hierarchies, name, limits.memory_mb * 1024 * 1024, limits.pids_max)
    except OSError as exc:
        return {"status": "sandbox_error", "detail": f"cgroup: {exc}"}
    pipes = child.Pipes.open()
    try:
        pid = os.fork()
        if pid == 0:
            child.run_monitor(plan, limits, job, pipes, group.procs_fds)
        for fd in pipes.child_side():
            os.close(fd)
        group.close_fds()
        got = _pump(pipes, job.get("stdin", "").encode(), limits, caps, group, pid)
        os.waitpid(pid, 0)
    finally:
        for fd in pipes.worker_side():
            _close_quietly(fd)
    peak, oom = cgroups.memory_stats(group)
    got.leftovers = not cgroups.destroy(group)
    reply = classify(got, limits, peak, oom)
    if job["mode"] == "compile" and got.result:
        reply["result"] = base64.b64encode(got.result).decode()  # an executable, not text
    return reply


def _close_quietly(fd: int) -> None:
    if fd < 0:
        return
    try:
        os.close(fd)
    except OSError:
        pass


def _pump(
    pipes: child.Pipes,
    stdin: bytes,
    limits: Limits,
    caps: Caps,
    group: cgroups.ExecCgroup,
    monitor: int,
) -> Collected:
    got = Collected()
    sinks = {
        pipes.stdout_r: "stdout",
        pipes.stderr_r: "stderr",
        pipes.result_r: "result",
        pipes.setup_r: "setup",
        pipes.status_r: "status",
    }
    poller = select.poll()
    for fd in sinks:
        poller.register(fd, select.POLLIN)
    stdin_view = memoryview(stdin)
    if stdin_view:
        fcntl.fcntl(pipes.stdin_w, fcntl.F_SETFL, os.O_NONBLOCK)
        poller.register(pipes.stdin_w, select.POLLOUT)
    else:
        _close_stdin(pipes)
    backstop = time.monotonic() + limits.time_limit + _BACKSTOP_SLACK
    drain_deadline = None
    while sinks:
        now = time.monotonic()
        limit = min(backstop, drain_deadline or backstop)
        if now >= limit:
            got.backstop = now >= backstop
            cgroups.kill_all(group)
            if now >= limit + _DRAIN_GRACE:
                os.kill(monitor, signal.SIGKILL)  # stuck or already gone; never wait forever
                break
        for fd, _ in poller.poll(max(0.0, limit - now) * 1000 + 10):
            if fd == pipes.stdin_w:
                stdin_view = _feed(fd, stdin_view)
                if not stdin_view:
                    poller.unregister(fd)
                    _close_stdin(pipes)
                continue
            kind = sinks[fd]
            chunk = os.read(fd, 65536)
            if not chunk:
                poller.unregister(fd)
                del sinks[fd]
                if kind == "status":
                    drain_deadline = time.monotonic() + _DRAIN_GRACE
                continue
            _keep(got, kind, chunk, caps, pipes.ctl_w)
    return got


def _close_stdin(pipes: child.Pipes) -> None:
    os.close(pipes.stdin_w)  # the program sees end of input, so it never blocks on stdin
    pipes.stdin_w = -1


def _feed(fd: int, view: memoryview) -> memoryview:
    try:
        return view[os.write(fd, view[:65536]) :]
    except BlockingIOError:
        return view
    except OSError as exc:  # EPIPE: the program exited without reading all of its input
        if exc.errno != errno.EPIPE:
            raise
        return view[:0]


def _keep(got: Collected, kind: str, chunk: bytes, caps: Caps, ctl_w: int) -> None:
    if kind == "stdout":
        if len(got.stdout) + len(chunk) > caps.output_bytes:
            _request_kill(got, ctl_w, "output_exceeded")
        else:
            got.stdout += chunk
    elif kind == "stderr":
        got.stderr_total += len(chunk)
        got.stderr += chunk[: max(0, STDERR_KEPT - len(got.stderr))]
        if got.stderr_total > caps.output_bytes:
            _request_kill(got, ctl_w, "output_exceeded")
    elif kind == "result":
        if len(got.result) + len(chunk) > caps.result_bytes:
            _request_kill(got, ctl_w, "result_exceeded")
        else:
            got.result += chunk
    elif kind == "setup":
        got.setup += chunk[: max(0, _SETUP_CAP - len(got.setup))]
    else:
        got.status += chunk[: max(0, _STATUS_CAP - len(got.status))]


def _request_kill(got: Collected, ctl_w: int, flag: str) -> None:
    if not getattr(got, flag):
        setattr(got, flag, True)
        try:
            os.write(ctl_w, b"k")
        except OSError:
            pass  # the monitor is already gone


def classify(got: Collected, limits: Limits, peak: int | None, oom: bool) -> dict:
    """Turn observations into the response sent back to the pool."""
    out = {
        "stdout": got.stdout.decode("utf-8", errors="replace"),
        "stderr": got.stderr.decode("utf-8", errors="replace"),
        "result": got.result.decode("utf-8", errors="replace") if got.result else None,
        "exit_code": None,
        "wall_time": 0.0,
        "cpu_time": 0.0,
        "peak_memory_mb": 0.0,
        "detail": "",
    }
    try:
        report = json.loads(got.status) if got.status else {}
    except ValueError:
        report = {}
    setup = bytes(got.setup)
    if got.backstop or "error" in report or not report or setup[:1] != b"R":
        reason = (
            report.get("error")
            or setup[1:].decode(errors="replace")
            or ("monitor did not report" if not report else "program set-up did not finish")
        )
        return {**out, "status": "sandbox_error", "detail": reason}
    status = report["wait_status"]
    out["exit_code"] = os.waitstatus_to_exitcode(status)
    out["wall_time"], out["cpu_time"] = report["wall_time"], report["cpu_time"]
    out["peak_memory_mb"] = (peak if peak is not None else report["max_rss_kb"] * 1024) / 2**20
    if got.leftovers:
        out["detail"] = "processes left behind were killed through the cgroup"
    out["status"] = _status(got, report, status, limits, oom, out["stderr"])
    return out


def _status(
    got: Collected, report: dict, status: int, limits: Limits, oom: bool, stderr: str
) -> str:
    if got.output_exceeded or got.result_exceeded:
        return "output_limit"
    if report["timed_out"]:
        return "time_limit"
    signalled = os.WIFSIGNALED(status)
    sig = os.WTERMSIG(status) if signalled else 0
    if oom:
        return "memory_limit"
    if report["cpu_time"] >= limits.time_limit or sig == signal.SIGXCPU:
        return "time_limit"
    if signalled:
        return "runtime_error"
    if os.WEXITSTATUS(status) != 0:
        last = stderr.rstrip().rsplit("\n", 1)[-1]
        return "memory_limit" if last.startswith("MemoryError") else "runtime_error"
    return "ok"
