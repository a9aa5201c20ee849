"""Pure math-answer equivalence: ``grade_text(response, gold) -> bool``.

This runs inside the grading worker processes (``rewards._pool``); it may call sympy,
which can hang on inputs like ``9^{9^{9^9}}``, so never call it in the trainer process
without a process boundary. Layers, cheapest first:

1. multiple-choice letters and short text answers compare as normalised strings;
2. plain numbers compare exactly as rationals (``rewards._numbers``);
3. sets, tuples, intervals, lists and matrices are split here and compared element-wise,
   so a set never equals a tuple and interval brackets must agree;
4. remaining scalar expressions go through math-verify's sympy comparison with its own
   timeout disabled (the worker process is killed instead).
"""

from __future__ import annotations

import re
from fractions import Fraction

from rewards._extract import all_boxes, extract_answer, extract_choice
from rewards._numbers import Number, _terminates, numbers_equal, parse_number, rounds_to
from rewards._text import boxed_contents

_CHOICE_GOLD_RE = re.compile(r"^\(?([A-J])\)?$")
_TEXT_RE = re.compile(r"^[A-Za-z]{2,}(?:[ '\-]+[A-Za-z]{2,})*$")
_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox|mathbf|operatorname)\s*\{([^{}]*)\}")
_VAR_EQ_RE = re.compile(r"^\s*([A-Za-z](?:_\{?\w+\}?)?)\s*=\s*(?!=)(.+)$", re.DOTALL)
_MATRIX_RE = re.compile(r"^\\begin\{([pbvBV]?matrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}$", re.DOTALL)
_COMPLEX_RE = re.compile(r"(?<![A-Za-z\\])i(?![A-Za-z])")
_INCOMPLETE_RE = re.compile(r"(?:=|\+|-|\*|/|\^|\\times|\\cdot|\\frac|\\div)\s*$")
_DEGREE_MARK_RE = re.compile(r"\\circ|°|\\degree|degrees?\b")
_REPLACEMENTS = [
    ("\\left", ""), ("\\right", ""), ("\\displaystyle", ""), ("\\!", ""), ("\\dfrac", "\\frac"),
    ("\\tfrac", "\\frac"), ("−", "-"), ("\\leq", "\\le"), ("\\geq", "\\ge"), ("≤", "\\le"),
    ("≥", "\\ge"), ("\\mathrm{i}", "i"), ("\\imath", "i"), ("\\infin", "\\infty"), ("∞", "\\infty"),
    ("√", "\\sqrt"), ("π", "\\pi"), ("\\lbrace", "\\{"), ("\\rbrace", "\\}"),
]


def normalise(text: str) -> str:
    r"""Cosmetic LaTeX normalisation that never changes a value.

    >>> normalise(r"$\left( \dfrac{1}{2},\ 3 \right)$")
    '(\\frac{1}{2}, 3)'
    """
    text = text.strip().strip("$").strip()
    for old, new in _REPLACEMENTS:
        text = text.replace(old, new)
    text = re.sub(r"(?<!\\)\\[ ,;:]|~", " ", text) if not parse_number(text) else text
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"([(\[{])\s+", r"\1", text)
    text = re.sub(r"\s+([)\]}])", r"\1", text)
    return text.rstrip(".").strip()


def _text_key(text: str) -> str:
    text = _TEXT_CMD_RE.sub(r"\1", text).lower()
    text = re.sub(r"[^a-z0-9 ]", " ", text)
    words = [w for w in text.split() if w not in ("the", "a", "an")]
    return " ".join(words)


def is_text_answer(gold: str) -> bool:
    """A gold answer made of words (``Tuesday``, ``\\text{no solution}``), not mathematics."""
    plain = _TEXT_CMD_RE.sub(r"\1", gold).strip()
    return bool(_TEXT_RE.match(plain)) and len(plain.replace(" ", "")) >= 2


def _split_top(text: str, sep: str) -> list[str]:
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i].strip())
            start = i + len(sep)
            i += len(sep)
            continue
        i += 1
    parts.append(text[start:].strip())
    return parts


def _structure(text: str) -> tuple[str, list[str]] | None:
    """Classify a container answer: (kind, elements), or None for a scalar."""
    match = _MATRIX_RE.match(text)
    if match:
        rows = [r for r in re.split(r"\\\\", match.group(2)) if r.strip()]
        cells = [[c.strip() for c in row.split("&")] for row in rows]
        return f"matrix{len(cells)}x{len(cells[0])}", [c for row in cells for c in row]
    if "\\cup" in text and len(_split_top(text, "\\cup")) > 1:
        return "union", _split_top(text, "\\cup")
    if text.startswith("\\{") and text.endswith("\\}"):
        return "set", [e for e in _split_top(text[2:-2], ",") if e]
    if text[:1] in "([" and text[-1:] in ")]" and _closes_at_end(text):
        inner = _split_top(text[1:-1], ",")
        if len(inner) >= 2:
            return text[0] + text[-1], inner
    parts = _split_top(text, ",")
    if len(parts) >= 2 and all(parts):
        return "list", parts
    return None


def _closes_at_end(text: str) -> bool:
    depth = 0
    for i, ch in enumerate(text):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if depth == 0 and i < len(text) - 1:
            return False
    return depth == 0


