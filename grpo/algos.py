"""GRPO advantages and policy losses, as pure functions.

Tensors and floats in, tensors and a metrics dict out: no config objects, no I/O, no state.
Variants are picked by name from the registries below; an unknown name raises a ValueError
listing the valid ones. Shapes: N = B*G sequences (G consecutive per prompt), T tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Tensor = torch.Tensor
Registry = dict[str, Callable[..., Tensor]]

ADVANTAGE_SCALES: Registry = {}
LOSS_AGGREGATIONS: Registry = {}
IMPORTANCE_LEVELS: Registry = {}


def _register(registry: Registry, name: str) -> Callable[[Callable], Callable]:
    """Decorator: file the function in ``registry`` under ``name``; a taken name raises."""

    def decorator(fn: Callable) -> Callable:
        if name in registry:
            raise ValueError(
                f"{name!r} is already registered (by {registry[name].__qualname__}); "
                "pick another name"
            )
        registry[name] = fn
        return fn

    return decorator


def register_loss_aggregation(name: str) -> Callable[[Callable], Callable]:
    """Decorator: add a ``loss_type``. The function gets ``(term, mask, step)`` (see
    ``aggregate_loss``) and returns this call's share of the process's step loss."""
    return _register(LOSS_AGGREGATIONS, name)


def _lookup(registry: Registry, name: str, what: str) -> Callable[..., Tensor]:
    if name not in registry:
        valid = ", ".join(repr(k) for k in sorted(registry))
        raise ValueError(f"unknown {what} {name!r}; valid: {valid}")
    return registry[name]


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over the positions where ``mask`` is true.

        masked_mean(x, m) = sum(x * m) / max(sum(m), 1)

    An empty selection gives 0, never NaN, and masked-out entries of ``x`` cannot leak in
    even when they are inf or NaN (they are selected away, not multiplied by zero).
    """
    mask = mask.bool().expand_as(x)
    kept = torch.where(mask, x, 0.0)
    if dim is None:
        return kept.sum() / mask.sum().clamp(min=1)
    return kept.sum(dim) / mask.sum(dim).clamp(min=1)


@_register(ADVANTAGE_SCALES, "group")
def _scale_group(centered: Tensor, grouped: Tensor, eps: float) -> Tensor:
    # DeepSeekMath §4.1.2 (outcome supervision): divide by each group's own std.
    return centered / (grouped.std(dim=1, keepdim=True) + eps)  # (B, G)


@_register(ADVANTAGE_SCALES, "batch")
def _scale_batch(centered: Tensor, grouped: Tensor, eps: float) -> Tensor:
    # One std for the whole batch: a stable scale without re-weighting prompts by spread.
    return centered / (grouped.std() + eps)  # (B, G)


@_register(ADVANTAGE_SCALES, "none")
def _scale_none(centered: Tensor, grouped: Tensor, eps: float) -> Tensor:
    # Dr. GRPO §3: dividing by the group std up-weights too-easy and too-hard prompts
    # (small std); keep only the group-mean baseline.
    return centered


