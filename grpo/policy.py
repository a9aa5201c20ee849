"""The trainable policy: loading (optionally with LoRA), per-token log-probs of completions,
and exporting full weights for the rollout engine and for HF-format checkpoints."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from grpo.algos import entropy_from_logits, selective_log_softmax
from grpo.config import LoraConfig
from grpo.engines.base import ensure_pad_token


def load_policy(
    model_path: str, lora: LoraConfig | None = None, gradient_checkpointing: bool = False
):
    """The trainable policy with fp32 master weights; lower-precision compute comes from
    accelerate's mixed precision (autocast), so AdamW's small updates are never rounded away."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    tokenizer = ensure_pad_token(AutoTokenizer.from_pretrained(model_path))
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if lora is not None:
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model

        model = get_peft_model(
            model,
            PeftLoraConfig(
                r=lora.r,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                target_modules=list(lora.target_modules),
                task_type="CAUSAL_LM",
            ),
        )
    return model, tokenizer


def load_reference(model_path: str):
    """A frozen copy of the initial policy for the KL term (only built when beta > 0), stored
    like the policy so that KL is exactly 0 before the first update."""
    from transformers import AutoModelForCausalLM

    ref = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    ref.requires_grad_(False)
    return ref.eval()


def resolve_mixed_precision(name: str) -> str:
    """accelerate's `mixed_precision` for `grpo.mixed_precision` ("auto": the launcher's setting,
    else bf16 on GPUs that support it, else "no")."""
    if name != "auto":
        return name
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if launcher:
        return launcher
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def micro_batches(
    rows: list[int], lengths: list[int], size: int, token_budget: int | None
) -> list[list[int]]:
    """Split `rows` (in order) into micro-batches: `size` rows each, or, with `token_budget`,
    as many consecutive rows as keep rows x longest length (the padded size) within budget.

    >>> micro_batches([0, 1, 2, 3], [10, 30, 10, 10], size=2, token_budget=None)
    [[0, 1], [2, 3]]
    >>> micro_batches([0, 1, 2, 3], [10, 30, 10, 10], size=2, token_budget=60)
    [[0, 1], [2, 3]]
    >>> micro_batches([0, 1, 2, 3], [10, 70, 10, 10], size=2, token_budget=60)
    [[0], [1], [2, 3]]
    """
    if token_budget is None:
        return [rows[i : i + size] for i in range(0, len(rows), size)]
    out: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for row, length in zip(rows, lengths, strict=True):
        if current and (len(current) + 1) * max(longest, length) > token_budget:
            out.append(current)
            current, longest = [], 0
        current.append(row)
        longest = max(longest, length)
    return out + [current] if current else out


@dataclass
class MicroBatch:
    """Right-padded prompt+completion sequences and where each completion sits in them."""

    input_ids: torch.Tensor  # (n, L) prompt + completion, right padded
    attention_mask: torch.Tensor  # (n, L)
    completion_index: torch.Tensor  # (n, T) position whose logits predict completion token j
    completion_ids: torch.Tensor  # (n, T)
    completion_mask: torch.Tensor  # (n, T) True on real completion tokens

    @classmethod
    def build(
        cls, prompts: list[list[int]], completions: list[list[int]], pad_id: int
    ) -> MicroBatch:
        width = max(len(p) + len(c) for p, c in zip(prompts, completions, strict=True))
        longest = max(max(len(c) for c in completions), 1)
        ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        attention = torch.zeros_like(ids)
        comp_ids = torch.full((len(prompts), longest), pad_id, dtype=torch.long)
        comp_mask = torch.zeros((len(prompts), longest), dtype=torch.bool)
        index = torch.zeros((len(prompts), longest), dtype=torch.long)
        for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
            ids[i, : len(p) + len(c)] = torch.tensor(p + c)
            attention[i, : len(p) + len(c)] = 1
            comp_ids[i, : len(c)] = torch.tensor(c, dtype=torch.long)
            comp_mask[i, : len(c)] = True
            # logits at position t predict token t+1: completion token j is predicted at len(p)+j-1
            index[i] = (len(p) - 1 + torch.arange(longest)).clamp(max=width - 1)
        return cls(ids, attention, index, comp_ids, comp_mask)

    def to(self, device: torch.device) -> MicroBatch:
        return MicroBatch(
            *(
                t.to(device)
                for t in (
                    self.input_ids,
                    self.attention_mask,
                    self.completion_index,
                    self.completion_ids,
                    self.completion_mask,
                )
            )
        )


