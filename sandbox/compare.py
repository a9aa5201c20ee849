"""Comparisons done by the supervisor, outside the sandbox, on plain data only."""

from __future__ import annotations

import math
from typing import Any


def tokens_match(actual: str, expected: str, tolerance: float | None = None) -> bool:
    """Whitespace-separated tokens must agree one for one (same count).

    With `tolerance`, two tokens that both parse as finite floats may differ by at most
    `tolerance` absolutely or relatively (the usual Codeforces checker rule).
    """
    got, want = actual.split(), expected.split()
    if len(got) != len(want):
        return False
    return all(
        g == w or (tolerance is not None and _close_tokens(g, w, tolerance))
        for g, w in zip(got, want, strict=True)
    )


def _close_tokens(got: str, want: str, tolerance: float) -> bool:
    try:
        g, w = float(got), float(want)
    except ValueError:
        return False
    if not (math.isfinite(g) and math.isfinite(w)):
        return False
    return abs(g - w) <= tolerance * max(1.0, abs(w))


def values_equal(actual: Any, expected: Any, tolerance: float | None = None) -> bool:
    """Python equality on plain values, with tuples and lists interchangeable (JSON test
    data has no tuples) and floats compared with `tolerance` when given."""
    if _is_number(actual) and _is_number(expected):
        if tolerance is not None and (isinstance(actual, float) or isinstance(expected, float)):
            return math.isclose(actual, expected, rel_tol=tolerance, abs_tol=tolerance)
        return actual == expected
    if isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple)):
        return len(actual) == len(expected) and all(
            values_equal(a, e, tolerance) for a, e in zip(actual, expected, strict=True)
        )
    if isinstance(actual, dict) and isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            values_equal(actual[k], expected[k], tolerance) for k in expected
        )
    if isinstance(actual, (set, frozenset)) and isinstance(expected, (set, frozenset)):
        return actual == expected
    return type(actual) is type(expected) and actual == expected


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float))  # bool included: True == 1 as in Python


def compare_values(actual: Any, op: str, expected: Any, tolerance: float | None) -> bool:
    """Apply an assert's comparison operator to plain values."""
    if op == "==":
        return values_equal(actual, expected, tolerance)
    if op == "!=":
        return not values_equal(actual, expected, tolerance)
    if op == "is":
        return actual is expected  # only None, True and False reach here (see asserts.py)
    if op == "is not":
        return actual is not expected
    if op in ("in", "not in") and isinstance(expected, str):
        found = isinstance(actual, str) and actual in expected
        return found if op == "in" else not found
    try:
        if op == "in":
            return any(values_equal(actual, e, tolerance) for e in expected)
        if op == "not in":
            return not any(values_equal(actual, e, tolerance) for e in expected)
        ordering = {
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
        }
        return bool(ordering[op](actual, expected))
    except TypeError:
        return False
