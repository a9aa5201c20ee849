"""Run under torchrun (2 processes, gloo): a policy sharded with torch's FSDP2 (`fully_shard`)
streams its weights into each process's own vLLM engine (external_launcher), and each engine
then scores sampled tokens exactly as the sharded policy does. Exits non-zero on a mismatch."""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist


def main(model_path: str) -> None:
    from accelerate import Accelerator
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForCausalLM

    from grpo.engines import EngineConfig, SamplingConfig
    from grpo.engines.vllm_engine import Placement, VLLMEngine
    from grpo.policy import MicroBatch, completion_logprobs, full_weights, weight_names
    from grpo.trainer import push_weights

    accelerator = Accelerator(cpu=True)
    rank, world = accelerator.process_index, accelerator.num_processes
    policy = AutoModelForCausalLM.from_pretrained(model_path)
    for layer in policy.model.layers:
        fully_shard(layer)
    fully_shard(policy)
    with torch.no_grad():  # an "update": every shard changes
        for p in policy.parameters():
            p.to_local().mul_(1.5)
    engine = VLLMEngine(model_path, EngineConfig(max_model_len=128), placement=Placement(rank, rank, world))
    push_weights(engine, full_weights(accelerator, policy), weight_names(accelerator, policy))
    group = engine.generate(["<s>12+3"], SamplingConfig(n=4, max_tokens=16), seeds=[rank])[0]
    batch = MicroBatch.build([group.prompt_ids] * 4, [s.token_ids for s in group.samples], 0)
    with torch.no_grad():
        trainer_logp, _ = completion_logprobs(policy, batch)
    worst = max((trainer_logp[i, : len(s.logprobs)] - torch.tensor(s.logprobs)).abs().max().item()
                for i, s in enumerate(group.samples))
    print(f"rank {rank}: max |trainer - engine| = {worst:.2e}", flush=True)
    dist.barrier()
    sys.exit(0 if worst < 1e-4 else 1)


if __name__ == "__main__":
    main(sys.argv[1])
