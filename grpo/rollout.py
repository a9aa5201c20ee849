"""One step's experience: sample G completions per prompt, score them, and compute
group-relative advantages, with DAPO's dynamic sampling when asked.

In multi-process runs every process draws the same global prompt list from the stream and
takes its share of every minibatch (`process_share`), so the stream position is identical on
every process, a prompt's group always lives on one process, and each optimizer step sees
the same prompts as a single-process run would. Rewards are gathered so advantages and metrics
are computed over the global batch.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from grpo.algos import group_advantages
from grpo.config import GRPOConfig
from grpo.data import PromptSampler
from grpo.engines import Group, RolloutEngine, SamplingConfig
from grpo.metrics import Timer, max_over_processes, mean_over_processes
from grpo.reward import RewardSource
from grpo.scoring import RewardStream


@dataclass
class ScoredGroup:
    row: dict[str, Any]
    group: Group
    rewards: list[float]
    per_reward: dict[str, list[float | None]]

    @property
    def informative(self) -> bool:
        """Rewards that are all equal give every sample zero advantage: no learning signal."""
        return max(self.rewards) - min(self.rewards) > 1e-9


@dataclass
class RolloutBatch:
    """This process's share of the step: B_local groups of G samples, flattened to N rows."""

    groups: list[ScoredGroup]
    advantages: torch.Tensor  # (N,)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def prompt_ids(self) -> list[list[int]]:
        return [g.group.prompt_ids for g in self.groups for _ in g.group.samples]

    @property
    def completion_ids(self) -> list[list[int]]:
        return [s.token_ids for g in self.groups for s in g.group.samples]

    @property
    def sampling_logprobs(self) -> list[list[float]]:
        """The engine's log-prob of each sampled token, at the sampling temperature."""
        return [s.logprobs for g in self.groups for s in g.group.samples]

    @property
    def truncated(self) -> torch.Tensor:
        return torch.tensor(
            [s.finish_reason == "length" for g in self.groups for s in g.group.samples]
        )


def process_share(batch: int, minibatches: int, world: int, rank: int) -> list[int]:
    """Positions in the global prompt list that process `rank` handles.

    Minibatch j is the same set of prompts whatever the number of processes: each process
    holds an equal contiguous part of every minibatch, so its j-th local chunk belongs to it.

    >>> process_share(8, 2, 2, 1)  # minibatches {0..3} and {4..7}; rank 1 takes 2,3 and 6,7
    [2, 3, 6, 7]
    """
    size = batch // minibatches
    share = size // world
    return [j * size + rank * share + i for j in range(minibatches) for i in range(share)]


def sample_seed(seed: int, step: int, draw: int, index: int) -> int:
    """A prompt's sampling seed from where it sits in the run, not from any RNG state."""
    return random.Random(f"{seed}:{step}:{draw}:{index}").getrandbits(31)


