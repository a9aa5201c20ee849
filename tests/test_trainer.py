"""GRPO trainer end to end on the tiny model: real vLLM, real rewards, real checkpoints."""

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

from pipelines.recipe import resolve

ROOT = Path(__file__).resolve().parents[1]


def grpo_recipe(output_dir: Path, backend: str = "vllm", **grpo) -> dict:
    settings = dict(
        max_steps=3,
        prompts_per_step=4,
        group_size=4,
        max_completion_len=24,
        micro_batch_size=8,
        learning_rate=1e-3,
        save_every=1,
        log_samples_every=1,
        beta=0.0,
        report_to=["jsonl"],
    )
    settings.update(grpo)
    return {
        "stage": "grpo",
        "model": "bundled:tiny-char",
        "output_dir": str(output_dir),
        "data": {"path": "builtin:addition", "num_rows": 64},
        # The length penalty varies even for an untrained model, so every group has signal.
        "rewards": [
            {"name": "accuracy"},
            {"name": "format_soft", "weight": 0.5},
            {
                "name": "overlong_penalty",
                "params": {"max_length": 30, "buffer": 25, "unit": "chars"},
            },
        ],
        "grpo": settings,
        "engine": {"backend": backend, "max_model_len": 128},
    }


def metrics_rows(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]


