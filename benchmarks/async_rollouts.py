"""The same GRPO work two ways: synchronous with the colocated vLLM engine, and asynchronous
(grpo.max_staleness 1) against a vLLM server, each with the machine's two cores.

    python benchmarks/async_rollouts.py                       # SmolLM2-135M, about 10 min
    python benchmarks/async_rollouts.py --model bundled:tiny-char --steps 8 --prompts 8

  sync-colocated   one process: generate, then train, on both cores (torch threads 2)
  async-server     `r1kit serve --cpus 0` (the server on core 0, one compute thread), the
                   trainer pinned to core 1 (taskset, one torch thread), max_staleness 1:
                   generation of the next batch runs while this one trains

Both train the same model on the same prompts (builtin:addition) with the same rewards,
G, prompts per step, completion cap, learning rate and loss, fp32, from fresh processes.
Tokens per second = completion tokens / trainer step wall time (`time/step`), over the
steps after the first `--warmup` (the first asynchronous step cannot overlap anything).
The work differs in one way, by design: asynchronous samples come from the policy of one
update earlier, so completions (and their token counts) differ; tokens/s is the fair measure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]
REPO = _HERE.parent
TARGET = 1.3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="bundled:smollm2-135m-instruct")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2, help="leading steps left out of the figures")
    p.add_argument("--prompts", type=int, default=2)
    p.add_argument("--group", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--runs", default="sync-colocated,async-server")
    p.add_argument("--json", type=Path, help="also write every run's per-step figures here")
    args = p.parse_args(argv)
    if args.steps <= args.warmup:
        p.error("--steps must exceed --warmup")
    if os.cpu_count() is None or len(os.sched_getaffinity(0)) < 2:
        p.error("needs two CPU cores (one for the server, one for the trainer)")
    return args


def recipe(args: argparse.Namespace, out: Path, engine: dict, threads: int, staleness: int) -> dict:
    return {
        "stage": "grpo",
        "model": args.model,
        "output_dir": str(out),
        "data": {"path": "builtin:addition", "num_rows": 1000},
        "rewards": [{"name": "accuracy"}, {"name": "format_soft", "weight": 0.5}],
        "grpo": {
            "max_steps": args.steps,
            "prompts_per_step": args.prompts,
            "group_size": args.group,
            "max_completion_len": args.max_tokens,
            "micro_batch_size": args.micro_batch,
            "learning_rate": args.lr,
            "beta": 0.0,
            "save_every": 1000,
            "report_to": ["jsonl"],
            "num_threads": threads,
            "max_staleness": staleness,
            "temperature": 1.0,
        },
        "engine": {"max_model_len": 512, **engine},
    }


def run_stage(recipe_path: Path, cores: str, threads: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads)}
    command = [
        "taskset",
        "-c",
        cores,
        sys.executable,
        "-m",
        "pipelines.cli",
        "run",
        str(recipe_path),
        "--fresh",
    ]
    done = subprocess.run(command, env=env, check=False, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{recipe_path.name} failed:\n{done.stderr[-3000:]}")


def steps_of(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def sync_colocated(args, work: Path) -> list[dict]:
    path = work / "sync.yaml"
    path.write_text(json.dumps(recipe(args, work / "sync", {"backend": "vllm"}, 2, 0)))
    run_stage(path, "0,1", 2)
    return steps_of(work / "sync")


def async_server(args, work: Path) -> list[dict]:
    from grpo.engines.vllm_server import wait_until_up
    from pipelines.models import resolve_model

    port = 18000 + os.getpid() % 1000
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = open(work / "server.log", "w")  # noqa: SIM115 -- open while the server runs
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "serve",
            resolve_model(args.model),
            "--port",
            str(port),
            "--max-model-len",
            "512",
            "--cpus",
            "0",  # every server process and its compute thread on core 0
        ],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        wait_until_up(url, 900, server)
        path = work / "async.yaml"
        engine = {"backend": "vllm_server", "servers": [url]}
        path.write_text(json.dumps(recipe(args, work / "async", engine, 1, 1)))
        run_stage(path, "1", 1)
        return steps_of(work / "async")
    finally:
        os.killpg(server.pid, 9)
        server.wait()
        log.close()


def summarise(rows: list[dict], warmup: int) -> dict[str, float]:
    measured = rows[warmup:]
    tokens = sum(r["completion/tokens"] for r in measured)
    wall = sum(r["time/step"] for r in measured)
    return {
        "tok_s": tokens / wall,
        "step_s": statistics.median(r["time/step"] for r in measured),
        "tokens": statistics.mean(r["completion/tokens"] for r in measured),
        "train_s": statistics.median(r.get("time/train", 0.0) for r in measured),
        "wait_s": statistics.median(
            r.get("time/wait_rollouts", r.get("time/generate", 0.0)) for r in measured
        ),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    runs = {"sync-colocated": sync_colocated, "async-server": async_server}
    work = Path(tempfile.mkdtemp(prefix="r1kit-async-bench-"))
    results, raw = {}, {}
    load = os.getloadavg()
    try:
        for name in args.runs.split(","):
            before = os.getloadavg()[0]
            raw[name] = runs[name](args, work)
            results[name] = {
                **summarise(raw[name], args.warmup),
                "load": f"{before:.1f}-{os.getloadavg()[0]:.1f}",
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{args.model}: B={args.prompts} x G={args.group}, <= {args.max_tokens} tokens, "
        f"{args.steps} steps (first {args.warmup} left out), fp32 CPU; "
        f"load average at start {load[0]:.1f}, at end {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'run':<16}{'step s':>8}{'tokens':>8}{'tok/s':>8}{'train s':>9}{'gen/wait s':>11}"
        f"{'load':>11}"
    )
    for name, r in results.items():
        print(
            f"{name:<16}{r['step_s']:>8.2f}{r['tokens']:>8.0f}{r['tok_s']:>8.1f}"
            f"{r['train_s']:>9.2f}{r['wait_s']:>11.2f}{r['load']:>11}"
        )
    if len(results) == 2:
        speed = results["async-server"]["tok_s"] / results["sync-colocated"]["tok_s"]
        print(f"async-server / sync-colocated: tokens/s x{speed:.2f} (target x{TARGET})")
        ceiling = results["sync-colocated"]["step_s"] / results["async-server"]["train_s"]
        print(
            f"ceiling here: x{ceiling:.2f} (a trainer on one core cannot step faster than its "
            "update: sync step s / async train s)"
        )
    print(
        "gen/wait s: generation time (sync) or the trainer's wait for its batch (async); "
        "load: 1-minute load average when the run started and ended (other users' work)"
    )
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
