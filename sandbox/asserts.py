"""Split an assert test into the part the program computes and the part it must not see.

`assert add(2, 3) == 5` becomes: evaluate `add(2, 3)` inside the sandbox and send back
its plain value; compare it with 5 outside. Running the whole assert inside would let the
program win by patching `AssertionError`, returning an always-equal object, or calling
`os._exit(0)` before the assert, and it would put the expected value in its reach.

Supported forms (the expected side must be evaluable without the program's code):
- `assert X <op> Y` with one of ==, !=, <, <=, >, >=, in, not in, is (None/True/False);
- `assert math.isclose(X, Y, rel_tol=..., abs_tol=...)` and `assert abs(X - Y) < eps`;
- `assert X` and `assert not X` (truthiness of the plain value).
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass
from typing import Any

_OPS = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
}
_FLIPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
# Pure builtins allowed on the expected side, e.g. `== set([1, 2])` or `== float("inf")`.
_SAFE_CALLS = frozenset(
    {
        "set",
        "frozenset",
        "tuple",
        "list",
        "dict",
        "sorted",
        "float",
        "int",
        "str",
        "bool",
        "abs",
        "round",
        "len",
        "min",
        "max",
        "sum",
    }
)


@dataclass(frozen=True)
class AssertCheck:
    expr: str  # Python expression evaluated inside the sandbox
    op: str  # a comparison operator, "isclose", "truthy" or "falsy"
    expected: Any = None
    rel_tol: float = 1e-9
    abs_tol: float = 0.0


def _safe_eval(node: ast.expr) -> Any:
    """Evaluate a literal, or a call of a pure builtin on literals; ValueError otherwise."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _SAFE_CALLS
    ):
        args = [_safe_eval(a) for a in node.args]
        kwargs = {k.arg: _safe_eval(k.value) for k in node.keywords if k.arg}
        try:
            return getattr(builtins, node.func.id)(*args, **kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from exc
    raise ValueError(f"not evaluable outside the sandbox: {ast.unparse(node)}")


def _outside(node: ast.expr) -> tuple[bool, Any]:
    try:
        return True, _safe_eval(node)
    except ValueError:
        return False, None


def parse_assert(text: str) -> AssertCheck:
    try:
        body = ast.parse(text.strip()).body
    except SyntaxError as exc:
        raise ValueError(f"assert test does not parse: {exc}") from exc
    if len(body) != 1 or not isinstance(body[0], ast.Assert):
        raise ValueError(f"an assert test must be exactly one assert statement: {text!r}")
    test = body[0].test
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        return _parse_compare(test, text)
    if isinstance(test, ast.Call) and _is_isclose(test.func):
        return _parse_isclose(test, text)
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return AssertCheck(ast.unparse(test.operand), "falsy")
    return AssertCheck(ast.unparse(test), "truthy")


def _parse_compare(test: ast.Compare, text: str) -> AssertCheck:
    op = _OPS[type(test.ops[0])]
    left, right = test.left, test.comparators[0]
    absdiff = _abs_difference(left)
    if absdiff and op in ("<", "<=") and _outside(right)[0]:
        inner, other = absdiff
        tolerance = _safe_eval(right)
        known, expected = _outside(other)
        if known:
            return AssertCheck(ast.unparse(inner), "isclose", expected, 0.0, float(tolerance))
    known, expected = _outside(right)
    if known:
        if op in ("is", "is not") and expected not in (None, True, False):
            raise ValueError(f"'is' is only supported against None/True/False: {text!r}")
        return AssertCheck(ast.unparse(left), op, expected)
    known, expected = _outside(left)
    if known and op in _FLIPPED:
        return AssertCheck(ast.unparse(right), _FLIPPED[op], expected)
    raise ValueError(f"neither side of the comparison is a literal: {text!r}")


def _abs_difference(node: ast.expr) -> tuple[ast.expr, ast.expr] | None:
    """For `abs(A - B)`, return (the side the program computes, the known side)."""
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "abs"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.BinOp)
        and isinstance(node.args[0].op, ast.Sub)
    ):
        return None
    a, b = node.args[0].left, node.args[0].right
    return (a, b) if _outside(b)[0] else (b, a)


def _is_isclose(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id == "isclose") or (
        isinstance(func, ast.Attribute) and func.attr == "isclose"
    )


def _parse_isclose(test: ast.Call, text: str) -> AssertCheck:
    if len(test.args) != 2:
        raise ValueError(f"isclose needs two positional arguments: {text!r}")
    kwargs = {k.arg: float(_safe_eval(k.value)) for k in test.keywords if k.arg}
    unknown = set(kwargs) - {"rel_tol", "abs_tol"}
    if unknown:
        raise ValueError(f"unsupported isclose arguments {sorted(unknown)}: {text!r}")
    a, b = test.args
    known, expected = _outside(b)
    inner = a
    if not known:
        known, expected = _outside(a)
        inner = b
    if not known:
        raise ValueError(f"neither isclose argument is a literal: {text!r}")
    return AssertCheck(
        ast.unparse(inner),
        "isclose",
        expected,
        kwargs.get("rel_tol", 1e-9),
        kwargs.get("abs_tol", 0.0),
    )
