"""Run a recipe from the command line: a single stage, or (later) a whole pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.config import ConfigError, apply_overrides, dump_yaml, load_yaml
from pipelines.recipe import STAGES, resolve


def describe_recipe(path: str | Path, overrides: list[str]) -> str:
    kind, config = resolve(apply_overrides(load_yaml(path), overrides))
    return f"stage: {kind}\n" + dump_yaml(config)


def run_recipe(path: str | Path, overrides: list[str], *, fresh: bool = False, stage: str | None = None) -> Any:
    data = apply_overrides(load_yaml(path), overrides)
    if stage is not None:
        raise ConfigError(f"--stage {stage}: {path} is a single-stage recipe; drop --stage")
    kind, config = resolve(data)
    return STAGES[kind].run(config, fresh=fresh)
