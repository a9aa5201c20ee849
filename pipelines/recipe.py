"""Recipes: one YAML file per stage (`stage: KIND` plus that stage's fields), overridable with
dotted `key=value` arguments, resolved into the stage's frozen config dataclass before any work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.config import ConfigError, apply_overrides, from_dict, load_yaml


@dataclass(frozen=True)
class StageKind:
    config_cls: type
    run: Callable[..., Any]  # run(config, *, fresh: bool) -> dict of outputs
    summary: str
    generative: bool = True  # its `model` output generates text (a reward model does not)


STAGES: dict[str, StageKind] = {}


def register_stage(kind: str, config_cls: type, summary: str, *, generative: bool = True) -> Callable:
    def wrap(run: Callable) -> Callable:
        STAGES[kind] = StageKind(config_cls, run, summary, generative)
        return run

    return wrap


def _ensure_stages_loaded() -> None:
    import pipelines.stages  # noqa: F401  (registers every stage kind)


def resolve(data: dict[str, Any], *, where: str = "") -> tuple[str, Any]:
    """(kind, config) for a stage recipe already loaded as a dict."""
    _ensure_stages_loaded()
    data = dict(data)
    kind = data.pop("stage", None)
    if kind is None:
        raise ConfigError(f"{where or 'recipe'}: missing `stage:`; choose one of {', '.join(sorted(STAGES))}")
    if kind not in STAGES:
        raise ConfigError(f"{where or 'recipe'}: unknown stage {kind!r}; choose one of {', '.join(sorted(STAGES))}")
    return kind, from_dict(STAGES[kind].config_cls, data, where=where)


def load_recipe(path: str | Path, overrides: list[str] = ()) -> tuple[str, Any]:
    return resolve(apply_overrides(load_yaml(path), list(overrides)))
