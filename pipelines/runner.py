"""Run a recipe from the command line: a single stage, or a whole pipeline (`pipeline:`/`stages:`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.config import ConfigError, apply_overrides, dump_yaml, load_yaml
from pipelines.pipeline import describe_pipeline, is_pipeline, run_pipeline
from pipelines.recipe import STAGES, resolve


def describe_recipe(path: str | Path, overrides: list[str]) -> str:
    data = load_yaml(path)
    if is_pipeline(data):
        return describe_pipeline(path, overrides)
    kind, config = resolve(apply_overrides(data, overrides))
    return f"stage: {kind}\n" + dump_yaml(config)


def run_recipe(path: str | Path, overrides: list[str], *, fresh: bool = False, stage: str | None = None) -> Any:
    data = load_yaml(path)
    if is_pipeline(data):
        return run_pipeline(path, overrides, fresh=fresh, stage=stage)
    if stage is not None:
        raise ConfigError(f"--stage {stage}: {path} is a single-stage recipe; drop --stage")
    kind, config = resolve(apply_overrides(data, overrides))
    return STAGES[kind].run(config, fresh=fresh)

