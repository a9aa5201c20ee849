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
        ["<think>Add them up</think><answer>4</answer>", "<think> 2 + 2 = 4 </think><answer>4</answer>",
         "no think block", "<think>加起来</think><answer>4</answer>"],
        prompts=["q"] * 4, language=[None, "en", "en", "zh-CN"],
    )
    assert scores == [1.0, 0.0, 0.0, 1.0]
    assert get("language_consistency")(["<think>hi there</think>"], prompts=["q"]) == [None]
    opened = get("language_consistency", language="en", think_opened=True)
    assert opened(["Add them up</think><answer>4</answer>"], prompts=["q<think>"]) == [1.0]
    assert language_code("English") == "en" and language_code("zh_Hans") == "zh"
