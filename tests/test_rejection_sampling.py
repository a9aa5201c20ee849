"""`stage: rejection_sampling`: the filters on hand-written completions, then the whole stage on the
tiny model with real vLLM sampling and real TRL SFT."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from grpo.engines import EngineConfig, SamplingConfig
from pipelines.config import ConfigError, from_dict
from pipelines.data import DataConfig
from pipelines.stages import rejection_sampling as rs
from pipelines.stages.trainer_harness import TrainConfig
from rewards import RewardError

PROMPT = [{"role": "user", "content": "12+34"}]
GOOD = "<think>2+4=6,1+3+0=4</think><answer>46</answer>"


def _sample(completion, index=0, **columns):
    return {
        "prompt": PROMPT,
        "answer": "46",
        "task": "math",
        "prompt_index": index,
        "completion": completion,
        "finish_reason": "stop",
        **columns,
    }


def _filters(**kw) -> rs.FilterConfig:
    return rs.FilterConfig(keep_if=[rs.KeepRule("accuracy"), rs.KeepRule("format")], **kw)


def test_filters_keep_correct_readable_samples_and_count_each_drop_reason():
    samples = [
        _sample(GOOD),  # kept
        _sample(GOOD + "\n"),  # duplicate (whitespace only)
        _sample("<think>2+4=6,1+3+0=4</think><answer>47</answer>"),  # wrong answer
        _sample("<think>2+4=6</think><answer>46</answer> so 46"),  # right answer, text outside
        _sample(GOOD[:20], finish_reason="length"),  # cut at max_tokens
        _sample(
            "<think>```python\nprint(12 + 34)\n```</think><answer>46</answer>"
        ),  # code, math task
        _sample(
            "<think>" + "add the digits " * 120 + "</think><answer>46</answer>"
        ),  # 1800-char paragraph
        _sample(
            "<think>First add the units, then add the tens.</think><answer>46</answer>",
            language="en",
        ),
        _sample(
            "<think>First add 个位 then 十位 再 相加 得到 答案</think><answer>46</answer>",
            language="en",
        ),
        _sample("<think>units 6</think><answer>46</answer>", index=1),  # prompt 1: three correct,
        _sample(
            "<think>units 6, tens 4</think><answer>46</answer>", index=1
        ),  # m=2 keeps the first two
        _sample("<think>6 then 4</think><answer>46</answer>", index=1),
    ]
    kept, dropped, unscored = rs.filter_samples(
        samples, _filters(max_paragraph_chars=1000, max_per_prompt=2)
    )
    assert [s["completion"] for s in kept] == [samples[i]["completion"] for i in (0, 7, 9, 10)]
    assert dropped == {
        "duplicate": 1,
        "incorrect:accuracy": 1,
        "incorrect:format": 1,
        "truncated": 1,
        "stray_code": 1,
        "overlong_paragraph": 1,
        "mixed_language": 1,
        "over_max_per_prompt": 1,
    }
    assert unscored == {"accuracy": 0, "format": 0}


def test_code_is_allowed_where_code_was_asked_and_rules_without_their_column_do_not_apply():
    code = (
        "<think>Add them.</think><answer>```python\ndef add(a, b):\n    return a + b\n```</answer>"
    )
    samples = [
        {"prompt": PROMPT, "task": "code", "prompt_index": 0, "completion": code},
        {"prompt": PROMPT, "task": "general", "prompt_index": 1, "completion": code},
    ]
    kept, dropped, unscored = rs.filter_samples(samples, _filters())
    assert [s["task"] for s in kept] == ["code"]
    assert dropped == {"stray_code": 1}
    assert unscored == {"accuracy": 2, "format": 0}  # no `answer` column: accuracy does not apply


def key_error_reward(completions, *, prompts, **columns):
    """A custom reward with a bug: it raises KeyError."""
    return [float(columns["no_such_column"][0]) for _ in completions]


def test_keep_rules_are_reward_specs_and_a_failing_reward_is_an_error():
    samples = [_sample(GOOD), _sample("<think>2+4=6</think><answer>46</answer>", task="general")]
    # `tasks` limits a rule to some rows; the general row gets None from it and passes.
    rules = [rs.KeepRule("format", tasks=["general"], alias="tidy")]
    kept, dropped, unscored = rs.filter_samples(samples, rs.FilterConfig(keep_if=rules))
    assert len(kept) == 2 and not dropped and unscored == {"tidy": 1}
    # A reward that raises is a bug to report, not a sign that it does not apply.
    broken = rs.FilterConfig(
        keep_if=[rs.KeepRule("tests.test_rejection_sampling:key_error_reward")]
    )
    with pytest.raises(RewardError, match="key_error_reward.*KeyError"):
        rs.filter_samples(samples, broken)
    with pytest.raises(ValueError, match="a rule has a `min` score, not a weight"):
        rs.KeepRule("format", weight=2.0)


def test_helpers_on_literal_text():
    assert rs.longest_paragraph("<think>ab\n\n  abcd  </think><answer>46</answer>") == 4
    assert rs.stray_code("```x```", None) and not rs.stray_code("```x```", "code")


def test_config_checks():
    with pytest.raises(ValueError, match="set k"):
        rs.RejectionSamplingConfig(sampling=SamplingConfig(n=4))
    with pytest.raises(ConfigError, match="unknown reward 'acc'"):
        from_dict(rs.RejectionSamplingConfig, {"filters": {"keep_if": [{"name": "acc"}]}})


def _stage_config(tmp_path, tiny_model, **kw) -> rs.RejectionSamplingConfig:
    return rs.RejectionSamplingConfig(
        model=tiny_model,
        base_model="bundled:tiny-char",
        output_dir=str(tmp_path / "rs"),
        data=DataConfig(num_rows=6, seed=3),
        k=3,
        sampling=SamplingConfig(temperature=1.0, max_tokens=12, stop=("</answer>",)),
        engine=EngineConfig(max_model_len=128),
        # The untrained tiny model writes noise: keep it all (bar duplicates) to exercise the
        # plumbing.
        filters=rs.FilterConfig(keep_if=[], drop_truncated=False, max_per_prompt=2),
        general=DataConfig(path="builtin:general", num_rows=20),
        general_count=4,
        train=TrainConfig(
            max_steps=3, batch_size=4, num_threads=1, save_every=3, report_to=["jsonl"]
        ),
        **kw,
    )


def test_stage_writes_data_stats_and_model_and_reuses_the_data(tiny_model, tmp_path, monkeypatch):
    pytest.importorskip("vllm")
    config = _stage_config(tmp_path, tiny_model)
    result = rs.run(config)
    out = Path(config.output_dir)
    rows = [json.loads(line) for line in (out / "data.jsonl").read_text().splitlines()]
    stats = json.loads((out / "data_stats.json").read_text())
    assert stats["prompts"] == 6 and stats["samples"] == 18
    assert stats["kept"] + sum(stats["dropped"].values()) == 18
    assert stats["kept"] <= 12  # at most m=2 per prompt
    assert stats["general_rows"] == 4 and stats["rows"] == len(rows) == stats["kept"] + 4
    assert {r["source"] for r in rows} == {"rejection_sampling", "general"}
    assert all(set(r) >= {"prompt", "solution", "task"} for r in rows)
    assert (Path(result["model"]) / "model.safetensors").is_file()
    assert result["metrics"]["train/steps"] == 3

    # A rerun with other SFT settings retrains but does not sample again.
    def no_sampling(*args, **kwargs):
        raise AssertionError("sampled again although data.jsonl was complete")

    monkeypatch.setattr(rs, "sample", no_sampling)
    again = rs.run(
        dataclasses.replace(config, train=dataclasses.replace(config.train, max_steps=4))
    )
    assert again["data_stats"]["kept"] == stats["kept"]
    assert again["metrics"]["train/steps"] == 4
