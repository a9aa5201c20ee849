"""Pipeline reports built from synthetic run directories: numbers, markdown and plots."""

from __future__ import annotations

import json

import pytest

from pipelines.config import ConfigError
from pipelines.report import build_report, main, read_metrics, reward_curves, summarize_training

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _eval(pass1, fmt, k=4, prompts=10):
    return {
        "prompts": prompts,
        "samples": prompts * k,
        "k": k,
        "pass@1": pass1,
        f"cons@{k}": pass1 + 0.1,
        "format_rate": fmt,
        "language_consistency": 1.0,
        "length_mean": 42.0,
        "truncation_rate": 0.05,
        "temperature": 0.6,
        "max_tokens": 64,
    }


def _write_jsonl(path, rows, tail=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)


@pytest.fixture
def run_dir(tmp_path):
    """A two-stage run: an SFT stage with a loss curve, an RL stage that was killed after step 3
    (last checkpoint at step 2) and resumed, so steps 3 is logged twice."""
    out = tmp_path / "run"
    manifest = {
        "pipeline": "demo",
        "order": ["cold_start", "reasoning_rl", "later"],
        "stages": {
            "cold_start": {
                "kind": "sft",
                "status": "done",
                "run_id": "aaa",
                "seconds": 12.5,
                "attempts": 1,
                "output_dir": str(out / "cold_start"),
                "outputs": {"model": "m1"},
            },
            "reasoning_rl": {
                "kind": "grpo",
                "status": "done",
                "run_id": "bbb",
                "seconds": 125.0,
                "attempts": 2,
                "output_dir": str(out / "reasoning_rl"),
                "outputs": {"model": "m2"},
            },
            "later": {"status": "pending"},
        },
    }
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps(manifest))
    _write_jsonl(
        out / "cold_start" / "metrics.jsonl",
        [
            {"step": 1, "sft/loss": 2.0, "time/step": 1.0},
            {"step": 2, "sft/loss": 1.0},
            {"step": 2, "sft/runtime": 30.0},
        ],
    )  # the trainer's end-of-training row
    _write_jsonl(
        out / "reasoning_rl" / "metrics.jsonl",
        [
            {"step": 1, "reward/mean": 0.1, "reward/accuracy/mean": 0.0, "reward/format/mean": 0.2},
            {"step": 2, "reward/mean": 0.2, "reward/accuracy/mean": 0.1, "reward/format/mean": 0.6},
            {
                "step": 3,
                "reward/mean": 0.9,
                "reward/accuracy/mean": 0.9,
                "reward/format/mean": 0.9,
            },  # lost run
            {
                "step": 3,
                "reward/mean": 0.3,
                "reward/accuracy/mean": 0.2,
                "reward/format/mean": 0.8,
            },  # resumed
            {"step": 4, "reward/mean": 0.5, "reward/accuracy/mean": 0.4, "reward/format/mean": 1.0},
        ],
        tail='{"step": 5, "reward/me',
    )  # killed mid-write
    evals = out / "eval"
    evals.mkdir()
    (evals / "base.json").write_text(
        json.dumps({"model": "b", "run_id": None, "metrics": _eval(0.05, 0.0)})
    )
    (evals / "cold_start.json").write_text(
        json.dumps({"model": "m1", "run_id": "aaa", "metrics": _eval(0.2, 0.96)})
    )
    # An eval of an earlier run of reasoning_rl (another run id) must not be reported.
    (evals / "reasoning_rl.json").write_text(
        json.dumps({"model": "m2", "run_id": "old", "metrics": _eval(0.9, 1.0)})
    )
    return out