def final_weights(output_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(output_dir / "model" / "model.safetensors")


def run_stage(recipe: dict, fresh: bool = False) -> dict:
    kind, config = resolve(recipe)
    from pipelines.recipe import STAGES

    return STAGES[kind].run(config, fresh=fresh)


def test_three_steps_train_every_parameter_and_log(tmp_path, tiny_model):
    out = tmp_path / "run"
    run_stage(grpo_recipe(out, beta=0.01))
    rows = metrics_rows(out)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        for key in (
            "policy/loss",
            "policy/kl_mean",
            "policy/entropy",
            "reward/mean",
            "reward/accuracy/mean",
            "reward/format_soft/mean",
            "completion/length_mean",
            "completion/truncated_rate",
            "policy/clip_frac_low",
            "policy/clip_frac_high",
            "reward/zero_variance_groups",
            "perf/tokens_per_s",
            "time/generate",
            "time/reward",
            "time/reward_busy",
            "time/train",
            "time/weight_sync",
        ):
            assert key in row, key
    before = load_file(Path(tiny_model) / "model.safetensors")
    after = final_weights(out)
    assert before.keys() == after.keys()
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert not unchanged, f"parameters not trained: {unchanged}"
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert {s["step"] for s in samples} == {1, 2, 3} and "rewards" in samples[0]
    checkpoints = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert checkpoints == ["step-000002", "step-000003"]  # keep_checkpoints=2


def test_checkpoint_loads_in_transformers_and_vllm(tmp_path, tiny_model, vllm_engine):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    run_stage(grpo_recipe(out, backend="hf", max_steps=1))
    path = out / "checkpoints" / "step-000001"
    model = AutoModelForCausalLM.from_pretrained(path)
    state = model.state_dict()
    # the session's vLLM engine accepts the checkpoint's weights as they are on disk
    vllm_engine.update_weights(load_file(path / "model.safetensors").items())
    vllm_engine.update_weights(load_file(Path(tiny_model) / "model.safetensors").items())
    assert torch.equal(
        state["model.norm.weight"], load_file(path / "model.safetensors")["model.norm.weight"]
    )


def _cli(recipe_path: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run", str(recipe_path), *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _comparable(rows: list[dict]) -> list[dict]:
    """Logged metrics minus wall-clock figures, which differ between any two runs."""
    return [{k: v for k, v in r.items() if not k.startswith(("time/", "perf/"))} for r in rows]


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_matches_uninterrupted(tmp_path, tiny_model):
    steps = 4
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    for out in (straight, killed):
        (tmp_path / f"{out.name}.yaml").write_text(
            yaml.safe_dump(grpo_recipe(out, max_steps=steps))
        )
    first = _cli(tmp_path / "straight.yaml")
    assert first.wait(timeout=300) == 0, first.stderr.read().decode()[-2000:]

    victim = _cli(tmp_path / "killed.yaml")
    deadline = time.time() + 240
    while time.time() < deadline:  # kill while step 3 is under way (after step 2 was logged)
        if (killed / "metrics.jsonl").exists() and len(metrics_rows(killed)) >= 2:
            time.sleep(0.05)
            break
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert len(metrics_rows(killed)) < steps, "the run finished before it was killed"

    again = _cli(tmp_path / "killed.yaml")
    assert again.wait(timeout=300) == 0, again.stderr.read().decode()[-2000:]
    a, b = final_weights(straight), final_weights(killed)
    assert all(torch.equal(a[k], b[k]) for k in a), (
        "resumed weights differ from the uninterrupted run"
    )
    assert _comparable(metrics_rows(straight)) == _comparable(metrics_rows(killed))


def test_fresh_ignores_checkpoints(tmp_path, tiny_model):
    out = tmp_path / "run"
    recipe = grpo_recipe(out, backend="hf", max_steps=1)
    run_stage(recipe)
    recipe["grpo"]["max_steps"] = 2
    run_stage(recipe)  # resumes: only step 2 runs
    before = metrics_rows(out)
    assert [r["step"] for r in before] == [1, 2]
    run_stage(recipe, fresh=True)  # starts over: the old rows are dropped, not appended to
    after = metrics_rows(out)
    assert [r["step"] for r in after] == [1, 2]
    assert [r["time/step"] for r in after] != [r["time/step"] for r in before]  # really rerun


def test_dynamic_sampling_drops_uninformative_groups(tmp_path, tiny_model):
    out = tmp_path / "run"
    recipe = grpo_recipe(out, backend="hf", max_steps=2, dynamic_sampling=True, max_extra_draws=2)
    # accuracy alone: an untrained model is always wrong, so every group has zero variance
    recipe["rewards"] = [{"name": "accuracy"}]
    run_stage(recipe)
    rows = metrics_rows(out)
    assert all(r["dynamic/draws"] == 3 for r in rows)  # 1 + max_extra_draws, all exhausted
    assert all(r["dynamic/dropped_groups"] == 3 * 4 for r in rows)
    assert all(r["reward/zero_variance_groups"] == 1.0 for r in rows)


def test_lora_trains_adapters_and_engine_gets_merged_weights(tmp_path, tiny_model):
    from transformers import AutoModelForCausalLM

    from grpo.engines import SamplingConfig
    from grpo.trainer import GRPOTrainer
    from pipelines.data import load_rows
    from rewards import RewardSet

    out = tmp_path / "run"
    recipe = grpo_recipe(out, backend="vllm", max_steps=2, learning_rate=5e-2)
    recipe["grpo"]["lora"] = {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    _, config = resolve(recipe)
    trainer = GRPOTrainer(
        tiny_model,
        load_rows(config.data),
        RewardSet(config.rewards),
        config.grpo,
        config.engine,
        out,
    )
    trainer.train()
    trainer.save_final(out / "model")
    merged = final_weights(out)
    base = load_file(Path(tiny_model) / "model.safetensors")
    changed = {k for k in base if not torch.equal(base[k], merged[k])}
    assert changed and all("q_proj" in k or "v_proj" in k for k in changed), changed
    # The engine generates with the merged weights: its logprobs match transformers on them.
    reference = AutoModelForCausalLM.from_pretrained(out / "model").eval()
    group = trainer.engine.generate(["<s>1+2"], SamplingConfig(temperature=0, max_tokens=8))[0]
    ids = torch.tensor([group.prompt_ids + group.samples[0].token_ids])
    with torch.no_grad():
        logits = reference(ids).logits[0, len(group.prompt_ids) - 1 : -1]  # (T, V)
    expected = logits.log_softmax(-1).gather(-1, ids[0, len(group.prompt_ids) :, None]).squeeze(-1)
    torch.testing.assert_close(torch.tensor(group.samples[0].logprobs), expected, atol=1e-4, rtol=0)


def torch_threads_reward(completions, *, prompts, **columns):
    """A custom reward that reports how many threads torch had while rewards were computed."""
    return [float(torch.get_num_threads())] * len(completions)


def test_num_threads_holds_during_the_run_and_is_restored_after(tmp_path, tiny_model):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        recipe = grpo_recipe(tmp_path / "run", backend="hf", max_steps=1, num_threads=1)
        recipe["rewards"].append(
            {"name": "tests.test_trainer:torch_threads_reward", "alias": "threads", "weight": 0.0}
        )
        run_stage(recipe)
        assert metrics_rows(tmp_path / "run")[0]["reward/threads/mean"] == 1.0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


PART_SIZES: list[int] = []


def part_size_reward(completions, *, prompts, **columns):
    """A custom reward that records how many samples each reward call scored."""
    PART_SIZES.append(len(completions))
    return [0.0] * len(completions)


def test_rewards_scored_during_generation_equal_scoring_after_it(tmp_path, tiny_model):
    runs = {}
    for overlap in (True, False):
        PART_SIZES.clear()
        out = tmp_path / f"overlap_{overlap}"
        recipe = grpo_recipe(
            out, backend="hf", max_steps=2, stop=["e", "q"], overlap_rewards=overlap
        )
        recipe["rewards"].append(
            {"name": "tests.test_trainer:part_size_reward", "alias": "parts", "weight": 0.0}
        )
        run_stage(recipe)
        runs[overlap] = metrics_rows(out), final_weights(out), list(PART_SIZES)
    (rows, weights, parts), (rows_after, weights_after, parts_after) = runs[True], runs[False]
    assert parts_after == [16, 16]  # one call per step, after generation
    assert len(parts) > 2 and sum(parts) == 32  # scored in parts while generation ran
    assert _comparable(rows) == _comparable(rows_after)
    assert all(torch.equal(weights[k], weights_after[k]) for k in weights)
