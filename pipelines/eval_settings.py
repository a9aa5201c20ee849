"""Held-out evaluation settings: after each pipeline stage, and every `grpo.eval_every` steps
during a GRPO stage."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from grpo.engines import EngineConfig
from pipelines.data import DataConfig


@dataclass(frozen=True)
class EvalSettings:
    """Held-out evaluation after each stage (and of the initial model, reported as `base`)."""

    data: DataConfig = field(default_factory=DataConfig)  # use a seed/split training does not
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

    def rows_config(self) -> DataConfig:
        """The data config of the evaluated rows (`limit` applied)."""
        return self.data if self.limit is None else replace(self.data, limit=self.limit)
