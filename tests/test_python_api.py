"""The Python API: GRPOTrainer takes a plain reward function, a list of them or a RewardSet,
and any registered loss type, on the bundled tiny model (transformers engine, real training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from grpo import EngineConfig, GRPOConfig, GRPOTrainer
from grpo.algos import LOSS_AGGREGATIONS, register_loss_aggregation
from grpo.reward import RewardError, RewardFunctions, as_reward_source
from pipelines.data import DataConfig, load_rows
from rewards import RewardSet, RewardSpec


def short(completions, *, prompts, **columns):
    """1 for a completion under 12 characters: varies even for an untrained model."""
    return [1.0 if len(c) < 12 else 0.0 for c in completions]


def has_digit(completions, *, prompts, **columns):
    return [1.0 if any(ch.isdigit() for ch in c) else 0.0 for c in completions]


def answered(completions, *, prompts, answer, **columns):
    """None where the row has no answer: the reward does not apply there."""
    return [None if a is None else float(a in c) for c, a in zip(completions, answer, strict=True)]


# ------------------------------------------------------------------ adapting what the user passes


def test_a_plain_reward_becomes_a_source_named_after_it():
    out = as_reward_source(short)(["ab", "a" * 20], prompts=["q", "q"])
    assert out.total == [1.0, 0.0]
    assert out.per_reward == {"short": [1.0, 0.0]}
    assert out.metrics["reward/short/mean"] == 0.5 and out.metrics["reward/total/mean"] == 0.5


def test_a_list_of_rewards_is_summed_and_none_is_left_out_of_its_mean():
    source = as_reward_source([short, answered])
    out = source(["4", "a" * 20 + "4", "x"], prompts=["q"] * 3, answer=["4", "4", None])
    assert out.total == [2.0, 1.0, 1.0]  # short + answered; answered is None on row 2
    assert out.per_reward["answered"] == [1.0, 1.0, None]
    assert out.metrics["reward/answered/none_rate"] == pytest.approx(1 / 3)
    assert out.metrics["reward/answered/mean"] == 1.0


def test_a_reward_set_passes_through_unchanged():
    reward_set = RewardSet([RewardSpec("format"), RewardSpec("format_soft", 0.5)])
    texts = ["<think>a</think><answer>1</answer>", "1"]
    assert as_reward_source(reward_set)(texts, prompts=["q", "q"]) == reward_set(
        texts, prompts=["q", "q"]
    )


def test_bad_rewards_say_what_is_wrong():
    with pytest.raises(RewardError, match="reward 'half' must return a list of 2 floats"):
        as_reward_source(lambda_named("half", lambda c, **_: [1.0]))(["a", "b"], prompts=["q", "q"])
    with pytest.raises(ValueError, match=r"\['short'\] share a name"):
        RewardFunctions([short, short])
    with pytest.raises(TypeError, match="must be a reward function"):
        as_reward_source("accuracy")


def lambda_named(name, fn):
    fn.__name__ = name
    return fn


# ------------------------------------------------------------------ end to end on the tiny model


def _config(**overrides) -> GRPOConfig:
    settings = dict(
        max_steps=2,
        prompts_per_step=4,
        group_size=4,
        max_completion_len=16,
        micro_batch_size=8,
        learning_rate=1e-3,
        beta=0.0,
        report_to=["jsonl"],
        log_samples_every=1,
    )
    settings.update(overrides)
    return GRPOConfig(**settings)


def _train(tiny_model: str, out: Path, rewards, **overrides) -> dict[str, float]:
    rows = load_rows(DataConfig(path="builtin:addition", num_rows=32))
    trainer = GRPOTrainer(
        tiny_model, rows, rewards, _config(**overrides), EngineConfig(backend="hf"), out
    )
    metrics = trainer.train()
    trainer.save_final(out / "model")
    return metrics


def _changed(tiny_model: str, out: Path) -> bool:
    before = load_file(Path(tiny_model) / "model.safetensors")
    after = load_file(out / "model" / "model.safetensors")
    return all(not torch.equal(before[k], after[k]) for k in before)


def test_trainer_takes_a_plain_reward_function(tmp_path, tiny_model):
    metrics = _train(tiny_model, tmp_path / "run", short)
    assert "reward/short/mean" in metrics and metrics["reward/mean"] == metrics["reward/short/mean"]
    assert _changed(tiny_model, tmp_path / "run")
    sample = json.loads((tmp_path / "run" / "samples.jsonl").read_text().splitlines()[0])
    assert set(sample["rewards"]) == {"short"}


def test_trainer_takes_a_list_of_reward_functions(tmp_path, tiny_model):
    metrics = _train(tiny_model, tmp_path / "run", [short, has_digit], max_steps=1)
    assert metrics["reward/mean"] == pytest.approx(
        metrics["reward/short/mean"] + metrics["reward/has_digit/mean"]
    )


CALLS: list[tuple[int, float]] = []


def test_a_registered_loss_type_trains_without_a_trainer_change(tmp_path, tiny_model):
    name = "test_token_sum_over_rows"

    @register_loss_aggregation(name)
    def token_sum_over_rows(term, mask, step):
        CALLS.append((step.rows, step.tokens))
        return torch.where(mask, term, 0.0).sum() / step.rows

    CALLS.clear()
    try:
        metrics = _train(tiny_model, tmp_path / "run", short, max_steps=1, loss_type=name)
    finally:
        del LOSS_AGGREGATIONS[name]
    assert CALLS and all(rows == 16 for rows, _ in CALLS)  # B·G rows in the one optimizer step
    assert all(tokens > 0 for _, tokens in CALLS)
    assert "policy/loss" in metrics and _changed(tiny_model, tmp_path / "run")
