"""`stage: grpo`: reasoning-oriented RL (R1 stage 2) and all-scenario RL (stage 4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from grpo.config import GRPOConfig
from grpo.engines import EngineConfig
from pipelines.data import DataConfig, load_rows
from pipelines.models import resolve_model
from pipelines.recipe import register_stage
from rewards import RewardSet, RewardSpec


def _r1_rewards() -> list[RewardSpec]:
    return [RewardSpec("accuracy", 1.0), RewardSpec("format", 0.5)]


@dataclass(frozen=True)
class GRPOStageConfig:
    model: str = "bundled:tiny-char"  # bundled:NAME, a local HF directory, or a hub name
    output_dir: str = "runs/grpo"  # checkpoints/, metrics.jsonl, samples.jsonl, model/
    data: DataConfig = field(default_factory=DataConfig)
    rewards: list[RewardSpec] = field(default_factory=_r1_rewards)
    reward_on_error: Literal["fail", "skip"] = "fail"  # a raising reward: stop, or score the rows None
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)

    def __post_init__(self) -> None:
        if not self.rewards:
            raise ValueError("rewards: list at least one reward, e.g. [{name: accuracy}]")


@register_stage("grpo", GRPOStageConfig, "GRPO with rule-based and reward-model rewards")
def run(config: GRPOStageConfig, *, fresh: bool = False) -> dict[str, Any]:
    from grpo.trainer import GRPOTrainer

    model = resolve_model(config.model)
    rows = load_rows(config.data)
    trainer = GRPOTrainer(model, rows, RewardSet(config.rewards, on_error=config.reward_on_error),
                          config.grpo, config.engine, config.output_dir, fresh=fresh)
    metrics = trainer.train()
    final = Path(config.output_dir) / "model"
    trainer.save_final(final)
    return {"model": str(final), "metrics": metrics}
