"""The RL engine: GRPO maths, rollout engines, the trainer loop and its checkpoints.

    from grpo import GRPOConfig, GRPOTrainer, EngineConfig

Names load on first use, so ``import grpo`` (and ``rewards``, which builds on ``grpo.reward``)
does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "GRPOTrainer": "grpo.trainer",
    "GRPOConfig": "grpo.config",
    "LoraConfig": "grpo.config",
    "EngineConfig": "grpo.engines",
    "SamplingConfig": "grpo.engines",
    "make_engine": "grpo.engines",
    "RewardError": "grpo.reward",
    "RewardFn": "grpo.reward",
    "RewardFunctions": "grpo.reward",
    "RewardOutput": "grpo.reward",
    "RewardSource": "grpo.reward",
    "as_reward_source": "grpo.reward",
    "StepContext": "grpo.algos",
    "aggregate_loss": "grpo.algos",
    "group_advantages": "grpo.algos",
    "kl_k3": "grpo.algos",
    "policy_loss": "grpo.algos",
    "register_loss_aggregation": "grpo.algos",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'grpo' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
