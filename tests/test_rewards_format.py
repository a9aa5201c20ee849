from __future__ import annotations

import pytest

from rewards import get
from rewards.format import format_checks

GOOD = "<think>\nAdd 2 and 2.\n</think>\n<answer>\n4\n</answer>\n"


@pytest.mark.parametrize(
    ("text", "strict", "soft"),
    [
        (GOOD, 1.0, 1.0),
        ("  <think>r</think><answer>4</answer>", 1.0, 1.0),
        ("<think></think><answer>4</answer>", 0.0, 0.75),  # empty reasoning fails check 1 only
        ("<think>r</think><answer> </answer>", 0.0, 0.75),  # empty answer fails check 2 only
        ("<think>r</think><answer>4</answer> extra", 0.0, 0.75),
        ("preamble <think>r</think><answer>4</answer>", 0.0, 0.75),
        ("<think>r</think><think>s</think><answer>4</answer>", 0.0, 0.5),  # think twice: 1, 4 fail
        (
            "<think>r</think><answer>4</answer><answer>5</answer>",
            0.0,
            0.75,
        ),  # answer twice: 2 fails
        ("<answer>4</answer><think>r</think>", 0.0, 0.5),  # wrong order: 3, 4 fail
        ("<think>r<answer>4</answer></think>", 0.0, 0.5),  # answer inside think: 3, 4 fail
        ("4", 0.0, 0.0),
    ],
)
def test_format_strict_and_soft(text, strict, soft):
    assert get("format")([text], prompts=["q"]) == [strict]
    assert get("format_soft")([text], prompts=["q"]) == [soft]


def test_think_opened_prompt():
    fmt, soft = get("format", think_opened=True), get("format_soft", think_opened=True)
    assert fmt(["reasoning</think>\n<answer>4</answer>"], prompts=["p<think>"]) == [1.0]
    # a second <think> after the template opened one is malformed
    assert fmt(["<think>reasoning</think><answer>4</answer>"], prompts=["p<think>"]) == [0.0]
    # only check 1 fails: the completion opened a second think block
    assert soft(["<think>reasoning</think><answer>4</answer>"], prompts=["p<think>"]) == [0.75]
    assert fmt(["  </think><answer>4</answer>"], prompts=["p<think>"]) == [0.0]


def test_chat_messages():
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": GOOD}]
    assert get("format")([msgs], prompts=[[msgs[0]]]) == [1.0]
    assert format_checks(GOOD) == (True, True, True, True)


def test_think_opened_auto_reads_the_prompt():
    fmt, soft = get("format"), get("format_soft")
    distill = "<｜User｜>What is 2+2?<｜Assistant｜><think>\n"  # R1-distill template prefill
    opened_right = "Add them.\n</think>\n<answer>4</answer>"
    plain_right = "<think>Add them.</think>\n<answer>4</answer>"
    assert fmt([opened_right, plain_right], prompts=[distill, "What is 2+2?"]) == [1.0, 1.0]
    assert fmt([plain_right], prompts=[distill]) == [0.0]  # a second <think> after the prefill
    assert soft([opened_right], prompts=["What is 2+2?"]) == [0.5]  # no prefill: think fails
    chat = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>\n"}]
    assert fmt([opened_right], prompts=[chat]) == [1.0]
    # True / False still force it, whatever the prompt says
    assert get("format", think_opened=False)([opened_right], prompts=[distill]) == [0.0]
    assert get("format", think_opened=True)([opened_right], prompts=["q"]) == [1.0]
    with pytest.raises(ValueError, match="think_opened"):
        get("format", think_opened="yes")
