"""Container answers: matrices, unions, sets, tuples, intervals and written lists.

``structure(text)`` classifies an answer as ``(kind, elements)`` or None for a scalar;
``structures_equal`` compares two of them with an element comparison passed in. A set and a
written list (``1, 2``) compare without order; a tuple or interval compares in order and
only with the same brackets, except that a written list may stand for a tuple in order
(``3, 2`` for ``(3, 2)``). A list of named values (``x = 1, y = 2``) compares by name.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from rewards._latex import closes_at_end, list_items, split_top

Structure = tuple[str, list[str]]
_MATRIX_RE = re.compile(
    r"^\\begin\{([pbvBV]?matrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}$", re.DOTALL
)
_NAMED_RE = re.compile(r"^\s*([^=]+?)\s*=\s*([^=]+)$")


def _expand_pm(items: list[str]) -> list[str]:
    """``a \\pm b`` at the top level of an item stands for two items, ``a+b`` and ``a-b``."""
    out = []
    for item in items:
        parts = split_top(item, "\\pm")
        if len(parts) == 2 and parts[1]:
            head = parts[0]
            out += [f"{head}+{parts[1]}" if head else parts[1], f"{head}-({parts[1]})"]
        else:
            out.append(item)
    return out


def structure(text: str) -> Structure | None:
    """Classify a container answer: (kind, elements), or None for a scalar.

    >>> structure(r"\\{1, 2\\}"), structure("(1, 2]"), structure(r"6 \\text{ and } 8")
    (('set', ['1', '2']), ('(]', ['1', '2']), ('list', ['6', '8']))
    """
    match = _MATRIX_RE.match(text)
    if match and "\\begin{" not in match.group(2):  # one matrix, not a sum or product
        rows = [r for r in re.split(r"\\\\", match.group(2)) if r.strip()]
        cells = [[c.strip() for c in row.split("&")] for row in rows]
        return f"matrix{len(cells)}x{len(cells[0])}", [c for row in cells for c in row]
    if "\\cup" in text and len(split_top(text, "\\cup")) > 1:
        return "union", split_top(text, "\\cup")
    if text.startswith("\\{") and text.endswith("\\}"):
        return "set", _expand_pm([e for e in split_top(text[2:-2], ",") if e])
    if text and text[0] in "([" and text[-1] in ")]" and closes_at_end(text):
        inner = split_top(text[1:-1], ",")
        if len(inner) == 1:
            inner = split_top(text[1:-1], ";")
        if len(inner) >= 2:
            return text[0] + text[-1], inner
    groups = split_top(text, ";")
    if len(groups) >= 2 and all(len(split_top(g, ",")) >= 2 and "=" in g for g in groups):
        # solutions written as assignments, "p=5,q=2; p=7,q=2": each is a tuple of values
        tuples = ["(" + ", ".join(_values(split_top(g, ","))) + ")" for g in groups]
        return "list", tuples
    items = _expand_pm(list_items(text))
    if len(items) >= 2:
        named = [_NAMED_RE.match(i) for i in items]
        if all(named):
            return "named", [f"{m.group(1)}={m.group(2)}" for m in named if m]
        return "list", items
    return None


def _dedupe(items: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for item in items:
        seen.setdefault(re.sub(r"\s+", "", item), item)
    return list(seen.values())


def _match_unordered(preds: list[str], golds: list[str], equal: Callable[[str, str], bool]) -> bool:
    preds, golds = _dedupe(preds), _dedupe(golds)
    if len(preds) != len(golds):
        return False
    unused = list(preds)
    for g in golds:
        hit = next((p for p in unused if equal(p, g)), None)
        if hit is None:
            return False
        unused.remove(hit)
    return True


def _values(items: list[str]) -> list[str]:
    return [i.split("=", 1)[1].strip() for i in items]


def _names_equal(p: list[str], g: list[str], equal: Callable[[str, str], bool]) -> bool:
    """Named lists: by name when the names are distinct (``a_3 = 2, a_{37} = 19`` in any
    order), else as unordered pairs (``p = -1, p = 15/8``)."""

    def key(item: str) -> str:
        return re.sub(r"[\s{}]", "", item.split("=", 1)[0])

    pk, gk = [key(i) for i in p], [key(i) for i in g]
    if len(set(gk)) == len(gk) and sorted(pk) == sorted(gk):
        by_name = dict(zip(pk, _values(p), strict=True))
        return all(equal(by_name[k], v) for k, v in zip(gk, _values(g), strict=True))
    return _match_unordered(p, g, equal)


def structures_equal(p: Structure, g: Structure, equal: Callable[[str, str], bool]) -> bool:
    """Compare two classified answers with ``equal`` for their elements."""
    kinds = {p[0], g[0]}
    if kinds == {"named"}:
        return _names_equal(p[1], g[1], equal)
    if "named" in kinds:  # values of named parts against a plain list or tuple, in order
        p = ("list", _values(p[1])) if p[0] == "named" else p
        g = ("list", _values(g[1])) if g[0] == "named" else g
        kinds = {p[0], g[0]}
    if kinds <= {"set", "list"} or kinds == {"union"}:
        return _match_unordered(p[1], g[1], equal)
    if kinds == {"list", "()"}:
        kinds = {"()"}
    elif p[0] != g[0]:
        return False
    if len(p[1]) != len(g[1]):
        return False
    return all(equal(pe, ge) for pe, ge in zip(p[1], g[1], strict=True))
