"""`stage: reward_model` with real TRL: the tiny model learns to prefer chosen replies, and the
saved model works as the `reward_model` reward."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.data import DataConfig, load_rows
from pipelines.stages.reward_model import RewardModelStageConfig, run, split_pairs, tokenize_pairs
from pipelines.stages.trainer_harness import TrainConfig
from rewards import get


def _config(tmp_path, **train) -> RewardModelStageConfig:
    settings = {
        "max_steps": 120,
        "batch_size": 32,
        "learning_rate": 1e-3,
        "max_length": 128,
        "num_threads": 1,
        "save_every": 60,
        "log_every": 20,
        "report_to": ["jsonl"],
        **train,
    }
    return RewardModelStageConfig(
        output_dir=str(tmp_path / "rm"),
        data=DataConfig(path="builtin:preferences", num_rows=800),
        train=TrainConfig(**settings),
    )


def test_pairs_are_encoded_like_the_reward_encodes_them(tiny_model, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    rows = load_rows(DataConfig(path="builtin:preferences", num_rows=3))
    [pair, *_] = tokenize_pairs(rows, tokenizer, _config(tmp_path))
    answer = rows[0]["chosen"].split("<answer>")[1].removesuffix("</answer>")
    expected = tokenizer(f"user: {rows[0]['prompt'][0]['content']}", answer)["input_ids"]
    assert (
        pair["chosen_ids"] == expected
    )  # (prompt text, answer block), as rewards/reward_model.py does
    train, held_out = split_pairs(list(range(10)), 0.2, seed=0)
    assert len(train) == 8 and len(held_out) == 2 and sorted(train + held_out) == list(range(10))


def test_reward_model_prefers_chosen_on_held_out_pairs(tiny_model, tmp_path):
    config = _config(tmp_path)
    result = run(config)
    metrics = result["metrics"]
    assert metrics["eval/preference_accuracy"] >= 0.8  # 80 held-out pairs of this data set
    lines = [
        json.loads(line) for line in (tmp_path / "rm" / "metrics.jsonl").read_text().splitlines()
    ]
    losses = [line["reward_model/loss"] for line in lines if "reward_model/loss" in line]
    assert losses[-1] < losses[0]
    assert (Path(result["model"]) / "config.json").is_file()
    # The saved model is a scalar reward through the reward registry, on pairs never seen
    # (new seed).
    rows = load_rows(DataConfig(path="builtin:preferences", num_rows=60, seed=123))
    reward = get("reward_model", model=result["model"], judge="answer")
    prompts = [r["prompt"] for r in rows]
    chosen = reward([r["chosen"] for r in rows], prompts=prompts)
    rejected = reward([r["rejected"] for r in rows], prompts=prompts)
    wins = sum(c > r for c, r in zip(chosen, rejected, strict=True))
    assert wins / len(rows) >= 0.8


@pytest.mark.slow
def test_reward_model_resumes_from_its_checkpoint(tiny_model, tmp_path):
    run(_config(tmp_path, max_steps=60, lr_scheduler="constant"))
    resumed = run(_config(tmp_path, max_steps=120, lr_scheduler="constant"))
    assert resumed["metrics"]["train/steps"] == 120
    assert resumed["metrics"]["perf/steps_per_s"] > 0
