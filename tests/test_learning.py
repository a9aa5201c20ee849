"""Does GRPO learn? The quickstart's cold start (on addition alone, without its coding rows) and
reasoning-RL recipes on the tiny model: after SFT to partial skill on 2-digit addition, a few
dozen GRPO steps must raise held-out greedy accuracy by at least 10 points (fixed seeds), and
asynchronous GRPO (samples one update old, from a vLLM server) must learn as well as the
synchronous loop, within 5 points."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grpo.engines import EngineConfig
from pipelines.data import DataConfig, load_rows
from pipelines.evaluate import evaluate
from pipelines.recipe import STAGES, load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "quickstart"
RL_STEPS = [  # addition alone: no Python skills to keep, so no KL term; twice the prompts
    "grpo.max_steps=40",
    "grpo.prompts_per_step=32",
    "grpo.beta=0.0",
    "data.path=builtin:addition",
    "grpo.max_completion_len=40",
    "grpo.report_to=[jsonl]",
]


def _run(recipe: str, *overrides: str) -> dict:
    kind, config = load_recipe(RECIPES / recipe, list(overrides))
    return STAGES[kind].run(config, fresh=True)


def _accuracy(model: str) -> float:
    held_out = load_rows(DataConfig(path="builtin:addition", num_rows=200, seed=1))  # train: 0, 2
    metrics = evaluate(
        model,
        held_out,
        k=1,
        engine=EngineConfig(max_model_len=256),
        max_tokens=64,
        stop=["</answer>"],
    )
    return metrics["pass@1"]


@pytest.fixture(scope="module")
def cold_start(tiny_model, tmp_path_factory) -> tuple[str, float]:
    """The cold-start model and its held-out accuracy."""
    out = tmp_path_factory.mktemp("cold")
    model = _run(
        "cold_start.yaml",
        f"output_dir={out}",
        "data.path=builtin:addition",
        "train.max_steps=400",
        "train.max_length=256",
    )["model"]
    return model, _accuracy(model)


@pytest.fixture(scope="module")
def synchronous_rl(cold_start, tmp_path_factory) -> float:
    """Held-out accuracy after the synchronous reasoning-RL run (colocated vLLM engine)."""
    out = tmp_path_factory.mktemp("rl")
    return _accuracy(
        _run("reasoning_rl.yaml", f"model={cold_start[0]}", f"output_dir={out}", *RL_STEPS)["model"]
    )


@pytest.mark.slow
def test_grpo_raises_held_out_accuracy_after_partial_sft(cold_start, synchronous_rl):
    before = cold_start[1]
    assert 0.2 <= before <= 0.7, f"cold start should give partial skill, got {before:.3f}"
    assert synchronous_rl >= before + 0.10, (
        f"GRPO moved held-out accuracy {before:.3f} -> {synchronous_rl:.3f}"
    )


@pytest.mark.slow
@pytest.mark.vllm
def test_asynchronous_grpo_learns_as_well_as_synchronous(
    cold_start, synchronous_rl, vllm_server, tmp_path
):
    # The server starts with the bundled weights; the trainer's start-up push loads the cold start.
    model = _run(
        "reasoning_rl.yaml",
        f"model={cold_start[0]}",
        f"output_dir={tmp_path / 'async'}",
        *RL_STEPS,
        "grpo.max_staleness=1",
        "engine.backend=vllm_server",
        f"engine.servers=[{vllm_server.ensure_up()}]",
        "engine.max_model_len=256",
    )["model"]
    rows = (tmp_path / "async" / "metrics.jsonl").read_text().splitlines()
    assert max(json.loads(r)["async/staleness_max"] for r in rows) == 1  # it did overlap
    asynchronous = _accuracy(model)
    assert asynchronous >= synchronous_rl - 0.05, (
        f"held-out accuracy: synchronous {synchronous_rl:.3f}, asynchronous {asynchronous:.3f}"
    )
