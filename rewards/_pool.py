"""A pool of grading processes with a hard per-item timeout.

sympy can run for hours (``9^{9^{9^9}}`` holds the GIL while it multiplies), so no thread
watchdog can stop it: each item runs in a worker process, and a worker still busy at the
item's deadline is killed with SIGKILL and replaced. The item counts as incorrect and as a
timeout. Workers start from the ``forkserver`` (a small process that preloads sympy), never
by forking the trainer. A dispatcher thread owns the workers, so callers from any thread
only enqueue items and wait for their verdicts.
"""

from __future__ import annotations

import collections
import multiprocessing as mp
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Literal

Verdict = Literal["correct", "incorrect", "timeout", "crash"]
_START_FAILURES_LIMIT = 5


@dataclass(eq=False)
class _Job:
    response: str
    gold: str
    timeout: float
    done: threading.Event = field(default_factory=threading.Event)
    verdict: Verdict = "crash"


@dataclass(eq=False)
class _Worker:
    process: mp.process.BaseProcess
    conn: Connection
    ready: bool = False
    job: _Job | None = None
    deadline: float = 0.0


class GradingPool:
    """Grade ``(response, gold)`` pairs in ``workers`` processes, each item within ``timeout``.

    ``memory_mb`` caps each worker's address space (a runaway big-integer power then fails
    with MemoryError, which also counts as incorrect). ``stats`` counts verdicts since start.
    """

    def __init__(
        self, workers: int = 2, *, start_method: str = "forkserver", memory_mb: int | None = 4096
    ) -> None:
        if workers < 1:
            raise ValueError(f"GradingPool needs at least one worker, got workers={workers}")
        self._ctx = mp.get_context(start_method)
        if start_method == "forkserver":
            self._ctx.set_forkserver_preload(["rewards._worker"])
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

    # -- caller side -------------------------------------------------------------------
    def grade(self, pairs: list[tuple[str, str]], timeout: float) -> list[Verdict]:
        """Verdicts for ``pairs`` in order; blocks until every item is graded or killed."""
        jobs = [_Job(str(r), str(g), float(timeout)) for r, g in pairs]
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
        from rewards._worker import worker_main

        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=worker_main, args=(child, self._memory_mb), name="r1kit-grade", daemon=True
        )
        process.start()
        child.close()
        return _Worker(process, parent)

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
        with self._lock:
            for worker in self._workers:
                if worker.ready and worker.job is None and self._queue:
                    job = self._queue.popleft()
                    worker.job, worker.deadline = job, time.monotonic() + job.timeout
                    worker.conn.send((job.response, job.gold))

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
        job, worker.job = worker.job, None
        if job is not None:
            job.verdict = verdict
            self.stats[verdict] += 1
            job.done.set()

    def _replace(self, worker: _Worker, verdict: Verdict) -> None:
        """Kill ``worker`` (timed out or dead), fail its item, and start a fresh one."""
        if not worker.ready:
            self._start_failures += 1
        self._kill(worker)
        self._finish(worker, verdict)
        self._workers.remove(worker)
        if self._start_failures >= _START_FAILURES_LIMIT:
            self._error = (
                f"grading workers exited {self._start_failures} times before they were ready; "
                "a script that grades at import time must guard it with "
                "`if __name__ == '__main__':` (forkserver workers re-import __main__)"
            )
            self._closed = True  # stop and fail the queue
            return
        self._workers.append(self._spawn())

    @staticmethod
    def _kill(worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=1.0)
        worker.conn.close()

    def _fail_pending(self) -> None:
        with self._lock:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
        for worker in self._workers:
            self._finish(worker, "crash")
        for job in pending:
            job.verdict = "crash"
            job.done.set()
