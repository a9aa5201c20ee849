"""Find the final answer in a model response.

What is graded (``final_text``): with a think block, only the text after the last
``</think>`` (a think block that never closes has no answer); in that text, the last
``<answer>`` block if there is one, else all of it.

Where the answer is in that text (``region_answer``), first that applies:

1. the last ``\\boxed{}``/``\\fbox{}``, with boxes just before it joined when only list words
   (``,`` ``and`` ``or`` ``\\quad``) separate them; a "final answer is" phrase written after
   the last box wins over it;
2. a "final answer is" phrase: its tail, read again by these rules;
3. the whole text, when it reads as a bare answer (no prose around numbers or math);
4. the last math span (``$...$``, ``\\(...\\)``, ``\\[...\\]``) or number outside math, with
   those just before it joined when only list words separate them.
"""

from __future__ import annotations

import re

from rewards._text import answer_block, braced_group

_PHRASE_RE = re.compile(
    r"\banswer\s*(?:is\s*:?|:|=)\s*(.+?)(?:\.(?!\d)|\n|$)",
    re.IGNORECASE,
)
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*")
# Inline math never spans a line (a lone "$" is a currency sign); display math may.
_MATH_RE = re.compile(
    r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|(?<![\\$])\$((?:\\\$|[^$\n])+?)(?<!\\)\$|\\\(([^\n]+?)\\\)",
    re.DOTALL,
)
_NUMBER_RE = re.compile(r"(?<![A-Za-z_\\\d.])-?\d+(?:(?:,|\.)\d+)*(?:\s*/\s*\d+)?")
_PERCENT_AFTER_RE = re.compile(r"\s*(?:\\%|%|percent(?:age)?\b|pct\b)")
_LIST_WORDS_RE = re.compile(r"\\text\{\s*(and|or)?\s*\}|\\q?quad|\\[,;: ]|\band\b|\bor\b|[,;\s]")
_TEXT_CMD_RE = re.compile(
    r"\\(?:text|textbf|textrm|textnormal|mathrm|mbox|operatorname|begin|end)\s*\{[^{}]*\}"
)
_PROSE_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_CONNECTIVES = {"and", "or"}
_CHOICE_PATTERNS = [
    re.compile(r"^\s*\(?\s*([A-J])\s*\)?\s*(?:[.):]|$)"),  # "B", "(B)", "B)", "B. 42"
]
_CHOICE_PHRASE_RE = re.compile(
    r"(?i:answer|option|choice|choose|select|pick)\s*(?i:is)?\s*:?\s*(?i:option\s*|choice\s*)?"
    r"(?:\*\*|\\textbf\{|\\text\{|\\mathrm\{)?\s*\(?([A-J])\)?(?![A-Za-z])",
)
_CHOICE_PAREN_RE = re.compile(r"\(([A-J])\)|\*\*([A-J])\*\*")
_WRAPPER_RE = re.compile(r"^\\(?:text|textbf|mathrm|mathbf|mbox)\{(.*)\}$", re.DOTALL)
_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**"))


def final_text(response: str) -> str | None:
    """The part of a response that is graded, or None when its reasoning never ends.

    >>> final_text("<think>maybe \\\\boxed{3}</think> so 4")
    ' so 4'
    >>> final_text("<think>still thinking") is None
    True
    >>> final_text("<think>r</think><answer>5</answer> done")
    '5'
    """
    text = after_think(response)
    block = None if text is None else answer_block(text)
    return text if block is None else block


def after_think(response: str) -> str | None:
    """The text after the last ``</think>``; the whole response when it has no think block;
    None when a think block opens and never closes."""
    close = response.rfind("</think>")
    if close >= 0:
        return response[close + len("</think>") :]
    return None if "<think>" in response else response


def clean(answer: str) -> str:
    """Strip one pair of math delimiters (or bold markers) and a final full stop."""
    answer = answer.strip()
    for left, right in _DELIMITERS:
        wrapped = answer.startswith(left) and answer.endswith(right)
        if wrapped and len(answer) > len(left) + len(right):
            answer = answer[len(left) : -len(right)].strip()
            break
    return answer.rstrip(".").strip()


