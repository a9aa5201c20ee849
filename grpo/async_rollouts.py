"""Where each step's rollout batch comes from: made on demand (max_staleness 0), or made ahead
by a background producer while the policy trains (max_staleness k >= 1).

Asynchronous GRPO with bounded staleness. Batch t is generated with policy version
v(t) = max(0, t - 1 - k), where version u means "the weights after u updates". The trainer at
step t holds version t - 1, so a sample is at most k versions old, and while step t trains,
the producer generates batch t + k with version t - 1. This fixed lag (as in one-step
off-policy RL, Noukhovitch et al. 2024, "Asynchronous RLHF"; AReaL, Fu et al. 2025, bounds the
same quantity) makes a run reproducible: which weights produced which sample never depends
on timing. The policy-gradient terms are reweighted by truncated importance sampling against
the engine's log-probs (`tis_cap`, on by default when k >= 1), which corrects the staleness
and the engine's numerics together.

Weights move only between batches: after step u the trainer waits until batch u + k is
generated (the last one made with version u - 1), then pushes version u from its own thread
(a collective under FSDP) while the producer, which needs version u next, waits. Every
sample is tagged with the version that produced it; the trainer drops any group older than k
(none under this schedule; counted in `async/stale_groups_dropped`).

Exact resume: a checkpoint after step s holds batches s+1 .. s+k (made with versions older
than s, which no checkpoint keeps) and the prompt stream's position after them; the resumed
producer continues with batch s+k+1 from version s, as the interrupted run did.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from grpo.config import GRPOConfig
from grpo.data import PromptSampler
from grpo.engines import RolloutEngine
from grpo.metrics import Timer
from grpo.reward import RewardSource
from grpo.rollout import RolloutBatch, collect

PENDING_FILE = "pending_rollouts.rank{rank}.pt"


@dataclass(frozen=True)
class RolloutWork:
    """What a rollout batch is made from: the engine, the rewards, the prompts and their order."""

    engine: RolloutEngine
    reward_fn: RewardSource
    rows: Sequence[dict[str, Any]]
    sampler: PromptSampler
    config: GRPOConfig

    def collect(self, step: int, collectives, timer: Timer) -> RolloutBatch:
        return collect(
            self.engine,
            self.reward_fn,
            self.rows,
            self.sampler,
            self.config,
            step,
            collectives,
            timer,
        )


class OnPolicyRollouts:
    """max_staleness 0: each batch is generated when its step starts, by the current policy."""

    def __init__(self, work: RolloutWork, accelerator, timer: Timer):
        self.work, self.accelerator, self.timer = work, accelerator, timer

    def batch(self, step: int) -> RolloutBatch:
        """Times "generate" and "reward" on the trainer's timer."""
        return self.work.collect(step, self.accelerator, self.timer)

    def publish(self, step: int, push: Callable[[], None]) -> None:
        push()

    def sampler_state(self) -> dict[str, Any]:
        return self.work.sampler.state_dict()

    def save(self, directory: Path) -> None:
        """Nothing is in flight between steps."""

    def close(self) -> None:
        pass


