"""Fast, isolated execution of model-written programs, with verdicts they cannot spoof.

    import sandbox
    sandbox.execute("print(input()[::-1])", stdin="abc").stdout   # 'cba\\n'
    sandbox.judge("def add(a, b): return a + b",
                  [{"assert": "assert add(2, 3) == 5"}]).verdicts   # ['accepted']

The module-level functions share one lazily started `Sandbox` pool; a trainer that wants
its own size or limits uses `with sandbox.Sandbox(workers=8) as box: box.judge_many(...)`.
This package imports nothing else from r1kit. Threat model: README.md, "Sandbox: running
model-written code".
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Sequence

from sandbox.diagnostics import doctor
from sandbox.layers import Layer
from sandbox.pool import Sandbox
from sandbox.types import STATUSES, VERDICTS, Execution, IsolationError, Judgement

__all__ = [
    "STATUSES",
    "VERDICTS",
    "Execution",
    "IsolationError",
    "Judgement",
    "Layer",
    "Sandbox",
    "default_sandbox",
    "doctor",
    "execute",
    "judge",
]

_default: Sandbox | None = None
_default_lock = threading.Lock()


def default_sandbox() -> Sandbox:
    """The shared pool behind `execute` and `judge`, started on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Sandbox()
            atexit.register(_default.close)
        return _default


def execute(
    code: str,
    *,
    stdin: str = "",
    time_limit: float = 2.0,
    memory_mb: int = 256,
    language: str = "python",
) -> Execution:
    return default_sandbox().execute(
        code, stdin=stdin, time_limit=time_limit, memory_mb=memory_mb, language=language
    )


def judge(
    code: str,
    tests: Sequence[dict],
    *,
    time_limit: float = 2.0,
    memory_mb: int = 256,
    language: str = "python",
    float_tolerance: float | None = None,
) -> Judgement:
    return default_sandbox().judge(
        code,
        tests,
        time_limit=time_limit,
        memory_mb=memory_mb,
        language=language,
        float_tolerance=float_tolerance,
    )
