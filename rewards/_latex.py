"""LaTeX clean-up that never changes a value, and the splitting of answers into parts."""

from __future__ import annotations

import functools
import re

from rewards._numbers import parse_number

_REPLACEMENTS = [
    ("\\left", ""),
    ("\\right", ""),
    ("\\displaystyle", ""),
    ("\\dfrac", "\\frac"),
    ("\\tfrac", "\\frac"),
    ("\\cfrac", "\\frac"),
    ("−", "-"),
    ("\\leq", "\\le"),
    ("\\geq", "\\ge"),
    ("≤", "\\le"),
    ("≥", "\\ge"),
    ("\\mathrm{i}", "i"),
    ("\\imath", "i"),
    ("\\infin", "\\infty"),
    ("∞", "\\infty"),
    ("√", "\\sqrt"),
    ("π", "\\pi"),
    ("\\lbrace", "\\{"),
    ("\\rbrace", "\\}"),
    ("\\textnormal", "\\text"),
    ("\\lt", "<"),
    ("\\gt", ">"),
    ("!=", "\\neq"),
    (">=", "\\ge"),
    ("<=", "\\le"),
    ("\\dots", "\\ldots"),
    ("\\cdots", "\\ldots"),
]
# A backslash pair before a command name is an escaping artefact ("\\frac" for "\frac"),
# not a LaTeX line break, outside environments (where "\\" separates rows).
_DOUBLE_BACKSLASH_RE = re.compile(r"\\\\(?=[A-Za-z{])")
_ENV_RE = re.compile(r"\\begin\{")
_LIST_WORD_RE = re.compile(
    r"\\text\{\s*(?:and|or)\s*\}|(?<![A-Za-z\\])(?:and|or)(?![a-z])|\\q?quad"
)
_WRAPPED_ENV_RE = re.compile(r"^[(\[]\s*(\\begin\{(\w+)\}.*\\end\{\2\})\s*[)\]]$", re.DOTALL)


@functools.lru_cache(maxsize=4096)
def normalise(text: str) -> str:
    r"""Cosmetic LaTeX normalisation that never changes a value.

    >>> normalise(r"$\left( \dfrac{1}{2},\ 3 \right)$")
    '(\\frac{1}{2}, 3)'
    >>> normalise(r"32,\! 349"), normalise(r"\\frac{1}{2}")
    ('32,349', '\\frac{1}{2}')
    """
    text = text.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if text.startswith(left) and text.endswith(right) and len(text) > len(left) + len(right):
            text = text[len(left) : -len(right)].strip()
            break
    text = text.strip("$").strip()
    if not _ENV_RE.search(text):
        text = _DOUBLE_BACKSLASH_RE.sub(r"\\", text)
    text = re.sub(r"\\!\s*", "", text)  # a negative thin space also eats the space after it
    for old, new in _REPLACEMENTS:
        text = text.replace(old, new)
    text = re.sub(r"(?<!\\)\\[ ,;:]|~", " ", text) if not parse_number(text) else text
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"([(\[{])\s+", r"\1", text)
    text = re.sub(r"\s+([)\]}])", r"\1", text)
    text = text.rstrip(".").strip()
    while text.startswith("{") and text.endswith("}") and closes_at_end(text):
        text = text[1:-1].strip()  # a bare group {1,3} only groups
    match = _WRAPPED_ENV_RE.match(text)
    return match.group(1) if match else text


def closes_at_end(text: str) -> bool:
    """Does the bracket opening at ``text[0]`` close at the last character?"""
    depth = 0
    for i, ch in enumerate(text):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if depth == 0 and i < len(text) - 1:
            return False
    return depth == 0


def split_top(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside brackets and braces."""
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


def list_items(text: str) -> list[str]:
    """The items of a written list: commas, semicolons, "and", "or" and ``\\quad`` separate.

    >>> list_items(r"6 \\text{ and } 8"), list_items("19, 46, and 82")
    (['6', '8'], ['19', '46', '82'])
    """
    text = _LIST_WORD_RE.sub(",", text) if _LIST_WORD_RE.search(text) else text
    items = []
    for part in split_top(text, ";"):
        items.extend(split_top(part, ","))
    return [i for i in items if i]
