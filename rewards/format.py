"""R1 template format rewards: ``<think> reasoning </think> <answer> answer </answer>``."""

from __future__ import annotations

from typing import Any

from rewards._text import ThinkOpened, check_think_opened, completion_text, prompt_opens_think
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


def _checks(completions: list[Any], prompts: list[Any], setting: ThinkOpened) -> list[tuple]:
    prompts = list(prompts) if prompts is not None else [None] * len(completions)
    return [
        format_checks(completion_text(c), think_opened=prompt_opens_think(p, setting))
        for c, p in zip(completions, prompts, strict=True)
    ]


@register("format")
class Format:
    """1.0 only for a well-formed R1 completion (each tag once, non-empty blocks, only
    whitespace around), else 0.0.

    ``think_opened="auto"`` (default) expects the completion to start inside the think block
    when its prompt ends in ``<think>`` (R1-distill chat templates add it); True or False
    force it for every row.

    >>> Format()(["<think>add</think> <answer>4</answer>", "<answer>4</answer>"],
    ...          prompts=["q", "q"])
    [1.0, 0.0]
    >>> Format()(["add</think><answer>4</answer>"], prompts=["q<think>"])
    [1.0]
    """

    def __init__(self, think_opened: ThinkOpened = "auto") -> None:
        self.think_opened = check_think_opened(think_opened, "format")

    def __call__(
        self, completions: list[Any], *, prompts: list[Any], **columns: Any
    ) -> list[float | None]:
        return [1.0 if all(c) else 0.0 for c in _checks(completions, prompts, self.think_opened)]


@register("format_soft")
class FormatSoft:
    """Partial credit: a quarter for each of the four ``format_checks``.

    >>> FormatSoft()(["<think>r</think> so <answer>4</answer>", "4"], prompts=["q", "q"])
    [0.75, 0.0]
    """

    def __init__(self, think_opened: ThinkOpened = "auto") -> None:
        self.think_opened = check_think_opened(think_opened, "format_soft")

    def __call__(
        self, completions: list[Any], *, prompts: list[Any], **columns: Any
    ) -> list[float | None]:
        return [sum(c) / 4 for c in _checks(completions, prompts, self.think_opened)]
