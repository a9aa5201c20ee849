"""The four R1 stages, the pipeline that runs them as one resumable run, data, models,
evaluation and the `r1kit` command line.

    from pipelines import DataConfig, load_rows, resolve_model, run_recipe

Names load on first use: `r1kit --help` and recipe checks do not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "pipelines.config": ("ConfigError",),
    "pipelines.data": ("DataConfig", "load_rows"),
    "pipelines.evaluate": ("evaluate",),
    "pipelines.models": ("prepare_model", "resolve_model"),
    "pipelines.pipeline": ("load_pipeline", "run_pipeline"),
    "pipelines.recipe": ("STAGES", "load_recipe", "run_stage"),
    "pipelines.report": ("build_report",),
    "pipelines.runner": ("describe_recipe", "run_recipe"),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    try:
        return getattr(importlib.import_module(_HOME[name]), name)
    except KeyError:
        raise AttributeError(f"module 'pipelines' has no attribute {name!r}") from None