def completion_logprobs(
    model,
    batch: MicroBatch,
    temperature: float = 1.0,
    with_entropy: bool = False,
    chunk_tokens: int | None = 1024,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log pi(o_t | q, o_<t) for every completion token, at the sampling temperature.

    Logits are divided by the temperature the samples were drawn with, so the ratio
    pi_theta / pi_old compares the distributions that actually generated the tokens.

    With `chunk_tokens`, the LM head runs only at completion positions, `chunk_tokens` tokens at
    a time, inside the model's own forward (so FSDP and mixed precision apply to it as to any
    layer); each chunk's (chunk, V) logits are recomputed in backward instead of kept. Peak
    memory for the head is one chunk's logits rather than the (n, L, V) of a plain forward.
    `None` computes the full logits (models that post-process logits, e.g. soft-capping, always
    take that path).
    """
    batch = batch.to(next(model.parameters()).device)
    head = _output_head(model)
    if chunk_tokens is None or head is None:
        return _full_logprobs(model, batch, temperature, with_entropy)
    out: dict[str, torch.Tensor | None] = {}

    def chunked_head(hidden: torch.Tensor) -> torch.Tensor:  # hidden (n, L, H)
        index = batch.completion_index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
        picked = hidden.gather(1, index)[batch.completion_mask]  # (M, H): real completion tokens
        ids = batch.completion_ids[batch.completion_mask]  # (M,)
        parts = [
            _head_chunk(
                picked[i : i + chunk_tokens],
                head.weight,
                head.bias,
                ids[i : i + chunk_tokens],
                temperature,
                with_entropy,
            )
            for i in range(0, len(ids), chunk_tokens)
        ]
        logp = torch.zeros(batch.completion_ids.shape, device=hidden.device)  # (n, T)
        if parts:
            logp[batch.completion_mask] = torch.cat([p[0] for p in parts])
        if with_entropy:
            entropy = torch.zeros_like(logp)
            if parts:
                entropy[batch.completion_mask] = torch.cat([p[1] for p in parts])
            out["entropy"] = entropy
        return logp

    head.forward = chunked_head  # the model's forward calls its head once, on every position
    try:
        logp = model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask
        ).logits  # (n, T)
    finally:
        del head.forward
    return logp.float(), out.get("entropy")


def _head_chunk(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    ids: torch.Tensor,
    temperature: float,
    with_entropy: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (and entropies) of `ids` for one chunk of hidden states (c, H) -> (c,)."""
    if torch.is_grad_enabled() and hidden.requires_grad:
        # Recompute the chunk's logits in backward rather than keep (c, V) floats alive.
        return torch.utils.checkpoint.checkpoint(
            _head_chunk_eager,
            hidden,
            weight,
            bias,
            ids,
            temperature,
            with_entropy,
            use_reentrant=False,
        )
    return _head_chunk_eager(hidden, weight, bias, ids, temperature, with_entropy)


def _head_chunk_eager(hidden, weight, bias, ids, temperature, with_entropy):
    logits = torch.nn.functional.linear(hidden, weight, bias).float() / temperature  # (c, V)
    lse = torch.logsumexp(logits, -1)  # (c,)
    logp = logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1) - lse  # (c,)
    entropy = None
    if with_entropy:
        with torch.no_grad():  # H = logsumexp(z) - sum_v p_v z_v
            entropy = lse - (torch.softmax(logits, -1) * logits).sum(-1)
    return logp, entropy


