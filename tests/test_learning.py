"""Does GRPO learn? The quickstart's cold start (on addition alone, without its coding rows) and
reasoning-RL recipes on the tiny model: after SFT to partial skill on 2-digit addition, a few
dozen GRPO steps must raise held-out greedy accuracy by at least 10 points (fixed seeds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from grpo.engines import EngineConfig
from pipelines.data import DataConfig, load_rows
from pipelines.evaluate import evaluate
from pipelines.recipe import STAGES, load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "quickstart"


def _run(recipe: str, *overrides: str) -> dict:
    kind, config = load_recipe(RECIPES / recipe, list(overrides))
    return STAGES[kind].run(config, fresh=True)


def _accuracy(model: str, rows) -> float:
    metrics = evaluate(
        model, rows, k=1, engine=EngineConfig(max_model_len=256), max_tokens=64, stop=["</answer>"]
    )
    return metrics["pass@1"]


@pytest.mark.slow
def test_grpo_raises_held_out_accuracy_after_partial_sft(tiny_model, tmp_path):
    held_out = load_rows(
        DataConfig(path="builtin:addition", num_rows=200, seed=1)
    )  # training uses 0 and 2
    cold = _run(
        "cold_start.yaml",
        f"output_dir={tmp_path / 'cold'}",
        "data.path=builtin:addition",
        "train.max_steps=400",
        "train.max_length=256",
    )["model"]
    before = _accuracy(cold, held_out)
    assert 0.2 <= before <= 0.7, f"cold start should give partial skill, got {before:.3f}"
    rl = _run(
        "reasoning_rl.yaml",
        f"model={cold}",
        f"output_dir={tmp_path / 'rl'}",
        "grpo.max_steps=40",
        "grpo.prompts_per_step=32",
        "grpo.beta=0.0",  # addition alone: no Python skills for a KL term to keep
        "data.path=builtin:addition",
        "grpo.max_completion_len=40",
        "grpo.report_to=[jsonl]",
    )["model"]
    after = _accuracy(rl, held_out)
    assert after >= before + 0.10, f"GRPO moved held-out accuracy {before:.3f} -> {after:.3f}"
