"""Pure math-answer equivalence: ``grade_text(response, gold) -> bool``.

This runs inside the grading worker processes (``rewards._pool``); it may call sympy,
which can hang on inputs like ``9^{9^{9^9}}``, so never call it in the trainer process
without a process boundary. Layers, cheapest first:

1. multiple-choice letters and short text answers compare as normalised strings;
2. a named answer (``x = 3``, ``(p,q) = (3,2)``, ``|AB| = 1``) is judged on its value;
3. plain numbers compare exactly as rationals (``rewards._numbers``);
4. sets, tuples, intervals, lists and matrices are split (``rewards._structure``) and
   compared element-wise, so a set never equals a tuple and interval brackets must agree;
5. remaining scalar expressions go through math-verify's sympy comparison with its own
   timeout disabled (the worker process is killed instead).

Strict by default: a decimal equals a non-terminating value (``1/3``, ``\\pi``) only when the
gold is that decimal and the other side is the exact value it rounds; a relative
``tolerance`` (``grade_text(..., tolerance=1e-3)``) is opt-in.
"""

from __future__ import annotations

import cmath
import contextvars
import functools
import re
from fractions import Fraction

from rewards._extract import (
    boxes,
    clean,
    extract_choice,
    final_text,
    join_trailing,
    region_answer,
)
from rewards._latex import list_items, normalise, split_top
from rewards._numbers import Number, _terminates, numbers_equal, parse_number, rounds_to
from rewards._structure import structure, structures_equal

TOLERANCE: contextvars.ContextVar[float] = contextvars.ContextVar("tolerance", default=0.0)
_CHOICE_GOLD_RE = re.compile(r"^\(?([A-J])\)?$")
_TEXT_RE = re.compile(r"^[A-Za-z]{2,}(?:[ '\-]+[A-Za-z]{2,})*$")
_TEXT_CMD_RE = re.compile(
    r"\\(?:text|textbf|textrm|mathrm|mbox|mathbf|operatorname)\s*\{([^{}]*)\}"
)
_COMPLEX_RE = re.compile(r"(?<![A-Za-z\\])i(?![A-Za-z])")
_INCOMPLETE_RE = re.compile(r"(?:=|\+|-|\*|/|\^|\\times|\\cdot|\\frac|\\div)\s*$")
_DEGREE_MARK_RE = re.compile(r"\\circ|°|\\degree|degrees?\b")
_SUBSCRIPT_RE = re.compile(r"_\{[^{}]*\}|_\w|\^\{?\\prime\}?|'")
_NOT_NAME_RE = re.compile(r"[\d+\-*^<>]|\\(?:cdot|times|sqrt|sum|int|pm|le|ge|ne|infty)")


def _text_key(text: str) -> str:
    text = _TEXT_CMD_RE.sub(r"\1", text).lower()
    text = re.sub(r"[^a-z0-9 ]", " ", text)
    words = [w for w in text.split() if w not in ("the", "a", "an")]
    return " ".join(words)


def is_text_answer(gold: str) -> bool:
    """A gold answer made of words (``Tuesday``, ``\\text{no solution}``), not mathematics."""
    plain = _TEXT_CMD_RE.sub(r"\1", gold).strip()
    return bool(_TEXT_RE.match(plain)) and len(plain.replace(" ", "")) >= 2


def is_name(text: str) -> bool:
    """Does ``text`` only name a quantity (``x``, ``f(x)``, ``(p,q)``, ``|AB|``, ``A:B``)?

    >>> is_name("(p,q)"), is_name(r"\\frac{NO}{BO}"), is_name("2x+z"), is_name("7")
    (True, True, False, False)
    """
    core = _SUBSCRIPT_RE.sub("", text)
    return bool(re.search(r"[A-Za-z]", core)) and not _NOT_NAME_RE.search(core)


def _name_key(name: str) -> str:
    """A name without its arguments: ``W(n)`` and ``W(x)`` name the same function."""
    return re.sub(r"\s+", "", re.sub(r"\(.*\)$", "", name))


def named_value(text: str) -> tuple[str | None, str]:
    """``(name, value)`` of ``name = value`` (of a chain ``x = a = b``: its last value, ``b``).

    An equation whose left side is not a name (``2x + z = 1``) is returned whole.

    >>> named_value("x = 5+5+1 = 11"), named_value("2x+z = 1")
    (('x', '11'), (None, '2x+z = 1'))
    """
    parts = split_top(text, "=")
    if len(parts) < 2 or not all(parts) or any(len(list_items(p)) > 1 for p in parts[1:-1]):
        return None, text  # not one assignment ("x = 1, y = 2" is a list of them)
    if is_name(parts[0]):
        return _name_key(parts[0]), parts[-1]
    if len(parts) >= 3:
        return None, parts[-1]  # a worked chain "3 + 4 = 7 = 7": judge what it ends with
    return None, text


