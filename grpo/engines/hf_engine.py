"""The rollout interface on transformers `generate`, for machines without vLLM.

Sampling is reproducible per prompt (see `SeededSampler`), so a prompt's samples do not depend
on its batch-mates, and it never touches the global RNG that drives training.
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
        if seeds is None:
            base = sampling.seed if sampling.seed is not None else self.seed + self._calls
            self._calls += 1
            seeds = [base + i for i in range(len(groups))]
        # Whole groups per generate() call: as many prompts as fit in batch_size sequences.
        per_call = max(1, self.config.batch_size // sampling.n)
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(groups), per_call):
                chunk = groups[start : start + per_call]
                samples = self._generate_batch(chunk, list(seeds[start : start + per_call]), sampling)
                for i, group in enumerate(chunk):
                    group.samples = samples[i * sampling.n : (i + 1) * sampling.n]
        finally:
            self.model.train(was_training)
        return groups

    def _generate_batch(self, groups: list[Group], seeds: list[int], sampling: SamplingConfig) -> list[Sample]:
        from transformers import LogitsProcessorList

        pad = self.tokenizer.pad_token_id
        rows = [g.prompt_ids for g in groups for _ in range(sampling.n)]
        width = max(len(r) for r in rows)
        device = next(self.model.parameters()).device
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)  # (B, P) left-padded
        starts = torch.tensor([[width - len(r)] for r in rows], device=device)
        attention_mask = torch.arange(width, device=device) >= starts  # (B, P)
        sampler = SeededSampler(seeds, sampling, device)
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask.long(),
            do_sample=False,  # the SeededSampler processor draws the tokens
            logits_processor=LogitsProcessorList([sampler]),
            temperature=None,
            top_p=None,
            top_k=None,
            max_new_tokens=sampling.max_tokens,
            stop_strings=list(sampling.stop) or None,
            tokenizer=self.tokenizer if sampling.stop else None,
            pad_token_id=pad,
        )
        new_tokens = out[:, width:].cpu()  # (B, T)
        token_logprobs = sampler.logprobs()[:, : new_tokens.shape[1]]  # (B, T)
        eos = _eos_ids(self.model, self.tokenizer)
        return [self._to_sample(ids, lps, sampling, eos) for ids, lps in zip(new_tokens, token_logprobs)]

    def _to_sample(self, ids: torch.Tensor, logprobs: torch.Tensor, sampling: SamplingConfig,
                   eos: set[int]) -> Sample:
        ids_list = ids.tolist()
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


class SeededSampler:
    """A logits processor that samples each prompt's rows from that prompt's own generator.

    transformers' sampling draws from one global stream, so a sample would depend on which
    prompts share its batch. Here the G rows of prompt i take their uniforms from a generator
    seeded with seeds[i], all drawn up front (one call per prompt, not per token), and pick the
    token where the uniform falls in the cumulative distribution (temperature, then nucleus
    filtering; the arg-max at temperature 0). It returns a one-hot score that greedy decoding
    then picks: one batched generate() call, per-prompt reproducibility. It also records each
    chosen token's log-prob under the raw logits (as vLLM reports them), so transformers need
    not keep every step's full logits.
    """

    def __init__(self, seeds: list[int], sampling: SamplingConfig, device: torch.device):
        self.temperature, self.top_p = sampling.temperature, sampling.top_p
        uniforms = [torch.rand((sampling.max_tokens, sampling.n), generator=torch.Generator().manual_seed(int(s)))
                    for s in seeds]
        self.uniforms = torch.cat(uniforms, dim=1).to(device)  # (T, B)
        self.chosen_logprobs: list[torch.Tensor] = []  # one (B,) tensor per step

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.float()  # (B, V)
        if self.temperature == 0:
            chosen = scores.argmax(-1, keepdim=True)  # (B, 1)
        else:
            probs = torch.softmax(scores / self.temperature, dim=-1)
            if self.top_p < 1.0:
                probs = _nucleus(probs, self.top_p)
            cdf = probs.cumsum(-1)  # (B, V)
            u = self.uniforms[len(self.chosen_logprobs)].unsqueeze(-1) * cdf[:, -1:]  # (B, 1), in [0, total)
            chosen = torch.searchsorted(cdf, u, right=True).clamp(max=scores.shape[-1] - 1)  # first cdf > u
        self.chosen_logprobs.append(scores.log_softmax(-1).gather(-1, chosen).squeeze(-1))
        return torch.full_like(scores, float("-inf")).scatter_(1, chosen, 0.0)

    def logprobs(self) -> torch.Tensor:
        """(B, T): the log-prob of the token chosen at each step, on the CPU."""
        return torch.stack(self.chosen_logprobs, dim=1).cpu()


def _nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability reaches top_p (Holtzman et al. 2020)."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    drop = sorted_probs.cumsum(-1) - sorted_probs > top_p  # mass before this token already >= top_p
    sorted_probs = sorted_probs.masked_fill(drop, 0.0)
    return torch.zeros_like(probs).scatter_(-1, order, sorted_probs)


def _eos_ids(model, tokenizer) -> set[int]:
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids
