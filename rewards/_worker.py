"""A grading worker: ``python -m rewards._worker MEMORY_MB``, started by ``rewards._pool``.

It reads ``(response, gold, tolerance)`` items from stdin and writes True, False or
"error" to stdout, as ``multiprocessing`` connection messages, until stdin closes (so it
exits with the process that started it). It says "ready" once sympy and math-verify are
imported. Anything printed by the libraries goes to stderr, never into the replies.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import sys
from multiprocessing.connection import Connection


def serve(inbox: Connection, outbox: Connection, memory_mb: int) -> None:
    """Grade items from ``inbox`` until it closes; reply on ``outbox``."""
    import math_verify  # noqa: F401  (imported before "ready", so the first item is fast)
    import sympy  # noqa: F401

    from rewards._equiv import grade_text

    # Ctrl-C reaches the whole process group; the trainer handles it and the pool kills workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns that timeouts are off
    if memory_mb:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    outbox.send("ready")
    while True:
        try:
            response, gold, tolerance = inbox.recv()
        except (EOFError, OSError):
            return
        try:
            verdict: bool | str = bool(grade_text(response, gold, tolerance=tolerance))
        except (Exception, RecursionError, MemoryError):  # noqa: BLE001  (bad input: "error")
            verdict = "error"
        outbox.send(verdict)


def main() -> None:
    inbox = Connection(os.dup(0), writable=False)
    outbox = Connection(os.dup(1), readable=False)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)  # a stray print would corrupt the replies: send stdout to stderr
    sys.stdout = sys.stderr
    serve(inbox, outbox, int(sys.argv[1]) if len(sys.argv) > 1 else 0)


if __name__ == "__main__":
    main()
