from __future__ import annotations

import json

from rewards.score import main


def test_score_prints_table(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps cells at the default 80
    (tmp_path / "rewards.yaml").write_text(
        "- name: accuracy\n  weight: 1.0\n- name: format\n  weight: 0.5\n"
        "- name: overlong_penalty\n  params: {max_length: 30, buffer: 10, unit: chars}\n"
    )
    rows = [
        {"prompt": "2+2?", "completion": "<think>add</think><answer>4</answer>", "answer": "4"},
        {"prompt": "2+3?", "completion": "6", "answer": "5"},
        {"prompt": "hi", "completion": "hello", "answer": None},
    ]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert (
        main(["--rewards", str(tmp_path / "rewards.yaml"), "--data", str(tmp_path / "data.jsonl")])
        == 0
    )
    out = capsys.readouterr().out
    assert "accuracy" in out and "overlong_penalty" in out
    accuracy_line = next(line for line in out.splitlines() if "accuracy" in line)
    assert "0.500" in accuracy_line and "33%" in accuracy_line  # 1 of 2 graded right, 1 of 3 None


def test_quoted_numbers_in_a_reward_spec_read_the_same_in_run_and_score(tmp_path):
    """`weight: "0.5"`, `weight: 1e-3` (a string to YAML 1.1) and `tasks: math` mean the same to
    `r1kit run` (a recipe's rewards) and `r1kit score` (a rewards file)."""
    import yaml

    from pipelines.recipe import resolve
    from rewards.score import load_specs

    specs = [
        {"name": "format", "weight": "0.5", "tasks": "math"},
        {"name": "format_soft", "weight": "1e-3"},
    ]
    path = tmp_path / "rewards.yaml"
    path.write_text(yaml.safe_dump(specs).replace("'1e-3'", "1e-3"))
    scored = load_specs(path).specs
    _, config = resolve({"stage": "grpo", "rewards": yaml.safe_load(path.read_text())})
    assert scored == config.rewards
    assert [(s.weight, s.tasks) for s in scored] == [(0.5, ["math"]), (0.001, None)]
