"""Length shaping: DAPO's soft overlong punishment and cosine length-scaled accuracy.

Lengths are in tokens when the batch carries a ``completion_ids`` column (lists of token
ids, as TRL passes them) or a ``completion_length`` column; with ``unit="chars"`` they are
characters of the completion text.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from rewards._text import completion_text
from rewards.math import DEFAULT_TIMEOUT, grade_verdicts
from rewards.registry import register

Unit = Literal["tokens", "chars"]


def completion_lengths(completions: list[Any], columns: dict[str, Any], unit: Unit) -> list[int]:
    """Length of each completion in ``unit`` (see the module docstring)."""
    if unit == "chars":
        return [len(completion_text(c)) for c in completions]
    if columns.get("completion_ids") is not None:
        return [len(ids) for ids in columns["completion_ids"]]
    if columns.get("completion_length") is not None:
        return [int(n) for n in columns["completion_length"]]
    raise ValueError(
        "length in tokens needs a 'completion_ids' or 'completion_length' column; "
        "pass them or set unit='chars'"
    )


def _check_unit(unit: str) -> None:
    if unit not in ("tokens", "chars"):
        raise ValueError(f"unit must be 'tokens' or 'chars', got {unit!r}")


@register("overlong_penalty")
class OverlongPenalty:
    """DAPO soft overlong punishment (Yu et al. 2025, eq. 13), with L = length:

    0 if L <= max_length - buffer; ((max_length - buffer) - L) / buffer inside the buffer;
    -1 if L > max_length.

    >>> OverlongPenalty(max_length=10, buffer=4, unit="chars")(
    ...     ["a" * 6, "a" * 8, "a" * 11], prompts=["q"] * 3)
    [0.0, -0.5, -1.0]
    """

    def __init__(self, max_length: int = 4096, buffer: int = 512, unit: Unit = "tokens") -> None:
        if not 0 < buffer <= max_length:
            raise ValueError(
                f"overlong_penalty: need 0 < buffer <= max_length, got {buffer}, {max_length}"
            )
        _check_unit(unit)
        self.max_length, self.buffer, self.unit = max_length, buffer, unit

    def __call__(
        self, completions: list[Any], *, prompts: list[Any], **columns: Any
    ) -> list[float | None]:
        start = self.max_length - self.buffer
        scores: list[float | None] = []
        for length in completion_lengths(completions, columns, self.unit):
            if length <= start:
                scores.append(0.0)
            elif length <= self.max_length:
                scores.append((start - length) / self.buffer)
            else:
                scores.append(-1.0)
        return scores


def cosine_schedule(length: int, max_length: int, at_zero: float, at_max: float) -> float:
    """``at_max + (at_zero - at_max) * (1 + cos(pi * length / max_length)) / 2``.

    >>> cosine_schedule(0, 100, 1.0, 0.5), cosine_schedule(100, 100, 1.0, 0.5)
    (1.0, 0.5)
    """
    t = min(length, max_length) / max_length
    return at_max + 0.5 * (at_zero - at_max) * (1.0 + math.cos(math.pi * t))


@register("cosine_accuracy")
class CosineAccuracy:
    """Cosine length-scaled accuracy (Yeo et al. 2025, "Demystifying Long Chain-of-Thought
    Reasoning in LLMs", eq. 1): correct answers earn ``correct_short`` at length 0 falling to
    ``correct_long`` at ``max_length``; wrong ones earn ``wrong_short`` rising to
    ``wrong_long`` (being wrong after thinking longer costs less); past ``max_length`` the
    reward is ``exceed``. Defaults are the paper's shape rescaled to [-1, 1] (the paper
    uses 2/1, -10/0 and -10). Rows without an answer get None.

    >>> scores = CosineAccuracy(max_length=100, unit="chars")(["4", "5", "4" + " " * 200],
    ...     prompts=["q"] * 3, answer=["4", "4", "4"])
    >>> [round(s, 3) for s in scores]  # 1 character of 100: nearly the short-end values
    [1.0, -1.0, -1.0]
    """

    def __init__(
        self,
        max_length: int = 4096,
        unit: Unit = "tokens",
        correct_short: float = 1.0,
        correct_long: float = 0.5,
        wrong_short: float = -1.0,
        wrong_long: float = -0.5,
        exceed: float = -1.0,
        timeout: float = DEFAULT_TIMEOUT,
        answer_column: str = "answer",
    ) -> None:
        if max_length <= 0:
            raise ValueError(f"cosine_accuracy: max_length must be > 0, got {max_length}")
        _check_unit(unit)
        self.max_length, self.unit, self.timeout = max_length, unit, timeout
        self.correct = (correct_short, correct_long)
        self.wrong = (wrong_short, wrong_long)
        self.exceed, self.answer_column = exceed, answer_column

    def __call__(
        self, completions: list[Any], *, prompts: list[Any], **columns: Any
    ) -> list[float | None]:
        golds = columns.get(self.answer_column) or [None] * len(completions)
        lengths = completion_lengths(completions, columns, self.unit)
        rows = [i for i, g in enumerate(golds) if g is not None]
        verdicts = grade_verdicts(
            [(completion_text(completions[i]), str(golds[i])) for i in rows], timeout=self.timeout
        )
        scores: list[float | None] = [None] * len(completions)
        for i, verdict in zip(rows, verdicts, strict=True):
            if lengths[i] > self.max_length:
                scores[i] = self.exceed
                continue
            short, long = self.correct if verdict == "correct" else self.wrong
            scores[i] = cosine_schedule(lengths[i], self.max_length, short, long)
        return scores
