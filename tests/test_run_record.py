"""A standalone stage run through the `r1kit` CLI, as a new user meets it: the record it keeps,
what a rerun does with a changed config, a finished run, resuming from a chosen checkpoint, and
a clean console (one line per step in a log file, custom reward means, no library warnings).

One real GRPO run (tiny model, vLLM, a custom `module:function` reward found from the current
directory, evaluation every 2 steps) is shared by the tests; tests that train on copy the run.
The CLI runs without the current directory on sys.path, as the `r1kit` console script does.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from pipelines.config import ConfigError
from pipelines.run_record import Change, check_rerun, diff, flatten
from tests._cli import r1kit

CUSTOM_REWARD = '''\
def brevity(completions, *, prompts, **columns):
    """1 / (1 + characters): shorter completions score higher."""
    return [1.0 / (1 + len(str(c))) for c in completions]
'''


def grpo_recipe(output_dir: Path) -> dict:
    return {
        "stage": "grpo",
        "model": "bundled:tiny-char",
        "output_dir": str(output_dir),
        "data": {"path": "builtin:addition", "num_rows": 64},
        "rewards": [{"name": "accuracy"}, {"name": "my_rewards:brevity", "weight": 0.5}],
        "grpo": {
            "max_steps": 2,
            "prompts_per_step": 4,
            "group_size": 4,
            "max_completion_len": 24,
            "micro_batch_size": 8,
            "learning_rate": 1e-3,
            "save_every": 1,
            "keep_checkpoints": 3,
            "beta": 0.0,
            "report_to": ["console", "jsonl"],
            "eval_every": 2,
        },
        "eval": {
            "data": {"path": "builtin:addition", "num_rows": 8, "seed": 1},
            "limit": 4,
            "max_tokens": 24,
        },
        "engine": {"backend": "vllm", "max_model_len": 128},
    }


def steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model):
    """The first run: the workdir (recipe, custom reward), the output dir and its stderr."""
    work = tmp_path_factory.mktemp("first_hour")
    (work / "my_rewards.py").write_text(CUSTOM_REWARD)
    (work / "grpo.yaml").write_text(yaml.safe_dump(grpo_recipe(work / "out")))
    result = r1kit("run", "grpo.yaml", cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    return work, work / "out", result.stderr


def copy_run(work: Path, name: str) -> Path:
    shutil.copytree(work / "out", work / name)
    return work / name


# ------------------------------------------------------------------ the first run's record
def test_run_records_its_config_and_hash(run):
    work, out, _ = run
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "done" and record["stage"] == "grpo"
    assert record["config"]["grpo"]["learning_rate"] == 1e-3
    assert record["outputs"]["model"] == str(out / "model")
    saved = (out / "config.yaml").read_text()
    assert saved.startswith(f"# config hash {record['config_hash']}\nstage: grpo\n")
    # The saved config is a recipe: `r1kit config` reads it back to the same settings.
    described = r1kit("config", str(out / "config.yaml"), cwd=work)
    assert described.returncode == 0, described.stderr
    assert yaml.safe_load(described.stdout)["grpo"] == record["config"]["grpo"]


def test_console_log_is_one_line_per_step_with_custom_reward_and_no_library_warnings(run):
    _, _, stderr = run
    step_lines = [line for line in stderr.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in step_lines] == ["1", "2"]  # not wrapped at 80 columns
    assert all("reward/brevity/mean=" in line for line in step_lines)
    assert "eval/pass@1=" in step_lines[1]
    for noise in ("Triton", "NUMA", "Removed shared tensor", "Traceback"):
        assert noise not in stderr


def test_eval_every_logs_held_out_metrics(run):
    _, out, _ = run
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert "eval/pass@1" not in rows[0]
    assert 0.0 <= rows[1]["eval/pass@1"] <= 1.0 and 0.0 <= rows[1]["eval/format_rate"] <= 1.0


# --------------------------------------------------------------------------------- reruns
def test_finished_run_says_so_in_one_line_without_training(run):
    work, _, _ = run
    out = copy_run(work, "finished")
    before = (out / "metrics.jsonl").read_text()
    shutil.rmtree(out / "checkpoints")  # a rerun that trained would start over and write these
    result = r1kit("run", "grpo.yaml", f"output_dir={out}", cwd=work)
    record = json.loads((out / "run.json").read_text())
    assert result.returncode == 0
    assert result.stderr == (
        f"{out}: finished (config hash {record['config_hash']}); nothing to do. Rerun "
        "with --fresh to run it again, or raise max_steps and add --resume-anyway to "
        "train on\n"
    )
    assert (out / "metrics.jsonl").read_text() == before and not (out / "checkpoints").exists()


@pytest.mark.parametrize(
    ("overrides", "changed", "keys"),
    [
        (
            ["grpo.group_size=8", "grpo.learning_rate=1e-2"],
            "grpo.group_size 4 -> 8, grpo.learning_rate 0.001 -> 0.01",
            "grpo.group_size, grpo.learning_rate",
        ),
        (["model=other/model"], "model bundled:tiny-char -> other/model", "model"),
    ],
)
def test_changed_config_is_refused_naming_the_keys(run, overrides, changed, keys):
    work, out, _ = run
    result = r1kit("run", "grpo.yaml", *overrides, cwd=work)
    assert result.returncode == 2
    assert result.stderr == (
        f"r1kit: error: {out} holds a run with another config (changed: {changed}); "
        f"rerun with --fresh to start over (or choose another output_dir); {keys} "
        "cannot change under a run in progress\n"
    )


def test_safe_change_needs_resume_anyway_then_trains_on(run):
    work, _, _ = run
    out = copy_run(work, "raised")
    args = ("run", "grpo.yaml", f"output_dir={out}", "grpo.max_steps=3", "grpo.eval_every=5")
    refused = r1kit(*args, cwd=work)
    assert refused.returncode == 2
    assert refused.stderr == (
        f"r1kit: error: {out} holds a run with another config (changed: "
        "grpo.max_steps 2 -> 3, grpo.eval_every 2 -> 5); rerun with --resume-anyway "
        "to continue with the new settings, or --fresh to start over\n"
    )
    result = r1kit(*args, "--resume-anyway", cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from step 2 of 3" in result.stderr
    assert steps(out) == [1, 2, 3]


def test_max_steps_below_the_checkpoint_is_refused(run):
    work, _, _ = run
    out = copy_run(work, "lowered")
    result = r1kit(
        "run", "grpo.yaml", f"output_dir={out}", "grpo.max_steps=1", "--resume-anyway", cwd=work
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"r1kit: error: {out}: grpo.max_steps=1 is below step 2, where its checkpoint "
        "is; set grpo.max_steps to at least 2, or rerun with --fresh to start over\n"
    )


def test_resume_from_a_chosen_checkpoint(run):
    work, _, _ = run
    out = copy_run(work, "chosen")
    result = r1kit(
        "run",
        "grpo.yaml",
        f"output_dir={out}",
        "--resume-from",
        str(out / "checkpoints" / "step-000001"),
        cwd=work,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from step 1 of 2" in result.stderr
    assert steps(out) == [1, 2]  # step 2 logged again, once
    missing = r1kit(
        "run", "grpo.yaml", f"output_dir={out}", "--resume-from", str(out / "nope"), cwd=work
    )
    assert missing.returncode == 2
    assert missing.stderr == (
        f"r1kit: error: --resume-from {out / 'nope'}: not a complete checkpoint directory "
        f"(no trainer_state.json); checkpoints in {out / 'checkpoints'}: step-000001, "
        "step-000002\n"
    )


def test_fresh_starts_over_and_leaves_no_old_checkpoint_to_resume(run):
    work, _, _ = run
    out = copy_run(work, "fresh")
    result = r1kit("run", "grpo.yaml", f"output_dir={out}", "grpo.max_steps=1", "--fresh", cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000001"]
    assert steps(out) == [1]
    assert json.loads((out / "run.json").read_text())["config"]["grpo"]["max_steps"] == 1


def test_finished_sft_rerun_says_so(tmp_path, tiny_model):
    recipe = {
        "stage": "sft",
        "output_dir": str(tmp_path / "sft"),
        "data": {"num_rows": 16},
        "train": {"max_steps": 2, "batch_size": 4, "report_to": ["jsonl"]},
    }
    (tmp_path / "sft.yaml").write_text(yaml.safe_dump(recipe))
    first = r1kit("run", "sft.yaml", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    again = r1kit("run", "sft.yaml", cwd=tmp_path)
    assert again.returncode == 0
    assert again.stderr.startswith(f"{tmp_path / 'sft'}: finished (config hash ")


# ------------------------------------------------------------------ comparing two configs
def test_flatten_and_diff_name_dotted_keys():
    old = {
        "model": "a",
        "grpo": {"max_steps": 10, "stop": ["</answer>"]},
        "rewards": [{"name": "x", "weight": 1}],
    }
    new = {
        "model": "a",
        "grpo": {"max_steps": 20, "stop": ["</answer>"]},
        "rewards": [{"name": "x", "weight": 2}],
    }
    assert flatten(old) == {
        "model": "a",
        "grpo.max_steps": 10,
        "grpo.stop": ["</answer>"],
        "rewards.0.name": "x",
        "rewards.0.weight": 1,
    }
    assert diff(old, new) == [Change("grpo.max_steps", 10, 20), Change("rewards.0.weight", 1, 2)]


@pytest.mark.parametrize(
    ("change", "safe"),
    [
        (Change("grpo.max_steps", 10, 20), True),
        (Change("grpo.max_steps", 10, 5), False),
        (Change("train.max_steps", 10, None), False),
        (Change("grpo.save_every", 10, 5), True),
        (Change("grpo.report_to", ["jsonl"], ["console"]), True),
        (Change("grpo.learning_rate", 1e-6, 2e-6), False),
        (Change("model", "a", "b"), False),
    ],
)
def test_which_changes_are_safe(change, safe):
    assert change.safe is safe


def test_check_rerun_without_a_record_or_with_an_unfinished_one_starts_or_resumes(tmp_path):
    assert check_rerun(None, tmp_path, {"a": 1}, "h1", resume_anyway=False) is None
    running = {"config_hash": "h1", "status": "running", "config": {"a": 1}}
    assert check_rerun(running, tmp_path, {"a": 1}, "h1", resume_anyway=False) is None
    done = {**running, "status": "done", "outputs": {"model": str(tmp_path / "gone")}}
    assert (
        check_rerun(done, tmp_path, {"a": 1}, "h1", resume_anyway=False) is None
    )  # its model is gone
    (tmp_path / "model").mkdir()
    done["outputs"]["model"] = str(tmp_path / "model")
    assert check_rerun(done, tmp_path, {"a": 1}, "h1", resume_anyway=False) == done["outputs"]


def test_check_rerun_under_a_changed_config(tmp_path):
    record = {
        "config_hash": "h1",
        "status": "running",
        "config": {"grpo": {"lr": 1, "max_steps": 4}},
    }
    changed = {"grpo": {"lr": 2, "max_steps": 4}}
    # Stopped before its first checkpoint: nothing to lose, so the new config starts over.
    assert check_rerun(record, tmp_path, changed, "h2", resume_anyway=False) is None
    (tmp_path / "checkpoints" / "step-000002").mkdir(parents=True)
    (tmp_path / "checkpoints" / "step-000002" / "trainer_state.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"changed: grpo.lr 1 -> 2\); rerun with --fresh"):
        check_rerun(record, tmp_path, changed, "h2", resume_anyway=True)
    raised = {"grpo": {"lr": 1, "max_steps": 8}}
    assert check_rerun(record, tmp_path, raised, "h3", resume_anyway=True) is None
    with pytest.raises(ConfigError, match=r"grpo.max_steps=1 is below step 2"):
        check_rerun(record, tmp_path, {"grpo": {"lr": 1, "max_steps": 1}}, "h4", resume_anyway=True)
