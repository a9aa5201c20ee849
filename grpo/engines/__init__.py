"""Rollout engines: vLLM (colocated or servers) and transformers (fallback), behind one interface."""

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
)


def make_engine(model: str, config: EngineConfig = EngineConfig(), *, seed: int = 0) -> RolloutEngine:
    """Start the engine `config.backend` names on a local model directory or hub name."""
    if config.backend == "vllm":
        from grpo.engines.vllm_engine import VLLMEngine

        return VLLMEngine(model, config, seed=seed)
    if config.backend == "vllm_server":
        from grpo.engines.vllm_server import VLLMServerEngine

        return VLLMServerEngine(model, config, seed=seed)
    from grpo.engines.hf_engine import HFEngine

    return HFEngine(model, config, seed=seed)


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
    "make_engine",
]
