"""vLLM colocated in the training process, with in-place weight updates.

On a CPU build of vLLM the engine must run in-process (no engine-core subprocess) so that the
trainer can reach the model runner; `update_weights` then reloads the weights in place through
vLLM's `reload_weights` (the older `model.load_weights` path breaks after the first load on
CPU) and drops the prefix cache, whose KV entries were computed with the old weights.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import torch

from grpo.engines.base import (
    EngineConfig,
    Group,
    OnFinished,
    Prompt,
    Sample,
    SamplingConfig,
    encode_prompt,
)


def _configure_environment(config: EngineConfig) -> None:
    # Both must be set before vLLM is imported for the first time.
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(config.cpu_kv_cache_gib))
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")


def _restore_process_state(before: dict[str, str], set_num_threads, threads: int) -> None:
    """Undo the process-wide changes an in-process vLLM CPU worker makes at start-up.

    It replaces `torch.set_num_threads` with a no-op, so every later thread setting in this
    process (an SFT stage's `num_threads`, a benchmark's) was silently ignored and a stage that
    followed an evaluation ran on more threads, with different float rounding, than the same
    stage resumed in a fresh process. It also exports LOCAL_WORLD_SIZE and LD_PRELOAD, which
    later accelerate states and every subprocess would inherit. VLLM_* settings stay.
    """
    torch.set_num_threads = set_num_threads
    torch.set_num_threads(threads)
    for key in set(os.environ) - set(before):
        if not key.startswith("VLLM_"):
            del os.environ[key]
    for key, value in before.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


class VLLMEngine:
    """Generate with vLLM; `update_weights` pushes trained weights into the running engine."""

    def __init__(self, model: str, config: EngineConfig = EngineConfig(), *, seed: int = 0):
        _configure_environment(config)
        try:
            from vllm import LLM
        except ImportError as exc:
            raise RuntimeError(
                "vLLM is not installed; install r1kit[cpu] (CPU) or r1kit[gpu] (GPU), "
                "or set engine.backend=hf"
            ) from exc
        self.config = config
        environment, set_num_threads, threads = dict(os.environ), torch.set_num_threads, torch.get_num_threads()
        self.llm = LLM(
            model=model,
            dtype=config.dtype,
            max_model_len=config.max_model_len,
            gpu_memory_utilization=config.gpu_memory_utilization,
            enforce_eager=config.enforce_eager,
            enable_prefix_caching=config.enable_prefix_caching,
            tensor_parallel_size=config.tensor_parallel_size,
            seed=seed,
            **_scheduler_budget(config),
        )
        _restore_process_state(environment, set_num_threads, threads)
        self.tokenizer = self.llm.get_tokenizer()
        self._calls = 0

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingConfig, seeds: Sequence[int] | None = None,
                 on_finished: OnFinished | None = None) -> list[Group]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        prompt_ids = [encode_prompt(self.tokenizer, p) for p in prompts]
        seeds = [sampling.seed] * len(prompts) if seeds is None else list(seeds)
        base = dict(
            n=1,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            stop=list(sampling.stop) or None,
            include_stop_str_in_output=True,  # RL must see, and be rewarded for, the stop tag
            logprobs=0,  # the sampled token's logprob only
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        # One request per sample, so each sample is returned the step it ends. Sample j of a
        # prompt seeded s gets seed s + j: exactly what vLLM gives the j-th of n samples.
        where = [(i, j) for i in range(len(prompts)) for j in range(sampling.n)]
        self._calls += 1
        position = {f"r1kit-{self._calls}-{k}": ij for k, ij in enumerate(where)}
        groups = [Group(prompt_ids=ids, samples=[None] * sampling.n) for ids in prompt_ids]  # type: ignore[list-item]
        engine = self.llm.llm_engine
        try:
            for request_id, (i, j) in position.items():
                seed = None if seeds[i] is None else seeds[i] + j
                engine.add_request(request_id, TokensPrompt(prompt_token_ids=prompt_ids[i]),
                                   SamplingParams(**base, seed=seed))
            while engine.has_unfinished_requests():
                done = [(*position[out.request_id], _to_sample(out.outputs[0]))
                        for out in engine.step() if out.finished]
                for i, j, sample in done:
                    groups[i].samples[j] = sample
                if done and on_finished is not None:
                    on_finished(done)
        except BaseException:
            engine.abort_request(list(position))  # leave no half-finished requests for the next call
            raise
        return groups

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        weights = [(name, tensor.detach()) for name, tensor in named_tensors]
        self.llm.collective_rpc(
            "reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True}
        )
        self.llm.reset_prefix_cache()


def _scheduler_budget(config: EngineConfig) -> dict[str, int]:
    if config.max_num_batched_tokens is not None:
        return {"max_num_batched_tokens": config.max_num_batched_tokens}
    return {} if torch.cuda.is_available() else {"max_num_batched_tokens": 65536}


def _to_sample(completion) -> Sample:
    ids = list(completion.token_ids)
    logprobs = [step[token].logprob for step, token in zip(completion.logprobs, ids, strict=True)]
    # vLLM reports "stop" for EOS and for stop strings, "length" when max_tokens ran out.
    finish = "length" if completion.finish_reason == "length" else "stop"
    return Sample(text=completion.text, token_ids=ids, logprobs=logprobs, finish_reason=finish)
