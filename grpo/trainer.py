"""The GRPO trainer (DeepSeekMath §4.1, Algorithm 1; DeepSeek-R1 §2.2).

Each step reads like the algorithm:

    rollout   the engine samples G completions for each of B prompts (vLLM or transformers)
    reward    rule-based rewards / reward models score every completion
    advantage A_i = (r_i - mean(r_group)) / std(r_group)
    loss      clipped surrogate with an optional KL penalty against the reference policy
    step      mu passes x minibatches of optimizer steps (accelerate: DDP or FSDP2)
    sync      the updated weights are loaded into the engine in place
    log       metrics to console / JSONL / TensorBoard, sampled completions to JSONL
    save      atomic checkpoint that a rerun of the same command resumes from
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from grpo import checkpoint as ckpt
from grpo.algos import StepContext, masked_mean, policy_loss
from grpo.async_rollouts import make_rollouts
from grpo.config import GRPOConfig, check_staleness
from grpo.data import PromptSampler
from grpo.engines import EngineConfig, encode_prompt, make_engine
from grpo.files import replace_dir
from grpo.metrics import MetricsLogger, Timer, max_over_processes, mean_over_processes
from grpo.policy import (
    MicroBatch,
    completion_logprobs,
    full_state_dict,
    full_weights,
    load_policy,
    load_reference,
    micro_batches,
    resolve_mixed_precision,
    save_hf_model,
    weight_names,
)
from grpo.reward import RewardFn, RewardSource, as_reward_source
from grpo.rollout import RolloutBatch
from grpo.threads import torch_threads

CONSOLE_KEYS = (
    "reward/mean",
    "reward/*/mean",
    "eval/*",
    "completion/length_mean",
    "policy/kl_mean",
    "policy/entropy",
    "perf/tokens_per_s",
    "time/step",
)
StepHook = Callable[[int, Any], Mapping[str, float]]  # (step, engine) -> extra metrics to log


class GRPOTrainer:
    def __init__(
        self,
        model: str,
        rows: Sequence[dict[str, Any]],
        reward_fn: RewardFn | Sequence[RewardFn] | RewardSource,
        config: GRPOConfig,
        engine_config: EngineConfig,
        output_dir: str | Path,
        *,
        fresh: bool = False,
        accelerator=None,
        resume_from: str | Path | None = None,
        on_step: StepHook | None = None,
    ):
        self.config, self.rows = config, list(rows)
        self.reward_fn = as_reward_source(reward_fn)
        self.on_step = on_step
        self.output_dir = Path(output_dir)
        self.accelerator = accelerator or make_accelerator(
            resolve_mixed_precision(config.mixed_precision)
        )
        world = self.accelerator.num_processes
        check_staleness(config, engine_config.backend)
        if config.prompts_per_step % (world * config.minibatches):
            raise ValueError(
                f"prompts_per_step={config.prompts_per_step} must be divisible by "
                f"processes x minibatches = {world} x {config.minibatches}"
            )
        torch.manual_seed(config.seed)
        self.model, self.tokenizer = load_policy(model, config.lora, config.gradient_checkpointing)
        n_rows = len(self.rows)
        self.rows = self._drop_long_prompts(self.rows)
        # With LoRA the reference policy is the base model with adapters switched off: no copy.
        self.ref = None
        if config.beta > 0 and config.lora is None:
            self.ref = prepare_frozen(self.accelerator, load_reference(model))
        self.optimizer, self.scheduler = self._optimizer()
        # The scheduler is not prepared: accelerate would step it once per process per step.
        self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        self.accelerator.register_for_checkpointing(self.scheduler)
        self.sampler = PromptSampler(len(self.rows), seed=config.seed)
        self.start_step, resume_dir = 0, None if fresh else ckpt.latest_checkpoint(self.output_dir)
        resume_dir = Path(resume_from) if resume_from is not None else resume_dir
        if resume_dir is not None:
            self._resume(resume_dir)
        self._truncate_logs(self.start_step)  # rows a killed or earlier run logged past this step
        self.logger = MetricsLogger(
            self.output_dir,
            tuple(config.report_to),
            enabled=self.accelerator.is_main_process,
            console_keys=CONSOLE_KEYS,
            project=config.wandb_project,
            run_name=config.run_name,
        )
        if len(self.rows) < n_rows:
            self.logger.text(
                f"dropped {n_rows - len(self.rows)} of {n_rows} prompts longer than "
                f"max_prompt_len={config.max_prompt_len} tokens"
            )
        self.engine = self._engine(str(resume_dir) if resume_dir else model, engine_config)
        self.weight_names = weight_names(self.accelerator, self.model)
        self.timer = Timer()
        # Each step's batch: generated on demand, or ahead by a producer (max_staleness >= 1).
        self.rollouts = make_rollouts(
            self.engine,
            self.reward_fn,
            self.rows,
            self.sampler,
            config,
            self.accelerator,
            self.timer,
            self.start_step,
            resume_dir,
        )

    # ----------------------------------------------------------------------------- the loop
    def train(self) -> dict[str, float]:
        with torch_threads(self.config.num_threads):
            try:
                return self._train()
            finally:
                self.rollouts.close()

    def _train(self) -> dict[str, float]:
        config, last = self.config, {}
        if self.start_step:
            self.logger.text(f"resuming from step {self.start_step} of {config.max_steps}")
        with self.logger.progress(config.max_steps, "GRPO", completed=self.start_step) as bar:
            for step in range(self.start_step + 1, config.max_steps + 1):
                start = time.perf_counter()
                batch = self.rollouts.batch(step)  # generated now, or ahead (max_staleness)
                self.engine.sleep()  # vLLM sleep mode: its memory is the policy's while it trains
                with self.timer("train"):
                    train_metrics = self.update(batch)
                with self.timer("weight_sync"):  # async: once the batches of older weights are made
                    self.rollouts.publish(step, self.sync_engine)
                last = {
                    **batch.metrics,
                    **train_metrics,
                    **self.timer.pop(),
                    "time/step": time.perf_counter() - start,
                }
                last["perf/tokens_per_s"] = last["completion/tokens"] / last["time/step"]
                if self.on_step is not None:
                    last.update(self.on_step(step, self.engine))
                self.logger.log(step, last)
                self._log_samples(step, batch)
                if step % config.save_every == 0 or step == config.max_steps:
                    self.save(step)
                bar.advance()
        return last

    # ----------------------------------------------------------------------- policy update
    def update(self, batch: RolloutBatch) -> dict[str, float]:
        """mu passes over the batch, each split into minibatches; one optimizer step each."""
        config = self.config
        n = len(batch.completion_ids)
        masks = self._loss_masks(batch)
        ref_logp = self._frozen_logprobs(batch, reference=True) if config.beta > 0 else None
        off_policy = config.num_iterations > 1 or config.minibatches > 1
        old_logp = self._frozen_logprobs(batch, reference=False) if off_policy else None
        engine_logp = [torch.tensor(s, dtype=torch.float32) for s in batch.sampling_logprobs]
        size = n // config.minibatches
        sums: dict[str, float] = {}
        mismatch: list[
            torch.Tensor
        ] = []  # |trainer - engine| log-prob per sampled token, before the update
        count = 0
        for iteration in range(config.num_iterations):
            for start in range(0, n, size):
                rows = list(range(start, start + size))
                metrics = self._minibatch_step(
                    batch,
                    rows,
                    masks,
                    old_logp,
                    ref_logp,
                    engine_logp,
                    mismatch if iteration == 0 else None,
                )
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
        out = {k: v / count for k, v in sums.items()}
        diffs = torch.cat(mismatch) if mismatch else torch.zeros(1)
        out["rollout/logprob_abs_diff_mean"] = diffs.mean().item()
        out = mean_over_processes(self.accelerator, out)
        out["rollout/logprob_abs_diff_max"] = max_over_processes(
            self.accelerator, diffs.max().item()
        )
        out["policy/lr"] = self.scheduler.get_last_lr()[0]
        return out

    def _minibatch_step(
        self,
        batch,
        rows,
        masks,
        old_logp,
        ref_logp,
        engine_logp,
        mismatch: list[torch.Tensor] | None,
    ) -> dict[str, float]:
        """One optimizer step over `rows`. On the first pass (`mismatch` given) the policy has not
        moved yet this step: its log-probs are pi_old, compared with the engine's."""
        config, acc = self.config, self.accelerator
        tokens = torch.tensor(float(sum(masks[i].sum() for i in rows)), device=acc.device)
        step = StepContext(
            rows=len(rows),
            tokens=tokens.item(),
            global_tokens=acc.reduce(tokens, reduction="sum").item(),
            world=acc.num_processes,
            max_completion_len=config.max_completion_len,
        )
        lengths = [len(batch.prompt_ids[i]) + len(batch.completion_ids[i]) for i in rows]
        micro = micro_batches(rows, lengths, config.micro_batch_size, config.micro_batch_tokens)
        metric_sums: dict[str, float] = {}
        for k, chunk in enumerate(micro):
            mb = MicroBatch.build(
                [batch.prompt_ids[i] for i in chunk],
                [batch.completion_ids[i] for i in chunk],
                self.tokenizer.pad_token_id,
            )
            sync = acc.no_sync(self.model) if k < len(micro) - 1 else nullcontext()
            with sync:
                logp, entropy = completion_logprobs(
                    self.model,
                    mb,
                    config.temperature,
                    mismatch is not None,
                    config.logit_chunk_tokens,
                )  # (n, T)
                width, device = logp.shape[1], logp.device
                mask = _stack([masks[i] for i in chunk], width, device).bool()  # (n, T)
                old = (
                    _stack([old_logp[i] for i in chunk], width, device)
                    if old_logp
                    else logp.detach()
                )
                sampled = _stack([engine_logp[i] for i in chunk], width, device)  # (n, T)
                tis = self._engine_mismatch(old, sampled, mb.completion_mask.to(device), mismatch)
                loss, metrics = policy_loss(
                    logp,
                    old,
                    batch.advantages[chunk].to(device),
                    mask,
                    loss_type=config.loss_type,
                    eps_low=config.eps_low,
                    eps_high=config.eps_high,
                    ref_logp=_stack([ref_logp[i] for i in chunk], width, device)
                    if ref_logp
                    else None,
                    beta=config.beta,
                    step=step,
                    importance_level=config.importance_level,
                    tis_weights=tis,
                )
                acc.backward(loss)
            if entropy is not None:
                metrics["policy/entropy"] = masked_mean(entropy, mask).item()
            for key, value in metrics.items():  # row-weighted means over the micro-batches
                metric_sums[key] = metric_sums.get(key, 0.0) + value * len(chunk) / len(rows)
            # Each micro-batch loss is already its share of the minibatch loss: they add up.
            metric_sums["policy/loss"] = metric_sums.get("policy/loss", 0.0) + loss.item()
        grad_norm = acc.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        metric_sums["policy/grad_norm"] = float(grad_norm)
        return metric_sums

    def _engine_mismatch(
        self,
        old: torch.Tensor,
        sampled: torch.Tensor,
        real: torch.Tensor,
        mismatch: list[torch.Tensor] | None,
    ) -> torch.Tensor | None:
        """The engine sampled with its own kernels: record |log pi_old - log pi_engine| of the
        sampled tokens (on the first pass), and with `tis_cap` return the truncated importance
        weights min(pi_old / pi_engine, tis_cap) of each token (N, T)."""
        if mismatch is not None:
            mismatch.append((old - sampled).abs()[real].cpu())
        cap = self.config.importance_cap  # tis_cap, on by default with stale samples
        if cap is None:
            return None
        return torch.where(real, torch.exp(old - sampled), 1.0).clamp(max=cap)

    def _loss_masks(self, batch: RolloutBatch) -> list[torch.Tensor]:
        """Per-row loss masks; DAPO's overlong filtering gives truncated samples no loss."""
        drop = (
            batch.truncated
            if self.config.mask_truncated
            else torch.zeros(len(batch.completion_ids), dtype=torch.bool)
        )
        return [
            torch.full((len(ids),), not bool(d))
            for ids, d in zip(batch.completion_ids, drop, strict=True)
        ]

    @torch.no_grad()
    def _frozen_logprobs(self, batch: RolloutBatch, *, reference: bool) -> list[torch.Tensor]:
        """Per-row log-probs under the reference policy or the pre-update policy (pi_old)."""
        model = self.ref if reference and self.ref is not None else self.model
        adapters_off = reference and self.ref is None  # LoRA: the base model is the reference
        context = (
            self.accelerator.unwrap_model(self.model).disable_adapter()
            if adapters_off
            else nullcontext()
        )
        config, out = self.config, []
        rows = list(range(len(batch.completion_ids)))
        lengths = [
            len(p) + len(c) for p, c in zip(batch.prompt_ids, batch.completion_ids, strict=True)
        ]
        with context, self.accelerator.autocast():
            for chunk in micro_batches(
                rows, lengths, config.micro_batch_size, config.micro_batch_tokens
            ):
                comps = [batch.completion_ids[i] for i in chunk]
                mb = MicroBatch.build(
                    [batch.prompt_ids[i] for i in chunk], comps, self.tokenizer.pad_token_id
                )
                logp, _ = completion_logprobs(
                    model, mb, config.temperature, chunk_tokens=config.logit_chunk_tokens
                )
                out += [row[: len(c)] for row, c in zip(logp, comps, strict=True)]
        return out

    # -------------------------------------------------------------------------- engine sync
    def _engine(self, model_path: str, engine_config: EngineConfig):
        acc = self.accelerator
        if engine_config.backend == "hf":
            from grpo.engines.hf_engine import HFEngine

            if self._shares_policy(engine_config):
                return HFEngine.from_module(
                    acc.unwrap_model(self.model),
                    self.tokenizer,
                    engine_config,
                    seed=self.config.seed,
                )
            engine = make_engine(model_path, engine_config, seed=self.config.seed)
            engine.model.to(acc.device)
            push_weights(
                engine, full_weights(acc, self.model), weight_names(acc, self.model)
            )  # rank 0's
            return engine
        if engine_config.backend == "vllm_server":
            from grpo.engines.vllm_server import VLLMServerEngine

            engine = VLLMServerEngine(
                model_path, engine_config, seed=self.config.seed, rank=acc.process_index
            )
            # The servers may hold other weights (the base model, a run's older step): start
            # them from the trainer's.
            push_weights(engine, full_weights(acc, self.model), weight_names(acc, self.model))
            acc.wait_for_everyone()
            self.logger.text("vLLM servers: " + ", ".join(engine_config.servers))
            return engine
        from accelerate.utils import gather_object

        from grpo.engines.vllm_engine import Placement

        placement = Placement(acc.process_index, acc.local_process_index, acc.num_processes)
        engine = make_engine(model_path, engine_config, seed=self.config.seed, placement=placement)
        devices = gather_object([engine.device])
        self.logger.text(
            "vLLM engines: " + ", ".join(f"rank {r} on {d}" for r, d in enumerate(devices))
        )
        return engine

    def _shares_policy(self, engine_config: EngineConfig) -> bool:
        """The transformers engine generates with the policy module itself when it can: one
        unsharded fp32 copy per process (no FSDP shards, no other engine dtype)."""
        from accelerate.utils import DistributedType

        return (
            engine_config.dtype in ("float32", "auto")
            and self.accelerator.distributed_type != DistributedType.FSDP
        )

    def sync_engine(self) -> None:
        """Stream the updated weights into the engine, one tensor at a time (a no-op when it
        shares the module); a sync that did not deliver the whole model raises."""
        from grpo.engines.hf_engine import HFEngine

        if isinstance(self.engine, HFEngine) and self.engine.model is self.accelerator.unwrap_model(
            self.model
        ):
            return
        push_weights(self.engine, full_weights(self.accelerator, self.model), self.weight_names)
        self.accelerator.wait_for_everyone()  # no process generates before every engine has them

    # --------------------------------------------------------------------- save and resume
    def save(self, step: int) -> Path:
        state = {"sampler": self.rollouts.sampler_state()}

        def export(path: Path) -> None:
            state = full_state_dict(self.accelerator, self.model)
            save_hf_model(self.accelerator, self.model, state, path)
            self.rollouts.save(path)  # each process's batches generated ahead, with versions

        return ckpt.save_checkpoint(
            self.accelerator,
            self.model,
            self.tokenizer,
            self.output_dir,
            step,
            state,
            export,
            self.config.keep_checkpoints,
        )

    def save_final(self, path: Path) -> None:
        """The trained model as a plain HF directory, written atomically."""
        state = full_state_dict(self.accelerator, self.model)
        staging = path.with_name(path.name + ".tmp")
        save_hf_model(self.accelerator, self.model, state, staging)
        if self.accelerator.is_main_process:
            self.tokenizer.save_pretrained(staging)
            replace_dir(staging, path)
        self.accelerator.wait_for_everyone()

    def _resume(self, path: Path) -> None:
        self.accelerator.load_state(str(path / "state"))
        state = ckpt.load_trainer_state(path)
        self.start_step = state["step"]
        self.sampler = PromptSampler.from_state(state["sampler"])

    def _truncate_logs(self, step: int) -> None:
        if self.accelerator.is_main_process:
            for name in ("metrics.jsonl", "samples.jsonl"):
                ckpt.truncate_jsonl(self.output_dir / name, step)

    def _drop_long_prompts(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = [
            r
            for r in rows
            if len(encode_prompt(self.tokenizer, r["prompt"])) <= self.config.max_prompt_len
        ]
        if not kept:
            raise ValueError(
                "every prompt is longer than "
                f"grpo.max_prompt_len={self.config.max_prompt_len}; raise it"
            )
        return kept

    def _optimizer(self):
        from transformers import get_scheduler

        config = self.config
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params,
            lr=config.learning_rate,
            betas=tuple(config.adam_betas),
            weight_decay=config.weight_decay,
        )
        total = config.max_steps * config.num_iterations * config.minibatches
        scheduler = get_scheduler(
            config.lr_scheduler,
            optimizer,
            num_warmup_steps=config.warmup_steps,
            num_training_steps=total,
        )
        return optimizer, scheduler

    def _log_samples(self, step: int, batch: RolloutBatch) -> None:
        config = self.config
        if not self.accelerator.is_main_process or step % config.log_samples_every:
            return
        with open(self.output_dir / "samples.jsonl", "a") as out:
            for g in batch.groups[: config.log_samples]:
                sample = g.group.samples[0]
                record = {
                    "step": step,
                    "prompt": g.row["prompt"],
                    "completion": sample.text,
                    "reward": g.rewards[0],
                    "rewards": {k: v[0] for k, v in g.per_reward.items()},
                    **{k: v for k, v in g.row.items() if k in ("answer", "task", "language")},
                }
                out.write(json.dumps(record, default=str) + "\n")


