"""The trainable policy: loading (optionally with LoRA), per-token log-probs of completions,
and exporting full weights for the rollout engine and for HF-format checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from grpo.algos import entropy_from_logits, selective_log_softmax
from grpo.config import LoraConfig

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_policy(model_path: str, dtype: str = "float32", lora: LoraConfig | None = None,
                gradient_checkpointing: bool = False):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=_DTYPES.get(dtype, torch.float32))
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if lora is not None:
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model

        model = get_peft_model(model, PeftLoraConfig(
            r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules), task_type="CAUSAL_LM",
        ))
    return model, tokenizer


def load_reference(model_path: str, dtype: str = "float32"):
    """A frozen copy of the initial policy, for the KL term (only built when beta > 0)."""
    from transformers import AutoModelForCausalLM

    ref = AutoModelForCausalLM.from_pretrained(model_path, dtype=_DTYPES.get(dtype, torch.float32))
    ref.requires_grad_(False)
    return ref.eval()


@dataclass
class MicroBatch:
    """Right-padded prompt+completion sequences and where each completion sits in them."""

    input_ids: torch.Tensor  # (n, L) prompt + completion, right padded
    attention_mask: torch.Tensor  # (n, L)
    completion_index: torch.Tensor  # (n, T) position whose logits predict completion token j
    completion_ids: torch.Tensor  # (n, T)
    completion_mask: torch.Tensor  # (n, T) True on real completion tokens

    @classmethod
    def build(cls, prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> MicroBatch:
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
        return MicroBatch(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.completion_index,
                                                   self.completion_ids, self.completion_mask)))


def completion_logprobs(model, batch: MicroBatch, temperature: float = 1.0,
                        with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log pi(o_t | q, o_<t) for every completion token, at the sampling temperature.

    Logits are divided by the temperature the samples were drawn with, so the ratio
    pi_theta / pi_old compares the distributions that actually generated the tokens.
    """
    batch = batch.to(next(model.parameters()).device)
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits  # (n, L, V)
    positions = batch.completion_index.unsqueeze(-1).expand(-1, -1, logits.shape[-1])  # (n, T, V)
    logits = logits.gather(1, positions) / temperature  # (n, T, V)
    logp = selective_log_softmax(logits, batch.completion_ids)  # (n, T)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = entropy_from_logits(logits.detach())  # (n, T)
    return logp, entropy


def full_state_dict(accelerator, model) -> dict[str, torch.Tensor]:
    """Full (gathered, LoRA-merged) weights under HF names, on every process.

    Under FSDP / ZeRO-3, `accelerator.get_state_dict` gathers the shards; with LoRA, the adapters
    are merged into a copy of each adapted weight (the trainable model is left untouched).
    """
    state = accelerator.get_state_dict(model, unwrap=True)
    unwrapped = accelerator.unwrap_model(model)
    if not hasattr(unwrapped, "peft_config"):
        return state
    return _merge_lora(unwrapped, state)


def _merge_lora(peft_model, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    config = next(iter(peft_model.peft_config.values()))
    scale = config.lora_alpha / config.r
    merged = {}
    for name, tensor in state.items():
        if "lora_" in name:
            continue
        clean = name.replace("base_model.model.", "", 1).replace(".base_layer", "")
        stem = name.removesuffix(".base_layer.weight")
        a, b = state.get(f"{stem}.lora_A.default.weight"), state.get(f"{stem}.lora_B.default.weight")
        merged[clean] = tensor + scale * (b @ a) if a is not None and b is not None else tensor
    return merged


def save_hf_model(accelerator, model, state: dict[str, torch.Tensor], path: Path) -> None:
    """Write `state` as an HF model directory (main process only)."""
    if not accelerator.is_main_process:
        return
    unwrapped = accelerator.unwrap_model(model)
    base = unwrapped.get_base_model() if hasattr(unwrapped, "peft_config") else unwrapped
    base.save_pretrained(path, state_dict=state, safe_serialization=True)
