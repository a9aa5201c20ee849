"""The rollout interface on transformers `generate`, for machines without vLLM.

Sampling is reproducible per prompt (see `SeededSampler`), so a prompt's samples do not depend
on its batch-mates, and it never touches the global RNG that drives training.
It can share the policy module itself (`HFEngine.from_module`), so weight updates are free and
no second copy of the model is held: the cheapest choice on small CPU machines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from grpo.engines.base import (
    EngineConfig,
    Finished,
    Group,
    OnFinished,
    Prompt,
    Sample,
    SamplingConfig,
    encode_prompt,
    ensure_pad_token,
)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class HFEngine:
    def __init__(self, model: str, config: EngineConfig = EngineConfig(), *, seed: int = 0):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dtype = _DTYPES.get(config.dtype, "auto")
        module = AutoModelForCausalLM.from_pretrained(model, dtype=dtype)
        self._init(module, AutoTokenizer.from_pretrained(model), config, seed)

    @classmethod
    def from_module(
        cls, module, tokenizer, config: EngineConfig = EngineConfig(), *, seed: int = 0
    ):
        """Generate with an existing module (e.g. the policy being trained); no copy is made."""
        engine = cls.__new__(cls)
        engine._init(module, tokenizer, config, seed)
        return engine

    def _init(self, module, tokenizer, config: EngineConfig, seed: int) -> None:
        self.model, self.config, self.seed = module, config, seed
        self.tokenizer = ensure_pad_token(tokenizer)
        self._calls = 0

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[Prompt],
        sampling: SamplingConfig,
        seeds: Sequence[int] | None = None,
        on_finished: OnFinished | None = None,
    ) -> list[Group]:
        groups = [Group(prompt_ids=encode_prompt(self.tokenizer, p)) for p in prompts]
        if seeds is None:
            base = sampling.seed if sampling.seed is not None else self.seed + self._calls
            self._calls += 1
            seeds = [base + i for i in range(len(groups))]
        for group in groups:
            group.samples = [None] * sampling.n  # type: ignore[list-item]  (filled as rows finish)

        def finished(done: list[Finished]) -> None:
            for i, j, sample in done:
                groups[i].samples[j] = sample
            if on_finished is not None:
                on_finished(done)

        # Whole groups per generate() call: as many prompts as fit in batch_size sequences.
        per_call = max(1, self.config.batch_size // sampling.n)
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(groups), per_call):
                chunk = [g.prompt_ids for g in groups[start : start + per_call]]
                self._generate_batch(
                    chunk, list(seeds[start : start + per_call]), sampling, start, finished
                )
        finally:
            self.model.train(was_training)
        return groups

    def _generate_batch(
        self,
        prompt_ids: list[list[int]],
        seeds: list[int],
        sampling: SamplingConfig,
        first: int,
        finished: OnFinished,
    ) -> None:
        """Sample `sampling.n` rows for each prompt; rows are reported as (group, sample) once
        they end."""
        from transformers import LogitsProcessorList, StoppingCriteriaList, StopStringCriteria

        pad, n = self.tokenizer.pad_token_id, sampling.n
        rows = [ids for ids in prompt_ids for _ in range(n)]
        width = max(len(r) for r in rows)
        device = next(self.model.parameters()).device
        input_ids = torch.tensor(
            [[pad] * (width - len(r)) + r for r in rows], device=device
        )  # (B, P) left-padded
        starts = torch.tensor([[width - len(r)] for r in rows], device=device)
        attention_mask = torch.arange(width, device=device) >= starts  # (B, P)
        sampler = SeededSampler(seeds, sampling, device)

        def report(indices: list[int], ids: torch.Tensor, length: int | None) -> None:
            """Rows that ended with `length` tokens (EOS or stop string), or ran out (None)."""
            done = []
            for r in indices:
                kept = ids[r, width : width + length if length else None].tolist()
                text = self.tokenizer.decode(kept, skip_special_tokens=True)
                sample = Sample(
                    text=text,
                    token_ids=kept,
                    logprobs=sampler.logprobs[r, : len(kept)].tolist(),
                    finish_reason="stop" if length else "length",
                )
                done.append((first + r // n, r % n, sample))
            finished(done)

        stop = StopStringCriteria(self.tokenizer, list(sampling.stop)) if sampling.stop else None
        watcher = FinishWatcher(
            _eos_ids(self.model, self.tokenizer), stop, width, len(rows), device, report
        )
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask.long(),
            do_sample=False,  # the SeededSampler processor draws the tokens
            logits_processor=LogitsProcessorList([sampler]),
            stopping_criteria=StoppingCriteriaList([watcher]),
            temperature=None,
            top_p=None,
            top_k=None,
            max_new_tokens=sampling.max_tokens,
            pad_token_id=pad,
        )
        running = watcher.running()
        if running:  # these rows used every one of max_tokens
            report(running, out.cpu(), None)

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Copy the tensors into the module one at a time (cast to its dtype); return the count."""
        own, loaded = self.model.state_dict(), 0
        with torch.no_grad():
            for name, tensor in named_tensors:
                if own[name].data_ptr() != tensor.data_ptr():
                    own[name].copy_(tensor)
                loaded += 1
        return loaded

    def sleep(self) -> None:
        """Nothing to release: transformers holds no KV cache between calls."""

    def close(self) -> None:
        """Nothing to shut down; the module is freed with the engine."""


