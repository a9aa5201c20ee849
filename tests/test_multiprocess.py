"""Two training processes (torch.distributed, gloo on CPU) match one process on the same batch."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
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
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={processes}",
            f"--master_port={_free_port()}",
            "-m",
            "pipelines.cli",
            "run",
            str(recipe),
        ]
    done = subprocess.run(
        cmd,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_match_one(tmp_path, tiny_model):
    runs = {}
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        # beta > 0 exercises the reference model; 2 minibatches exercise pi_old and DDP no_sync.
        recipe = grpo_recipe(
            out, backend="hf", max_steps=2, beta=0.01, minibatches=2, micro_batch_size=4
        )
        (tmp_path / f"p{processes}.yaml").write_text(yaml.safe_dump(recipe))
        _launch(tmp_path / f"p{processes}.yaml", processes)
        runs[processes] = out
    one, two = (load_file(runs[p] / "model" / "model.safetensors") for p in (1, 2))
    initial = load_file(Path(tiny_model) / "model.safetensors")
    assert any(not torch.equal(one[k], initial[k]) for k in one), "training changed nothing"
    for key in one:
        torch.testing.assert_close(two[key], one[key], atol=1e-5, rtol=0)
    rows = [
        [json.loads(x) for x in (runs[p] / "metrics.jsonl").read_text().splitlines()]
        for p in (1, 2)
    ]
    for a, b in zip(*rows, strict=True):
        for key in (
            "reward/mean",
            "reward/std",
            "policy/loss",
            "policy/kl_mean",
            "completion/tokens",
        ):
            assert abs(a[key] - b[key]) < 1e-4, (key, a[key], b[key])


# recipes/accelerate/fsdp.yaml on CPU. accelerate 1.15 enables FSDP only on accelerator devices,
# so on CPU this launches DDP, keeping the RAM-efficient loading by which ranks >= 1 load empty
# weights: the trap a reference model must not fall into.
FSDP_YAML_ON_CPU = {
    "compute_environment": "LOCAL_MACHINE",
    "distributed_type": "FSDP",
    "num_machines": 1,
    "num_processes": 2,
    "mixed_precision": "no",
    "machine_rank": 0,
    "use_cpu": True,
    "fsdp_config": {
        "fsdp_version": 2,
        "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "fsdp_cpu_ram_efficient_loading": True,
        "fsdp_reshard_after_forward": True,
        "fsdp_state_dict_type": "FULL_STATE_DICT",
    },
}


def _launcher(kind: str, tmp_path: Path) -> list[str]:
    if kind == "fsdp2":  # accelerate's real FSDP2 over gloo (see tests/fsdp2_on_cpu.py)
        return [
            "torch.distributed.run",
            "--nproc_per_node=2",
            f"--master_port={_free_port()}",
            "-m",
            "tests.fsdp2_on_cpu",
        ]
    (tmp_path / "accelerate.yaml").write_text(yaml.safe_dump(FSDP_YAML_ON_CPU))
    return [
        "accelerate.commands.launch",
        "--config_file",
        str(tmp_path / "accelerate.yaml"),
        "--num_processes",
        "2",
        f"--main_process_port={_free_port()}",
        "-m",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fsdp2", "ddp_ram_efficient_loading"])
def test_vllm_engine_per_rank_follows_every_update_and_reference_is_rank_zeros(
    kind, tmp_path, tiny_model
):
    """Each process owns a vLLM engine (external_launcher). After every update its log-probs of
    the sampled tokens equal the trainer's on every rank (a stale rank-1 engine reads ~0.7
    here): under FSDP2 each parameter is gathered as it streams in. The reference is the
    initial policy on every rank (KL exactly 0 before the first update) and matches 1 process."""
    runs = {}
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        recipe = grpo_recipe(
            out,
            backend="vllm",
            max_steps=2,
            beta=0.01,
            learning_rate=1e-2,
            save_every=10,
            report_to=["console", "jsonl"],
        )
        (tmp_path / f"p{processes}.yaml").write_text(yaml.safe_dump(recipe))
        log = _run(
            _launcher(kind, tmp_path) if processes == 2 else [], tmp_path / f"p{processes}.yaml"
        )
        runs[processes] = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert "vLLM engines: rank 0 on cpu, rank 1 on cpu" in log
    for one, two in zip(runs[1], runs[2], strict=True):
        assert two["rollout/logprob_abs_diff_max"] < 1e-4, two
        assert abs(two["policy/kl_mean"] - one["policy/kl_mean"]) < 1e-4
    assert runs[2][0]["policy/kl_mean"] < 1e-7
    weights = [load_file(tmp_path / f"p{p}" / "model" / "model.safetensors") for p in (1, 2)]
    for key in weights[0]:
        torch.testing.assert_close(weights[1][key], weights[0][key], atol=1e-5, rtol=0)


def _run(launcher: list[str], recipe: Path, env: dict[str, str] | None = None) -> str:
    cmd = [sys.executable, "-m", *launcher, "pipelines.cli", "run", str(recipe)]
    done = subprocess.run(
        cmd,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.mark.slow
def test_tensor_parallel_engine_across_two_processes(tmp_path, tiny_model):
    """engine.tensor_parallel_size=2 over 2 processes: one vLLM engine split across both ranks;
    they pool their prompts, generate together and each keeps its own samples."""
    out = tmp_path / "tp2"
    recipe = grpo_recipe(out, backend="vllm", max_steps=2, learning_rate=1e-2, save_every=10)
    recipe["engine"]["tensor_parallel_size"] = 2
    (tmp_path / "tp2.yaml").write_text(yaml.safe_dump(recipe))
    _launch(tmp_path / "tp2.yaml", 2)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        assert row["rollout/logprob_abs_diff_max"] < 1e-4, row


@pytest.mark.slow
def test_fsdp2_sharded_checkpoints_resume_exactly_and_export_one_model(tmp_path, tiny_model):
    """With fsdp_state_dict_type SHARDED_STATE_DICT each rank writes its own shard (torch DCP), no
    rank gathers the optimizer; the final model is still one HF directory, and a run resumed
    from a sharded checkpoint ends with the weights of an uninterrupted one."""
    out = tmp_path / "sharded"
    (tmp_path / "run.yaml").write_text(
        yaml.safe_dump(
            grpo_recipe(out, backend="hf", max_steps=2, beta=0.01, learning_rate=1e-2, save_every=1)
        )
    )
    env = {"FSDP_STATE_DICT_TYPE": "SHARDED_STATE_DICT"}
    _run(_launcher("fsdp2", tmp_path), tmp_path / "run.yaml", env)
    state = out / "checkpoints" / "step-000001" / "state"
    assert sorted(p.name for p in (state / "optimizer_0").glob("*.distcp")) == [
        "__0_0.distcp",
        "__1_0.distcp",
    ]
    uninterrupted = load_file(out / "model" / "model.safetensors")
    shutil.rmtree(out / "checkpoints" / "step-000002")  # as if killed before the last save
    shutil.rmtree(out / "model")
    _run(_launcher("fsdp2", tmp_path), tmp_path / "run.yaml", env)
    resumed = load_file(out / "model" / "model.safetensors")
    for key in uninterrupted:
        assert torch.equal(resumed[key], uninterrupted[key]), key


def _node(rank: int, port: int, recipe: Path, private_dir: Path | None = None) -> subprocess.Popen:
    """One "node" of a 2-node torchrun launch on this machine (one process each). With
    `private_dir`, the node runs in its own mount namespace with an empty tmpfs over that
    directory: what a node without the shared filesystem would see."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        f"--node_rank={rank}",
        "--nproc_per_node=1",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        "-m",
        "pipelines.cli",
        "run",
        str(recipe),
    ]
    if private_dir is not None:
        script = f'mount -t tmpfs none "{private_dir}" && exec "$@"'
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "node", *cmd]
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _nodes(recipe: Path, private_dir: Path | None = None) -> list[tuple[int, str]]:
    port = _free_port()
    procs = [_node(0, port, recipe), _node(1, port, recipe, private_dir)]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    return [(p.returncode, err) for p, err in zip(procs, errors, strict=True)]


