"""Body of a grading worker process. Imported by the forkserver, never by the trainer.

Importing sympy and math-verify here (at module import) lets the forkserver preload them
once, so a replacement worker is ready in milliseconds after a timed-out one is killed.
"""

from __future__ import annotations

import logging
import resource
import signal
from multiprocessing.connection import Connection

import math_verify  # noqa: F401  (preloaded for fast worker start)
import sympy  # noqa: F401

from rewards._equiv import grade_text


def worker_main(conn: Connection, memory_mb: int | None) -> None:
    """Grade ``(response, gold)`` messages until the pipe closes; reply True/False/"error"."""
    # Ctrl-C reaches the whole process group; the trainer handles it and the pool kills workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns that timeouts are off
    if memory_mb:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    conn.send("ready")
    while True:
        try:
            response, gold = conn.recv()
        except (EOFError, OSError):
            return
        try:
            verdict: bool | str = bool(grade_text(response, gold))
        except (Exception, RecursionError, MemoryError):  # noqa: BLE001  (bad input: verdict "error")
            verdict = "error"
        conn.send(verdict)
