"""Stage kinds; importing this package registers each one with `pipelines.recipe`."""

from pipelines.stages import generate, grpo_stage, rejection_sampling, reward_model, sft  # noqa: F401
