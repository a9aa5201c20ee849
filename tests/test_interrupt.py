"""Ctrl-C during GRPO: the terminal sends SIGINT to the whole process group, grading workers
included. The user sees one line saying how to resume, no traceback from any process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import yaml

from tests._cli import REPO


def test_ctrl_c_prints_one_line_and_no_worker_traceback(tmp_path, tiny_model):
    recipe = {
        "stage": "grpo",
        "output_dir": str(tmp_path / "out"),
        "data": {"num_rows": 64},
        "rewards": [{"name": "accuracy"}],  # untrained answers are not numerals: graded in workers
        "grpo": {
            "max_steps": 50,
            "prompts_per_step": 4,
            "group_size": 4,
            "max_completion_len": 24,
            "micro_batch_size": 8,
            "beta": 0.0,
            "report_to": ["console"],
        },
        "engine": {"backend": "hf"},
    }
    (tmp_path / "grpo.yaml").write_text(yaml.safe_dump(recipe))
    log = tmp_path / "stderr.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "pipelines.cli", "run", "grpo.yaml"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            # A shell starts background jobs with SIGINT ignored, and children inherit that:
            # give the run the disposition a terminal's foreground command has.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.time() + 300
        while "step 2 " not in log.read_text() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, log.read_text()[-3000:]
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        code = proc.wait(timeout=120)
    text = log.read_text()
    assert code == 130
    assert text.endswith("r1kit: interrupted; rerun the same command to resume\n")
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