def test_read_metrics_keeps_later_values_per_step_and_skips_torn_line(run_dir):
    rows = read_metrics(run_dir / "reasoning_rl" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[2]["reward/mean"] == 0.3  # the resumed run's step 3
    assert read_metrics(run_dir / "missing.jsonl") == []


def test_summarize_training_leaves_out_wall_clock():
    summary = summarize_training(
        [
            {"step": 1, "loss": 3.0, "time/step": 9.0, "perf/tokens_per_s": 1.0},
            {"step": 2, "loss": 1.0},
        ]
    )
    assert summary["steps"] == 2 and summary["last_step"] == 2
    assert summary["metrics"] == {"loss": {"first": 3.0, "last": 1.0, "mean": 2.0}}


def test_report_json_numbers(run_dir):
    report = build_report(run_dir)
    saved = json.loads((run_dir / "report.json").read_text())
    assert saved == json.loads(json.dumps(report))
    by_name = {e["name"]: e for e in saved["stages"]}
    assert list(by_name) == ["base", "cold_start", "reasoning_rl", "later"]
    assert by_name["base"]["eval"]["pass@1"] == 0.05
    assert by_name["cold_start"]["eval"]["format_rate"] == 0.96
    assert by_name["reasoning_rl"]["eval"] is None  # stale eval file (other run id) ignored
    rl = by_name["reasoning_rl"]["training"]
    assert rl["steps"] == 4 and rl["last_step"] == 4
    assert rl["metrics"]["reward/mean"] == {
        "first": 0.1,
        "last": 0.5,
        "mean": pytest.approx((0.1 + 0.2 + 0.3 + 0.5) / 4),
    }
    sft = by_name["cold_start"]["training"]
    assert (
        sft["steps"] == 2 and sft["metrics"]["sft/loss"]["last"] == 1.0
    )  # the summary row merged in
    assert sft["metrics"]["sft/runtime"]["last"] == 30.0
    assert "time/step" not in by_name["cold_start"]["training"]["metrics"]
    assert by_name["reasoning_rl"]["seconds"] == 125.0 and by_name["reasoning_rl"]["attempts"] == 2
    assert by_name["later"]["status"] == "pending" and by_name["later"]["training"] is None


def test_report_markdown_table(run_dir):
    build_report(run_dir)
    md = (run_dir / "report.md").read_text()
    assert md.startswith("# Pipeline report: demo")
    assert "| stage | kind | status | pass@1 | cons@4 | format |" in md
    base = next(line for line in md.splitlines() if line.startswith("| base "))
    assert "| 5.0% | 15.0% | 0.0% |" in base  # pass@1, cons@4, format of the base model
    cold = next(line for line in md.splitlines() if line.startswith("| cold_start "))
    assert "96.0%" in cold and "sft/loss 2 → 1" in cold and "12.5s" in cold
    rl = next(line for line in md.splitlines() if line.startswith("| reasoning_rl "))
    assert "reward/mean 0.1 → 0.5" in rl and "2m 05s" in rl
    assert "![Training curves: reasoning_rl](plots/reasoning_rl_training.png)" in md
    assert "(plots/stages.png)" in md


def _png_size(data: bytes) -> tuple[int, int]:
    # The IHDR chunk follows the 8-byte signature: length (4), type (4), width (4), height (4).
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_report_plots_exist(run_dir):
    report = build_report(run_dir)
    # Reward curves only for stages that log rewards (the SFT stage logs a loss only).
    assert sorted(report["plots"]) == ["plots/reasoning_rl_training.png", "plots/stages.png"]
    for plot in report["plots"]:
        data = (run_dir / plot).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
        assert min(_png_size(data)) >= 400  # inches x 100 dpi
    assert _png_size((run_dir / report["plots"][0]).read_bytes()) == (640, 400)  # the default size
    # The RL plot draws the total and every reward the run logged, whatever its name.
    rows = read_metrics(run_dir / "reasoning_rl" / "metrics.jsonl")
    assert reward_curves(rows) == [
        ("reward/mean", "reward (total)"),
        ("reward/accuracy/mean", "accuracy"),
        ("reward/format/mean", "format"),
    ]
    renamed = [{k.replace("accuracy", "my_grader"): v for k, v in row.items()} for row in rows]
    assert ("reward/my_grader/mean", "my_grader") in reward_curves(renamed)
    # Another reward's values draw another picture.
    before = (run_dir / "plots" / "reasoning_rl_training.png").read_bytes()
    _write_jsonl(
        run_dir / "reasoning_rl" / "metrics.jsonl",
        [{**row, "reward/format/mean": 1 - row["reward/format/mean"]} for row in rows],
    )
    build_report(run_dir)
    assert (run_dir / "plots" / "reasoning_rl_training.png").read_bytes() != before


def test_report_is_reproducible_from_disk(run_dir):
    first = build_report(run_dir)
    png = (run_dir / "plots" / "stages.png").read_bytes()
    (run_dir / "report.json").unlink()
    assert build_report(run_dir) == first
    assert (run_dir / "plots" / "stages.png").read_bytes() == png


def test_report_without_evals_or_metrics(tmp_path):
    (tmp_path / "manifest.json").write_text(
        json.dumps({"pipeline": "p", "order": ["a"], "stages": {"a": {"status": "running"}}})
    )
    report = build_report(tmp_path)
    assert report["plots"] == []
    assert "| a | – | running |" in (tmp_path / "report.md").read_text()


def test_report_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match="manifest.json"):
        build_report(tmp_path)
    assert main([str(tmp_path)]) == 2
    assert "manifest.json" in capsys.readouterr().err


def test_per_task_columns_appear_when_evaluated_and_missing_metrics_read_n_a(run_dir):
    md = (build_report(run_dir), (run_dir / "report.md").read_text())[1]
    assert "code tests" not in md and "refusals" not in md  # no stage has per-task scores
    scored = {
        **_eval(0.2, 0.96),
        "language_consistency": None,
        "code_tests_passed": 0.5,
        "helpfulness": 0.734,
        "refusal_rate": None,
    }
    (run_dir / "eval" / "cold_start.json").write_text(
        json.dumps({"model": "m1", "run_id": "aaa", "metrics": scored})
    )
    report = build_report(run_dir)
    md = (run_dir / "report.md").read_text()
    assert "| truncated | code tests | helpfulness | train steps |" in md  # no stage has refusals
    cold = next(line for line in md.splitlines() if line.startswith("| cold_start"))
    assert "| n/a | 42.0 | 5.0% | 50.0% | 0.73 |" in cold  # a chain of thought without words: n/a
    base = next(line for line in md.splitlines() if line.startswith("| base"))
    assert "| 5.0% | n/a | n/a |" in base  # evaluated without per-task rows
    later = next(line for line in md.splitlines() if line.startswith("| later"))
    assert "| – | – | – |" in later  # not evaluated at all
    assert "plots/stages.png" in report["plots"]
