"""`stage: sft` with real TRL on the bundled tiny model: it learns, logs, resumes, and writes a
model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.config import ConfigError
from pipelines.data import DataConfig, load_rows
from pipelines.recipe import load_recipe
from pipelines.stages.sft import SFTStageConfig, run, sft_examples
from pipelines.stages.trainer_harness import TrainConfig

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "quickstart"


def _config(tmp_path, name, **train) -> SFTStageConfig:
    settings = {
        "max_steps": 8,
        "batch_size": 8,
        "num_threads": 1,
        "save_every": 4,
        "log_every": 1,
        "report_to": ["jsonl"],
        **train,
    }
    return SFTStageConfig(
        output_dir=str(tmp_path / name),
        data=DataConfig(num_rows=256),
        train=TrainConfig(**settings),
    )


def _weights(model_dir):
    from safetensors.torch import load_file

    return load_file(str(Path(model_dir) / "model.safetensors"))


def _losses(out_dir) -> list[float]:
    lines = (Path(out_dir) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["sft/loss"] for line in lines if "sft/loss" in json.loads(line)]


def test_examples_are_conversational_prompt_completion():
    rows = load_rows(DataConfig(num_rows=2))
    [first, _] = sft_examples(rows, "solution")
    assert first["prompt"] == rows[0]["prompt"]
    assert first["completion"] == [{"role": "assistant", "content": rows[0]["solution"]}]
    with pytest.raises(ConfigError, match="completion_column 'reply'"):
        sft_examples(rows, "reply")


def test_loss_is_on_the_completion_only(tiny_model):
    """TRL masks the prompt: the labels start at the first completion token, after <|assistant|>."""
    import datasets
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    examples = sft_examples(load_rows(DataConfig(num_rows=1)), "solution")
    trainer = SFTTrainer(
        model=tiny_model,
        args=SFTConfig(
            output_dir="/tmp/unused",
            report_to="none",
            bf16=False,
            use_cpu=True,
            completion_only_loss=True,
        ),
        train_dataset=datasets.Dataset.from_list(examples),
        processing_class=tokenizer,
    )
    row = trainer.train_dataset[0]
    text = tokenizer.decode(row["input_ids"])
    trained = tokenizer.decode([t for t in row["labels"] if t != -100])  # the tokens with a loss
    assert text.startswith("<s><|user|>") and "<|assistant|><think>" in text
    assert (
        trained == examples[0]["completion"][0]["content"] + "</s>"
    )  # the reply and the stop token


def test_sft_lowers_loss_and_learns_the_format(tiny_model, tmp_path):
    from grpo.engines import EngineConfig, SamplingConfig, make_engine
    from rewards import get

    config = _config(tmp_path, "learn", max_steps=150, batch_size=32, log_every=10, save_every=1000)
    result = run(config)
    losses = _losses(config.output_dir)
    assert losses[-1] < 0.5 * losses[0]
    assert result["metrics"]["train/steps"] == 150
    assert result["metrics"]["perf/steps_per_s"] > 0
    out = Path(config.output_dir)
    assert (out / "model" / "config.json").is_file() and not (out / "model.tmp").exists()
    rows = load_rows(DataConfig(num_rows=32, seed=99))  # held-out prompts
    engine = make_engine(result["model"], EngineConfig(backend="hf"), seed=0)
    groups = engine.generate(
        [r["prompt"] for r in rows], SamplingConfig(temperature=0, max_tokens=40)
    )
    texts = [g.samples[0].text for g in groups]
    formats = get("format")(texts, prompts=[r["prompt"] for r in rows])
    assert sum(formats) / len(formats) >= 0.9, texts[:4]
    # A rerun of the finished stage returns its result without training again.
    (out / "checkpoints").rename(out / "moved")
    assert run(config)["metrics"] == result["metrics"]


def test_resume_from_checkpoint_reaches_the_uninterrupted_weights(tiny_model, tmp_path):
    whole = run(_config(tmp_path, "whole", lr_scheduler="constant"))
    # The "interrupted" run stops after its step-4 checkpoint; the rerun resumes from it.
    run(_config(tmp_path, "resumed", lr_scheduler="constant", max_steps=4))
    assert (tmp_path / "resumed" / "checkpoints" / "checkpoint-4").is_dir()
    resumed = run(_config(tmp_path, "resumed", lr_scheduler="constant"))
    assert resumed["metrics"]["perf/steps_per_s"] > 0 and resumed["metrics"]["train/steps"] == 8
    steps = [
        json.loads(line)["step"]
        for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
        if "sft/loss" in line
    ]
    assert steps == [1, 2, 3, 4, 5, 6, 7, 8]  # the second run logged steps 5-8 only, not 1-8 again
    a, b = _weights(whole["model"]), _weights(resumed["model"])
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] - b[name]).abs().max() < 1e-6, name


def test_resume_skips_a_checkpoint_torn_by_a_kill(tiny_model, tmp_path):
    """transformers writes checkpoint-N/ in place, trainer_state.json last: a kill mid-save leaves
    a directory without it. The rerun drops it and resumes from the checkpoint before."""
    whole = run(_config(tmp_path, "whole", lr_scheduler="constant", save_every=2))
    run(_config(tmp_path, "torn", lr_scheduler="constant", save_every=2, max_steps=4))
    checkpoints = tmp_path / "torn" / "checkpoints"
    (checkpoints / "checkpoint-4" / "trainer_state.json").unlink()  # what a kill mid-save leaves
    resumed = run(_config(tmp_path, "torn", lr_scheduler="constant", save_every=2))
    steps = [
        json.loads(line)["step"]
        for line in (tmp_path / "torn" / "metrics.jsonl").read_text().splitlines()
        if "sft/loss" in line
    ]
    assert steps == [
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
    ]  # resumed after step 2: steps 3-4 were logged again, once
    assert resumed["metrics"]["train/steps"] == 8
    a, b = _weights(whole["model"]), _weights(resumed["model"])
    assert all((a[name] == b[name]).all() for name in a)


def test_fresh_starts_over(tiny_model, tmp_path):
    config = _config(tmp_path, "fresh", max_steps=2, save_every=2)
    run(config)
    result = run(config, fresh=True)
    steps = [
        json.loads(line)["step"]
        for line in (tmp_path / "fresh" / "metrics.jsonl").read_text().splitlines()
        if "sft/loss" in line
    ]
    assert steps == [1, 2]  # the old metrics went with the old run
    assert result["metrics"]["train/steps"] == 2


def test_fewer_rows_than_one_batch_is_an_error_not_a_silent_no_op(tiny_model, tmp_path):
    # Incomplete batches are dropped, so 4 rows at batch_size 8 would train 0 steps.
    config = SFTStageConfig(
        output_dir=str(tmp_path / "few"),
        data=DataConfig(num_rows=4),
        train=TrainConfig(max_steps=2, batch_size=8, report_to=["jsonl"]),
    )
    with pytest.raises(ConfigError, match=r"4 training rows, fewer than one batch .*batch_size=8"):
        run(config)
    assert not (tmp_path / "few" / "model").exists()


@pytest.mark.parametrize("recipe", ["cold_start", "reward_model", "rejection_sampling"])
def test_quickstart_recipes_load(recipe):
    kind, config = load_recipe(RECIPES / f"{recipe}.yaml")
    assert kind == recipe.replace("cold_start", "sft")
    assert config.train.report_to


def test_config_errors_are_one_clear_line():
    with pytest.raises(ConfigError, match=r"train.learning_rate=-1.0 must be > 0"):
        load_recipe(RECIPES / "cold_start.yaml", ["train.learning_rate=-1"])
    with pytest.raises(ConfigError, match="report_to"):
        load_recipe(RECIPES / "cold_start.yaml", ["train.report_to=[mlflow]"])


def test_bf16_trains_fp32_master_weights(tmp_path, tiny_model):
    """`train.dtype: bfloat16` is TRL's bf16 autocast over fp32 weights: the saved model is fp32
    and a small learning rate still moves nearly every weight."""
    import torch

    result = run(_config(tmp_path, "bf16", max_steps=3, learning_rate=3e-6, dtype="bfloat16"))
    before, after = _weights(tiny_model), _weights(result["model"])
    assert all(t.dtype == torch.float32 for t in after.values())
    changed = sum(int((before[k] != after[k]).sum()) for k in before) / sum(
        t.numel() for t in before.values()
    )
    assert changed >= 0.99