def collect(
    engine: RolloutEngine,
    reward_fn: RewardSource,
    rows: Sequence[dict[str, Any]],
    sampler: PromptSampler,
    config: GRPOConfig,
    step: int,
    accelerator,
    timer: Timer,
) -> RolloutBatch:
    world, rank = accelerator.num_processes, accelerator.process_index
    per_process = config.prompts_per_step // world
    positions = process_share(config.prompts_per_step, config.minibatches, world, rank)
    sampling = SamplingConfig(
        n=config.group_size,
        temperature=config.temperature,
        top_p=config.top_p,
        max_tokens=config.max_completion_len,
        stop=tuple(config.stop),
    )
    kept: list[ScoredGroup] = []
    dropped: list[ScoredGroup] = []
    reward_metrics: list[dict[str, float]] = []
    draws = 1 + (config.max_extra_draws if config.dynamic_sampling else 0)
    for draw in range(draws):
        drawn = sampler.take(config.prompts_per_step)
        indices = [drawn[p] for p in positions]
        seeds = [sample_seed(config.seed, step, draw, p) for p in positions]
        batch_rows = [rows[i] for i in indices]
        with RewardStream(reward_fn, batch_rows, config.group_size) as stream:
            with timer("generate"):  # with overlap_rewards, finished samples are scored meanwhile
                groups = engine.generate(
                    [r["prompt"] for r in batch_rows],
                    sampling,
                    seeds=seeds,
                    on_finished=stream.submit if config.overlap_rewards else None,
                )
            with timer("reward"):  # what is left once generation is done
                scored, metrics = split_groups(batch_rows, groups, stream.result(groups))
        timer.add("reward_busy", stream.busy)
        reward_metrics.append(metrics)
        for sg in scored:
            (kept if sg.informative or not config.dynamic_sampling else dropped).append(sg)
        missing = per_process - len(kept)
        if not config.dynamic_sampling or max_over_processes(accelerator, missing) <= 0:
            break
    # Under the draw cap, top up with uninformative groups so every process has B_local groups.
    groups = (kept + dropped)[:per_process]
    rewards = torch.tensor([r for g in groups for r in g.rewards], dtype=torch.float32)  # (N,)
    all_rewards = _gather(accelerator, rewards)  # (B*G,) in rank order
    advantages = group_advantages(all_rewards, config.group_size, scale=config.advantage_scale)
    local = advantages.view(world, -1)[rank].clone()  # (N,)
    metrics = _mean_dicts(reward_metrics)
    metrics.update(_batch_metrics(groups, all_rewards, config, accelerator))
    metrics["dynamic/draws"] = float(draw + 1)
    metrics["dynamic/dropped_groups"] = float(len(dropped))
    return RolloutBatch(groups, local, mean_over_processes(accelerator, metrics))


def split_groups(
    rows: Sequence[dict[str, Any]], groups: Sequence[Group], out
) -> tuple[list[ScoredGroup], dict]:
    """The batch's rewards (prompt-major) cut back into one ScoredGroup per prompt."""
    scored, start = [], 0
    for row, group in zip(rows, groups, strict=True):
        end = start + len(group.samples)
        per_reward = {k: v[start:end] for k, v in out.per_reward.items()}
        scored.append(ScoredGroup(row, group, list(out.total[start:end]), per_reward))
        start = end
    return scored, dict(out.metrics)


def _batch_metrics(
    groups: list[ScoredGroup], all_rewards: torch.Tensor, config: GRPOConfig, accelerator
) -> dict[str, float]:
    """Length, truncation and reward-variance figures over the global batch."""
    samples = [s for g in groups for s in g.group.samples]
    lengths = _gather(
        accelerator, torch.tensor([len(s.token_ids) for s in samples], dtype=torch.float32)
    )
    truncated = _gather(
        accelerator, torch.tensor([s.finish_reason == "length" for s in samples]).float()
    )
    grouped = all_rewards.view(-1, config.group_size)  # (B, G)
    zero_var = (grouped.max(1).values - grouped.min(1).values <= 1e-9).float()
    return {
        "completion/length_mean": lengths.mean().item(),
        "completion/length_max": lengths.max().item(),
        "completion/truncated_rate": truncated.mean().item(),
        "completion/tokens": lengths.sum().item(),
        "reward/zero_variance_groups": zero_var.mean().item(),
        "reward/mean": all_rewards.mean().item(),
        "reward/std": all_rewards.std().item() if all_rewards.numel() > 1 else 0.0,
    }


def _mean_dicts(dicts: list[dict[str, float]]) -> dict[str, float]:
    keys = {k for d in dicts for k in d}
    return {k: sum(d[k] for d in dicts if k in d) / sum(k in d for d in dicts) for k in keys}


def _gather(accelerator, tensor: torch.Tensor) -> torch.Tensor:
    """All processes' tensors concatenated in rank order, back on the CPU."""
    if accelerator.num_processes == 1:
        return tensor
    return accelerator.gather(tensor.to(accelerator.device)).cpu()
