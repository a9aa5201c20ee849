"""The shrunk quickstart pipeline (every stage kind, evaluations included) under
`torchrun --nproc_per_node 2` behaves like one process: one manifest and report, written by one
process, training the same batches as a 1-process run; killed with SIGKILL mid-stage and rerun,
it ends with exactly the same report.

Two processes sum two half-batch gradients where one process sums one batch: the same maths,
rounded differently. The first hundred SFT steps agree to 1e-5, and the 40-step reward model to
1e-4 in every weight; over the shrunk cold start's 300 steps at lr 1e-3 the rounding grows to a few
hundredths in a weight, which can flip a few of the 16 evaluated samples. So evaluation rates
are compared within EVAL_TOLERANCE (4 of 16 samples), everything else exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pipelines.report import stage_evals
from tests.test_multiprocess import _free_port
from tests.test_quickstart_resume import _report, finish, start_quickstart

EVAL_TOLERANCE = 0.25
RATES = ("pass@1", "cons@", "rate", "language_consistency")


def _start(out: Path, processes: int) -> subprocess.Popen:
    launcher = ["-m", "torch.distributed.run", f"--nproc_per_node={processes}"]
    launcher += [f"--master_port={_free_port()}"]
    return start_quickstart(out, launcher if processes > 1 else (), {"OMP_NUM_THREADS": "1"})


def _finish(proc: subprocess.Popen, out: Path) -> None:
    finish(proc, out, timeout=1200)


def _losses(out: Path, stage: str, key: str, last_step: int) -> list[float]:
    rows = [json.loads(line) for line in (out / stage / "metrics.jsonl").read_text().splitlines()]
    return [r[key] for r in rows if key in r and r["step"] <= last_step]


@pytest.mark.slow
def test_two_process_pipeline_matches_one_and_resumes_after_a_kill(tiny_model, tmp_path):
    one, two, killed = tmp_path / "one", tmp_path / "two", tmp_path / "killed"
    _finish(_start(one, 1), one)
    _finish(_start(two, 2), two)
    assert [(n, status) for n, status, _, _ in _report(two)] == [
        (n, status) for n, status, _, _ in _report(one)
    ]
    torch.testing.assert_close(
        _losses(two, "cold_start", "sft/loss", 100),
        _losses(one, "cold_start", "sft/loss", 100),
        rtol=1e-5,
        atol=0,
    )
    reward_models = [
        load_file(run / "reward_model" / "model" / "model.safetensors") for run in (one, two)
    ]
    for key in reward_models[0]:
        torch.testing.assert_close(reward_models[1][key], reward_models[0][key], atol=1e-4, rtol=0)
    others = stage_evals(two)
    for name, evaluation in stage_evals(one).items():
        other = others[name]
        assert evaluation.keys() == other.keys()
        for key in (k for k in evaluation if k.startswith(RATES)):
            assert abs(evaluation[key] - other[key]) <= EVAL_TOLERANCE, (
                name,
                key,
                evaluation[key],
                other[key],
            )
    log = two.with_suffix(".log").read_text()
    assert log.count("stage 2/5 cold_start (sft): starting") == 1  # one process reports
    manifest = json.loads((two / "manifest.json").read_text())
    assert all(stage["status"] == "done" for stage in manifest["stages"].values())

    proc = _start(killed, 2)  # killed mid reasoning RL, after its first checkpoint
    deadline = time.time() + 900
    while not (killed / "reasoning_rl" / "checkpoints" / "step-000002").exists():
        assert proc.poll() is None and time.time() < deadline, killed.with_suffix(
            ".log"
        ).read_text()[-3000:]
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _finish(_start(killed, 2), killed)
    assert _report(killed) == _report(two)
