"""The quickstart pipeline, shrunk, killed with SIGKILL at several points and rerun each time,
ends with the same report and the same final weights as an uninterrupted run.

Every stage kind of the real quickstart recipes runs (TRL SFT, GRPO on vLLM, rejection sampling,
TRL reward model, all-scenario GRPO with reward-model rewards) with evaluation after each
stage. Kills land mid-SFT, mid-GRPO, mid-reward-model and during an evaluation.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "quickstart" / "pipeline.yaml"
SHRINK = [
    "eval.limit=8",
    "eval.k=2",
    "eval.extra.0.num_rows=4",
    "eval.extra.1.num_rows=8",
    "cold_start.train.max_steps=300",
    "cold_start.train.save_every=100",
    "reasoning_rl.grpo.max_steps=6",
    "reasoning_rl.grpo.save_every=2",
    "reasoning_rl.grpo.prompts_per_step=8",
    "rejection_sampling.data.num_rows=32",
    "rejection_sampling.k=4",
    "rejection_sampling.train.max_steps=40",
    "rejection_sampling.train.batch_size=2",  # few rows are kept from 32 prompts
    "rejection_sampling.train.save_every=10",
    "rejection_sampling.train.log_every=10",
    "reward_model.train.max_steps=40",
    "reward_model.train.save_every=10",
    "reward_model.train.log_every=10",
    "all_scenario_rl.grpo.max_steps=4",
    "all_scenario_rl.grpo.save_every=2",
    "all_scenario_rl.grpo.prompts_per_step=8",
]
# Kill when this path appears (the run has made progress past it), then rerun.
KILL_AFTER = [  # in the order the quickstart's stages run
    "reward_model/checkpoints/checkpoint-20",  # mid reward-model training
    "cold_start/checkpoints/checkpoint-100",  # mid-SFT
    "reasoning_rl/checkpoints/step-000002",  # mid-GRPO
    "eval/reasoning_rl.json",  # between an evaluation and the next stage's start
    "rejection_sampling/data.jsonl",  # sampled and filtered, SFT under way
    "all_scenario_rl/checkpoints/step-000002",  # mid all-scenario RL
]
TIMING = ("runtime", "per_second", "time/", "perf/")  # wall-clock figures differ run to run


def start_quickstart(
    out: Path,
    launcher: Sequence[str] = (),
    env: dict[str, str] | None = None,
    *,
    shrink: bool = True,
) -> subprocess.Popen:
    """The quickstart command, shrunk unless told, after `launcher` (e.g. torchrun's arguments),
    in its own process group; its output goes to OUT.log (a pipe nobody reads while waiting for
    a kill point could fill up and stall the run)."""
    command = ["-m", "pipelines.cli", "run", str(RECIPE), f"output_dir={out}"]
    command = [*launcher, *command, *(SHRINK if shrink else [])]
    with open(out.with_suffix(".log"), "ab") as log:
        return subprocess.Popen(
            [sys.executable, *command],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )


def finish(proc: subprocess.Popen, out: Path, timeout: float = 900) -> None:
    proc.wait(timeout=timeout)
    assert proc.returncode == 0, out.with_suffix(".log").read_text()[-3000:]


def _report(out: Path) -> list[tuple]:
    """Each stage's evaluation and training summary, without wall-clock figures."""
    stages = json.loads((out / "report.json").read_text())["stages"]
    for stage in stages:
        metrics = (stage.get("training") or {}).get("metrics", {})
        for key in [k for k in metrics if any(t in k for t in TIMING)]:
            del metrics[key]
    return [(s["name"], s["status"], s.get("eval"), s.get("training")) for s in stages]


def _weights(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


@pytest.mark.slow
def test_killed_quickstart_reruns_to_the_same_report(tiny_model, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    finish(start_quickstart(whole), whole)
    for marker in KILL_AFTER:
        proc = start_quickstart(killed)
        deadline = time.time() + 600
        while not (killed / marker).exists():
            assert proc.poll() is None, f"the run ended before {marker} appeared"
            assert time.time() < deadline, f"{marker} never appeared"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finish(start_quickstart(killed), killed)

    assert _report(killed) == _report(whole)
    manifest = json.loads((killed / "manifest.json").read_text())
    assert all(stage["status"] == "done" for stage in manifest["stages"].values())
    assert sum(stage["attempts"] for stage in manifest["stages"].values()) > len(manifest["stages"])
    for name in ("reasoning_rl", "rejection_sampling", "reward_model", "all_scenario_rl"):
        a, b = _weights(whole / name / "model"), _weights(killed / name / "model")
        assert all((a[k] == b[k]).all() for k in a), f"{name}: weights differ after kill and resume"
    for name in (
        "cold_start",
        "reasoning_rl",
        "rejection_sampling",
        "reward_model",
        "all_scenario_rl",
    ):
        # Rows a killed run logged past its last checkpoint are dropped, then logged again.
        assert _steps(killed / name) == _steps(whole / name), name


def _steps(stage_dir: Path) -> list[int]:
    return [
        json.loads(line)["step"] for line in (stage_dir / "metrics.jsonl").read_text().splitlines()
    ]