class SeededSampler:
    """A logits processor that samples each prompt's rows from that prompt's own generator.

    transformers' sampling draws from one global stream, so a sample would depend on which
    prompts share its batch. Here the G rows of prompt i take their uniforms from a generator
    seeded with seeds[i], all drawn up front (one call per prompt, not per token), and pick the
    token where the uniform falls in the cumulative distribution (temperature, then nucleus
    filtering; the arg-max at temperature 0). It returns a one-hot score that greedy decoding
    then picks: one batched generate() call, per-prompt reproducibility. It also records each
    chosen token's log-prob at the sampling temperature (as vLLM's processed log-probs) in
    `logprobs` (B, T), so transformers need not keep every step's full logits.
    """

    def __init__(self, seeds: list[int], sampling: SamplingConfig, device: torch.device):
        self.temperature, self.top_p = sampling.temperature, sampling.top_p
        uniforms = [
            torch.rand(
                (sampling.max_tokens, sampling.n), generator=torch.Generator().manual_seed(int(s))
            )
            for s in seeds
        ]
        self.uniforms = torch.cat(uniforms, dim=1).to(device)  # (T, B)
        self.logprobs = torch.zeros(
            self.uniforms.shape[::-1], device=device
        )  # (B, T), filled step by step
        self.step = 0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.float()  # (B, V)
        if self.temperature == 0:
            chosen = scores.argmax(-1, keepdim=True)  # (B, 1)
        else:
            probs = torch.softmax(scores / self.temperature, dim=-1)
            if self.top_p < 1.0:
                probs = _nucleus(probs, self.top_p)
            cdf = probs.cumsum(-1)  # (B, V)
            u = self.uniforms[self.step].unsqueeze(-1) * cdf[:, -1:]  # (B, 1), in [0, total)
            chosen = torch.searchsorted(cdf, u, right=True).clamp(
                max=scores.shape[-1] - 1
            )  # first cdf > u
        tempered = scores / self.temperature if self.temperature > 0 else scores
        self.logprobs[:, self.step] = tempered.log_softmax(-1).gather(-1, chosen).squeeze(-1)
        self.step += 1
        return torch.full_like(scores, float("-inf")).scatter_(1, chosen, 0.0)


class FinishWatcher:
    """A stopping criterion that ends each row at its EOS token or stop string and reports
    the rows that ended at this step (`report(rows, input_ids, length)`), so their rewards can
    be computed while the rest of the batch is still generating.

    transformers' own stop-string matcher (`StopStringCriteria`) finds where a stop string is
    completed, even inside a token that runs past it.
    """

    def __init__(
        self, eos: set[int], stop, prompt_width: int, batch: int, device: torch.device, report
    ):
        self.eos = torch.tensor(sorted(eos), dtype=torch.long, device=device)
        self.stop, self.width, self.report = stop, prompt_width, report
        self.lengths = torch.zeros(
            batch, dtype=torch.long
        )  # completion length of ended rows; 0: running

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        ended = torch.isin(input_ids[:, -1], self.eos)
        if self.stop is not None:
            ended |= self.stop(input_ids, scores)
        new = ended.cpu() & (self.lengths == 0)
        if new.any():
            rows = new.nonzero().flatten().tolist()
            length = input_ids.shape[1] - self.width
            self.lengths[rows] = length
            self.report(rows, input_ids.cpu(), length)
        return (self.lengths > 0).to(input_ids.device)

    def running(self) -> list[int]:
        """Rows that never ended: they ran out of max_tokens."""
        return (self.lengths == 0).nonzero().flatten().tolist()


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