def _drop_approx(text: str) -> str:
    """``a \\approx b``: the exact value ``a`` when it is one, else the approximation.

    >>> _drop_approx(r"x \\approx 11"), _drop_approx(r"x = 1/3 \\approx 0.33")
    ('x = 11', 'x = 1/3')
    """
    parts = split_top(text, "\\approx")
    if len(parts) < 2:
        return text
    head = parts[0]
    name, value = named_value(head) if "=" in head else (None, head)
    if value and not is_name(value):
        return head
    return f"{head} = {parts[-1]}" if "=" not in head else f"{name} = {parts[-1]}"


def answers_equal(pred: str, gold: str) -> bool:
    """Are two extracted answers the same mathematical answer?

    >>> answers_equal("1 000", "1000"), answers_equal("0.1000001", "0.1")
    (True, False)
    >>> answers_equal(r"\\{1,2\\}", "(1,2)"), answers_equal("x = 3", "3")
    (False, True)
    """
    pred, gold = normalise(pred), normalise(gold)
    if not pred or not gold or _INCOMPLETE_RE.search(pred):
        return False
    if pred == gold or _squash(pred) == _squash(gold):
        return True
    if is_text_answer(gold):
        return _text_key(pred) == _text_key(gold)
    pred, gold = _drop_approx(pred), _drop_approx(gold)
    pred_name, pred_value = named_value(pred)
    gold_name, gold_value = named_value(gold)
    if pred_name and gold_name and pred_name != gold_name:
        return False
    if pred_name and not gold_name and "=" in gold_value:
        return _symbolic_equal(pred, gold)
    pred, gold = pred_value, gold_value
    if pred == gold or _squash(pred) == _squash(gold):
        return True
    gold_num = parse_number(gold, decimal_comma=None)
    if gold_num is not None:
        pred_num = parse_number(pred, decimal_comma=True)
        if pred_num is not None:
            return numbers_equal(pred_num, gold_num, tolerance=TOLERANCE.get())
    # a gold that reads as one number (32,349) is never a list, whatever the response is
    pred_struct, gold_struct = structure(pred), None if gold_num else structure(gold)
    if "=" in pred and "=" not in gold and not pred_struct:
        pred = pred.rsplit("=", 1)[1].strip()  # worked answer "3 + 4 = 7": judge what it equals
        return bool(pred) and answers_equal(pred, gold)
    if _one_matrix_expression(pred, gold, pred_struct, gold_struct):
        return _symbolic_equal(pred, gold)  # a matrix sum or product against its value
    if pred_struct or gold_struct:
        if pred_struct and gold_struct:
            return structures_equal(pred_struct, gold_struct, answers_equal)
        return _relation_vs_interval(pred, gold, pred_struct, gold_struct)
    return _symbolic_equal(pred, gold, gold_num)


def _one_matrix_expression(pred: str, gold: str, ps, gs) -> bool:
    kinds = (ps[0] if ps else "", gs[0] if gs else "")
    return (kinds[1].startswith("matrix") and not ps and "\\begin" in pred) or (
        kinds[0].startswith("matrix") and not gs and "\\begin" in gold
    )


def _squash(text: str) -> str:
    """``text`` without spaces, except those between digits or after a comma before a digit,
    which may separate numbers (``32, 349`` is a list, not 32349).

    >>> _squash("x + 1"), _squash("32, 349"), _squash("1 000")
    ('x+1', '32, 349', '1 000')
    """
    return re.sub(r"(?<![\d,])\s+|\s+(?!\d)", "", text)


def _relation_vs_interval(pred: str, gold: str, ps: object, gs: object) -> bool:
    """``x \\le 3`` against ``(-\\infty, 3]``: the only scalar/container pair that may agree."""
    scalar = gold if ps else pred
    if not re.search(r"<|>|\\le|\\ge|\\lt|\\gt|\\in", scalar):
        return False
    return _symbolic_equal(pred, gold, None, allow_set_relation=True)


# A gold answer is graded once per sample of its group (G times), and samples often repeat an
# answer: parsed expressions are kept (sympy expressions are immutable).
@functools.lru_cache(maxsize=4096)
def _parse_sympy(text: str, complex_mode: bool):
    from math_verify import LatexExtractionConfig, parse
    from sympy import I

    exprs = parse(
        "\\boxed{" + text + "}",
        extraction_config=[LatexExtractionConfig(boxed_match_priority=0)],
        parsing_timeout=None,
    )
    expr = next((e for e in exprs if not isinstance(e, str)), None)
    if expr is not None and complex_mode and hasattr(expr, "subs"):
        try:
            expr = expr.subs({s: I for s in expr.free_symbols if getattr(s, "name", "") == "i"})
        except TypeError:  # e.g. an inequality that becomes a comparison of complex numbers
            return None
    return expr


