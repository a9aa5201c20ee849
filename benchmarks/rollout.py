"""Rollout throughput: raw vLLM vs r1kit's VLLMEngine vs HFEngine on the same work.

    python benchmarks/rollout.py --models bundled:tiny-char bundled:smollm2-135m-instruct

Prints completion tokens/s for each engine (best of --repeats runs), the wrapper's share of
raw vLLM throughput on the same work (greedy, with the sampled tokens' logprobs, which GRPO
needs), and the time of one in-place weight update. Every engine samples the same prompts with
the same settings; `ignore_eos` is not used, so all engines do exactly the work the model asks
for and the figures are tokens actually produced per second.
"""

from __future__ import annotations

import argparse
import gc
import os
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")

from grpo.engines import EngineConfig, SamplingConfig  # noqa: E402
from grpo.engines.hf_engine import HFEngine  # noqa: E402
from grpo.engines.vllm_engine import VLLMEngine  # noqa: E402
from pipelines.models import resolve_model  # noqa: E402

PROMPT = "Write a short story about a robot who learns to add numbers."


def prompts(count: int) -> list:
    return [[{"role": "user", "content": f"{PROMPT} Story {i}."}] for i in range(count)]


def tokens_of(groups) -> int:
    return sum(len(s.token_ids) for g in groups for s in g.samples)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def best_of(repeats: int, fn):
    runs = [timed(fn) for _ in range(repeats)]
    return min(runs, key=lambda run: run[1])


def bench_model(name: str, args) -> None:
    path = resolve_model(name)
    sampling = SamplingConfig(n=1, temperature=0.0, max_tokens=args.max_tokens)
    work = prompts(args.num_prompts)
    config = EngineConfig(max_model_len=512)

    raw_tokens, raw_s, groups, wrap_s, update_s, n_tensors = _bench_vllm(
        path, config, work, sampling, args
    )
    gc.collect()  # the vLLM engine is gone before transformers loads its own copy

    hf = HFEngine(path, EngineConfig(backend="hf", batch_size=args.num_prompts))
    hf_groups, hf_s = timed(lambda: hf.generate(work, sampling))
    raw_tps, wrap_tps, hf_tps = (
        raw_tokens / raw_s,
        tokens_of(groups) / wrap_s,
        tokens_of(hf_groups) / hf_s,
    )
    print(f"\n{name}: {args.num_prompts} sequences x <= {args.max_tokens} tokens, fp32, greedy")
    print(f"  {'engine':<22}{'tokens':>8}{'seconds':>10}{'tok/s':>10}")
    print(f"  {'raw vLLM':<22}{raw_tokens:>8}{raw_s:>10.2f}{raw_tps:>10.1f}")
    print(f"  {'r1kit VLLMEngine':<22}{tokens_of(groups):>8}{wrap_s:>10.2f}{wrap_tps:>10.1f}")
    print(f"  {'r1kit HFEngine':<22}{tokens_of(hf_groups):>8}{hf_s:>10.2f}{hf_tps:>10.1f}")
    print(
        f"  wrapper keeps {100 * wrap_tps / raw_tps:.1f}% of raw vLLM; "
        f"vLLM is {wrap_tps / hf_tps:.1f}x transformers"
    )
    print(f"  one in-place weight update: {1000 * update_s:.0f} ms ({n_tensors} tensors)")


def _bench_vllm(path: str, config: EngineConfig, work, sampling: SamplingConfig, args):
    engine = VLLMEngine(path, config)
    engine.generate(work[:2], sampling)  # warm-up
    # Best of `repeats` runs: the machine's noise hits both sides alike.
    raw_tokens, raw_s = best_of(args.repeats, lambda: _raw_vllm(engine, work, sampling))
    groups, wrap_s = best_of(args.repeats, lambda: engine.generate(work, sampling))
    named = list(engine_weights(path))
    _, update_s = timed(lambda: engine.update_weights(named))
    return raw_tokens, raw_s, groups, wrap_s, update_s, len(named)


def _raw_vllm(engine: VLLMEngine, work, sampling: SamplingConfig) -> int:
    """vLLM's own chat path, without r1kit's wrapper, for the same prompts and settings."""
    from vllm import SamplingParams

    # The same work the wrapper does: the sampled token's logprob is returned (GRPO needs it).
    params = SamplingParams(n=1, temperature=0.0, max_tokens=sampling.max_tokens, logprobs=0)
    outputs = engine.llm.chat(work, params, use_tqdm=False)
    return sum(len(c.token_ids) for out in outputs for c in out.outputs)


def engine_weights(path: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).state_dict().items()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["bundled:tiny-char", "bundled:smollm2-135m-instruct"]
    )
    parser.add_argument("--num-prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for name in args.models:
        bench_model(name, args)


if __name__ == "__main__":
    main()
