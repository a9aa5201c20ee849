"""Registry, RewardSpec validation, weighted combination, metrics and the error policy."""

from __future__ import annotations

import math
import pickle

import pytest

import rewards
from rewards import RewardError, RewardSet, RewardSpec

BUILTINS = {
    "accuracy",
    "format",
    "format_soft",
    "language_consistency",
    "overlong_penalty",
    "cosine_accuracy",
    "reward_model",
    "code",
}


def half_if_even(completions, *, prompts, **columns):
    """Custom reward used through the ``module:function`` form: 0.5 for even-length text,
    None for empty text."""
    return [None if not c else (0.5 if len(c) % 2 == 0 else 0.0) for c in completions]


def explode_on_b(completions, *, prompts, **columns):
    """Raises on any completion containing 'b'."""
    if any("b" in c for c in completions):
        raise ZeroDivisionError("b is not allowed")
    return [1.0] * len(completions)


def test_builtins_registered():
    assert BUILTINS <= set(rewards.names())


def test_unknown_name_is_one_line_listing_valid_names():
    with pytest.raises(ValueError) as err:
        RewardSpec("acuracy")
    message = str(err.value)
    assert "\n" not in message and "acuracy" in message
    assert all(name in message for name in BUILTINS)


def test_spec_validation():
    with pytest.raises(ValueError, match="finite"):
        RewardSpec("format", weight=math.nan)
    with pytest.raises(ValueError, match="unknown keys"):
        RewardSpec.from_dict({"name": "format", "wieght": 2})
    with pytest.raises(ValueError, match="cannot load custom reward"):
        RewardSpec("tests.test_rewards_combine:nope")
    with pytest.raises(ValueError, match="bad params"):
        rewards.get("format", nonsense=1)
    with pytest.raises(ValueError, match="takes no params"):
        rewards.get("tests.test_rewards_combine:half_if_even", x=1)


def test_weighted_sum_none_and_metrics():
    rs = RewardSet(
        [
            {"name": "format", "weight": 2.0},
            {"name": "tests.test_rewards_combine:half_if_even", "weight": -1.0},
        ]
    )
    good = "<think>ok!</think><answer>1</answer>"  # 36 characters: even
    out = rs([good, "", "abc"], prompts=["q"] * 3)
    # row 0: 2*1 + (-1)*0.5 = 1.5; row 1: 2*0 + None (adds 0) = 0; row 2 (odd): 0 + -1*0 = 0
    assert out.total == [1.5, 0.0, 0.0]
    assert out.per_reward["half_if_even"] == [0.5, None, 0.0]
    m = out.metrics
    assert m["reward/half_if_even/mean"] == pytest.approx(0.25)  # mean of 0.5 and 0.0 only
    assert m["reward/half_if_even/std"] == pytest.approx(0.25)
    assert m["reward/half_if_even/none_rate"] == pytest.approx(1 / 3)
    assert m["reward/format/mean"] == pytest.approx(1 / 3)
    assert m["reward/format/errors"] == 0.0
    assert m["reward/total/mean"] == pytest.approx(0.5)


def test_error_fail_names_reward_and_row():
    rs = RewardSet([{"name": "tests.test_rewards_combine:explode_on_b"}])
    with pytest.raises(
        RewardError, match=r"reward 'explode_on_b' failed on row 1: ZeroDivisionError: b is not"
    ):
        rs(["a", "b", "c"], prompts=["q"] * 3)


def test_error_skip_gives_none_and_counts():
    rs = RewardSet(
        [{"name": "tests.test_rewards_combine:explode_on_b"}, {"name": "format"}], on_error="skip"
    )
    out = rs(["a", "b", "c"], prompts=["q"] * 3)
    assert out.per_reward["explode_on_b"] == [1.0, None, 1.0]
    assert out.metrics["reward/explode_on_b/errors"] == 1.0
    assert out.total == [1.0, 0.0, 1.0]


def test_malformed_output_is_an_error():
    rs = RewardSet([{"name": "tests.test_rewards_combine:bad_length"}])
    with pytest.raises(RewardError, match="bad_length"):
        rs(["a", "b"], prompts=["q", "q"])


def bad_length(completions, *, prompts, **columns):
    return [1.0]


def test_duplicate_needs_alias_and_set_pickles():
    with pytest.raises(ValueError, match="alias"):
        RewardSet([{"name": "format"}, {"name": "format"}])
    rs = RewardSet(
        [
            {"name": "format"},
            {"name": "format", "alias": "format_opened", "params": {"think_opened": True}},
        ]
    )
    clone = pickle.loads(pickle.dumps(rs))
    out = clone(["x</think><answer>1</answer>"], prompts=["q"])
    assert out.per_reward == {"format": [0.0], "format_opened": [1.0]}


def test_register_rejects_a_second_object_under_one_name():
    with pytest.raises(ValueError, match="already registered"):
        rewards.register("format")(half_if_even)


def test_tasks_route_rows_to_their_rewards():
    rs = RewardSet(
        [RewardSpec("accuracy", tasks=["math"]), RewardSpec("format_soft", tasks=["general"])]
    )
    out = rs(
        ["<think>a</think><answer>4</answer>", "<think>a</think><answer>hi</answer>", "x"],
        prompts=["2+2", "hi", "2+2"],
        answer=["4", None, "5"],
        task=["math", "general", "math"],
    )
    assert out.per_reward["accuracy"] == [1.0, None, 0.0]
    assert out.per_reward["format_soft"] == [None, 1.0, None]
    assert out.total == [1.0, 1.0, 0.0]
    with pytest.raises(RewardError, match="no 'task' column"):
        rs(["x"], prompts=["q"], answer=["1"])


def test_merged_parts_equal_one_call_counts_summed():
    """Scoring rows in parts (as the trainer does while generation runs) changes nothing:
    values, means, stds and none rates match one call; error and timeout counts add up."""
    rs = RewardSet(
        [
            RewardSpec("accuracy", tasks=["math"]),
            RewardSpec("format_soft", 0.5),
            RewardSpec("tests.test_rewards_combine:explode_on_b", alias="strict"),
            RewardSpec("tests.test_rewards_combine:half_if_even", alias="even"),
        ],
        on_error="skip",
    )
    texts = [
        "<think>a</think><answer>4</answer>",
        "b",
        "<answer>5</answer>",
        "",
        "<answer>b</answer>",
        "7",
    ]
    columns = {
        "answer": ["4", None, "4", "1", None, "7"],
        "task": ["math", "chat", "math", "math", "chat", "math"],
    }
    whole = rs(texts, prompts=["q"] * 6, **columns)
    parts = [[3], [0, 5], [1, 2, 4]]  # the order rows might finish in
    scored = [
        (
            rows,
            rs(
                [texts[i] for i in rows],
                prompts=["q"] * len(rows),
                **{k: [v[i] for i in rows] for k, v in columns.items()},
            ),
        )
        for rows in parts
    ]
    merged = rewards.merge_outputs(scored, 6)
    assert merged.total == whole.total and merged.per_reward == whole.per_reward
    assert merged.metrics == whole.metrics
    assert merged.metrics["reward/strict/errors"] == 2.0  # rows 1 and 4, in different parts
    assert merged.metrics["reward/accuracy/none_rate"] == pytest.approx(2 / 6)
