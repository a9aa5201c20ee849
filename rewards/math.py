"""Math answer grading and the ``accuracy`` reward.

``grade``/``grade_many`` run ``rewards._equiv.grade_text`` in worker processes
(``rewards._pool``), so no input can hang the caller: an item still running at ``timeout``
seconds is killed and counts as incorrect. Two plain numerals are compared in the caller.

Only the text after the last ``</think>`` is graded; a response that opens ``<think>`` and
never closes it has no answer. Grading is strict: a rounded decimal does not equal an exact
non-terminating value unless the gold is the decimal; ``tolerance`` (relative) is opt-in.
"""

from __future__ import annotations

import atexit
import os
import re
import threading
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from rewards._extract import final_text
from rewards._pool import GradingPool, Verdict
from rewards._text import completion_text
from rewards.registry import register
from sandbox.cpus import usable_cpus

DEFAULT_TIMEOUT = 5.0
_pool: GradingPool | None = None
_pool_lock = threading.Lock()


def default_pool() -> GradingPool:
    """The process-wide grading pool (started on first use, closed at exit).

    Its size is ``R1KIT_GRADER_WORKERS``, else one less than the CPUs this process may use
    (``sandbox.cpus.usable_cpus``: affinity, cgroup quota, shared among local ranks; at least 1,
    at most 8): the trainer keeps a core, since it generates while earlier samples are graded (on a
    machine with few cores, a second worker takes more from generation than it saves).
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            workers = int(os.environ.get("R1KIT_GRADER_WORKERS", "0")) or max(
                1, min(8, usable_cpus() - 1)
            )
            _pool = GradingPool(workers)
            atexit.register(_pool.close)
        return _pool


def grade_verdicts(
    pairs: Sequence[tuple[str, str]], *, timeout: float = DEFAULT_TIMEOUT, tolerance: float = 0.0
) -> list[Verdict]:
    """``"correct"``, ``"incorrect"``, ``"timeout"`` or ``"crash"`` for each (response, gold)."""
    verdicts: list[Verdict | None] = [
        None if tolerance else plain_number_verdict(r, g) for r, g in pairs
    ]
    pending = [i for i, v in enumerate(verdicts) if v is None]
    if pending:
        graded = default_pool().grade(
            [pairs[i] for i in pending], timeout=timeout, tolerance=tolerance
        )
        for i, verdict in zip(pending, graded, strict=True):
            verdicts[i] = verdict
    return verdicts  # type: ignore[return-value]


_PLAIN_NUMBER_RE = re.compile(r"-?\d{1,30}(?:\.\d{1,30})?")


def plain_number_verdict(response: str, gold: str) -> Verdict | None:
    """The verdict when the final answer and the gold are both plain decimal numerals, else None.

    Most samples on arithmetic data answer ``<answer>185</answer>``: comparing two numerals
    needs neither sympy nor a worker round trip (which costs more than the grading), so it is
    done in the caller, bounded in time, with the workers' verdict (a test checks they agree).

    >>> plain_number_verdict("<think>5+7=12</think><answer> 12 </answer>", "12.0")
    'correct'
    >>> plain_number_verdict("<answer>1/2</answer>", "0.5") is None  # the workers decide
    True
    """
    if len(response) > 2000 or len(gold) > 64:
        return None
    text = final_text(response)
    if text is None:
        return "incorrect"  # reasoning that never ends has no answer
    answer, gold = text.strip(), gold.strip()
    if not (_PLAIN_NUMBER_RE.fullmatch(answer) and _PLAIN_NUMBER_RE.fullmatch(gold)):
        return None
    return "correct" if Decimal(answer) == Decimal(gold) else "incorrect"


def grade_many(
    pairs: Sequence[tuple[str, str]], *, timeout: float = DEFAULT_TIMEOUT, tolerance: float = 0.0
) -> list[bool]:
    """Grade a batch of (response, gold) pairs across the worker pool.

    >>> grade_many([("The answer is 1 000.", "1000"), (r"\\{1,2\\}", "(1,2)")])
    [True, False]
    """
    return [v == "correct" for v in grade_verdicts(pairs, timeout=timeout, tolerance=tolerance)]


def grade(
    response: str, gold: str, *, timeout: float = DEFAULT_TIMEOUT, tolerance: float = 0.0
) -> bool:
    """Is ``response`` (a bare answer or a whole completion) mathematically equal to ``gold``?

    >>> grade(r"<think>half of 5</think><answer>\\boxed{2\\frac{1}{2}}</answer>", "2.5")
    True
    >>> grade("0.1000001", "0.1"), grade("1.414", r"\\sqrt{2}")
    (False, False)
    >>> grade("1.414", r"\\sqrt{2}", tolerance=1e-3)
    True
    """
    return grade_many([(response, gold)], timeout=timeout, tolerance=tolerance)[0]


@register("accuracy")
class Accuracy:
    """1.0 when the completion's final answer equals the row's ``answer`` column, else 0.0.

    Rows whose ``answer`` is None get None. ``timeout`` is the hard per-item limit in
    seconds; timed-out and crashed items score 0.0 and are reported by ``pop_metrics``.
    ``tolerance`` (default 0: exact) accepts numbers within that relative difference, such
    as a rounded decimal for an exact irrational answer.

    >>> Accuracy()(["<think>2+2</think><answer>4</answer>", "5"], prompts=["q", "q"],
    ...            answer=["4", "4"])
    [1.0, 0.0]
    """

    def __init__(
        self,
        timeout: float = DEFAULT_TIMEOUT,
        answer_column: str = "answer",
        tolerance: float = 0.0,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"accuracy: timeout must be > 0 seconds, got {timeout}")
        if not 0 <= tolerance < 1:
            raise ValueError(
                f"accuracy: tolerance is a relative difference in [0, 1), got {tolerance}; "
                "use 0 for exact grading or e.g. 1e-3 to accept answers rounded to 3 digits"
            )
        self.timeout = timeout
        self.answer_column = answer_column
        self.tolerance = tolerance
        self._metrics: dict[str, float] = {}

    def __call__(
        self, completions: list[Any], *, prompts: list[Any], **columns: Any
    ) -> list[float | None]:
        golds = _column(columns, self.answer_column, len(completions), "accuracy")
        rows = [i for i, g in enumerate(golds) if g is not None]
        verdicts = grade_verdicts(
            [(completion_text(completions[i]), str(golds[i])) for i in rows],
            timeout=self.timeout,
            tolerance=self.tolerance,
        )
        scores: list[float | None] = [None] * len(completions)
        for i, verdict in zip(rows, verdicts, strict=True):
            scores[i] = 1.0 if verdict == "correct" else 0.0
        self._metrics = {
            "timeouts": float(verdicts.count("timeout")),
            "crashes": float(verdicts.count("crash")),
        }
        return scores

    def pop_metrics(self) -> dict[str, float]:
        """Timeouts and crashes of the last call (logged as ``reward/accuracy/timeouts``)."""
        metrics, self._metrics = self._metrics, {}
        return metrics

    def __getstate__(self) -> dict[str, Any]:
        return {
            "timeout": self.timeout,
            "answer_column": self.answer_column,
            "tolerance": self.tolerance,
            "_metrics": {},
        }


def _column(columns: dict[str, Any], name: str, n: int, reward: str) -> list[Any]:
    if name not in columns:
        raise KeyError(
            f"{reward}: the dataset has no '{name}' column (columns: {sorted(columns)}); "
            f"add it or set the reward's column param"
        )
    values = list(columns[name])
    if len(values) != n:
        raise ValueError(f"{reward}: column '{name}' has {len(values)} rows for {n} completions")
    return values
