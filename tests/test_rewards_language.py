from __future__ import annotations

import pytest

from rewards import get
from rewards.language import language_code, target_share


def test_script_decides_chinese_vs_english():
    # 3 English words + 8 Han characters; numbers and $...$ math are not words
    text = "First compute 先计算两个数的和 $x^2+1$ = 5 then"
    assert target_share(text, "en") == pytest.approx(3 / 11)
    assert target_share(text, "zh") == pytest.approx(8 / 11)


def test_latin_languages_use_language_id():
    en = "We first add the two numbers and then divide the result by three."
    fr = "Nous additionnons d'abord les deux nombres puis divisons le résultat par trois."
    assert target_share(en, "en") == 1.0
    assert target_share(fr, "en") == 0.0
    assert target_share(fr, "fr") == 1.0
    mixed = en + " " + fr
    assert 0.4 < target_share(mixed, "en") < 0.6


def test_japanese_counts_kana_and_kanji_and_cyrillic():
    assert target_share("まず二つの数を足す", "ja") == 1.0
    assert target_share("Сначала сложим два числа", "ru") == 1.0
    assert target_share("Сначала сложим два числа", "en") == 0.0


def test_reward_columns_config_and_empty():
    reward = get("language_consistency", language="en")
    scores = reward(
        [
            "<think>Add them up</think><answer>4</answer>",
            "<think> 2 + 2 = 4 </think><answer>4</answer>",
            "no think block",
            "<think>加起来</think><answer>4</answer>",
        ],
        prompts=["q"] * 4,
        language=[None, "en", "en", "zh-CN"],
    )
    assert scores == [1.0, 0.0, 0.0, 1.0]
    assert get("language_consistency")(["<think>hi there</think>"], prompts=["q"]) == [None]
    opened = get("language_consistency", language="en", think_opened=True)
    assert opened(["Add them up</think><answer>4</answer>"], prompts=["q<think>"]) == [1.0]
    assert language_code("English") == "en" and language_code("zh_Hans") == "zh"


def test_words_in_text_commands_count_and_latex_does_not():
    # the only words are inside \text{} in math: they are the chain of thought's language
    assert target_share(r"$x = 2 \text{ so } y = 3 \text{ hence the answer}$", "en") == 1.0
    assert target_share(r"$x = 2 \text{ 所以 } y = 3$", "zh") == 1.0
    assert target_share(r"$x = 2 \text{ 所以 } y = 3$", "en") == 0.0
    # commands, environments and function names are not words
    assert target_share(r"\frac{a}{b} \cdot \sqrt{x}, \sin x = \cos y", "en") == 0.0
    assert target_share(r"\begin{aligned} x &= 1 \end{aligned} then we stop here", "en") == 1.0


def test_equations_with_a_few_words_are_judged_on_those_words():
    # one or two words between equations are identified together, not one by one
    cot = "12*7 = 84\nthen 84+16 = 100\nok so 100"
    assert target_share(cot, "en") == 1.0
    reward = get("language_consistency", language="en")
    assert reward([f"<think>{cot}</think><answer>100</answer>"], prompts=["q"]) == [1.0]
    assert target_share("x = 2\ndonc y = 4\nalors z = 6", "en") == 0.0
