"""Every shipped recipe loads and validates on CPU, before any work (torchtune-style)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.config import ConfigError
from pipelines.runner import describe_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
STAGE_AND_PIPELINE = sorted(p for p in RECIPES.rglob("*.yaml") if "accelerate" not in p.parts)


@pytest.mark.parametrize("path", STAGE_AND_PIPELINE, ids=lambda p: str(p.relative_to(RECIPES)))
def test_recipe_resolves(path):
    text = describe_recipe(path, [])
    assert "stage:" in text or "pipeline:" in text


@pytest.mark.parametrize("path", sorted((RECIPES / "accelerate").glob("*.yaml")), ids=lambda p: p.name)
def test_accelerate_configs_are_complete(path):
    config = yaml.safe_load(path.read_text())
    assert config["distributed_type"] in {"MULTI_GPU", "FSDP"}
    machines = config["num_machines"]
    assert machines >= 1 and config["num_processes"] % machines == 0
    if machines > 1:  # every node must find node 0
        assert config["main_process_ip"] and config["main_process_port"] and config["rdzv_backend"] == "static"
    if config["distributed_type"] == "FSDP":
        assert config["fsdp_config"]["fsdp_version"] == 2


def test_bad_override_fails_before_work():
    with pytest.raises(ConfigError, match="grpo.loss_type: 'ppo' is not allowed"):
        describe_recipe(RECIPES / "quickstart" / "reasoning_rl.yaml", ["grpo.loss_type=ppo"])
    with pytest.raises(ConfigError, match="unknown key"):
        describe_recipe(RECIPES / "quickstart" / "reasoning_rl.yaml", ["grpo.learning_rat=1"])
