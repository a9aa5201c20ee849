"""The rollout interface on transformers `generate`, for machines without vLLM.

It can share the policy module itself (`HFEngine.from_module`), so weight updates are free and
no second copy of the model is held: the cheapest choice on small CPU machines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from grpo.engines.base import EngineConfig, Group, Prompt, Sample, SamplingConfig, encode_prompt

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class HFEngine:
    def __init__(self, model: str, config: EngineConfig = EngineConfig(), *, seed: int = 0):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dtype = _DTYPES.get(config.dtype, "auto")
        module = AutoModelForCausalLM.from_pretrained(model, dtype=dtype)
        self._init(module, AutoTokenizer.from_pretrained(model), config, seed)

    @classmethod
    def from_module(cls, module, tokenizer, config: EngineConfig = EngineConfig(), *, seed: int = 0):
        """Generate with an existing module (e.g. the policy being trained); no copy is made."""
        engine = cls.__new__(cls)
        engine._init(module, tokenizer, config, seed)
        return engine

    def _init(self, module, tokenizer, config: EngineConfig, seed: int) -> None:
        self.model, self.tokenizer, self.config, self.seed = module, tokenizer, config, seed
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._calls = 0

    @torch.no_grad()
    def generate(self, prompts: Sequence[Prompt], sampling: SamplingConfig,
                 seeds: Sequence[int] | None = None) -> list[Group]:
        groups = [Group(prompt_ids=encode_prompt(self.tokenizer, p)) for p in prompts]
        # Sampling draws from a private seeded stream, so the caller's global RNG (which drives
        # training) is untouched. With per-prompt seeds each group is generated on its own, so
        # its samples do not depend on which prompts share the batch.
        if seeds is None:
            seed = sampling.seed if sampling.seed is not None else self.seed + self._calls
            self._calls += 1
            batches = [(seed, [g for g in groups for _ in range(sampling.n)])]
        else:
            batches = [(s, [g] * sampling.n) for s, g in zip(seeds, groups, strict=True)]
        was_training = self.model.training
        self.model.eval()
        try:
            for seed, jobs in batches:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    for start in range(0, len(jobs), self.config.batch_size):
                        batch = jobs[start : start + self.config.batch_size]
                        for group, sample in zip(batch, self._generate_batch(batch, sampling)):
                            group.samples.append(sample)
        finally:
            self.model.train(was_training)
        return groups

    def _generate_batch(self, batch: list[Group], sampling: SamplingConfig) -> list[Sample]:
        pad = self.tokenizer.pad_token_id
        width = max(len(g.prompt_ids) for g in batch)
        input_ids = torch.tensor([[pad] * (width - len(g.prompt_ids)) + g.prompt_ids for g in batch])
        attention_mask = (torch.arange(width) >= torch.tensor([[width - len(g.prompt_ids)] for g in batch])).long()
        device = next(self.model.parameters()).device
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        greedy = sampling.temperature == 0
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            do_sample=not greedy,
            temperature=None if greedy else sampling.temperature,
            top_p=None if greedy else sampling.top_p,
            top_k=None,
            max_new_tokens=sampling.max_tokens,
            stop_strings=list(sampling.stop) or None,
            tokenizer=self.tokenizer if sampling.stop else None,
            pad_token_id=pad,
            output_logits=True,  # raw logits: logprobs before temperature/top_p, as vLLM reports
            return_dict_in_generate=True,
        )
        new_tokens = out.sequences[:, width:]  # (B, T)
        logprobs = torch.stack(out.logits, dim=1).float().log_softmax(-1)  # (B, T, V)
        token_logprobs = logprobs.gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)  # (B, T)
        return [self._to_sample(ids, lps, sampling) for ids, lps in zip(new_tokens, token_logprobs)]

    def _to_sample(self, ids: torch.Tensor, logprobs: torch.Tensor, sampling: SamplingConfig) -> Sample:
        ids_list = ids.tolist()
        eos = _eos_ids(self.model, self.tokenizer)
        end = next((i + 1 for i, t in enumerate(ids_list) if t in eos), None)
        if end is None and sampling.stop:
            end = self._stop_end(ids_list, sampling.stop)
        finish = "length" if end is None else "stop"
        kept = ids_list if end is None else ids_list[:end]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return Sample(text=text, token_ids=kept, logprobs=logprobs[: len(kept)].tolist(), finish_reason=finish)

    def _stop_end(self, ids: list[int], stop: tuple[str, ...]) -> int | None:
        """Shortest prefix length whose text contains a stop string (binary search: monotone)."""
        def hit(n: int) -> bool:
            text = self.tokenizer.decode(ids[:n], skip_special_tokens=True)
            return any(s in text for s in stop)

        if not hit(len(ids)):
            return None
        lo, hi = 1, len(ids)
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if hit(mid) else (mid + 1, hi)
        return lo

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        state = dict(named_tensors)
        own = self.model.state_dict()
        with torch.no_grad():
            for name, tensor in state.items():
                if own[name].data_ptr() != tensor.data_ptr():
                    own[name].copy_(tensor)


def _eos_ids(model, tokenizer) -> set[int]:
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids
