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
    assert main(["--rewards", str(tmp_path / "rewards.yaml"), "--data", str(tmp_path / "data.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "overlong_penalty" in out
    accuracy_line = next(line for line in out.splitlines() if "accuracy" in line)
    assert "0.500" in accuracy_line and "33%" in accuracy_line  # 1 of 2 graded right, 1 of 3 None