def _symbolic_equal(
    pred: str, gold: str, gold_num: Number | None = None, *, allow_set_relation: bool = False
) -> bool:
    import sympy
    from math_verify import verify

    complex_mode = bool(_COMPLEX_RE.search(gold) or _COMPLEX_RE.search(pred))
    pred_deg, gold_deg = bool(_DEGREE_MARK_RE.search(pred)), bool(_DEGREE_MARK_RE.search(gold))
    pred_num = parse_number(pred)
    p = _as_number_expr(pred_num) if pred_num else _parse_sympy(pred, complex_mode)
    g = _as_number_expr(gold_num) if gold_num else _parse_sympy(gold, complex_mode)
    if p is None or g is None:
        return False
    if pred_deg != gold_deg:  # 30^\circ against \frac{\pi}{6}: compare in radians
        if pred_deg and gold.count("\\pi"):
            p = p * sympy.pi / 180
        elif gold_deg and pred.count("\\pi"):
            g = g * sympy.pi / 180
    if _is_constant(p) and _is_constant(g):
        return _constants_equal(p, g, gold_num or parse_number(gold))
    if _has_float(p) != _has_float(g):  # 0.33x against x/3: a rounding, not the same value
        return False
    return bool(
        verify(
            g,
            p,
            float_rounding=10,
            timeout_seconds=None,
            strict=True,
            allow_set_relation_comp=allow_set_relation,
        )
    )


def _has_float(expr) -> bool:
    import sympy

    return isinstance(expr, sympy.Basic) and bool(expr.atoms(sympy.Float))


def _as_number_expr(number: Number):
    import sympy

    return sympy.Rational(number.value.numerator, number.value.denominator)


def _is_constant(expr) -> bool:
    import sympy

    return isinstance(expr, sympy.Expr) and not expr.free_symbols


def _constants_equal(p, g, gold_num: Number | None) -> bool:
    """Exact constants: equal when their difference vanishes to 40 digits. A gold written as
    a decimal also matches the exact value it rounds or truncates (1.414 for sqrt 2); the
    other way round only within the opt-in tolerance."""
    import sympy

    if p.is_finite is False or g.is_finite is False:  # infinities: same sign, same kind
        return bool(p == g) and p.is_extended_real is True
    try:
        diff = complex(sympy.N(p - g, 50))
        size = abs(complex(sympy.N(g, 20)))
    except (TypeError, ValueError, ArithmeticError):
        return False
    if cmath.isnan(diff):
        return False
    if abs(diff) <= 1e-40 * max(1.0, size):
        return True
    tolerance = TOLERANCE.get()
    if tolerance and abs(diff) <= tolerance * size:
        return True
    if gold_num is None or gold_num.decimals is None or not p.is_real:
        return False
    if isinstance(p, sympy.Rational) and _terminates(Fraction(int(p.p), int(p.q))):
        return False
    try:
        exact = Fraction(str(sympy.N(p, 60)))
    except (TypeError, ValueError):
        return False
    return rounds_to(gold_num, exact)


def gold_answer(gold: str) -> str:
    """The answer a gold solution states: its last box, with the boxes before it that only
    list words and units separate from it, else what ``region_answer`` finds, else the gold
    as written."""
    found = boxes(gold)
    if found:
        return join_trailing(found, gold, unit_words=1)
    return region_answer(gold) or clean(gold)


def grade_text(response: str, gold: str, *, tolerance: float = 0.0) -> bool:
    """Grade one response (bare answer or whole completion) against a gold answer.

    >>> grade_text("<think>2+2</think><answer>4</answer>", "4")
    True
    >>> grade_text("so the answer is (B)", "B"), grade_text("3 + 4 =", "7")
    (True, False)
    >>> grade_text("3.14", r"\\pi"), grade_text("3.1416", r"\\pi", tolerance=1e-4)
    (False, True)
    """
    token = TOLERANCE.set(tolerance)
    try:
        return _grade(response, gold)
    finally:
        TOLERANCE.reset(token)


@functools.lru_cache(maxsize=1024)
def _gold(gold: str) -> str:
    return normalise(gold_answer(gold))


def _grade(response: str, gold: str) -> bool:
    gold = _gold(gold)
    choice = _CHOICE_GOLD_RE.match(_TEXT_CMD_RE.sub(r"\1", gold).strip())
    if choice:
        return extract_choice(response) == choice.group(1)
    text = final_text(response)
    if text is None:
        return False
    pred = region_answer(text)
    if pred is not None and answers_equal(pred, gold):
        return True
    if is_text_answer(_TEXT_CMD_RE.sub(r"\1", gold)) and _text_key(clean(text)) == _text_key(gold):
        return True
    gold_struct = structure(gold)
    found = [clean(b[2]) for b in boxes(text)]
    if gold_struct and len(found) >= 2 and len(found) == len(gold_struct[1]):
        return answers_equal(", ".join(found), gold)  # several boxes: \boxed{2}, \boxed{3}
    return False