@pytest.mark.slow
def test_grpo_across_two_nodes_matches_two_processes_on_one(tmp_path, tiny_model):
    runs = {}
    for name in ("one_node", "two_nodes"):
        out = tmp_path / name
        (tmp_path / f"{name}.yaml").write_text(
            yaml.safe_dump(grpo_recipe(out, backend="vllm", max_steps=2, beta=0.01, save_every=10))
        )
        if name == "one_node":
            _launch(tmp_path / f"{name}.yaml", 2)
        else:
            for code, err in _nodes(tmp_path / f"{name}.yaml"):
                assert code == 0, err[-3000:]
        runs[name] = load_file(out / "model" / "model.safetensors")
    for key in runs["one_node"]:
        torch.testing.assert_close(runs["two_nodes"][key], runs["one_node"][key], atol=1e-6, rtol=0)


@pytest.mark.slow
def test_an_output_dir_not_shared_by_every_node_fails_with_one_line(tmp_path, tiny_model):
    shared = tmp_path / "shared"
    shared.mkdir()
    (tmp_path / "run.yaml").write_text(
        yaml.safe_dump(grpo_recipe(shared / "run", backend="hf", max_steps=1))
    )
    results = _nodes(tmp_path / "run.yaml", private_dir=shared)
    for code, err in results:  # torchrun reports its worker's exit code 2 as a failure
        assert code != 0
        lines = [line for line in err.splitlines() if "is not shared by all processes" in line]
        assert lines and lines[0].startswith(
            f"r1kit: error: output_dir {shared / 'run'} is not shared"
        )
        assert "pipelines/" not in err  # one line from r1kit, no traceback of ours


@pytest.mark.slow
def test_rejection_sampling_writes_the_same_data_with_two_processes(tmp_path, tiny_model):
    """Batches are sampled and filtered on the process that owns them and gathered in prompt
    order: data.jsonl and data_stats.json are the same as a single process writes."""
    written = {}
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        recipe = {
            "stage": "rejection_sampling",
            "model": tiny_model,
            "output_dir": str(out),
            "data": {"num_rows": 10, "seed": 3},
            "k": 3,
            "batch_prompts": 2,
            "sampling": {"temperature": 1.0, "max_tokens": 12, "stop": ["</answer>"]},
            "engine": {"max_model_len": 128},
            # The untrained model writes noise: keep it (bar duplicates) to exercise the plumbing.
            "filters": {"keep_if": [{"name": "format_soft", "min": 0.0}], "drop_truncated": False},
            "general": {"path": "builtin:general", "num_rows": 20},
            "general_count": 4,
            "train": {"max_steps": 2, "batch_size": 4, "num_threads": 1, "report_to": ["jsonl"]},
        }
        (tmp_path / f"p{processes}.yaml").write_text(yaml.safe_dump(recipe))
        _launch(tmp_path / f"p{processes}.yaml", processes)
        stats = json.loads((out / "data_stats.json").read_text())
        written[processes] = ((out / "data.jsonl").read_text(), stats)
    assert written[2] == written[1]
    assert written[1][1]["samples"] == 30 and written[1][1]["unscored"] == {"format_soft": 0}
