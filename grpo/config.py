"""GRPOConfig: every knob of the trainer, with the DeepSeek-R1 values as defaults.

Defaults follow DeepSeek-R1 (Nature 2025, supplementary B.4.1) for the reasoning RL stage:
learning rate 3e-6, KL coefficient 0.001, G = 16 samples per question, temperature 1.0,
clip ratio 0.2. DAPO's knobs (clip-higher, token-level loss, dynamic sampling, overlong
filtering) and Dr. GRPO's constant normaliser are one field away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from grpo.algos import ADVANTAGE_SCALES, LOSS_AGGREGATIONS
from grpo.metrics import check_report_to


@dataclass(frozen=True)
class LoraConfig:
    """Train low-rank adapters (peft) instead of all weights; the engine gets merged weights."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


@dataclass(frozen=True)
class GRPOConfig:
    # --- batch shape -------------------------------------------------------------------------
    max_steps: int = 100  # policy-update steps (one rollout batch each)
    prompts_per_step: int = 32  # B: questions per step, across all processes
    group_size: int = 16  # G: samples per question; the group is each sample's baseline
    num_iterations: int = 1  # mu: passes over each rollout batch (GRPO Alg. 1); 1 = on-policy
    minibatches: int = 1  # optimizer steps per pass; >1 makes later minibatches off-policy
    micro_batch_size: int = 16  # sequences per forward/backward (gradient accumulation)
    # Token budget per forward/backward instead of a row count: consecutive rows are packed while
    # rows x longest row (prompt + completion) stays within it, so short samples share a pass
    # and a long one goes alone. null: micro_batch_size rows.
    micro_batch_tokens: int | None = None
    # --- sampling ----------------------------------------------------------------------------
    temperature: float = 1.0
    top_p: float = 1.0
    max_prompt_len: int = 512  # longer prompts are dropped from the dataset, with a count
    max_completion_len: int = 256
    stop: list[str] = field(default_factory=list)  # e.g. ["</answer>"]
    # --- objective ---------------------------------------------------------------------------
    # "grpo", "bnpo", "dapo", "dr_grpo" (grpo.algos.aggregate_loss), or a name registered with
    # grpo.algos.register_loss_aggregation
    loss_type: str = "grpo"
    advantage_scale: Literal["group", "batch", "none"] = "group"  # "none": Dr. GRPO
    eps_low: float = 0.2
    eps_high: float = 0.2  # DAPO clip-higher: 0.28
    beta: float = 0.001  # KL coefficient; 0 loads no reference model
    importance_level: Literal["token", "sequence"] = "token"  # "sequence": GSPO
    # Truncated importance sampling (TIS): the engine samples with its own kernels (and dtype), so
    # its log-probs differ from the trainer's; each token's policy-gradient term is weighted by
    # min(pi_old / pi_engine, tis_cap). null: off. 2.0 is the usual cap.
    tis_cap: float | None = None
    mask_truncated: bool = False  # DAPO overlong filtering: truncated samples get no loss
    dynamic_sampling: bool = False  # DAPO: drop zero-variance groups, draw more prompts
    max_extra_draws: int = 3  # cap on extra prompt batches per step under dynamic sampling
    # Score samples in a background thread as they finish, while the rest of the batch is still
    # generating. false: one reward call per batch after generation (for a custom reward that
    # needs the whole batch at once, or that is not safe to run beside generation).
    overlap_rewards: bool = True
    # --- optimisation ------------------------------------------------------------------------
    learning_rate: float = 3e-6
    weight_decay: float = 0.0
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = "constant"
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    gradient_checkpointing: bool = False
    # Compute precision. Master weights and optimizer state are fp32 whatever this or the engine's
    # dtype say; bf16/fp16 run the forward and backward under autocast (accelerate). "auto": the
    # launcher's setting (accelerate config) if any, else bf16 on GPUs that support it, else no.
    mixed_precision: Literal["auto", "bf16", "fp16", "no"] = "auto"
    # Tokens per chunk when the LM head computes log-probs (only at completion positions, each
    # chunk's logits recomputed in backward). null: the full (n, L, V) logits at once.
    logit_chunk_tokens: int | None = 1024
    lora: LoraConfig | None = None
    # torch CPU threads for the run (generation included); None: torch's default. A small model
    # on a shared CPU runs fastest on 1 (2 threads on 2 busy cores oversubscribe).
    num_threads: int | None = None
    # --- bookkeeping -------------------------------------------------------------------------
    seed: int = 0
    save_every: int = 10  # steps between checkpoints (and always at the end)
    keep_checkpoints: int = 2
    log_samples_every: int = 10  # steps between writes of sampled completions to samples.jsonl
    log_samples: int = 4
    report_to: list[str] = field(default_factory=lambda: ["console", "jsonl", "tensorboard"])
    wandb_project: str = "r1kit"  # wandb project and run name (with `wandb` in report_to)
    run_name: str | None = None  # None: wandb picks one
    # Steps between held-out evaluations of the current policy (None: none). The rows and
    # sampling come from the stage's `eval:` section, or from the pipeline's `eval:`.
    eval_every: int | None = None

    def __post_init__(self) -> None:
        positive = ("max_steps", "prompts_per_step", "group_size", "num_iterations", "minibatches",
                    "micro_batch_size", "max_prompt_len", "max_completion_len", "save_every",
                    "keep_checkpoints", "log_samples_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        for name in ("micro_batch_tokens", "logit_chunk_tokens"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1, or null")
        if self.tis_cap is not None and self.tis_cap < 1:
            raise ValueError(f"tis_cap={self.tis_cap} must be >= 1 (the largest weight a token may get), or null")
        if self.eval_every is not None and self.eval_every < 1:
            raise ValueError(f"eval_every={self.eval_every} must be at least 1, or null for no "
                             "evaluation")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads={self.num_threads} must be at least 1, or null for torch's default")
        if self.group_size < 2:
            raise ValueError(f"group_size={self.group_size}: a group-relative baseline needs at least 2 samples")
        if self.prompts_per_step % self.minibatches:
            raise ValueError(f"prompts_per_step={self.prompts_per_step} must be divisible by "
                             f"minibatches={self.minibatches}")
        if self.loss_type not in LOSS_AGGREGATIONS:
            valid = ", ".join(repr(name) for name in sorted(LOSS_AGGREGATIONS))
            raise ValueError(f"loss_type: {self.loss_type!r} is not allowed; choose one of {valid} "
                             "(or register one with grpo.algos.register_loss_aggregation)")
        if self.advantage_scale not in ADVANTAGE_SCALES:
            raise ValueError(f"advantage_scale={self.advantage_scale!r}: choose one of "
                             f"{sorted(ADVANTAGE_SCALES)}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate={self.learning_rate} must be > 0 (R1 uses 3e-6)")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be > 0: GRPO needs sampled "
                             "groups, not greedy ones (R1 uses 1.0)")
        if self.beta < 0:
            raise ValueError(f"beta={self.beta} must be >= 0 (0 turns the KL penalty off)")
        if not (0 <= self.eps_low < 1 and self.eps_high >= 0):
            raise ValueError(f"clip range eps_low={self.eps_low}, eps_high={self.eps_high}: "
                             "need 0 <= eps_low < 1, eps_high >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p} must be in (0, 1]")
        if len(self.adam_betas) != 2:
            raise ValueError(f"adam_betas={self.adam_betas} must be two numbers")
        check_report_to(self.report_to)
