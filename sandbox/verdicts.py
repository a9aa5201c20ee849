"""Test kinds, and the verdicts the supervisor gives.

A test becomes two halves: a job (what the sandbox runs: code, stdin, a call or an
expression) and a check (expected output or value) that never leaves this process.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from sandbox import values
from sandbox.asserts import AssertCheck, parse_assert
from sandbox.compare import compare_values, tokens_match, values_equal
from sandbox.types import Execution

TEST_KINDS = {
    "stdin/stdout": '{"input": str, "output": str, "tolerance"?: float}',
    "function call": '{"fn_name": str, "args": list, "expected": value, "tolerance"?: float}',
    "assert": '{"assert": "assert f(2, 3) == 5"}',
}


@dataclass(frozen=True)
class Case:
    job: dict  # sent to the sandbox
    kind: str  # "io", "call" or "assert"
    expected: Any = None  # kept here
    tolerance: float | None = None
    check: AssertCheck | None = None


def prepare(test: dict, float_tolerance: float | None = None) -> Case:
    if not isinstance(test, dict):
        raise TypeError(f"a test must be a dict, got {type(test).__name__}")
    tolerance = test.get("tolerance", float_tolerance)
    if "input" in test and "output" in test:
        return Case(
            {"mode": "script", "stdin": str(test["input"])}, "io", str(test["output"]), tolerance
        )
    if "fn_name" in test and "expected" in test:
        args = test.get("args", [])
        if not isinstance(args, list):
            raise TypeError(f"'args' must be a list, got {type(args).__name__}")
        job = {
            "mode": "call",
            "fn_name": str(test["fn_name"]),
            "args": args,
            "stdin": str(test.get("input", "")),
        }
        return Case(job, "call", test["expected"], tolerance)
    if "assert" in test:
        check = parse_assert(str(test["assert"]))
        return Case(
            {"mode": "eval", "expr": check.expr, "stdin": ""},
            "assert",
            check=check,
            tolerance=tolerance,
        )
    kinds = "; ".join(f"{name}: {shape}" for name, shape in TEST_KINDS.items())
    raise ValueError(f"unknown test kind with keys {sorted(test)}; valid kinds are {kinds}")


def verdict(case: Case, execution: Execution, result: str | None) -> str:
    if execution.status != "ok":
        return execution.status
    if case.kind == "io":
        return _word(tokens_match(execution.stdout, case.expected, case.tolerance))
    if result is None:
        return "runtime_error"  # exited "successfully" without ever producing the value
    try:
        payload = json.loads(result)
        if "unencodable" in payload:
            return "wrong_answer"
        actual = values.decode(payload["value"])
    except (ValueError, TypeError, KeyError, RecursionError):
        return "wrong_answer"  # a garbled or forged result channel
    if case.kind == "call":
        return _word(values_equal(actual, case.expected, case.tolerance))
    return _word(_assert_holds(case.check, actual, case.tolerance))


def _assert_holds(check: AssertCheck | None, actual: Any, tolerance: float | None) -> bool:
    if check is None:
        return False
    if check.op == "truthy":
        return bool(actual)
    if check.op == "falsy":
        return not actual
    if check.op == "isclose":
        if not all(isinstance(v, (int, float)) for v in (actual, check.expected)):
            return False
        return math.isclose(actual, check.expected, rel_tol=check.rel_tol, abs_tol=check.abs_tol)
    return compare_values(actual, check.op, check.expected, tolerance)


def _word(ok: bool) -> str:
    return "accepted" if ok else "wrong_answer"
