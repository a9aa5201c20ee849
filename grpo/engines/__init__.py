"""Rollout engines: vLLM (colocated or servers) and transformers, behind one interface."""

from grpo.engines.base import (
    EngineConfig,
    Finished,
    Group,
    OnFinished,
    Prompt,
    RolloutEngine,
    Sample,
    SamplingConfig,
    encode_prompt,
    ensure_pad_token,
)


def make_engine(
    model: str, config: EngineConfig = EngineConfig(), *, seed: int = 0, placement=None
) -> RolloutEngine:
    """Start the engine `config.backend` names on a local model directory or hub name.
    `placement` (vLLM only) puts a training process's engine on that process's device."""
    if config.backend == "vllm":
        from grpo.engines.vllm_engine import VLLMEngine

        return VLLMEngine(model, config, seed=seed, placement=placement)
    if config.backend == "vllm_server":
        from grpo.engines.vllm_server import VLLMServerEngine

        return VLLMServerEngine(model, config, seed=seed)
    if config.backend == "hf":
        from grpo.engines.hf_engine import HFEngine

        return HFEngine(model, config, seed=seed)
    raise ValueError(f"engine.backend={config.backend!r}: choose 'vllm', 'vllm_server' or 'hf'")


__all__ = [
    "EngineConfig",
    "Finished",
    "Group",
    "OnFinished",
    "Prompt",
    "RolloutEngine",
    "Sample",
    "SamplingConfig",
    "encode_prompt",
    "ensure_pad_token",
    "make_engine",
]
