"""Recipes: one YAML file per stage (`stage: KIND` plus that stage's fields), overridable with
dotted `key=value` arguments, resolved into the stage's frozen config dataclass before any work.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.config import ConfigError, apply_overrides, from_dict, load_yaml, to_dict
from pipelines.run_record import RunRecord, check_checkpoint, check_rerun, config_hash


@dataclass(frozen=True)
class StageKind:
    config_cls: type
    run: Callable[..., Any]  # run(config, *, fresh: bool) -> dict of outputs
    summary: str
    generative: bool = True  # its `model` output generates text (a reward model does not)
    # check_data(config) reads the stage's data and raises one ConfigError line if it cannot
    # serve the stage (columns, empty, malformed), without loading a model; a pipeline calls it
    # for every stage before the first one runs.
    check_data: Callable[[Any], Any] | None = None
    # dotted keys of the seeds of the stage's own randomness (not its data's): a pipeline's
    # `seed:` sets them all
    seed_fields: tuple[str, ...] = ()


STAGES: dict[str, StageKind] = {}


def register_stage(
    kind: str,
    config_cls: type,
    summary: str,
    *,
    generative: bool = True,
    check_data: Callable[[Any], Any] | None = None,
    seed_fields: tuple[str, ...] = (),
) -> Callable:
    def wrap(run: Callable) -> Callable:
        STAGES[kind] = StageKind(config_cls, run, summary, generative, check_data, seed_fields)
        return run

    return wrap


def _ensure_stages_loaded() -> None:
    import pipelines.stages  # noqa: F401  (registers every stage kind)


def stage_kind(kind: str) -> StageKind | None:
    """The registered stage kind named `kind`, or None."""
    _ensure_stages_loaded()
    return STAGES.get(kind)


def resolve(data: dict[str, Any], *, where: str = "") -> tuple[str, Any]:
    """(kind, config) for a stage recipe already loaded as a dict."""
    _ensure_stages_loaded()
    data = dict(data)
    kind = data.pop("stage", None)
    if kind is None:
        raise ConfigError(
            f"{where or 'recipe'}: missing `stage:`; choose one of {', '.join(sorted(STAGES))}"
        )
    if kind not in STAGES:
        raise ConfigError(
            f"{where or 'recipe'}: unknown stage {kind!r}; "
            f"choose one of {', '.join(sorted(STAGES))}"
        )
    return kind, from_dict(STAGES[kind].config_cls, data, where=where)


def load_recipe(path: str | Path, overrides: list[str] = ()) -> tuple[str, Any]:
    return resolve(apply_overrides(load_yaml(path), list(overrides)))


def run_stage(
    kind: str,
    config: Any,
    *,
    fresh: bool = False,
    resume_anyway: bool = False,
    resume_from: str | None = None,
    check: bool = True,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Run one stage, keeping its record in `config.output_dir` (see `pipelines.run_record`).

    With `check` (standalone runs), a rerun under another config is refused before anything
    loads, and a finished run returns its recorded outputs at once. A pipeline passes
    `check=False`: its manifest has already decided to start, resume or restart the stage.
    """
    stage = STAGES[kind]
    plain = to_dict(config)
    # Where the run lives is not part of its identity: a moved or copied run still resumes.
    digest = config_hash({"stage": kind, **{k: v for k, v in plain.items() if k != "output_dir"}})
    out = Path(config.output_dir)
    record = RunRecord(out)
    if check and not fresh:
        finished = check_rerun(record.read(), out, plain, digest, resume_anyway=resume_anyway)
        if finished is not None and resume_from is None:
            log(
                f"{out}: finished (config hash {digest}); nothing to do. Rerun with --fresh to run "
                "it again, or raise max_steps and add --resume-anyway to train on"
            )
            return finished
    extra: dict[str, Any] = {}
    if resume_from is not None:
        if "resume_from" not in inspect.signature(stage.run).parameters:
            raise ConfigError(
                f"--resume-from: a {kind} stage cannot resume from a chosen "
                "checkpoint; drop --resume-from (a rerun resumes from its newest "
                "one)"
            )
        check_checkpoint(resume_from, out)
        extra["resume_from"] = resume_from
    if fresh:
        record.clear_checkpoints()  # a fresh run must never resume from the old run's checkpoints
    record.start(kind, plain, digest)
    outputs = stage.run(config, fresh=fresh, **extra)
    record.finish(outputs)
    log(
        f"{kind}: done; its config is in {out / 'config.yaml'} (hash {digest}), its outputs in "
        f"{record.path}"
    )
    return outputs