def push_weights(engine, named_tensors, expected: list[str]) -> None:
    """Load `named_tensors` into `engine`; raise unless it loaded as many tensors as the model has
    (a process that synced nothing would otherwise go on sampling from stale weights)."""
    loaded = engine.update_weights(named_tensors)
    if loaded != len(expected):
        raise RuntimeError(
            f"weight sync loaded {loaded} of the model's {len(expected)} tensors into the engine; "
            "it would keep generating with stale weights"
        )


def make_accelerator(mixed_precision: str):
    """An Accelerator with this run's compute precision. accelerate keeps one process-wide state;
    an earlier stage in the same process (an SFT stage in bf16) may have fixed another precision,
    so that part of the state is reset (the process group is kept)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mixed_precision)


def prepare_frozen(accelerator, model):
    """A frozen model (the KL reference) placed like the policy: sharded the same way under
    FSDP2, on this process's device otherwise. Either way every process ends up with rank 0's
    weights, as the policy does: with accelerate's RAM-efficient loading the other ranks load
    empty (zero) weights. It is not registered with the accelerator, so checkpoints skip it."""
    from accelerate.utils import DistributedType

    model.requires_grad_(False)
    if accelerator.distributed_type == DistributedType.FSDP:
        if not accelerator.is_fsdp2:
            raise ValueError(
                "FSDP version 1 is not supported: set fsdp_version: 2 in the accelerate config"
            )
        from accelerate.utils.fsdp_utils import fsdp2_prepare_model

        model = fsdp2_prepare_model(accelerator, model)
    else:
        model = model.to(accelerator.device)
        if accelerator.num_processes > 1:
            for tensor in model.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)
    return model.eval()


def _stack(rows: list[torch.Tensor], width: int, device: torch.device) -> torch.Tensor:
    """Right-pad 1-D per-row tensors to `width` columns: (n, width)."""
    out = torch.zeros((len(rows), width), dtype=rows[0].dtype, device=device)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out
