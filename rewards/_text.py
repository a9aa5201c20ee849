"""Small text helpers shared by the rewards: completion text, R1 blocks, LaTeX groups."""

from __future__ import annotations

import re
from typing import Any

_THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def completion_text(completion: str | list[dict[str, Any]]) -> str:
    """The text of a completion: the string itself, or the last assistant message's content.

    >>> completion_text("hi")
    'hi'
    >>> completion_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
    'a'
    """
    if isinstance(completion, str):
        return completion
    for message in reversed(completion):
        if message.get("role", "assistant") == "assistant":
            content = message.get("content") or ""
            if isinstance(content, list):  # multimodal-style content parts
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content)
    return ""


ThinkOpened = bool | str  # True, False or "auto"


def check_think_opened(value: object, reward: str) -> ThinkOpened:
    """Validate a reward's ``think_opened`` param: True, False or "auto"."""
    if value is True or value is False or value == "auto":
        return value  # type: ignore[return-value]
    raise ValueError(
        f'{reward}: think_opened must be true, false or "auto" (detect a prompt that ends '
        f"in <think>), got {value!r}"
    )


def prompt_opens_think(prompt: str | list[dict[str, Any]] | None, setting: ThinkOpened) -> bool:
    """Whether the completion of ``prompt`` starts inside a think block.

    ``setting`` True or False decides; "auto" looks at the prompt: chat templates of
    R1-distilled models end the prompt with ``<think>`` (a string prompt, or the content of
    a chat prompt's last message, ending in it).

    >>> prompt_opens_think("<|Assistant|><think>\\n", "auto"), prompt_opens_think("Q:", "auto")
    (True, False)
    """
    if setting != "auto":
        return bool(setting)
    if isinstance(prompt, list) and prompt and isinstance(prompt[-1], dict):
        prompt = prompt[-1].get("content")
    return isinstance(prompt, str) and prompt.rstrip().endswith("<think>")


def think_block(text: str, *, think_opened: bool = False) -> str | None:
    """Content of the first think block, or None if there is none.

    With ``think_opened`` the prompt already ended with ``<think>``, so the block runs from
    the start of the completion to the first ``</think>``.

    >>> think_block("<think>a b</think><answer>1</answer>")
    'a b'
    >>> think_block("a b</think> 1", think_opened=True)
    'a b'
    """
    if think_opened:
        end = text.find("</think>")
        return text[:end] if end >= 0 else None
    match = _THINK_RE.search(text)
    return match.group(1) if match else None


def answer_block(text: str) -> str | None:
    """Content of the last ``<answer>...</answer>`` block, or None.

    >>> answer_block("<think>x</think><answer> 42 </answer>")
    ' 42 '
    """
    matches = _ANSWER_RE.findall(text)
    return matches[-1] if matches else None


def braced_group(text: str, start: int) -> tuple[str, int] | None:
    """The content of the ``{...}`` group opening at ``text[start]`` and the index after it.

    >>> braced_group("{a{b}c}d", 0)
    ('a{b}c', 7)
    """
    if start >= len(text) or text[start] != "{":
        return None
    depth = 0
    for i in range(start, len(text)):
        ch = text[i]
        if ch == "\\":
            continue
        if ch == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif ch == "}" and (i == 0 or text[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
    return None