class AsyncRollouts:
    """max_staleness k >= 1: a producer thread generates batches ahead of the trainer."""

    def __init__(
        self,
        work: RolloutWork,
        accelerator,
        timer: Timer,
        start_step: int,
        resume_dir: Path | None,
    ):
        self.work, self.accelerator, self.timer = work, accelerator, timer
        self.k, self.last = work.config.max_staleness, work.config.max_steps
        # The producer's gathers (rewards for advantages, metrics) run beside training's
        # collectives: under several processes they get a process group of their own.
        self.collectives = accelerator if accelerator.num_processes == 1 else SideGroup(accelerator)
        self.file = PENDING_FILE.format(rank=accelerator.process_index)
        self.ready: dict[int, tuple[int, RolloutBatch]] = {}  # step -> (version, batch)
        if resume_dir is not None and (resume_dir / self.file).is_file():
            self.ready = torch.load(resume_dir / self.file, weights_only=False)
        expected = list(range(start_step + 1, min(start_step + self.k, self.last) + 1))
        if start_step and sorted(self.ready) != expected:
            raise RuntimeError(
                f"checkpoint {resume_dir} holds rollouts for steps "
                f"{sorted(self.ready)}, not {expected}: it was not written by an "
                f"asynchronous run with max_staleness={self.k}"
            )
        self.next_step = start_step + 1 + len(self.ready)  # the next batch to generate
        self.pushed = start_step  # the version the engine holds (the trainer pushed it at start)
        self.snapshot = (work.sampler.state_dict(), dict(self.ready))
        self.engine_wait = 0.0  # seconds the producer waited for weights, since the last batch
        self.error: BaseException | None = None
        self.stopping = False
        self.condition = threading.Condition()
        self.thread = threading.Thread(target=self._produce, name="r1kit-rollouts", daemon=True)
        self.thread.start()

    # ------------------------------------------------------------------------- producer thread
    def _produce(self) -> None:
        try:
            while self.next_step <= self.last:
                step = self.next_step
                version = max(0, step - 1 - self.k)
                with self.condition:
                    start = time.perf_counter()
                    self.condition.wait_for(lambda v=version: self.pushed >= v or self.stopping)
                    self.engine_wait += time.perf_counter() - start
                    if self.stopping:
                        return
                timer = Timer()
                batch = self.work.collect(step, self.collectives, timer)
                for group in batch.groups:
                    for sample in group.group.samples:
                        sample.version = version
                batch.metrics.update(timer.pop())
                batch.metrics["time/engine_wait_weights"] = self.engine_wait
                with self.condition:
                    self.engine_wait = 0.0
                    self.ready[step] = (version, batch)
                    self.next_step = step + 1
                    self.condition.notify_all()
        except Exception as exc:  # noqa: BLE001 -- raised again in the trainer's thread
            with self.condition:
                self.error = exc
                self.condition.notify_all()

    def _wait(self, predicate: Callable[[], bool]) -> None:
        with self.condition:
            self.condition.wait_for(lambda: predicate() or self.error is not None)
            if self.error is not None:
                raise self.error

    # ------------------------------------------------------------------------- trainer thread
    def batch(self, step: int) -> RolloutBatch:
        """Batch `step`, its groups older than k versions dropped; times the wait for it."""
        with self.timer("wait_rollouts"):
            self._wait(lambda: step in self.ready)
        with self.condition:
            _, batch = self.ready.pop(step)
        return drop_stale(batch, policy_version=step - 1, max_staleness=self.k)

    def publish(self, step: int, push: Callable[[], None]) -> None:
        """Version `step` is trained: once the producer has made every batch that needs an
        older version, snapshot the resumable state, push the weights, let it go on."""
        through = min(step + self.k, self.last)
        self._wait(lambda: self.next_step > through)
        with self.condition:
            self.snapshot = (self.work.sampler.state_dict(), dict(self.ready))
        push()
        with self.condition:
            self.pushed = step
            self.condition.notify_all()

    def sampler_state(self) -> dict[str, Any]:
        return self.snapshot[0]

    def save(self, directory: Path) -> None:
        """The batches made ahead of the last published step (see the module docstring)."""
        torch.save(self.snapshot[1], directory / self.file)

    def close(self) -> None:
        with self.condition:
            self.stopping = True
            self.condition.notify_all()
        # A batch still generating ends on its own; the daemon thread then sees `stopping`.
        self.thread.join(timeout=30)


class SideGroup:
    """What `collect` uses of the accelerator (its size, rank, gather and reduce), on a gloo
    process group of its own, so the producer thread's collectives never pair up with the
    training thread's. Every process must create it, in the same order."""

    def __init__(self, accelerator):
        import torch.distributed as dist

        self.num_processes, self.process_index = (
            accelerator.num_processes,
            accelerator.process_index,
        )
        self.device = torch.device("cpu")
        self.group = dist.new_group(backend="gloo")

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every process's tensor (same shape on each), concatenated in rank order."""
        import torch.distributed as dist

        parts = [torch.empty_like(tensor) for _ in range(self.num_processes)]
        dist.all_gather(parts, tensor.cpu().contiguous(), group=self.group)
        return torch.cat(parts)

    def reduce(self, tensor: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        import torch.distributed as dist

        ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}
        out = tensor.detach().cpu().clone()
        dist.all_reduce(out, op=ops[reduction], group=self.group)
        return out

    def gather_object(self, items: list) -> list:
        """Every process's list, concatenated in rank order."""
        import torch.distributed as dist

        parts: list = [None] * self.num_processes
        dist.all_gather_object(parts, items, group=self.group)
        return [item for part in parts for item in part]


def drop_stale(batch: RolloutBatch, *, policy_version: int, max_staleness: int) -> RolloutBatch:
    """Keep the groups whose every sample is at most `max_staleness` versions older than the
    policy about to train on them (whole groups: advantages are group-relative), and record
    the staleness of what is kept."""

    def staleness(group) -> int:
        return max(policy_version - s.version for s in group.group.samples)

    keep = [staleness(g) <= max_staleness for g in batch.groups]
    kept = [g for g, k in zip(batch.groups, keep, strict=True) if k]
    if not kept:
        raise RuntimeError(
            f"every group of the batch for policy version {policy_version} is "
            f"more than max_staleness={max_staleness} versions old"
        )
    rows = [k for g, k in zip(batch.groups, keep, strict=True) for _ in g.group.samples]  # (N,)
    ages = torch.tensor([float(policy_version - s.version) for g in kept for s in g.group.samples])
    metrics = {
        **batch.metrics,
        "async/staleness_mean": ages.mean().item(),
        "async/staleness_max": ages.max().item(),
        "async/sample_version_min": float(policy_version) - ages.max().item(),
        "async/stale_groups_dropped": float(len(batch.groups) - len(kept)),
    }
    return RolloutBatch(kept, batch.advantages[torch.tensor(rows)], metrics)


def make_rollouts(
    engine,
    reward_fn,
    rows,
    sampler,
    config: GRPOConfig,
    accelerator,
    timer: Timer,
    start_step: int,
    resume_dir: Path | None,
):
    """The rollout source `config.max_staleness` asks for."""
    work = RolloutWork(engine, reward_fn, rows, sampler, config)
    if config.max_staleness == 0:
        return OnPolicyRollouts(work, accelerator, timer)
    return AsyncRollouts(work, accelerator, timer, start_step, resume_dir)
