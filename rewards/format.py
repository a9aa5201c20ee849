"""R1 template format rewards: ``<think> reasoning </think> <answer> answer </answer>``."""

from __future__ import annotations

from typing import Any

from rewards._text import completion_text
from rewards.registry import register

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def format_checks(text: str, *, think_opened: bool = False) -> tuple[bool, bool, bool, bool]:
    """Four checks, each worth a quarter in ``format_soft``:

    1. one think block with non-empty reasoning (with ``think_opened`` the prompt already
       ended in ``<think>``: the completion must not open another);
    2. one answer block with a non-empty answer;
    3. the think block closes before the answer block opens;
    4. nothing but whitespace before the think block, between the blocks and after the
       answer block.

    >>> format_checks("<think>r</think>\\n<answer>4</answer>")
    (True, True, True, True)
    >>> format_checks("<think>r</think> so <answer>4</answer> ok")
    (True, True, True, False)
    """
    counts = {tag: text.count(tag) for tag in _TAGS}
    t_open = 0 if think_opened else text.find("<think>")
    t_body = 0 if think_opened else t_open + len("<think>")
    t_close = text.find("</think>")
    a_open, a_close = text.find("<answer>"), text.find("</answer>")
    think_ok = (
        counts["<think>"] == (0 if think_opened else 1)
        and counts["</think>"] == 1
        and 0 <= t_open < t_close
        and bool(text[t_body:t_close].strip())
    )
    answer_ok = (
        counts["<answer>"] == 1
        and counts["</answer>"] == 1
        and 0 <= a_open < a_close
        and bool(text[a_open + len("<answer>") : a_close].strip())
    )
    order_ok = 0 <= t_close < a_open
    stripped = text.strip()
    outside_ok = (
        order_ok
        and (think_opened or stripped.startswith("<think>"))
        and stripped.endswith("</answer>")
        and not text[t_close + len("</think>") : a_open].strip()
    )
    return think_ok, answer_ok, order_ok, outside_ok


@register("format")
class Format:
    """1.0 only for a well-formed R1 completion (each tag once, non-empty blocks, only
    whitespace around), else 0.0.

    >>> Format()(["<think>add</think> <answer>4</answer>", "<answer>4</answer>"], prompts=["q", "q"])
    [1.0, 0.0]
    >>> Format(think_opened=True)(["add</think><answer>4</answer>"], prompts=["q<think>"])
    [1.0]
    """

    def __init__(self, think_opened: bool = False) -> None:
        self.think_opened = think_opened

    def __call__(self, completions: list[Any], *, prompts: list[Any], **columns: Any) -> list[float | None]:
        return [
            1.0 if all(format_checks(completion_text(c), think_opened=self.think_opened)) else 0.0
            for c in completions
        ]


@register("format_soft")
class FormatSoft:
    """Partial credit: a quarter for each of the four ``format_checks``.

    >>> FormatSoft()(["<think>r</think> so <answer>4</answer>", "4"], prompts=["q", "q"])
    [0.75, 0.0]
    """

    def __init__(self, think_opened: bool = False) -> None:
        self.think_opened = think_opened

    def __call__(self, completions: list[Any], *, prompts: list[Any], **columns: Any) -> list[float | None]:
        return [
            sum(format_checks(completion_text(c), think_opened=self.think_opened)) / 4
            for c in completions
        ]
