"""Every shipped recipe loads and validates on CPU, before any work (torchtune-style)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pipelines.config import ConfigError
from pipelines.pipeline import is_pipeline, load_pipeline
from pipelines.recipe import load_recipe, resolve
from pipelines.runner import describe_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
STAGE_AND_PIPELINE = sorted(p for p in RECIPES.rglob("*.yaml") if "accelerate" not in p.parts)


@pytest.mark.parametrize("path", STAGE_AND_PIPELINE, ids=lambda p: str(p.relative_to(RECIPES)))
def test_recipe_resolves(path):
    data = yaml.safe_load(path.read_text())
    text = describe_recipe(path, [])
    if is_pipeline(data):
        plan = load_pipeline(path)
        assert plan.names == [entry["name"] for entry in data["stages"]]
        for st in plan.stages:  # each stage printed with its validated config
            assert f": {st.name} (config hash {st.config_hash})" in text
            assert resolve(st.data)[0] == st.kind
        return
    kind, config = load_recipe(path)
    printed = yaml.safe_load(text)
    assert printed["stage"] == kind == data["stage"]
    assert resolve(printed)[1] == config  # what `r1kit config` prints is the whole config
    _assert_kept(data, printed, "")  # and every value the recipe sets is in it


def _assert_kept(given, resolved, where):
    """`resolved` holds every value of `given`: mappings key by key, lists item by item, and a
    scalar where a list is expected as its one-item list; YAML 1.1 strings like 3e-6 as numbers."""
    if isinstance(given, dict):
        for key, value in given.items():
            _assert_kept(value, resolved[key], f"{where}.{key}")
    elif isinstance(given, list):
        assert len(given) == len(resolved), where
        for i, (a, b) in enumerate(zip(given, resolved, strict=True)):
            _assert_kept(a, b, f"{where}[{i}]")
    elif isinstance(resolved, list):
        assert resolved == [given], where
    elif isinstance(given, str) and isinstance(resolved, float):
        assert float(given) == resolved, where
    else:
        assert given == resolved, where


@pytest.mark.parametrize(
    "path", sorted((RECIPES / "accelerate").glob("*.yaml")), ids=lambda p: p.name
)
def test_accelerate_configs_are_complete(path):
    config = yaml.safe_load(path.read_text())
    assert config["distributed_type"] in {"MULTI_GPU", "FSDP"}
    machines = config["num_machines"]
    assert machines >= 1 and config["num_processes"] % machines == 0
    if machines > 1:  # every node must find node 0
        assert (
            config["main_process_ip"]
            and config["main_process_port"]
            and config["rdzv_backend"] == "static"
        )
    if config["distributed_type"] == "FSDP":
        assert config["fsdp_config"]["fsdp_version"] == 2


def test_bad_override_fails_before_work():
    with pytest.raises(ConfigError, match="grpo.loss_type: 'ppo' is not allowed"):
        describe_recipe(RECIPES / "quickstart" / "reasoning_rl.yaml", ["grpo.loss_type=ppo"])
    with pytest.raises(ConfigError, match="unknown key"):
        describe_recipe(RECIPES / "quickstart" / "reasoning_rl.yaml", ["grpo.learning_rat=1"])


GPU_WITH_EXPECTED = (
    "qwen2.5-0.5b-instruct-gsm8k.yaml",
    "qwen2.5-1.5b-instruct-gsm8k.yaml",
    "qwen2.5-7b-r1-pipeline.yaml",
)


@pytest.mark.parametrize("name", GPU_WITH_EXPECTED)
def test_gpu_recipes_state_published_results_with_sources(name):
    """Unrun GPU recipes say what published runs reached, before and after GRPO, and where from;
    the README repeats the same figures."""
    lines = (RECIPES / "gpu" / name).read_text().splitlines()
    end = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    header = "\n".join(lines[:end])
    assert "NOT YET RUN BY r1kit" in header
    pattern = r"^#\s+(baseline, before RL|after GRPO):\s+(\d+\.\d)"
    figures = re.findall(pattern, header, re.MULTILINE)
    assert {kind for kind, _ in figures} == {"baseline, before RL", "after GRPO"}
    assert "https://" in header
    readme = (RECIPES.parent / "README.md").read_text()
    assert all(figure in readme for _, figure in figures)
