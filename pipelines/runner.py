"""Run a recipe from the command line: a single stage, or a whole pipeline
(`pipeline:`/`stages:`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.config import ConfigError, apply_overrides, dump_yaml, load_yaml
from pipelines.distributed import launched_processes, shared_output_dir
from pipelines.pipeline import Log, console_log, describe_pipeline, is_pipeline, run_pipeline
from pipelines.recipe import resolve, run_stage


def describe_recipe(path: str | Path, overrides: list[str]) -> str:
    data = load_yaml(path)
    if is_pipeline(data):
        return describe_pipeline(path, overrides)
    kind, config = resolve(apply_overrides(data, overrides))
    return f"stage: {kind}\n" + dump_yaml(config)


def run_recipe(
    path: str | Path,
    overrides: list[str],
    *,
    fresh: bool = False,
    stage: str | None = None,
    resume_anyway: bool = False,
    resume_from: str | None = None,
    log: Log | None = None,
) -> Any:
    data = load_yaml(path)
    if launched_processes() > 1:  # one absolute output directory, seen by every process
        overrides = [*overrides, f"output_dir={shared_output_dir(_output_dir(data, overrides))}"]
    if is_pipeline(data):
        if resume_anyway or resume_from:
            raise ConfigError(
                "--resume-anyway and --resume-from apply to single-stage recipes; "
                "a pipeline reruns a stage whose config changed (see manifest.json)"
            )
        return run_pipeline(path, overrides, fresh=fresh, stage=stage, log=log)
    if stage is not None:
        raise ConfigError(f"--stage {stage}: {path} is a single-stage recipe; drop --stage")
    kind, config = resolve(apply_overrides(data, overrides))
    return run_stage(
        kind,
        config,
        fresh=fresh,
        resume_anyway=resume_anyway,
        resume_from=resume_from,
        log=log or console_log(),
    )


def _output_dir(data: dict, overrides: list[str]) -> str:
    """The output directory the recipe, with its overrides, writes to."""
    if is_pipeline(data):
        named = [o.split("=", 1)[1] for o in overrides if o.startswith("output_dir=")]
        return named[-1] if named else str(data.get("output_dir", f"runs/{data.get('pipeline')}"))
    return resolve(apply_overrides(data, overrides))[1].output_dir
