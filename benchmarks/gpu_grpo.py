"""A few GRPO steps of a SmolLM2-135M-shaped model on one GPU, with the transformers engine.

    python -m benchmarks.gpu_grpo --model DIR [--steps 5] [--dtype bfloat16]

DIR is an HF model directory. If it holds only config and tokenizer files (no weights, e.g.
where the weights cannot be shipped), the model is initialised randomly from the config with
a fixed seed: the figures then measure speed, not learning, and every sample tends to run to
the length cap (the worst case for generation). The policy trains with fp32 master weights in
bf16 mixed precision (`grpo.mixed_precision`); the engine runs in `--dtype`. Runs twice, with
chunked and with full-logits log-probs, and prints per-step time split, tokens/s, peak GPU memory
and the fraction of weights the run changed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from grpo.config import GRPOConfig
from grpo.engines import EngineConfig
from grpo.trainer import GRPOTrainer
from pipelines.data import DataConfig, load_rows
from rewards import RewardSet, RewardSpec


def ensure_weights(model_dir: Path, dtype: str) -> Path:
    if any(model_dir.glob("*.safetensors")):
        return model_dir
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    out = Path(tempfile.mkdtemp(prefix="r1kit-gpu-model-"))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument(
        "--output", type=Path, default=Path(tempfile.mkdtemp(prefix="r1kit-gpu-run-"))
    )
    args = parser.parse_args()

    model = ensure_weights(args.model, args.dtype)
    rows = load_rows(DataConfig(path="builtin:addition", num_rows=256))
    rewards = RewardSet(
        [
            RewardSpec("format_soft"),
            RewardSpec(
                "overlong_penalty",
                params={"max_length": args.max_tokens, "buffer": args.max_tokens // 2},
            ),
        ]
    )
    for chunk in (1024, None):
        run(model, rows, rewards, args, chunk, args.output / f"chunk-{chunk}")


def run(model: Path, rows, rewards, args, chunk: int | None, output: Path) -> None:
    from safetensors.torch import load_file

    config = GRPOConfig(
        max_steps=args.steps,
        prompts_per_step=args.prompts,
        group_size=args.group,
        max_completion_len=args.max_tokens,
        micro_batch_size=64,
        learning_rate=3e-6,
        beta=0.001,
        save_every=10_000,
        report_to=["jsonl"],
        mixed_precision="bf16",
        logit_chunk_tokens=chunk,
    )
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer = GRPOTrainer(
        str(model),
        rows,
        rewards,
        config,
        EngineConfig(backend="hf", dtype=args.dtype, batch_size=256),
        output,
        fresh=True,
    )
    trainer.train()
    initial = {k: v.float() for k, v in load_file(next(model.glob("*.safetensors"))).items()}
    trained = {
        k: v.detach().float().cpu()
        for k, v in trainer.accelerator.unwrap_model(trainer.model).state_dict().items()
    }
    changed = sum(int((initial[k] != trained[k]).sum()) for k in initial) / sum(
        v.numel() for v in initial.values()
    )
    steps = [json.loads(x) for x in (output / "metrics.jsonl").read_text().splitlines()][
        1:
    ]  # skip warm-up
    med = lambda key: statistics.median(s[key] for s in steps)  # noqa: E731
    label = f"log-probs chunked by {chunk} tokens" if chunk else "log-probs from full logits"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(
        f"\n{device}, engine {args.dtype}, bf16 mixed precision, {label}, "
        f"{args.prompts} prompts x G={args.group}, <= {args.max_tokens} tokens, "
        f"median of {len(steps)} steps"
    )
    for key in (
        "time/step",
        "time/generate",
        "time/reward",
        "time/train",
        "time/weight_sync",
        "completion/length_mean",
        "perf/tokens_per_s",
        "policy/kl_mean",
        "policy/grad_norm",
        "rollout/logprob_abs_diff_max",
    ):
        print(f"  {key:<30}{med(key):>12.4g}")
    print(f"  weights changed               {changed:>12.2%}")
    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated() / 2**30
        print(f"  peak GPU memory               {peak:>12.2f} GiB")


if __name__ == "__main__":
    main()
