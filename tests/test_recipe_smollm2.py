"""The SmolLM2-135M-Instruct recipe (cold start + reasoning RL on a real pretrained model)
resolves to training on `builtin:arithmetic` and evaluating on its disjoint held-out tenth. Its
learning is measured in the README."""

from __future__ import annotations

from pathlib import Path

from pipelines.runner import describe_recipe

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "smollm2-cpu" / "pipeline.yaml"


def test_recipe_trains_smollm2_on_disjoint_arithmetic():
    text = describe_recipe(RECIPE, [])
    assert "model: bundled:smollm2-135m-instruct" in text
    assert "path: builtin:arithmetic\n" in text and "path: builtin:arithmetic_test\n" in text
