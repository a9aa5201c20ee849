"""Two training processes (torch.distributed, gloo on CPU) match one process on the same batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from tests.test_trainer import grpo_recipe

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(recipe: Path, processes: int) -> None:
    if processes == 1:
        cmd = [sys.executable, "-m", "pipelines.cli", "run", str(recipe)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
               f"--master_port={_free_port()}", "-m", "pipelines.cli", "run", str(recipe)]
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_match_one(tmp_path, tiny_model):
    runs = {}
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        # beta > 0 exercises the reference model; 2 minibatches exercise pi_old and DDP no_sync.
        recipe = grpo_recipe(out, backend="hf", max_steps=2, beta=0.01, minibatches=2, micro_batch_size=4)
        (tmp_path / f"p{processes}.yaml").write_text(yaml.safe_dump(recipe))
        _launch(tmp_path / f"p{processes}.yaml", processes)
        runs[processes] = out
    one, two = (load_file(runs[p] / "model" / "model.safetensors") for p in (1, 2))
    initial = load_file(Path(tiny_model) / "model.safetensors")
    assert any(not torch.equal(one[k], initial[k]) for k in one), "training changed nothing"
    for key in one:
        torch.testing.assert_close(two[key], one[key], atol=1e-5, rtol=0)
    rows = [[json.loads(x) for x in (runs[p] / "metrics.jsonl").read_text().splitlines()] for p in (1, 2)]
    for a, b in zip(*rows, strict=True):
        for key in ("reward/mean", "reward/std", "policy/loss", "policy/kl_mean", "completion/tokens"):
            assert abs(a[key] - b[key]) < 1e-4, (key, a[key], b[key])