def group_advantages(
    rewards: Tensor, group_size: int, scale: str = "group", eps: float = 1e-4
) -> Tensor:
    """Group-relative advantages, one per completion (DeepSeekMath §4.1.2).

    ``rewards`` is (B*G,), G = ``group_size`` consecutive entries per prompt. With
    r̄_b the mean of prompt b's group and std the unbiased (torch default) std:

        "group": A_i = (r_i - r̄_b) / (std(group b) + eps)
        "batch": A_i = (r_i - r̄_b) / (std(all rewards) + eps)
        "none":  A_i =  r_i - r̄_b

    Returns a detached (B*G,) tensor; advantages are constants of the policy loss.
    """
    scale_fn = _lookup(ADVANTAGE_SCALES, scale, "advantage scale")
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 for a group baseline; got {group_size}")
    if rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(
            f"rewards must be 1-D with a multiple of group_size={group_size} entries (B*G, "
            f"each prompt's G completions consecutive); got shape {tuple(rewards.shape)}"
        )
    rewards = rewards.detach()
    grouped = (rewards if rewards.is_floating_point() else rewards.float()).view(-1, group_size)
    centered = grouped - grouped.mean(dim=1, keepdim=True)  # (B, G)
    return scale_fn(centered, grouped, eps).reshape(-1)  # (B*G,)


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token k3 estimate of KL(π_θ || π_ref) (Schulman 2020; DeepSeekMath eq. 4).

        k3 = π_ref/π_θ - log(π_ref/π_θ) - 1 = exp(ref_logp - logp) - (ref_logp - logp) - 1

    Unbiased for tokens sampled from π_θ, and never negative.
    """
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


@_register(IMPORTANCE_LEVELS, "token")
def _log_ratio_token(logp: Tensor, old_logp: Tensor, mask: Tensor) -> Tensor:
    return logp - old_logp  # (N, T)


@_register(IMPORTANCE_LEVELS, "sequence")
def _log_ratio_sequence(logp: Tensor, old_logp: Tensor, mask: Tensor) -> Tensor:
    # GSPO: s_i = (π_θ(o_i)/π_old(o_i))^(1/|o_i|) = exp(mean_t(logp - old_logp)).
    # GSPO-token: s_it = sg[s_i] π_θ(o_it)/sg[π_θ(o_it)] has value s_i and gradient
    # s_i ∇log π_θ(o_it); under per-sequence token means that is GSPO's exact gradient.
    seq = masked_mean(logp.detach() - old_logp, mask, dim=-1)  # (N,), a constant
    return logp - logp.detach() + seq.unsqueeze(-1)  # (N, T)


def _masked_sum(term: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask, term, 0.0).sum()


@dataclass(frozen=True)
class StepContext:
    """The optimizer step that one ``aggregate_loss`` call is part of.

    A step is split over ``world`` data-parallel processes and, on each, over micro-batches
    (gradient accumulation). Each call returns its share of its process's step loss: the
    shares of one process add up to that process's loss, and DDP averages the processes'
    gradients. ``rows`` and ``tokens`` count this process's part of the step (all its
    micro-batches; tokens are valid ones), ``global_tokens`` the whole step's.
    """

    rows: int
    tokens: float
    global_tokens: float
    world: int = 1
    max_completion_len: int | None = None  # the generation budget L_max

    def __post_init__(self) -> None:
        if self.rows < 1 or self.world < 1:
            raise ValueError(
                f"a step has at least one row and one process; got rows={self.rows}, "
                f"world={self.world}"
            )
        if self.tokens < 0 or self.global_tokens < 0:
            raise ValueError(
                f"token counts must be >= 0; got tokens={self.tokens}, "
                f"global_tokens={self.global_tokens}"
            )

    @classmethod
    def of(cls, mask: Tensor, max_completion_len: int | None = None) -> StepContext:
        """The context of a call that is a whole step on one process."""
        tokens = float(mask.bool().sum())
        return cls(max(mask.shape[0], 1), tokens, tokens, 1, max_completion_len)


@_register(LOSS_AGGREGATIONS, "grpo")
def _agg_grpo(term: Tensor, mask: Tensor, step: StepContext) -> Tensor:
    # DeepSeekMath eq. 3: 1/G Σ_i 1/|o_i| Σ_t — each sequence weighs the same, so tokens of
    # long sequences weigh less (the length bias Dr. GRPO and DAPO remove).
    return masked_mean(term, mask, dim=-1).sum() / step.rows


@_register(LOSS_AGGREGATIONS, "bnpo")
def _agg_bnpo(term: Tensor, mask: Tensor, step: StepContext) -> Tensor:
    # Token mean over this process's step: every token of the process weighs the same.
    return _masked_sum(term, mask) / max(step.tokens, 1.0)


@_register(LOSS_AGGREGATIONS, "dapo")
def _agg_dapo(term: Tensor, mask: Tensor, step: StepContext) -> Tensor:
    # DAPO §3.3 token-level loss: 1/Σ_i|o_i| Σ_i Σ_t over the global step, every token weighs
    # the same. DDP averages over the processes, so each one divides by global_tokens / world.
    return _masked_sum(term, mask) / max(step.global_tokens / step.world, 1.0)


@_register(LOSS_AGGREGATIONS, "dr_grpo")
def _agg_dr_grpo(term: Tensor, mask: Tensor, step: StepContext) -> Tensor:
    # Dr. GRPO §3: a constant normaliser N·L_max, independent of each sequence's length.
    if step.max_completion_len is None or step.max_completion_len <= 0:
        msg = "loss_type='dr_grpo' needs max_completion_len > 0 (the generation budget L_max)"
        raise ValueError(f"{msg}; got {step.max_completion_len}")
    return _masked_sum(term, mask) / (step.rows * step.max_completion_len)


def aggregate_loss(
    term: Tensor, mask: Tensor, loss_type: str = "grpo", step: StepContext | None = None
) -> Tensor:
    """Reduce per-token losses ``term`` (N, T) over valid tokens ``mask`` (N, T) to this
    call's share of the step loss. With R = ``step.rows``, |o_i| the valid tokens of row i,
    Σ over this call's rows:

        "grpo":    Σ_i (1/|o_i| Σ_t l_it) / R                      DeepSeekMath eq. 3
        "bnpo":    Σ_i Σ_t l_it / step.tokens                       this process's tokens
        "dapo":    Σ_i Σ_t l_it / (step.global_tokens / world)      DAPO §3.3
        "dr_grpo": Σ_i Σ_t l_it / (R · max_completion_len)          Dr. GRPO §3

    Without ``step`` the call is the whole step on one process (``StepContext.of(mask)``).
    The calls of one step, summed over micro-batches and averaged over processes (DDP),
    give the loss of the whole step exactly. A fully masked row adds 0 (and still counts
    in R); an empty batch gives 0, not NaN. Every mode gets the same arguments, so a new
    one is a ``register_loss_aggregation`` function and callers never branch on the name.
    """
    aggregate = _lookup(LOSS_AGGREGATIONS, loss_type, "loss_type")
    return aggregate(term, mask.bool(), step if step is not None else StepContext.of(mask))


def _check_shapes(logp: Tensor, **others: Tensor | None) -> None:
    if logp.dim() != 2:
        raise ValueError(f"logp must be (N, T); got shape {tuple(logp.shape)}")
    for name, t in others.items():
        shape = logp.shape[:1] if name == "advantages" else logp.shape
        if t is not None and t.shape != shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}; expected {tuple(shape)}")


@torch.no_grad()
def _metrics(ratio, adv, mask, kl, eps_low: float, eps_high: float) -> dict[str, float]:
    # Clip fractions count the tokens whose gradient the clip removed.
    values = {
        "policy/ratio_mean": masked_mean(ratio, mask),
        "policy/clip_frac_low": masked_mean(((ratio < 1 - eps_low) & (adv < 0)).float(), mask),
        "policy/clip_frac_high": masked_mean(((ratio > 1 + eps_high) & (adv > 0)).float(), mask),
    }
    if kl is not None:
        values["policy/kl_mean"] = masked_mean(kl, mask)
    floats = torch.stack([v.float() for v in values.values()]).tolist()  # one device sync
    return dict(zip(values, floats, strict=True))


def policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    loss_type: str = "grpo",
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    ref_logp: Tensor | None = None,
    beta: float = 0.0,
    max_completion_len: int | None = None,
    step: StepContext | None = None,
    importance_level: str = "token",
    tis_weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Clipped surrogate loss of GRPO (DeepSeekMath eq. 3) and its variants.

    For token t of sequence i, with A_i = advantages[i]:

        r_it = exp(logp_it - old_logp_it)                        importance_level="token"
        r_it = sg[s_i] exp(logp_it - sg[logp_it]),
               s_i = exp(mean_t(logp_it - old_logp_it))          "sequence" (GSPO-token)
        l_it = -min(r_it A_i, clip(r_it, 1 - eps_low, 1 + eps_high) A_i) + beta k3_it
        loss = aggregate_loss(l, mask, loss_type, step)

    With ``tis_weights`` w (N, T), truncated importance sampling (Yao et al. 2025, "Your
    efficient RL framework secretly brings you off-policy RL training"): the clipped term of
    token t becomes w_it times itself, w_it = min(pi_old / pi_sampler, C) computed by the
    caller; the KL term is not weighted.

    ``step`` places the call in its optimizer step (micro-batch, processes); without it the
    call is a whole step on one process, with ``max_completion_len`` as L_max for "dr_grpo".

    eps_high > eps_low is DAPO's clip-higher (§3.1: 0.28); GSPO clips s_i far tighter
    (3e-4 / 4e-4). k3 = ``kl_k3(logp, ref_logp)``, ref_logp required when beta > 0.
    logp, old_logp, ref_logp, mask are (N, T), advantages (N,); all but logp are detached.
    Masked tokens never reach the loss, its gradient or the metrics, even if inf or NaN.
    Metrics (python floats, this call's valid tokens): policy/ratio_mean,
    policy/clip_frac_low, policy/clip_frac_high, and policy/kl_mean when ref_logp is given.
    """
    _check_shapes(
        logp,
        old_logp=old_logp,
        advantages=advantages,
        mask=mask,
        ref_logp=ref_logp,
        tis_weights=tis_weights,
    )
    log_ratio_fn = _lookup(IMPORTANCE_LEVELS, importance_level, "importance_level")
    if beta < 0:
        raise ValueError(f"beta is a KL penalty weight and must be >= 0; got {beta}")
    if beta > 0 and ref_logp is None:
        raise ValueError("beta > 0 adds beta * kl_k3(logp, ref_logp): pass ref_logp, or beta=0")
    mask = mask.bool()
    adv = advantages.detach().unsqueeze(-1)  # (N, 1)
    log_ratio = torch.where(mask, log_ratio_fn(logp, old_logp.detach(), mask), 0.0)  # (N, T)
    ratio = torch.exp(log_ratio)
    clipped = ratio.clamp(1 - eps_low, 1 + eps_high)
    term = -torch.minimum(ratio * adv, clipped * adv)  # (N, T)
    if tis_weights is not None:
        term = term * tis_weights.detach()
    kl = None
    if ref_logp is not None:
        kl = kl_k3(torch.where(mask, logp, 0.0), torch.where(mask, ref_logp.detach(), 0.0))
        if beta > 0:
            term = term + beta * kl
    if step is None:
        step = StepContext.of(mask, max_completion_len)
    elif max_completion_len is not None:
        raise ValueError("pass max_completion_len inside step (StepContext), not beside it")
    loss = aggregate_loss(term, mask, loss_type, step)
    return loss, _metrics(ratio, adv, mask, kl, eps_low, eps_high)


