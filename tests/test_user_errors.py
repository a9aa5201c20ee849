"""What a user sees when something is wrong: one line, exit code 2 for their input (1 for
anything else), no traceback unless `--debug`; data checked before any model loads; a hub name
that cannot be reached fails at once. Every test runs the real CLI in a subprocess."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from tests._cli import r1kit

CUSTOM_REWARD = (
    "def brevity(completions, *, prompts, **columns):\n"
    "    return [1.0 / (1 + len(str(c))) for c in completions]\n"
)
OFFLINE_HUB = "is not in the Hugging Face cache and the hub cannot be reached ("
NO_HUB = {
    "HF_ENDPOINT": "http://127.0.0.1:9"
}  # a closed port: offline, also on a machine with internet


def grpo_recipe(tmp_path: Path, **fields) -> Path:
    recipe = {
        "stage": "grpo",
        "output_dir": str(tmp_path / "out"),
        "data": {"path": "builtin:addition"},
        "grpo": {"max_steps": 1, "prompts_per_step": 2, "group_size": 2, "report_to": ["jsonl"]},
        "engine": {"backend": "hf"},
        **fields,
    }
    path = tmp_path / "grpo.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def assert_one_line_error(result, message: str, code: int = 2) -> None:
    assert result.returncode == code, result.stderr[-2000:]
    assert result.stderr == f"r1kit: error: {message}\n"


# ------------------------------------------------------------- data, before any model loads
def test_missing_answer_column_fails_before_the_model_loads(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", [{"prompt": "1+1", "solution": "2"}])
    # An unreachable hub model: had the model been resolved first, this would be the error.
    grpo_recipe(
        tmp_path,
        model="nobody/no-such-model",
        data={"path": str(data)},
        rewards=[{"name": "accuracy"}, {"name": "format"}],
    )
    result = r1kit("run", "grpo.yaml", cwd=tmp_path, **NO_HUB)
    assert_one_line_error(
        result,
        f"data {data}: rewards 'accuracy' grades against column 'answer', which no "
        "row has (columns: prompt, solution); map one with data.columns.answer=NAME, or set "
        "the reward's params.answer_column",
    )
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_empty_data_file_in_run_and_eval(tmp_path, tiny_model):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    grpo_recipe(tmp_path, data={"path": str(empty)})
    message = f"data {empty} has no rows; give a file with at least one row"
    assert_one_line_error(r1kit("run", "grpo.yaml", cwd=tmp_path), message)
    assert_one_line_error(
        r1kit("eval", tiny_model, "--data", str(empty), "--backend", "hf", cwd=tmp_path), message
    )


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "bad.csv",
            'prompt,answer\n"1+1",2\n"2+2"x,4\n',
            (
                "{path}:3: malformed CSV (',' expected after '\"'); check the quoting of the row "
                "that starts on this line"
            ),
        ),
        (
            "short.csv",
            "prompt,answer\n1+1,2\n2+2\n",
            "{path}:3: fewer fields than the header's 2; check the quoting and commas",
        ),
        (
            "bad.jsonl",
            '{"prompt": "1+1", "answer": "2"}\n{"prompt": "2+2", }\n',
            (
                "{path}:2: not valid JSON (Expecting property name enclosed in double quotes at "
                "column 19); each line "
                "must be one JSON object"
            ),
        ),
        ("list.jsonl", "[1, 2]\n", "{path}:1: expected a JSON object per line, got list"),
    ],
)
def test_malformed_data_files_name_the_file_and_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    grpo_recipe(tmp_path, data={"path": str(path)})
    assert_one_line_error(
        r1kit("run", "grpo.yaml", cwd=tmp_path), "data " + message.format(path=path)
    )


def test_unreadable_data_file(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"prompt": "caf\xe9"}\n')
    grpo_recipe(tmp_path, data={"path": str(path)})
    result = r1kit("run", "grpo.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"r1kit: error: data {path} cannot be read: 'utf-8' codec can't decode"
    )
    assert result.stderr.count("\n") == 1


def test_unknown_hub_model_offline_fails_at_once_in_run_and_models(tmp_path):
    grpo_recipe(tmp_path, model="nobody/no-such-model")
    for result in (
        r1kit("run", "grpo.yaml", cwd=tmp_path, **NO_HUB),
        r1kit("models", "prepare", "nobody/no-such-model", cwd=tmp_path, **NO_HUB),
    ):
        assert result.returncode == 2
        assert result.stderr.startswith(f"r1kit: error: model 'nobody/no-such-model' {OFFLINE_HUB}")
        assert result.stderr.endswith(
            "); connect to the internet, or give a local model directory or bundled:tiny-char\n"
        )
        assert result.stderr.count("\n") == 1


# ----------------------------------------------------- custom rewards from the current directory
def test_module_function_rewards_resolve_from_the_current_directory(tmp_path):
    (tmp_path / "my_rewards.py").write_text(CUSTOM_REWARD)
    grpo_recipe(tmp_path, rewards=[{"name": "my_rewards:brevity"}])
    described = r1kit("config", "grpo.yaml", cwd=tmp_path)
    assert described.returncode == 0, described.stderr
    assert yaml.safe_load(described.stdout)["rewards"][0]["name"] == "my_rewards:brevity"
    (tmp_path / "rewards.yaml").write_text("- {name: 'my_rewards:brevity'}\n")
    write_jsonl(tmp_path / "completions.jsonl", [{"completion": "abc", "prompt": "q"}])
    scored = r1kit(
        "score", "--rewards", "rewards.yaml", "--data", "completions.jsonl", cwd=tmp_path
    )
    assert scored.returncode == 0, scored.stderr
    assert "brevity" in scored.stdout and "0.250" in scored.stdout  # 1 / (1 + 3)


# ------------------------------------------------------------------------- config checks
def test_unknown_report_to_backend_fails_at_config_time(tmp_path):
    grpo_recipe(tmp_path)
    result = r1kit("config", "grpo.yaml", "grpo.report_to=[console,foo]", cwd=tmp_path)
    assert_one_line_error(
        result,
        "grpo.report_to=['console', 'foo']: unknown backend 'foo'; choose from console, "
        "jsonl, tensorboard, wandb",
    )


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_report_to_wandb_without_wandb_fails_at_config_time(tmp_path):
    grpo_recipe(tmp_path)
    result = r1kit("config", "grpo.yaml", "grpo.report_to=[console,wandb]", cwd=tmp_path)
    assert_one_line_error(
        result,
        "grpo.report_to: 'wandb' needs the wandb package; run `pip install wandb` or "
        "drop wandb from report_to",
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("grpo.learning_rate=-1", "grpo.learning_rate=-1.0 must be > 0 (R1 uses 3e-6)"),
        (
            "grpo.temperature=0",
            (
                "grpo.temperature=0.0 must be > 0: GRPO needs sampled groups, not greedy ones "
                "(R1 uses 1.0)"
            ),
        ),
        ("grpo.beta=-0.1", "grpo.beta=-0.1 must be >= 0 (0 turns the KL penalty off)"),
        ("grpo", "override 'grpo' is not key=value; write e.g. grpo.learning_rate=3e-6"),
    ],
)
def test_config_errors_name_the_field(tmp_path, override, message):
    grpo_recipe(tmp_path)
    assert_one_line_error(r1kit("config", "grpo.yaml", override, cwd=tmp_path), message)


def test_run_help_suggests_a_real_key(tmp_path):
    result = r1kit("run", "--help", cwd=tmp_path)
    assert "grpo.learning_rate=3e-6" in result.stdout and "grpo.lr=" not in result.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "stage: grpo\ngrpo:\n  max_steps: 3\n   group_size: 4\n",
            "line 4 column 14: invalid YAML: mapping values are not allowed here",
        ),
        (
            "stage: grpo\ngrpo:\n  max_steps: 3\n  max_steps: 4\n",
            (
                "line 4 column 3: invalid YAML: duplicate key 'max_steps'; each key may appear "
                "once per mapping"
            ),
        ),
    ],
)
def test_yaml_errors_keep_line_and_column_and_reject_duplicate_keys(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    assert_one_line_error(r1kit("config", "bad.yaml", cwd=tmp_path), f"recipe bad.yaml {message}")


def test_score_names_the_file_and_the_bad_line(tmp_path):
    (tmp_path / "rewards.yaml").write_text("- {name: format}\n")
    (tmp_path / "c.jsonl").write_text(
        '{"completion": "<answer>1</answer>"}\n{"completion": "x", }\n'
    )
    result = r1kit("score", "--rewards", "rewards.yaml", "--data", "c.jsonl", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "r1kit score: error: c.jsonl:2: not valid JSON (Expecting property "
        "name enclosed in double quotes at column 21)"
    )


# --------------------------------------------------------------------- tracebacks and --debug
def test_unexpected_errors_are_one_line_unless_debug(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")  # no model_type: transformers cannot load it
    args = ("eval", str(broken), "--data", "builtin:addition", "--limit", "2", "--backend", "hf")
    result = r1kit(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("r1kit: error: ") and result.stderr.count("\n") == 1
    assert result.stderr.endswith("(rerun with --debug for the traceback)\n")
    debug = r1kit(*args, "--debug", cwd=tmp_path)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr


# ------------------------------------------------------------------------- conveniences
def test_version(tmp_path):
    result = r1kit("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("r1kit ") and result.stdout.split()[1][0].isdigit()


def test_models_prepare_says_what_it_did(tmp_path, tiny_model):
    result = r1kit("models", "prepare", "bundled:tiny-char", tiny_model, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"bundled:tiny-char: already built at {tiny_model}\n"
        f"{tiny_model}: local directory {tiny_model}; nothing to prepare\n"
    )


def test_push_to_hub_is_checked_before_training(tmp_path):
    grpo_recipe(tmp_path, push_to_hub="someone/tiny-r1")
    no_token = r1kit("run", "grpo.yaml", cwd=tmp_path, HF_TOKEN="", HF_HOME=str(tmp_path / "hf"))
    assert_one_line_error(
        no_token,
        "push_to_hub needs a Hugging Face write token: run `huggingface-cli login` or "
        "set HF_TOKEN (and internet access), or drop push_to_hub",
    )
    offline = r1kit("run", "grpo.yaml", cwd=tmp_path, HF_TOKEN="hf_not_a_real_token", **NO_HUB)
    assert offline.returncode == 2
    assert offline.stderr.startswith(
        "r1kit: error: push_to_hub=someone/tiny-r1: the Hugging Face hub cannot be "
        "reached or refused the token ("
    )
    assert not (tmp_path / "out" / "checkpoints").exists()
    bad = r1kit(
        "run", "grpo.yaml", "push_to_hub=no-owner", cwd=tmp_path, HF_TOKEN="hf_not_a_real_token"
    )
    assert_one_line_error(bad, "push_to_hub='no-owner': give a hub repo id as OWNER/NAME")


def test_eval_every_needs_eval_rows(tmp_path):
    grpo_recipe(tmp_path)
    result = r1kit("config", "grpo.yaml", "grpo.eval_every=5", cwd=tmp_path)
    assert_one_line_error(
        result,
        "grpo.eval_every needs held-out rows: add an `eval:` section (e.g. eval: {data: "
        "{path: builtin:addition, seed: 1}, limit: 32})",
    )
