"""`stage: grpo`: reasoning-oriented RL (R1 stage 2) and all-scenario RL (stage 4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from grpo.config import GRPOConfig, check_staleness
from grpo.engines import EngineConfig
from pipelines.data import DataConfig, load_rows
from pipelines.data_checks import check_reward_columns
from pipelines.eval_settings import EvalSettings
from pipelines.hub import check_push, push_model
from pipelines.models import resolve_model
from pipelines.recipe import register_stage
from rewards import RewardSet, RewardSpec

EVAL_KEYS = (
    "pass@1",
    "format_rate",
    "language_consistency",
    "length_mean",
    "truncation_rate",
    "code_tests_passed",
    "helpfulness",
    "refusal_rate",
)


def _r1_rewards() -> list[RewardSpec]:
    return [RewardSpec("accuracy", 1.0), RewardSpec("format", 0.5)]


@dataclass(frozen=True)
class GRPOStageConfig:
    model: str = "bundled:tiny-char"  # bundled:NAME, a local HF directory, or a hub name
    output_dir: str = "runs/grpo"  # checkpoints/, metrics.jsonl, samples.jsonl, model/
    data: DataConfig = field(default_factory=DataConfig)
    rewards: list[RewardSpec] = field(default_factory=_r1_rewards)
    reward_on_error: Literal["fail", "skip"] = (
        "fail"  # a raising reward: stop, or score the rows None
    )
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    eval: EvalSettings | None = None  # held-out rows for grpo.eval_every (in a pipeline: its eval)
    push_to_hub: str | None = None  # hub repo id the final model is uploaded to (needs internet)

    def __post_init__(self) -> None:
        check_staleness(self.grpo, self.engine.backend)
        if not self.rewards:
            raise ValueError("rewards: list at least one reward, e.g. [{name: accuracy}]")
        if self.grpo.eval_every is not None and self.eval is None:
            raise ValueError(
                "grpo.eval_every needs held-out rows: add an `eval:` section "
                "(e.g. eval: {data: {path: builtin:addition, seed: 1}, limit: 32})"
            )


def training_rows(config: GRPOStageConfig) -> list[dict[str, Any]]:
    """The training rows, checked against what the rewards need (no model is loaded)."""
    rows = load_rows(config.data)
    check_reward_columns(rows, config.rewards, config.data.path)
    return rows


@register_stage(
    "grpo",
    GRPOStageConfig,
    "GRPO with rule-based and reward-model rewards",
    check_data=training_rows,
    seed_fields=("grpo.seed",),
)
def run(
    config: GRPOStageConfig, *, fresh: bool = False, resume_from: str | None = None
) -> dict[str, Any]:
    from grpo.trainer import GRPOTrainer

    rows = training_rows(config)  # data problems fail here, before any model loads
    on_step = _eval_hook(config.eval, config.grpo.eval_every) if config.grpo.eval_every else None
    if config.push_to_hub:
        check_push(config.push_to_hub)
    model = resolve_model(config.model)
    trainer = GRPOTrainer(
        model,
        rows,
        RewardSet(config.rewards, on_error=config.reward_on_error),
        config.grpo,
        config.engine,
        config.output_dir,
        fresh=fresh,
        resume_from=resume_from,
        on_step=on_step,
    )
    metrics = trainer.train()
    trainer.engine.close()  # its memory goes back before the export and the next stage
    final = Path(config.output_dir) / "model"
    trainer.save_final(final)
    outputs = {"model": str(final), "metrics": metrics}
    if config.push_to_hub:
        outputs["hub_url"] = push_model(final, config.push_to_hub)
    return outputs


def _eval_hook(settings: EvalSettings, every: int) -> Any:
    """A trainer step hook: every `every` steps, evaluate the policy with the trainer's own
    engine (its weights are the current ones) on the held-out rows, as `eval/...` metrics."""
    from pipelines.evaluate import evaluate_engine

    rows = settings.rows()  # read now: a bad eval source fails before training

    def hook(step: int, engine: Any) -> dict[str, float]:
        if step % every:
            return {}
        metrics = evaluate_engine(
            engine, rows, reward_model=settings.reward_model, **settings.evaluate_kwargs()
        )
        keys = (*EVAL_KEYS, f"cons@{settings.k}")
        return {f"eval/{key}": float(metrics[key]) for key in keys if metrics.get(key) is not None}

    return hook