def _output_head(model):
    """The LM head of a (possibly wrapped) causal LM, if its logits are a plain linear map."""
    inner = getattr(model, "module", model)  # DDP
    base = inner.get_base_model() if hasattr(inner, "peft_config") else inner
    config = getattr(base, "config", None)
    if config is None or getattr(config, "final_logit_softcapping", None):
        return None
    head = base.get_output_embeddings()
    return head if isinstance(head, torch.nn.Linear) else None


def _full_logprobs(model, batch: MicroBatch, temperature: float, with_entropy: bool):
    """The plain computation: the full (n, L, V) logits, then the completion positions."""
    logits = model(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask
    ).logits  # (n, L, V)
    positions = batch.completion_index.unsqueeze(-1).expand(-1, -1, logits.shape[-1])  # (n, T, V)
    logits = logits.gather(1, positions) / temperature  # (n, T, V)
    logp = selective_log_softmax(logits, batch.completion_ids)  # (n, T)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = entropy_from_logits(logits.detach())  # (n, T)
    return torch.where(batch.completion_mask, logp, 0.0), entropy


def full_weights(accelerator, model) -> Iterator[tuple[str, torch.Tensor]]:
    """The full weights under HF checkpoint names, one tensor at a time, on every process.

    Nothing is gathered whole: under FSDP2 each parameter's shards are all-gathered when it is
    yielded (`DTensor.full_tensor`, a collective, so every process must consume the iterator in
    the same order); with LoRA each adapted weight is merged, W + (alpha / r) B A, as it is
    yielded (the trainable model is left untouched).
    """
    unwrapped = accelerator.unwrap_model(model)
    state = unwrapped.state_dict()  # references (DTensor shards under FSDP2), no copies
    lora = next(iter(unwrapped.peft_config.values())) if hasattr(unwrapped, "peft_config") else None
    for name, tensor in state.items():
        if lora is None:
            yield name, _full(tensor)
            continue
        if "lora_" in name:
            continue
        clean = name.replace("base_model.model.", "", 1).replace(".base_layer", "")
        stem = name.removesuffix(".base_layer.weight")
        a, b = (
            state.get(f"{stem}.lora_A.default.weight"),
            state.get(f"{stem}.lora_B.default.weight"),
        )
        weight = _full(tensor)
        if a is not None and b is not None:
            weight = weight + (lora.lora_alpha / lora.r) * (_full(b) @ _full(a))
        yield clean, weight


def weight_names(accelerator, model) -> list[str]:
    """The names `full_weights` yields: what a weight sync must deliver to the engine."""
    unwrapped = accelerator.unwrap_model(model)
    names = list(unwrapped.state_dict())
    if not hasattr(unwrapped, "peft_config"):
        return names
    return [
        n.replace("base_model.model.", "", 1).replace(".base_layer", "")
        for n in names
        if "lora_" not in n
    ]


def full_state_dict(accelerator, model) -> dict[str, torch.Tensor]:
    """`full_weights` collected on the CPU of the main process, which saves them; every process
    takes part in the gathers, the others keep nothing and get {}."""
    keep = accelerator.is_main_process
    return {name: tensor.cpu() for name, tensor in full_weights(accelerator, model) if keep}


def _full(tensor: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    return (tensor.full_tensor() if isinstance(tensor, DTensor) else tensor).detach()


def save_hf_model(accelerator, model, state: dict[str, torch.Tensor], path: Path) -> None:
    """Write `state` as an HF model directory (main process only)."""
    if not accelerator.is_main_process:
        return
    unwrapped = accelerator.unwrap_model(model)
    base = unwrapped.get_base_model() if hasattr(unwrapped, "peft_config") else unwrapped
    base.save_pretrained(path, state_dict=state, safe_serialization=True)