def _match_unordered(preds: list[str], golds: list[str]) -> bool:
    preds, golds = list(dict.fromkeys(preds)), list(dict.fromkeys(golds))
    if len(preds) != len(golds):
        return False
    unused = list(preds)
    for g in golds:
        hit = next((p for p in unused if answers_equal(p, g)), None)
        if hit is None:
            return False
        unused.remove(hit)
    return True


def _structures_equal(p: tuple[str, list[str]], g: tuple[str, list[str]]) -> bool:
    kinds = {p[0], g[0]}
    if kinds <= {"set", "list"} or kinds == {"union"}:
        return _match_unordered(p[1], g[1])
    if p[0] != g[0] or len(p[1]) != len(g[1]):
        return False
    return all(answers_equal(pe, ge) for pe, ge in zip(p[1], g[1]))


def _strip_assignment(text: str) -> tuple[str | None, str]:
    match = _VAR_EQ_RE.match(text)
    if match and "=" not in match.group(2):
        return match.group(1), match.group(2).strip()
    return None, text


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
    if pred == gold:
        return True
    if is_text_answer(gold):
        return _text_key(pred) == _text_key(gold)
    pred_var, pred_rhs = _strip_assignment(pred)
    gold_var, gold_rhs = _strip_assignment(gold)
    if pred_var and gold_var and pred_var != gold_var:
        return False
    if pred_var and not gold_var and "=" in gold:
        return _symbolic_equal(pred, gold)
    pred, gold = pred_rhs, gold_rhs
    if pred == gold:
        return True
    gold_num = parse_number(gold)
    if gold_num is not None:
        pred_num = parse_number(pred, decimal_comma=True)
        if pred_num is not None:
            return numbers_equal(pred_num, gold_num)
    pred_struct, gold_struct = _structure(pred), _structure(gold)
    if "=" in pred and "=" not in gold and not pred_struct:
        pred = pred.rsplit("=", 1)[1].strip()  # worked answer "3 + 4 = 7": judge what it equals
        return bool(pred) and answers_equal(pred, gold)
    if pred_struct or gold_struct:
        if pred_struct and gold_struct:
            return _structures_equal(pred_struct, gold_struct)
        return _relation_vs_interval(pred, gold, pred_struct, gold_struct)
    return _symbolic_equal(pred, gold, gold_num)


def _relation_vs_interval(pred: str, gold: str, ps: object, gs: object) -> bool:
    """``x \\le 3`` against ``(-\\infty, 3]``: the only scalar/container pair that may agree."""
    scalar = gold if ps else pred
    if not re.search(r"<|>|\\le|\\ge|\\lt|\\gt", scalar):
        return False
    return _symbolic_equal(pred, gold, None, allow_set_relation=True)


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
        return _constants_equal(p, g, pred_num, gold_num)
    return bool(
        verify(
            g, p, float_rounding=10, timeout_seconds=None, strict=True,
            allow_set_relation_comp=allow_set_relation,
        )
    )


def _as_number_expr(number: Number):
    import sympy

    return sympy.Rational(number.value.numerator, number.value.denominator)


def _is_constant(expr) -> bool:
    import sympy

    return isinstance(expr, sympy.Expr) and not expr.free_symbols


def _constants_equal(p, g, pred_num: Number | None, gold_num: Number | None) -> bool:
    """Exact constants: equal when their difference vanishes to 40 digits. A decimal literal
    with 3+ significant digits may round or truncate a non-terminating value (3.14 for pi),
    never a terminating one (0.1 is not 0.1000001)."""
    import sympy

    try:
        diff = complex(sympy.N(p - g, 50))
        scale = max(1.0, abs(complex(sympy.N(g, 20))))
    except (TypeError, ValueError, ArithmeticError):
        return False
    if abs(diff) <= 1e-40 * scale:
        return True
    for num, other in ((pred_num, g), (gold_num, p)):
        if num is None or num.decimals is None or not other.is_real:
            continue
        if isinstance(other, sympy.Rational) and _terminates(Fraction(int(other.p), int(other.q))):
            continue
        try:
            exact = Fraction(str(sympy.N(other, 60)))
        except (TypeError, ValueError):
            continue
        if rounds_to(num, exact):
            return True
    return False


def gold_answer(gold: str) -> str:
    """The gold answer without ``$`` or a ``\\boxed{}`` wrapper."""
    boxes = boxed_contents(gold)
    return boxes[-1] if boxes else gold.strip().strip("$").strip()


def grade_text(response: str, gold: str) -> bool:
    """Grade one response (bare answer or whole completion) against a gold answer.

    >>> grade_text("<think>2+2</think><answer>4</answer>", "4")
    True
    >>> grade_text("so the answer is (B)", "B"), grade_text("3 + 4 =", "7")
    (True, False)
    """
    gold = normalise(gold_answer(gold))
    choice = _CHOICE_GOLD_RE.match(_TEXT_CMD_RE.sub(r"\1", gold).strip())
    if choice:
        return extract_choice(response) == choice.group(1)
    pred = extract_answer(response)
    if pred is not None and answers_equal(pred, gold):
        return True
    gold_struct = _structure(gold)
    boxes = all_boxes(response)
    if gold_struct and len(boxes) >= 2 and len(boxes) == len(gold_struct[1]):
        return answers_equal(", ".join(boxes), gold)  # several boxes: \boxed{2}, \boxed{3}
    return False
