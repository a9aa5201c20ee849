from __future__ import annotations

import math

import pytest

from rewards import get
from rewards.length import cosine_schedule


def test_overlong_tokens_from_completion_ids():
    reward = get("overlong_penalty", max_length=100, buffer=20)
    ids = [[0] * n for n in (50, 80, 90, 100, 101)]
    # (80 - L) / 20 inside the buffer (80, 100]; -1 past 100
    assert reward(["x"] * 5, prompts=["q"] * 5, completion_ids=ids) == [0.0, 0.0, -0.5, -1.0, -1.0]
    assert reward(["x"], prompts=["q"], completion_length=[95]) == [-0.75]
    with pytest.raises(ValueError, match="completion_ids"):
        reward(["x"], prompts=["q"])
    with pytest.raises(ValueError, match="buffer"):
        get("overlong_penalty", max_length=10, buffer=20)


def test_cosine_schedule_midpoint():
    # cos(pi/2) = 0: halfway between the two ends
    assert cosine_schedule(50, 100, 1.0, 0.5) == pytest.approx(0.75)
    assert cosine_schedule(25, 100, 1.0, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_cosine_accuracy_shape():
    reward = get("cosine_accuracy", max_length=100)
    ids = [[0] * 50, [0] * 50, [0] * 101, [0] * 10]
    scores = reward(
        ["4", "5", "4", "4"], prompts=["q"] * 4, answer=["4", "4", "4", None], completion_ids=ids
    )
    # correct at L/T = 0.5 -> 0.75; wrong at 0.5 -> -0.75; over the limit -> exceed (-1);
    # no answer -> None
    assert scores[0] == pytest.approx(0.75) and scores[1] == pytest.approx(-0.75)
    assert scores[2:] == [-1.0, None]
    long_wrong, short_wrong = reward(
        ["5", "5"], prompts=["q"] * 2, answer=["4", "4"], completion_ids=[[0] * 90, [0] * 10]
    )
    assert long_wrong > short_wrong  # a longer wrong attempt is punished less
