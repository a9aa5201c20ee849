"""Does GRPO learn? The quickstart's cold start (on addition alone, without its coding rows) and
reasoning-RL recipes on the tiny model: after SFT to partial skill on 2-digit addition, a few
dozen GRPO steps must raise held-out greedy accuracy by at least 10 points (fixed seeds), and
asynchronous GRPO on a vLLM server, training on samples one version old, must land within 5
points of the synchronous run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grpo.engines import EngineConfig
from pipelines.data import DataConfig, load_rows
from pipelines.evaluate import evaluate
from pipelines.recipe import STAGES, load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "quickstart"
REASONING_RL = (
    "grpo.max_steps=40",
    "grpo.prompts_per_step=32",
    "grpo.beta=0.0",  # addition alone: no Python skills for a KL term to keep
    "data.path=builtin:addition",
    "grpo.max_completion_len=40",
    "grpo.num_threads=1",  # beside a server pinned to the other core (async test)
    "grpo.report_to=[jsonl]",
)


def _run(recipe: str, *overrides: str) -> dict:
    kind, config = load_recipe(RECIPES / recipe, list(overrides))
    return STAGES[kind].run(config, fresh=True)


def _accuracy(model: str, rows) -> float:
    metrics = evaluate(
        model, rows, k=1, engine=EngineConfig(max_model_len=256), max_tokens=64, stop=["</answer>"]
    )
    return metrics["pass@1"]


@pytest.fixture(scope="module")
def held_out():
    return load_rows(DataConfig(path="builtin:addition", num_rows=400, seed=1))  # training: 0, 2


@pytest.fixture(scope="module")
def cold_start(tiny_model, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("cold")
    return _run(
        "cold_start.yaml",
        f"output_dir={out}",
        "data.path=builtin:addition",
        "train.max_steps=400",
        "train.max_length=256",
    )["model"]


@pytest.fixture(scope="module")
def synchronous(cold_start, tmp_path_factory, held_out) -> float:
    out = tmp_path_factory.mktemp("sync")
    return _accuracy(
        _run("reasoning_rl.yaml", f"model={cold_start}", f"output_dir={out}", *REASONING_RL)[
            "model"
        ],
        held_out,
    )


@pytest.mark.slow
def test_grpo_raises_held_out_accuracy_after_partial_sft(cold_start, synchronous, held_out):
    before = _accuracy(cold_start, held_out)
    assert 0.2 <= before <= 0.7, f"cold start should give partial skill, got {before:.3f}"
    assert synchronous >= before + 0.10, (
        f"GRPO moved held-out accuracy {before:.3f} -> {synchronous:.3f}"
    )


@pytest.mark.slow
@pytest.mark.vllm
def test_async_grpo_one_version_stale_lands_within_5_points_of_synchronous(
    cold_start, synchronous, held_out, vllm_server, tmp_path
):
    rl = _run(
        "reasoning_rl.yaml",
        f"model={cold_start}",
        f"output_dir={tmp_path}",
        *REASONING_RL,
        "grpo.max_staleness=1",  # TIS on by default
        "engine.backend=vllm_server",
        f"engine.servers=[{vllm_server.ensure_up()}]",
        "engine.max_model_len=256",
    )["model"]
    staleness = [
        json.loads(line)["async/staleness_mean"]
        for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
    ]
    assert staleness[1:] == [1.0] * 39, staleness  # every step after the first trained one old
    asynchronous = _accuracy(rl, held_out)
    assert asynchronous >= synchronous - 0.05, (
        f"asynchronous {asynchronous:.3f} vs synchronous {synchronous:.3f}"
    )