def boxes(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every ``\\boxed{}`` / ``\\fbox{}`` (also ``\\boxed 5``)."""
    found = []
    for match in _BOX_RE.finditer(text):
        pos = match.end()
        group = braced_group(text, pos)
        if group is not None:
            found.append((match.start(), group[1], group[0]))
        elif match.group(0).endswith(" ") and pos < len(text):
            bare = re.match(r"[^\s$.,]+", text[pos:])
            if bare:
                found.append((match.start(), pos + bare.end(), bare.group(0)))
    return [b for b in found if not any(o[0] < b[0] and b[1] <= o[1] for o in found)]


def _is_list_gap(gap: str, unit_words: int = 0) -> bool:
    rest = _LIST_WORDS_RE.sub(" ", gap).replace("$", " ").replace("\\(", " ").replace("\\)", " ")
    rest = rest.replace("\\[", " ").replace("\\]", " ").strip(" .")
    if not unit_words:
        return not rest
    return len(_PROSE_RE.findall(rest)) <= unit_words


def join_trailing(items: list[tuple[int, int, str]], text: str, unit_words: int = 0) -> str:
    """The last item, with the items before it that only list words separate from it
    (and up to ``unit_words`` words, a unit such as "3 papers and 4 bins")."""
    picked = [items[-1]]
    for item in reversed(items[:-1]):
        if not _is_list_gap(text[item[1] : picked[0][0]], unit_words):
            break
        picked.insert(0, item)
    parts = dict.fromkeys(clean(p[2]) for p in picked)  # a repeated box is one answer
    return ", ".join(parts)


def has_prose(text: str) -> bool:
    """Words outside LaTeX commands and ``\\text{}``, other than "and"/"or"."""
    words = _PROSE_RE.findall(_TEXT_CMD_RE.sub(" ", text))
    return any(w.lower() not in _CONNECTIVES for w in words)


def is_bare(text: str) -> bool:
    """A short line that is only an answer: math without prose, or only words (a text answer).

    >>> is_bare("x = 3"), is_bare("Tuesday"), is_bare("The total is 42 apples")
    (True, True, False)
    """
    text = clean(text)
    if len(text) > 160 or "\n" in text or _MATH_RE.search(text) or _BOX_RE.search(text):
        return False
    has_math = bool(re.search(r"\d|\\[A-Za-z]|[=^_<>]", _TEXT_CMD_RE.sub(" ", text)))
    return not (has_prose(text) and has_math)


def _last_item(text: str) -> str | None:
    items = []
    for match in _MATH_RE.finditer(text):
        content = next(g for g in match.groups() if g is not None)
        tail = _PERCENT_AFTER_RE.match(text, match.end())
        items.append(
            (match.start(), tail.end() if tail else match.end(), content + ("\\%" if tail else ""))
        )
    masked = _MATH_RE.sub(lambda m: " " * len(m.group(0)), text)
    for match in _NUMBER_RE.finditer(masked):
        tail = _PERCENT_AFTER_RE.match(masked, match.end())
        items.append(
            (
                match.start(),
                tail.end() if tail else match.end(),
                match.group(0) + ("\\%" if tail else ""),
            )
        )
    if not items:
        return None
    items.sort()
    return join_trailing(items, text)


def region_answer(region: str, depth: int = 0) -> str | None:
    """The final answer of a piece of text (see the module docstring), or None."""
    region = region.strip()
    if not region:
        return None
    found = boxes(region)
    phrase = None
    for phrase in _PHRASE_RE.finditer(region):  # noqa: B007  (the last match is wanted)
        pass
    if found and (phrase is None or phrase.start(1) <= found[-1][0] or depth >= 3):
        return join_trailing(found, region)
    if phrase is not None and depth < 3 and clean(phrase.group(1)):
        return region_answer(phrase.group(1), depth + 1)
    if is_bare(region):
        return clean(region)
    return _last_item(region) or (clean(region) if not has_prose(region) else None)


def extract_answer(response: str) -> str | None:
    """The final answer of ``response`` (a bare answer or a whole completion), or None.

    >>> extract_answer(r"<think>...</think><answer>The area is $\\boxed{12}$.</answer>")
    '12'
    >>> extract_answer("So we add them. The final answer is 3.5.")
    '3.5'
    >>> extract_answer("We get 40 apples and then 2 more, so 42 in total")
    '42'
    >>> extract_answer(r"Final Answer: The largest $n$ is 34.")
    '34'
    >>> extract_answer(r"The roots are $2$ and $-3$.")
    '2, -3'
    """
    text = final_text(response)
    return None if text is None else region_answer(text)


def _unwrap(text: str) -> str:
    text = clean(text)
    match = _WRAPPER_RE.match(text)
    return match.group(1).strip() if match else text


def extract_choice(response: str) -> str | None:
    """The multiple-choice letter (A-J) a response picks, or None.

    >>> extract_choice("Comparing the options, the answer is (B).")
    'B'
    >>> extract_choice(r"\\boxed{\\text{C}}"), extract_choice("D) 42")
    ('C', 'D')
    """
    post = after_think(response)
    if post is None:
        return None
    block = answer_block(post)
    region = post if block is None else block
    candidates = [_unwrap(b[2]) for b in boxes(region)][-1:]
    if block is not None:
        candidates.append(_unwrap(block))
    for candidate in candidates:
        for pattern in _CHOICE_PATTERNS:
            match = pattern.match(candidate)
            if match:
                return match.group(1).upper()
    phrases = _CHOICE_PHRASE_RE.findall(region)
    if phrases:
        return phrases[-1]
    stripped = _unwrap(region)
    if len(stripped) <= 40:
        match = _CHOICE_PATTERNS[0].match(stripped)
        if match:
            return match.group(1)
    marked = _CHOICE_PAREN_RE.findall(region)
    if marked:
        return (marked[-1][0] or marked[-1][1]).upper()
    return None
