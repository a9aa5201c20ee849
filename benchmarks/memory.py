"""Peak memory of the log-prob pass: full logits (the plain computation) vs r1kit's chunked head.

    python benchmarks/memory.py                      # SmolLM2 shapes, 16 x 1024 completion tokens
    python benchmarks/memory.py --rows 2 --tokens 8192 --vocab 151936 --hidden 3584   # 7B-like head

The model has SmolLM2-135M's vocabulary (49,152) and hidden size (576) with one decoder layer:
the decoder is identical in both variants, and what differs is the LM head, whose (n, L, V)
logits are the largest tensors of a long-completion batch. Each variant runs in a fresh
process: forward with entropy, then backward of a loss over the log-probs, as a GRPO
micro-batch does. The figure is the rise of the process's peak resident memory over the pass
(Linux `clear_refs` resets the peak after the model and batch are built), on CPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))


def measure(args: argparse.Namespace) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from grpo.policy import MicroBatch, completion_logprobs

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    config = LlamaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=4 * args.hidden,
        num_hidden_layers=1,
        num_attention_heads=args.hidden // 64,
        num_key_value_heads=args.hidden // 64,
        max_position_embeddings=args.tokens + 128,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    prompts = torch.randint(0, args.vocab, (args.rows, 64)).tolist()
    completions = torch.randint(0, args.vocab, (args.rows, args.tokens)).tolist()
    batch = MicroBatch.build(prompts, completions, pad_id=0)
    chunk = None if args.variant == "full" else args.chunk
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset the peak resident size to the current one
    base = _rss_kib("VmRSS:")
    start = time.perf_counter()
    logp, entropy = completion_logprobs(
        model, batch, temperature=1.0, with_entropy=True, chunk_tokens=chunk
    )
    (-(logp * batch.completion_mask).sum() / batch.completion_mask.sum()).backward()
    seconds = time.perf_counter() - start
    return {"peak_gib": (_rss_kib("VmHWM:") - base) / 2**20, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=1024, help="completion tokens per row")
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--hidden", type=int, default=576)
    parser.add_argument("--chunk", type=int, default=1024, help="grpo.logit_chunk_tokens")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", choices=["full", "chunked"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args)))
        return
    print(
        f"log-prob pass (forward + entropy + backward), "
        f"{args.rows} x {args.tokens} completion tokens, "
        f"vocabulary {args.vocab}, hidden {args.hidden}"
    )
    results = {}
    for variant in ("full", "chunked"):
        done = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:], "--variant", variant],
            capture_output=True,
            text=True,
            check=True,
        )
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
        label = (
            "full logits (n, L, V)" if variant == "full" else f"chunked head ({args.chunk} tokens)"
        )
        result = results[variant]
        print(f"  {label:<28} peak +{result['peak_gib']:.2f} GiB   {result['seconds']:.1f} s")
    ratio = results["full"]["peak_gib"] / results["chunked"]["peak_gib"]
    print(f"  memory ratio full / chunked: {ratio:.1f}x")


if __name__ == "__main__":
    main()
