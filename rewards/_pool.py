"""A pool of grading processes with a hard per-item timeout.

sympy can run for hours (``9^{9^{9^9}}`` holds the GIL while it multiplies), so no thread
watchdog can stop it: each item runs in a worker process, and a worker still busy at the
item's deadline is killed with SIGKILL and replaced. The item counts as incorrect and as a
timeout. Each worker is a fresh interpreter, ``python -m rewards._worker``, talking over
its stdin and stdout pipes: it never forks the caller and never imports the caller's
``__main__``, so grading works from a script without a main guard, a notebook, a thread or
another library's reward function. A dispatcher thread owns the workers, so callers from
any thread only enqueue items and wait for their verdicts.

Each worker has up to ``_IN_FLIGHT`` items sent ahead, so it never waits for the dispatcher
between items (a round trip per item costs more than a cheap grade). It grades them in order: the
first one's clock starts when the item before it is answered, and when a worker is killed
the items queued behind the one that timed out go back to the front of the queue.
"""

from __future__ import annotations

import collections
import multiprocessing as mp
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Literal

Verdict = Literal["correct", "incorrect", "timeout", "crash"]
_START_FAILURES_LIMIT = 5
_IN_FLIGHT = 16


_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


@dataclass(eq=False)
class _Job:
    response: str
    gold: str
    timeout: float
    tolerance: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)
    verdict: Verdict = "crash"


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen
    conn: Connection  # replies from the worker's stdout
    send: Connection  # items to the worker's stdin
    ready: bool = False
    jobs: collections.deque[_Job] = field(default_factory=collections.deque)  # sent, in order
    deadline: float = 0.0  # for jobs[0]

    @property
    def job(self) -> _Job | None:
        """The item being graded now, if any."""
        return self.jobs[0] if self.jobs else None


