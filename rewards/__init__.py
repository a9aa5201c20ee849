"""Rewards for RL post-training: one signature, one registry, weighted combination.

Every reward is ``fn(completions, *, prompts, **columns) -> list[float | None]``; None means
"does not apply to this row". ``RewardSet`` combines named rewards from a recipe; the
GRPO trainer also takes plain reward functions (see ``grpo.reward``).
"""

from grpo.reward import RewardError, RewardOutput, merge_outputs
from rewards._extract import extract_answer
from rewards._text import answer_block, completion_text, think_block
from rewards.combine import RewardSet, RewardSpec
from rewards.registry import get, names, register

__all__ = [
    "RewardError",
    "RewardOutput",
    "RewardSet",
    "RewardSpec",
    "answer_block",
    "completion_text",
    "extract_answer",
    "get",
    "merge_outputs",
    "names",
    "register",
    "think_block",
]
