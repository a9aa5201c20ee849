"""vLLM colocated in the training process, with in-place weight updates.

The engine runs in-process (no engine-core subprocess) so that the trainer can reach the model
runner; `update_weights` reloads the weights in place through vLLM's `reload_weights`, one
tensor at a time as the iterator yields them, and drops the prefix cache, whose KV entries were
computed with the old weights.

Under several training processes every process owns one engine on its own device, started
with vLLM's `external_launcher` executor (as TRL's colocate mode does): vLLM joins the
launcher's process group and takes its rank from RANK / LOCAL_RANK. With
`tensor_parallel_size` k, each k consecutive ranks form one tensor-parallel engine: they pool
their prompts, generate the same requests in lockstep, and each keeps its own share back.
"""

from __future__ import annotations

import gc
import os
import weakref
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from grpo.engines.base import (
    EngineConfig,
    Finished,
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
    later accelerate states and every subprocess would inherit. VLLM_* settings stay. And it
    binds this thread's memory to the first NUMA node (MPOL_BIND): on a machine with several
    nodes the policy's tensors and optimizer state would all be allocated on one node, and
    fail there when it is full, instead of where the training threads run.
    """
    _default_memory_policy()
    torch.set_num_threads = set_num_threads
    torch.set_num_threads(threads)
    for key in set(os.environ) - set(before):
        if not key.startswith("VLLM_"):
            del os.environ[key]
    for key, value in before.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


# set_mempolicy(2) by architecture; policy 0 is MPOL_DEFAULT (allocate on the local node).
_SET_MEMPOLICY = {"x86_64": 238, "aarch64": 237, "ppc64le": 261, "s390x": 270}


def memory_policy() -> str:
    """This thread's NUMA memory policy as /proc shows it ("default", "bind:0", ...)."""
    try:
        with open("/proc/thread-self/numa_maps") as maps:
            return maps.readline().split()[1]
    except (OSError, IndexError):
        return "unknown"


def _default_memory_policy() -> None:
    """Put this thread's memory policy back to the kernel's default (Linux only)."""
    import ctypes
    import platform

    number = _SET_MEMPOLICY.get(platform.machine())
    if number is None or not memory_policy().startswith("bind"):
        return
    ctypes.CDLL(None, use_errno=True).syscall(number, 0, None, 0)


@dataclass(frozen=True)
class Placement:
    """Where this process sits among the training processes that each own an engine."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    def tp_groups(self, tp: int) -> list[list[int]]:
        """Ranks of each tensor-parallel engine: k consecutive ranks.

        >>> Placement(world_size=4).tp_groups(2)
        [[0, 1], [2, 3]]
        """
        if tp < 1 or self.world_size % tp:
            raise ValueError(
                f"engine.tensor_parallel_size={tp} must divide the number of training "
                f"processes ({self.world_size})"
            )
        return [list(range(g * tp, (g + 1) * tp)) for g in range(self.world_size // tp)]

    @classmethod
    def of_this_process(cls) -> Placement:
        """From the process group the launcher started (torchrun, accelerate), if any."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return cls()
        rank = dist.get_rank()
        return cls(rank, int(os.environ.get("LOCAL_RANK", rank)), dist.get_world_size())


def engine_arguments(config: EngineConfig, placement: Placement, seed: int, cuda: bool) -> dict:
    """The `LLM(...)` arguments for this process's engine (model and dtype aside)."""
    tp = config.tensor_parallel_size
    placement.tp_groups(tp)  # validates tp against the world size
    args = dict(
        gpu_memory_utilization=config.gpu_memory_utilization,
        enforce_eager=(not cuda) if config.enforce_eager is None else config.enforce_eager,
        enable_sleep_mode=cuda if config.sleep is None else config.sleep,
        enable_prefix_caching=config.enable_prefix_caching,
        tensor_parallel_size=tp,
        # Log-probs after temperature, so they compare with the trainer's (TIS, mismatch).
        logprobs_mode="processed_logprobs",
        seed=seed + placement.rank // tp,  # the ranks of one tensor-parallel engine agree
    )
    if config.max_num_batched_tokens is not None:
        args["max_num_batched_tokens"] = config.max_num_batched_tokens
    elif not cuda:
        args["max_num_batched_tokens"] = 65536
    if placement.world_size > 1:
        args["distributed_executor_backend"] = "external_launcher"
    return args


def launcher_environment(placement: Placement) -> dict[str, str]:
    """What `external_launcher` reads from the environment to join the process group."""
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if placement.world_size > 1 and missing:
        raise RuntimeError(
            f"{' and '.join(missing)} not set: launch several processes with torchrun "
            "or accelerate launch"
        )
    return (
        {
            "RANK": str(placement.rank),
            "LOCAL_RANK": str(placement.local_rank),
            "WORLD_SIZE": str(placement.world_size),
        }
        if placement.world_size > 1
        else {}
    )


class VLLMEngine:
    """Generate with vLLM; `update_weights` pushes trained weights into the running engine."""

    def __init__(
        self,
        model: str,
        config: EngineConfig = EngineConfig(),
        *,
        seed: int = 0,
        placement: Placement | None = None,
    ):
        """`placement`: where this process's engine sits among the training processes; by
        default the launcher's process group (every process of it must start its engine)."""
        placement = placement or Placement.of_this_process()
        _configure_environment(config)
        try:
            from vllm import LLM
        except ImportError as exc:
            raise RuntimeError(
                "vLLM is not installed; install r1kit[cpu] (CPU) or r1kit[gpu] (GPU), "
                "or set engine.backend=hf"
            ) from exc
        self.config, self.placement = config, placement
        cuda = torch.cuda.is_available()
        arguments = engine_arguments(config, placement, seed, cuda)
        os.environ.update(launcher_environment(placement))
        self.tp_group = _tp_subgroup(placement, config.tensor_parallel_size)
        environment, set_num_threads, threads = (
            dict(os.environ),
            torch.set_num_threads,
            torch.get_num_threads(),
        )
        self.llm = LLM(
            model=model, dtype=config.dtype, max_model_len=config.max_model_len, **arguments
        )
        _restore_process_state(environment, set_num_threads, threads)
        self.tokenizer = self.llm.get_tokenizer()
        # vLLM's shutdown destroys torch's default process group; under a launcher that group is
        # the run's own, which later stages still use. Shut down through `close` (or at garbage
        # collection) with that group kept.
        self._shutdown = weakref.finalize(
            self,
            _shutdown,
            self.llm.llm_engine.engine_core,
            keep_default_group=placement.world_size > 1,
        )
        self.sleeps, self.asleep = arguments["enable_sleep_mode"], False
        worker = getattr(
            getattr(self.llm.llm_engine.model_executor, "driver_worker", None), "worker", None
        )
        self.device = str(getattr(worker, "device", "cuda" if cuda else "cpu"))
        self._calls = 0

    def generate(
        self,
        prompts: Sequence[Prompt],
        sampling: SamplingConfig,
        seeds: Sequence[int] | None = None,
        on_finished: OnFinished | None = None,
    ) -> list[Group]:
        if self.asleep:
            raise RuntimeError(
                "the engine released its weights in sleep(); update_weights() wakes it"
            )
        seeds = [sampling.seed] * len(prompts) if seeds is None else list(seeds)
        if self.tp_group is None:
            return self._generate(prompts, sampling, seeds, on_finished)
        # A tensor-parallel engine: every rank of the group runs the group's requests.
        import torch.distributed as dist

        pooled: list = [None] * dist.get_world_size(self.tp_group)
        dist.all_gather_object(pooled, (list(prompts), seeds), group=self.tp_group)
        me = dist.get_rank(self.tp_group)
        first = sum(len(p) for p, _ in pooled[:me])
        mine = range(first, first + len(prompts))

        def own(done: list[Finished]) -> None:
            kept = [(i - first, j, s) for i, j, s in done if i in mine]
            if kept and on_finished is not None:
                on_finished(kept)

        groups = self._generate(
            [p for ps, _ in pooled for p in ps], sampling, [s for _, ss in pooled for s in ss], own
        )
        return groups[first : first + len(prompts)]

    def _generate(
        self,
        prompts: Sequence[Prompt],
        sampling: SamplingConfig,
        seeds: list[int | None],
        on_finished: OnFinished | None,
    ) -> list[Group]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        prompt_ids = [encode_prompt(self.tokenizer, p) for p in prompts]
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
                engine.add_request(
                    request_id,
                    TokensPrompt(prompt_token_ids=prompt_ids[i]),
                    SamplingParams(**base, seed=seed),
                )
            while engine.has_unfinished_requests():
                done = [
                    (*position[out.request_id], _to_sample(out.outputs[0]))
                    for out in engine.step()
                    if out.finished
                ]
                for i, j, sample in done:
                    groups[i].samples[j] = sample
                if done and on_finished is not None:
                    on_finished(done)
        except BaseException:
            engine.abort_request(
                list(position)
            )  # leave no half-finished requests for the next call
            raise
        return groups

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Reload the weights in place, streaming: each tensor is loaded as it is yielded, so
        the whole model never exists twice. Returns how many tensors vLLM consumed."""
        if self.asleep:  # weights first, then the KV cache: the load needs the weight memory only
            self.llm.wake_up(tags=["weights"])
        loaded = 0

        def counted():
            nonlocal loaded
            for name, tensor in named_tensors:
                loaded += 1
                yield name, tensor.detach()

        self.llm.collective_rpc(
            "reload_weights", kwargs={"weights_iterator": counted(), "is_checkpoint_format": True}
        )
        if self.asleep:
            self.llm.wake_up(tags=["kv_cache"])
            self.asleep = False
        self.llm.reset_prefix_cache()
        return loaded

    def close(self) -> None:
        """Shut vLLM down now and free its weights and KV cache (idempotent)."""
        self._shutdown()
        gc.collect()

    def sleep(self) -> None:
        """Release weights and KV cache (vLLM sleep level 2) until the next weight update."""
        if self.sleeps and not self.asleep:
            self.llm.sleep(level=2)
            self.asleep = True


def _shutdown(client, *, keep_default_group: bool) -> None:
    """Shut an in-process engine core down, leaving torch's default process group alive when
    the launcher owns it (vLLM's teardown would destroy it; its own subgroups still go)."""
    with _default_group_kept(keep_default_group):
        client.shutdown()


@contextmanager
def _default_group_kept(keep: bool):
    import torch.distributed as dist

    destroy = dist.destroy_process_group
    if keep:
        dist.destroy_process_group = lambda group=None: None if group is None else destroy(group)
    try:
        yield
    finally:
        dist.destroy_process_group = destroy


def _tp_subgroup(placement: Placement, tp: int):
    """This rank's tensor-parallel process group (every rank must create all of them)."""
    if tp == 1 or placement.world_size == 1:
        return None
    import torch.distributed as dist

    mine, _ = dist.new_subgroups_by_enumeration(placement.tp_groups(tp))
    return mine


def _to_sample(completion) -> Sample:
    ids = list(completion.token_ids)
    logprobs = [step[token].logprob for step, token in zip(completion.logprobs, ids, strict=True)]
    # vLLM reports "stop" for EOS and for stop strings, "length" when max_tokens ran out.
    finish = "length" if completion.finish_reason == "length" else "stop"
    return Sample(text=completion.text, token_ids=ids, logprobs=logprobs, finish_reason=finish)
