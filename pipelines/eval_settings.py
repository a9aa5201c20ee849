"""Held-out evaluation settings: after each pipeline stage, and every `grpo.eval_every` steps
during a GRPO stage."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from grpo.engines import EngineConfig
from pipelines.data import DataConfig


@dataclass(frozen=True)
class EvalSettings:
    """Held-out evaluation after each stage (and of the initial model, reported as `base`)."""

    data: DataConfig = field(default_factory=DataConfig)  # use a seed/split training does not
    # more held-out sets, each scored by its rows' task (code tests, general helpfulness,
    # harmful requests); `limit` caps only `data`, an extra set's own `limit` caps it
    extra: list[DataConfig] = field(default_factory=list)
    # judges general rows' answers (helpfulness); in a pipeline `stage:NAME` names the stage
    # that trains it, and stages evaluated before that one show n/a
    reward_model: str | None = None
    k: int = 1  # samples per prompt; 1 = greedy pass@1
    limit: int | None = 64  # prompts evaluated (the first N rows)
    max_tokens: int = 256
    temperature: float | None = None  # None: greedy for k = 1, 0.6 for k > 1 (R1's setting)
    stop: list[str] = field(default_factory=list)
    language: str | None = "en"  # language-consistency target for rows without a language column
    engine: EngineConfig = field(default_factory=EngineConfig)
    seed: int = 0
    base: bool = True  # also evaluate the initial model
    base_model: str | None = None  # the initial model; default: the first stage's `model`

    def __post_init__(self) -> None:
        if self.k < 1 or self.max_tokens < 1 or (self.limit is not None and self.limit < 1):
            raise ValueError(
                f"k={self.k}, limit={self.limit} and max_tokens={self.max_tokens} "
                "must be at least 1"
            )

    def rows_configs(self) -> list[DataConfig]:
        """The data configs of the evaluated rows: `data` with `limit` applied, then `extra`."""
        data = self.data if self.limit is None else replace(self.data, limit=self.limit)
        return [data, *self.extra]

    def evaluate_kwargs(self) -> dict[str, Any]:
        """The keyword arguments `evaluate` and `evaluate_engine` share (sampling and scoring)."""
        keys = ("k", "max_tokens", "temperature", "stop", "language", "seed")
        return {key: getattr(self, key) for key in keys}

    def rows(self) -> list[dict[str, Any]]:
        """The evaluated rows, every set's in order."""
        from pipelines.data import load_rows

        return [row for config in self.rows_configs() for row in load_rows(config)]
