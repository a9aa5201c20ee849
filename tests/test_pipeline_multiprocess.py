"""The shrunk quickstart pipeline (every stage kind, evaluations included) under
`torchrun --nproc_per_node 2` behaves like one process: one manifest and report, written by one
process, with the figures of a 1-process run; killed with SIGKILL mid-stage and rerun, it ends
with the same report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_multiprocess import _free_port
from tests.test_quickstart_resume import RECIPE, ROOT, SHRINK, _report

# Training figures compared between 1 and 2 processes: DDP averages two half-batch gradients
# where one process takes the mean over the whole batch, so they agree to float rounding only.
CLOSE = 1e-3


def _start(out: Path, processes: int) -> subprocess.Popen:
    launcher = ["-m", "torch.distributed.run", f"--nproc_per_node={processes}",
                f"--master_port={_free_port()}"] if processes > 1 else []
    with open(out.with_suffix(".log"), "ab") as log:
        return subprocess.Popen([sys.executable, *launcher, "-m", "pipelines.cli", "run", str(RECIPE),
                                 f"output_dir={out}", *SHRINK],
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})


def _finish(proc: subprocess.Popen, out: Path) -> None:
    proc.wait(timeout=1200)
    assert proc.returncode == 0, out.with_suffix(".log").read_text()[-3000:]


def _close(a, b, path: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert abs(a - b) <= CLOSE * max(1.0, abs(a)), (path, a, b)
    else:
        assert a == b, (path, a, b)


@pytest.mark.slow
def test_two_process_pipeline_matches_one_and_resumes_after_a_kill(tiny_model, tmp_path):
    one, two, killed = tmp_path / "one", tmp_path / "two", tmp_path / "killed"
    _finish(_start(one, 1), one)
    _finish(_start(two, 2), two)
    _close(_report(two), _report(one))
    log = two.with_suffix(".log").read_text()
    assert log.count("stage 1/5 cold_start (sft): starting") == 1  # one process reports
    manifest = json.loads((two / "manifest.json").read_text())
    assert all(stage["status"] == "done" for stage in manifest["stages"].values())

    proc = _start(killed, 2)  # killed mid reasoning RL, after its first checkpoint
    deadline = time.time() + 900
    while not (killed / "reasoning_rl" / "checkpoints" / "step-000002").exists():
        assert proc.poll() is None and time.time() < deadline, killed.with_suffix(".log").read_text()[-3000:]
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _finish(_start(killed, 2), killed)
    assert _report(killed) == _report(two)
