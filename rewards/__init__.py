"""Rewards for RL post-training: one signature, one registry, weighted combination.

Every reward is ``fn(completions, *, prompts, **columns) -> list[float | None]``; None means
"does not apply to this row". See ``rewards/README_SECTION.md``.
"""

from rewards._text import answer_block, completion_text, think_block
from rewards.combine import RewardError, RewardOutput, RewardSet, RewardSpec, merge_outputs
from rewards.registry import get, names, register

__all__ = [
    "RewardError", "RewardOutput", "RewardSet", "RewardSpec", "answer_block", "completion_text",
    "get", "merge_outputs", "names", "register", "think_block",
]
