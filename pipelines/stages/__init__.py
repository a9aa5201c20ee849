"""Stage kinds; importing this package registers each one with `pipelines.recipe`."""

from pipelines.stages import generate, grpo_stage  # noqa: F401
