"""The pipeline orchestrator: several stage recipes run in order as one resumable run.

A pipeline recipe names its stages; each stage is a stage recipe (a file, relative to the
pipeline file, or written inline) plus dotted overrides:

    pipeline: quickstart
    output_dir: runs/quickstart
    eval: {data: {path: builtin:addition, seed: 1}, k: 4, limit: 64}
    stages:
      - name: cold_start
        recipe: cold_start.yaml
      - name: reasoning_rl
        recipe: reasoning_rl.yaml
        overrides: {model: "stage:cold_start", grpo.max_steps: 50}

Each stage writes into OUTPUT/NAME. A string `stage:NAME` anywhere in a stage's config is
replaced, just before the stage runs, by the model directory that stage NAME produced
(`stage:NAME.KEY` by its output KEY). OUTPUT/manifest.json records each stage's status,
config hash, inputs and outputs; it is rewritten atomically after every change, so a run
killed at any point resumes where it stopped when the same command is run again.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pipelines.config import ConfigError
from pipelines.distributed import barrier, is_main_process
from pipelines.manifest import Manifest
from pipelines.plan import describe_pipeline, is_pipeline, load_pipeline
from pipelines.recipe import STAGES
from pipelines.report import build_report
from pipelines.stage_runs import (
    Log,
    check_stage_data,
    ensure_base_eval,
    ensure_eval,
    run_planned_stage,
)

__all__ = [
    "Log",
    "console_log",
    "describe_pipeline",
    "is_pipeline",
    "load_pipeline",
    "run_pipeline",
]


def run_pipeline(
    path: str | Path,
    overrides: list[str] = (),
    *,
    fresh: bool = False,
    stage: str | None = None,
    log: Log | None = None,
) -> dict[str, Any]:
    """Run (or resume) every stage in order, or only `stage`; returns the manifest data."""
    plan = load_pipeline(path, list(overrides))
    log = (log or console_log()) if is_main_process() else _quiet
    only = plan.stage(stage) if stage is not None else None
    manifest = Manifest.load(plan, fresh=fresh and only is None)
    barrier()  # every process has read the manifest before the main process rewrites it
    if fresh and only is None and is_main_process():
        shutil.rmtree(plan.output_dir / "eval", ignore_errors=True)
    manifest.save()
    if only is not None:
        missing = [r for r in only.refs if manifest.stage(r)["status"] != "done"]
        if missing:
            raise ConfigError(
                f"--stage {only.name} reads the outputs of {', '.join(missing)}, which "
                f"{'is' if len(missing) == 1 else 'are'} not done; "
                "run the pipeline without --stage first"
            )
    check_stage_data(plan, manifest, [only] if only is not None else plan.stages, fresh=fresh)
    for i, st in enumerate(plan.stages, 1):
        if only is None:
            ensure_base_eval(plan, manifest, log)
        if only is not None and st.name != only.name:
            continue
        head = f"[{plan.name}] stage {i}/{len(plan.stages)} {st.name} ({st.kind})"
        run_planned_stage(plan, manifest, st, head, fresh=fresh, log=log, only=only is not None)
        outputs = manifest.stage(st.name).get("outputs") or {}
        if "model" in outputs and STAGES[st.kind].generative:  # a reward model is not evaluated
            run_id = manifest.stage(st.name)["run_id"]
            ensure_eval(plan, manifest, st.name, str(outputs["model"]), run_id, log)
        if is_main_process():
            build_report(plan.output_dir)
    if only is None:
        ensure_base_eval(plan, manifest, log)
        log(
            f"[{plan.name}] all {len(plan.stages)} stages done; "
            f"report: {plan.output_dir / 'report.md'}"
        )
    return manifest.data


def _quiet(message: str) -> None:
    """The log of processes other than the main one: it alone reports."""


def console_log() -> Log:
    from rich.console import Console

    console = Console(stderr=True)
    return lambda message: console.print(message, markup=False, highlight=False, soft_wrap=True)
