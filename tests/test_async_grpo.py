"""Asynchronous GRPO (grpo.max_staleness) against a real vLLM server process: bounded
staleness read back from the logged versions, exact resume after SIGKILL, and the
combinations that cannot overlap refused with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests._cli import REPO
from tests.test_vllm_server import server_recipe

TIMING = ("time/", "perf/")


def rows_of(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith(TIMING)} for r in rows]


def cli(recipe: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-P", "-m", "pipelines.cli", "run", str(recipe)],
        cwd=recipe.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


@pytest.mark.vllm
def test_max_staleness_1_trains_on_samples_at_most_one_version_old(tmp_path, vllm_server):
    from pipelines.recipe import STAGES, resolve

    out = tmp_path / "run"
    recipe = server_recipe(
        out, vllm_server.ensure_up(), max_steps=5, max_staleness=1, dynamic_sampling=True
    )  # composes with the producer's draws
    kind, config = resolve(recipe)
    STAGES[kind].run(config)
    rows = rows_of(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    for r in rows:
        policy = r["step"] - 1  # updates done before step r trains
        assert policy - r["async/sample_version_min"] <= 1, r  # from the samples' own tags
        assert r["async/staleness_max"] <= 1 and r["async/stale_groups_dropped"] == 0
        for key in (
            "time/wait_rollouts",
            "time/engine_wait_weights",
            "async/staleness_mean",
            "rollout/logprob_abs_diff_mean",
            "rollout/logprob_abs_diff_max",
        ):
            assert key in r, key
    # Step 1 trains on version 0 (fresh); later steps overlap, so their samples are one version
    # behind the policy: the engine-vs-trainer difference includes that update.
    assert [r["async/staleness_max"] for r in rows] == [0, 1, 1, 1, 1]
    assert rows[0]["rollout/logprob_abs_diff_max"] < 1e-4
    assert all(r["rollout/logprob_abs_diff_mean"] > 1e-4 for r in rows[1:])
    assert (out / "checkpoints" / "step-000005" / "pending_rollouts.rank0.pt").is_file()


@pytest.mark.vllm
@pytest.mark.slow
def test_sigkill_of_an_async_run_then_rerun_matches_uninterrupted(tmp_path, vllm_server):
    url, steps = vllm_server.ensure_up(), 6
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    for out in (straight, killed):
        recipe = server_recipe(out, url, max_steps=steps, save_every=2, max_staleness=2)
        (tmp_path / f"{out.name}.yaml").write_text(yaml.safe_dump(recipe))
    first = cli(tmp_path / "straight.yaml")
    assert first.wait(timeout=600) == 0, first.stderr.read().decode()[-2000:]

    victim = cli(tmp_path / "killed.yaml")
    deadline = time.time() + 300
    while time.time() < deadline:  # kill while step 4 is under way (after step 3 was logged)
        if (killed / "metrics.jsonl").exists() and len(rows_of(killed)) >= 3:
            break
        time.sleep(0.01)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    assert len(rows_of(killed)) < steps, "the run finished before it was killed"

    again = cli(tmp_path / "killed.yaml")
    assert again.wait(timeout=600) == 0, again.stderr.read().decode()[-2000:]
    a = load_file(straight / "model" / "model.safetensors")
    b = load_file(killed / "model" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the straight run"
    assert comparable(rows_of(straight)) == comparable(rows_of(killed))


@pytest.mark.parametrize("engine", [{"backend": "vllm"}, {"backend": "hf"}])
def test_async_with_a_colocated_engine_is_refused_with_the_reason(engine):
    from pipelines.recipe import resolve

    recipe = {"stage": "grpo", "grpo": {"max_staleness": 1}, "engine": engine}
    with pytest.raises(ValueError, match="needs engine.backend=vllm_server.*cannot overlap"):
        resolve(recipe)


def test_negative_staleness_is_refused():
    from grpo.config import GRPOConfig

    with pytest.raises(ValueError, match="max_staleness=-1 must be >= 0"):
        GRPOConfig(max_staleness=-1)
    assert GRPOConfig(max_staleness=1).importance_cap == 10.0  # TIS on with stale samples
    assert GRPOConfig(max_staleness=1, tis_cap=3.0).importance_cap == 3.0
    assert GRPOConfig().importance_cap is None


@pytest.mark.vllm
@pytest.mark.slow
def test_two_async_training_processes_match_one(tmp_path, vllm_server):
    """torchrun with 2 processes (gloo), each with its producer thread on the same server:
    the producers' gathers run on a process group of their own, and the run ends with the
    weights of a 1-process asynchronous run (the same batches, summed in two halves)."""
    url, outs = vllm_server.ensure_up(), {}
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        recipe = server_recipe(out, url, max_steps=4, max_staleness=1, save_every=2)
        path = tmp_path / f"p{processes}.yaml"
        path.write_text(yaml.safe_dump(recipe))
        launcher = (
            ["-m", "pipelines.cli"]
            if processes == 1
            else [
                "-m",
                "torch.distributed.run",
                "--nproc_per_node=2",
                f"--master_port={_port()}",
                "-m",
                "pipelines.cli",
            ]
        )
        done = subprocess.run(
            [sys.executable, *launcher, "run", str(path)],
            cwd=REPO,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        outs[processes] = out
    one, two = (load_file(outs[p] / "model" / "model.safetensors") for p in (1, 2))
    for key in one:
        torch.testing.assert_close(two[key], one[key], atol=1e-5, rtol=0)
    for a, b in zip(rows_of(outs[1]), rows_of(outs[2]), strict=True):
        assert a["async/staleness_max"] == b["async/staleness_max"]
        for key in ("reward/mean", "policy/loss", "completion/tokens"):
            assert abs(a[key] - b[key]) < 1e-4, (key, a[key], b[key])
    for rank in (0, 1):  # after step 2 each process had made its share of batch 3 ahead
        pending = outs[2] / "checkpoints" / "step-000002" / f"pending_rollouts.rank{rank}.pt"
        assert sorted(torch.load(pending, weights_only=False)) == [3]


def _port() -> int:
    from tests._server import free_port

    return free_port()