def _rows(fn: Callable[..., Tensor], logits: Tensor, *others: Tensor) -> Tensor:
    # One leading row at a time: peak extra memory is one (T, V) row, not (N, T, V). Half
    # precision is upcast: bf16 logsumexp loses the small differences ratios depend on.
    def up(row: Tensor) -> Tensor:
        return row.float() if row.dtype in (torch.float16, torch.bfloat16) else row

    return torch.stack([fn(up(row), *rest) for row, *rest in zip(logits, *others, strict=True)])


def selective_log_softmax(logits: Tensor, ids: Tensor) -> Tensor:
    """log softmax(logits)[ids] without materialising the full log-softmax.

        log p(y) = z_y - logsumexp_v(z_v)          logits (N, ..., V), ids (N, ...) -> (N, ...)

    Float16/bfloat16 logits give float32 log-probs; other dtypes are kept.
    """
    if ids.shape != logits.shape[:-1] or logits.dim() < 2:
        raise ValueError(f"ids {tuple(ids.shape)} must be logits {tuple(logits.shape)} minus V")

    def picked(z: Tensor, y: Tensor) -> Tensor:
        return z.gather(-1, y[..., None])[..., 0] - torch.logsumexp(z, -1)  # (T,)

    return _rows(picked, logits, ids)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Per-token entropy of softmax(logits), (N, ..., V) -> (N, ...).

        H = -Σ_v p_v log p_v = logsumexp(z) - Σ_v p_v z_v,   p = softmax(z)

    Stable for large logits (no log of a tiny p); logits must be finite.
    """
    return _rows(lambda z: torch.logsumexp(z, -1) - (torch.softmax(z, -1) * z).sum(-1), logits)
