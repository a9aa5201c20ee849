"""Find the final answer in a model response.

Order (issue 3): the ``<answer>`` block if present, else the last ``\\boxed{}``/``\\fbox{}``,
else a "final answer is" phrase, else the whole text when it is a bare answer, else the
last number.
"""

from __future__ import annotations

import re

from rewards._text import answer_block, boxed_contents

_PHRASE_RE = re.compile(
    r"\banswer\s*(?:is\s*:?|:|=)\s*(.+?)(?:\.(?!\d)|\n|$)",
    re.IGNORECASE,
)
_NUMBER_RE = re.compile(r"-?\d+(?:[,.]\d+)*(?:\s*/\s*\d+)?")
_PROSE_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
_CHOICE_PATTERNS = [
    re.compile(r"^\s*\(?\s*([A-J])\s*\)?\s*(?:[.):]|$)"),  # "B", "(B)", "B)", "B. 42"
]
_CHOICE_PHRASE_RE = re.compile(
    r"(?i:answer|option|choice|choose|select|pick)\s*(?i:is)?\s*:?\s*(?i:option\s*|choice\s*)?"
    r"(?:\*\*|\\textbf\{|\\text\{|\\mathrm\{)?\s*\(?([A-J])\)?(?![A-Za-z])",
)
_CHOICE_PAREN_RE = re.compile(r"\(([A-J])\)|\*\*([A-J])\*\*")
_WRAPPER_RE = re.compile(r"^\\(?:text|textbf|mathrm|mathbf|mbox)\{(.*)\}$", re.DOTALL)


def _clean(answer: str) -> str:
    answer = answer.strip()
    for pair in (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**")):
        if answer.startswith(pair[0]) and answer.endswith(pair[1]) and len(answer) > 2 * len(pair[0]):
            answer = answer[len(pair[0]) : -len(pair[1])].strip()
    return answer.rstrip(".").strip()


def is_bare(text: str) -> bool:
    """A short text with at most two prose words is taken as a bare answer.

    >>> is_bare("x = 3"), is_bare("The total is 42 apples, since 40 + 2 = 42")
    (True, False)
    """
    text = text.strip()
    return len(text) <= 120 and "\n" not in text and len(_PROSE_WORD_RE.findall(text)) <= 2


def _region_answers(region: str) -> list[str]:
    boxes = boxed_contents(region)
    if boxes:
        return [_clean(boxes[-1])]
    phrases = _PHRASE_RE.findall(region)
    if phrases and _clean(phrases[-1]):
        phrase = phrases[-1]
        for _ in range(3):  # "Final Answer: The final answer is 5" -> "5"
            inner = _PHRASE_RE.search(phrase)
            if inner is None:
                break
            phrase = inner.group(1)
        return [_clean(phrase)]
    if is_bare(region):
        return [_clean(region)]
    numbers = _NUMBER_RE.findall(region)
    return [numbers[-1].strip()] if numbers else []


def extract_answer(response: str) -> str | None:
    """The final answer of ``response`` (a bare answer or a whole completion), or None.

    >>> extract_answer(r"<think>...</think><answer>The area is $\\boxed{12}$.</answer>")
    '12'
    >>> extract_answer("So we add them. The final answer is 3.5.")
    '3.5'
    >>> extract_answer("We get 40 apples and then 2 more, so 42 in total")
    '42'
    >>> extract_answer(r"\\{1, 2\\}")
    '\\\\{1, 2\\\\}'
    """
    block = answer_block(response)
    if block is not None:
        found = _region_answers(block)
    else:
        found = _region_answers(response)
    return found[0] if found and found[0] else None


def all_boxes(response: str) -> list[str]:
    """Every boxed answer in the answer block (or the whole response), cleaned."""
    block = answer_block(response)
    return [_clean(b) for b in boxed_contents(block if block is not None else response)]


def _unwrap(text: str) -> str:
    text = _clean(text)
    match = _WRAPPER_RE.match(text)
    return match.group(1).strip() if match else text


def extract_choice(response: str) -> str | None:
    """The multiple-choice letter (A-J) a response picks, or None.

    >>> extract_choice("Comparing the options, the answer is (B).")
    'B'
    >>> extract_choice(r"\\boxed{\\text{C}}"), extract_choice("D) 42")
    ('C', 'D')
    """
    block = answer_block(response)
    region = block if block is not None else response
    candidates = [_unwrap(b) for b in boxed_contents(region)][-1:]
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