class GradingPool:
    """Grade ``(response, gold)`` pairs in ``workers`` processes, each item within ``timeout``.

    ``memory_mb`` caps each worker's address space (a runaway big-integer power then fails
    with MemoryError, which also counts as incorrect). ``stats`` counts verdicts since start.
    """

    def __init__(self, workers: int = 2, *, memory_mb: int | None = 4096) -> None:
        if workers < 1:
            raise ValueError(f"GradingPool needs at least one worker, got workers={workers}")
        self._size = workers
        self._memory_mb = memory_mb
        self._queue: collections.deque[_Job] = collections.deque()
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = mp.Pipe(duplex=False)
        self._workers: list[_Worker] = []
        self._thread: threading.Thread | None = None
        self._closed = False
        self._start_failures = 0
        self._error: str | None = None
        self.stats: collections.Counter[str] = collections.Counter()

    @property
    def size(self) -> int:
        """The number of worker processes."""
        return self._size

    # -- caller side -------------------------------------------------------------------
    def grade(
        self, pairs: list[tuple[str, str]], timeout: float, *, tolerance: float = 0.0
    ) -> list[Verdict]:
        """Verdicts for ``pairs`` in order; blocks until every item is graded or killed.
        ``tolerance`` is the relative tolerance of ``rewards._equiv.grade_text``."""
        jobs = [_Job(str(r), str(g), float(timeout), float(tolerance)) for r, g in pairs]
        if not jobs:
            return []
        with self._lock:
            if self._closed:
                raise RuntimeError(self._error or "GradingPool is closed")
            self._ensure_started()
            self._queue.extend(jobs)
        self._wake_w.send_bytes(b"1")
        for job in jobs:
            job.done.wait()
        if self._error is not None:
            raise RuntimeError(self._error)
        return [job.verdict for job in jobs]

    def warm_up(self, timeout: float = 60.0) -> None:
        """Start the workers and wait until all have imported sympy (first call is slow)."""
        self.grade([("1", "1")] * self._size, timeout=timeout)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake_w.send_bytes(b"1")
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> GradingPool:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- dispatcher thread ------------------------------------------------------------------
    def _ensure_started(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="r1kit-grader", daemon=True)
            self._thread.start()

    def _spawn(self) -> _Worker:
        # Run from the folder that holds this copy of rewards: "-m" puts the working directory
        # first on sys.path, so the worker imports this package, never a "rewards" module of
        # the caller's project.
        process = subprocess.Popen(
            [sys.executable, "-m", "rewards._worker", str(self._memory_mb or 0)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=_PACKAGE_ROOT,
            close_fds=True,
        )
        assert process.stdin is not None and process.stdout is not None
        send = Connection(os.dup(process.stdin.fileno()), readable=False)
        recv = Connection(os.dup(process.stdout.fileno()), writable=False)
        process.stdin.close()
        process.stdout.close()
        return _Worker(process, recv, send)

    def _run(self) -> None:
        try:
            self._workers = [self._spawn() for _ in range(self._size)]
            while not self._closed:
                self._dispatch()
                self._poll()
                self._reap_overdue()
        except Exception as err:  # noqa: BLE001  (reported to every caller, never swallowed)
            self._error = f"grading pool failed: {type(err).__name__}: {err}"
        finally:
            for worker in self._workers:
                self._kill(worker)
            self._fail_pending()

    def _dispatch(self) -> None:
        broken = []
        with self._lock:
            for worker in self._workers:
                while worker.ready and len(worker.jobs) < _IN_FLIGHT and self._queue:
                    job = self._queue.popleft()
                    if not worker.jobs:
                        worker.deadline = time.monotonic() + job.timeout
                    worker.jobs.append(job)
                    try:
                        worker.send.send((job.response, job.gold, job.tolerance))
                    except OSError:  # the worker died between items
                        broken.append(worker)
                        break
        for worker in broken:
            self._replace(worker, "crash")

    def _poll(self) -> None:
        busy = [w.deadline for w in self._workers if w.job is not None]
        wait_s = max(0.0, min(busy) - time.monotonic()) if busy else 1.0
        conns = {w.conn: w for w in self._workers}
        for conn in wait([self._wake_r, *conns], timeout=wait_s):
            if conn is self._wake_r:
                while self._wake_r.poll():
                    self._wake_r.recv_bytes()
                continue
            worker = conns[conn]
            try:
                message = conn.recv()
            except (EOFError, OSError):
                self._replace(worker, "crash")
                continue
            if message == "ready":
                worker.ready, self._start_failures = True, 0
            elif worker.job is not None:
                verdict: Verdict = "correct" if message is True else "incorrect"
                self._finish(worker, "crash" if message == "error" else verdict)

    def _reap_overdue(self) -> None:
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.job is not None and now >= worker.deadline:
                self._replace(worker, "timeout")

    def _finish(self, worker: _Worker, verdict: Verdict) -> None:
        """Record the verdict of the worker's current item; the next one's clock starts."""
        if not worker.jobs:
            return
        job = worker.jobs.popleft()
        job.verdict = verdict
        self.stats[verdict] += 1
        job.done.set()
        if worker.jobs:
            worker.deadline = time.monotonic() + worker.jobs[0].timeout

    def _replace(self, worker: _Worker, verdict: Verdict) -> None:
        """Kill ``worker`` (timed out or dead), fail its item, and start a fresh one."""
        if not worker.ready:
            self._start_failures += 1
        self._kill(worker)
        self._finish(worker, verdict)
        with self._lock:  # the items sent behind it were not graded: they go first again
            self._queue.extendleft(reversed(worker.jobs))
            worker.jobs.clear()
        self._workers.remove(worker)
        if self._start_failures >= _START_FAILURES_LIMIT:
            self._error = (
                f"grading workers exited {self._start_failures} times before they were ready; "
                f"run `{sys.executable} -m rewards._worker` to see why (its error is on stderr)"
            )
            self._closed = True  # stop and fail the queue
            return
        self._workers.append(self._spawn())

    @staticmethod
    def _kill(worker: _Worker) -> None:
        if worker.process.poll() is None:
            worker.process.kill()
        try:
            worker.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:  # unkillable for now (stopped in a debugger): leave it
            pass
        worker.conn.close()
        worker.send.close()

    def _fail_pending(self) -> None:
        with self._lock:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
        for worker in self._workers:
            while worker.jobs:
                self._finish(worker, "crash")
        for job in pending:
            job.verdict = "crash"
            job.done.set()
