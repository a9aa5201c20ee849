"""The pipeline orchestrator: manifest, resume, config changes, `stage:` references, --stage.

Most tests use `stage: stub`, a stage kind registered here that writes a model directory and a
line per call into OUTPUT/calls.jsonl, so the orchestration is checked in milliseconds. The last
test runs real stages (GRPO and generate) on the tiny model with evaluation and reports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines import cli
from pipelines.config import ConfigError
from pipelines.pipeline import decide, load_pipeline, run_pipeline
from pipelines.recipe import STAGES, register_stage
from pipelines.runner import describe_recipe, run_recipe

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------- a stub stage
@dataclass(frozen=True)
class StubConfig:
    model: str = "base-model"
    output_dir: str = "runs/stub"
    value: int = 0
    note: str = ""
    fail_if: str | None = None  # raise while this file exists (a crash mid-stage)
    hold_if: str | None = None  # wait while this file exists (time to kill the process)


def run_stub(config: StubConfig, *, fresh: bool = False) -> dict:
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out.parent / "calls.jsonl", "a") as f:
        f.write(json.dumps({"stage": out.name, "model": config.model, "note": config.note,
                            "value": config.value, "fresh": fresh}) + "\n")
    if config.fail_if and Path(config.fail_if).exists():
        raise RuntimeError("simulated crash")
    deadline = time.time() + 60
    while config.hold_if and Path(config.hold_if).exists() and time.time() < deadline:
        time.sleep(0.05)
    model = out / "model"
    model.mkdir(exist_ok=True)
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 1, "reward/mean": config.value / 10}) + "\n")
    return {"model": str(model), "value": config.value}


def register_stub() -> None:
    register_stage("stub", StubConfig, "test stage")(run_stub)


@pytest.fixture(autouse=True)
def stub_stage():
    import pipelines.stages  # noqa: F401  (the real kinds register first)

    register_stub()
    yield
    STAGES.pop("stub", None)


def write_pipeline(tmp_path: Path, *, b_extra: str = "", a_value: int = 1) -> Path:
    path = tmp_path / "pipe.yaml"
    path.write_text(f"""\
pipeline: demo
output_dir: {tmp_path / 'out'}
stages:
  - name: a
    stage: stub
    value: {a_value}
  - name: b
    recipe: b.yaml
    overrides: {{model: "stage:a", note: "stage:a.value"}}
  - name: c
    stage: stub
    model: stage:b
""")
    (tmp_path / "b.yaml").write_text(f"stage: stub\nvalue: 2\noutput_dir: ignored/by/the/pipeline\n{b_extra}")
    return path


def calls(tmp_path: Path) -> list[dict]:
    path = tmp_path / "out" / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def manifest(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "out" / "manifest.json").read_text())


def run(path: Path, *overrides: str, **kwargs) -> list[str]:
    logs: list[str] = []
    run_pipeline(path, list(overrides), log=logs.append, **kwargs)
    return logs


# ------------------------------------------------------------------------------- tests
def test_manifest_and_stage_references(tmp_path):
    path = write_pipeline(tmp_path)
    run(path)
    out = tmp_path / "out"
    m = manifest(tmp_path)
    assert m["order"] == ["a", "b", "c"]
    for name in "abc":
        record = m["stages"][name]
        assert record["status"] == "done" and len(record["config_hash"]) == 16
        assert record["output_dir"] == str(out / name)  # the pipeline decides where stages write
        assert record["outputs"]["model"] == str(out / name / "model")
        assert record["seconds"] >= 0 and record["attempts"] == 1
    assert m["stages"]["b"]["inputs"] == {"a": m["stages"]["a"]["run_id"]}
    a, b, c = calls(tmp_path)
    assert a["model"] == "base-model"
    assert b["model"] == str(out / "a" / "model") and b["note"] == "1"  # stage:a and stage:a.value
    assert c["model"] == str(out / "b" / "model")
    assert (out / "report.json").is_file() and (out / "report.md").is_file()
    assert not list(out.glob(".manifest.json.*"))  # atomic writes leave no temporaries


def test_rerun_skips_finished_stages(tmp_path):
    path = write_pipeline(tmp_path)
    run(path)
    logs = run(path)
    assert len(calls(tmp_path)) == 3
    assert sum("skipping" in line for line in logs) == 3


def test_config_change_reruns_that_stage_and_later_ones(tmp_path):
    path = write_pipeline(tmp_path)
    run(path)
    logs = run(path, "b.value=5")
    rerun = calls(tmp_path)[3:]
    assert [(c["stage"], c["fresh"]) for c in rerun] == [("b", True), ("c", True)]
    assert rerun[0]["value"] == 5
    assert any("stage 2/3 b" in line and "config changed" in line for line in logs)
    assert any("stage 3/3 c" in line and "earlier stage b ran again" in line for line in logs)
    assert any("stage 1/3 a" in line and "skipping" in line for line in logs)
    # Editing the recipe file of the first stage reruns all three.
    path = write_pipeline(tmp_path, a_value=7)
    run(path, "b.value=5")
    assert [c["stage"] for c in calls(tmp_path)[5:]] == ["a", "b", "c"]
    assert calls(tmp_path)[6]["note"] == "7"


def test_only_one_stage(tmp_path):
    path = write_pipeline(tmp_path)
    with pytest.raises(ConfigError, match="--stage b reads the outputs of a, which is not done"):
        run(path, stage="b")
    run(path, stage="a")
    run(path, stage="b")
    assert [c["stage"] for c in calls(tmp_path)] == ["a", "b"]
    assert manifest(tmp_path)["stages"]["c"]["status"] == "pending"
    run(path)
    assert [c["stage"] for c in calls(tmp_path)] == ["a", "b", "c"]
    assert run(path, stage="a")[0].endswith("skipping (add --fresh to run it again)")
    run(path, stage="a", fresh=True)  # reruns a alone, from scratch
    assert calls(tmp_path)[-1] == {**calls(tmp_path)[0], "fresh": True}
    logs = run(path)  # b and c read the old a: both rerun
    assert [c["stage"] for c in calls(tmp_path)[4:]] == ["b", "c"]
    assert any("earlier stage a ran again" in line for line in logs)
    with pytest.raises(ConfigError, match="no such stage; this pipeline has a, b, c"):
        run(path, stage="nope")


def test_crash_mid_pipeline_then_rerun_resumes(tmp_path):
    marker = tmp_path / "crash"
    marker.touch()
    path = write_pipeline(tmp_path, b_extra=f"fail_if: {marker}\n")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(path)
    m = manifest(tmp_path)
    assert m["stages"]["a"]["status"] == "done"
    assert m["stages"]["b"]["status"] == "running"
    assert m["stages"]["b"]["last_error"] == "RuntimeError: simulated crash"
    assert m["stages"]["c"]["status"] == "pending"
    marker.unlink()
    logs = run(path)
    assert [(c["stage"], c["fresh"]) for c in calls(tmp_path)] == [("a", False), ("b", False), ("b", False), ("c", False)]
    assert any("b (stub): unfinished; resuming" in line for line in logs)
    m = manifest(tmp_path)
    assert all(m["stages"][n]["status"] == "done" for n in "abc")
    assert m["stages"]["b"]["attempts"] == 2 and "last_error" not in m["stages"]["b"]


def test_killed_process_then_rerun_completes(tmp_path):
    hold = tmp_path / "hold"
    hold.touch()
    path = write_pipeline(tmp_path, b_extra=f"hold_if: {hold}\n")
    code = ("import tests.test_pipeline as t; t.register_stub(); from pipelines.cli import main; "
            f"raise SystemExit(main(['run', {str(path)!r}]))")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            out = tmp_path / "out" / "manifest.json"
            if out.exists() and json.loads(out.read_text())["stages"]["b"]["status"] == "running":
                break
            time.sleep(0.1)
        else:
            pytest.fail("the pipeline never reached stage b")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    hold.unlink()
    run(path)
    assert [c["stage"] for c in calls(tmp_path)] == ["a", "b", "b", "c"]
    assert all(manifest(tmp_path)["stages"][n]["status"] == "done" for n in "abc")


def test_fresh_starts_over(tmp_path):
    path = write_pipeline(tmp_path)
    run(path)
    (tmp_path / "out" / "a" / "stale.txt").write_text("old")
    logs = run(path, fresh=True)
    assert [c["fresh"] for c in calls(tmp_path)[3:]] == [True, True, True]
    assert not (tmp_path / "out" / "a" / "stale.txt").exists()
    assert sum(line.endswith(": starting over (--fresh)") for line in logs) == 3


def test_cli_run_config_and_overrides(tmp_path, capsys):
    path = write_pipeline(tmp_path)
    text = describe_recipe(path, ["b.value=9"])
    assert "stage 1/3: a" in text and "stage 3/3: c" in text
    assert f"output_dir: {tmp_path / 'out' / 'b'}" in text and "value: 9" in text and "model: stage:a" in text
    assert cli.main(["run", str(path), "c.value=4"]) == 0
    assert calls(tmp_path)[-1]["value"] == 4
    assert cli.main(["run", str(path), "value=4"]) == 2
    assert "address a stage as STAGE.key=value" in capsys.readouterr().err
    run_recipe(path, ["c.value=4"])  # runner hook: nothing left to do
    assert len(calls(tmp_path)) == 3


@pytest.mark.parametrize("stages, message", [
    ("  - {name: a, stage: stub, model: 'stage:b'}\n  - {name: b, stage: stub}\n", "must name a stage listed before a"),
    ("  - {name: a, stage: stub}\n  - {name: a, stage: stub}\n", "used twice"),
    ("  - {name: base, stage: stub}\n", "not one of"),
    ("  - {name: a, value: 1}\n", "give `recipe: FILE.yaml` or an inline config"),
    ("  - {name: a, stage: stub, valu: 1}\n", "stages.a.valu: unknown key"),
    ("  - {name: a, recipe: missing.yaml}\n", "does not exist"),
    ("  []\n", "non-empty list"),
])
def test_pipeline_recipe_errors(tmp_path, stages, message):
    path = tmp_path / "p.yaml"
    path.write_text(f"pipeline: bad\nstages:\n{stages}")
    with pytest.raises(ConfigError, match=message):
        load_pipeline(path)


def test_grpo_eval_every_uses_the_pipeline_eval_settings(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(f"""\
pipeline: evals
output_dir: {tmp_path / 'out'}
eval: {{data: {{path: builtin:addition, seed: 7}}, limit: 5, base: false}}
stages:
  - {{name: rl, stage: grpo, grpo: {{eval_every: 3}}}}
  - {{name: quiet, stage: grpo}}
""")
    rl, quiet = load_pipeline(path).stages
    assert rl.data["eval"]["data"]["seed"] == 7 and rl.data["eval"]["limit"] == 5
    assert quiet.data["eval"] is None  # no eval_every: the stage does not evaluate while training
    (tmp_path / "alone.yaml").write_text(
        "pipeline: alone\nstages:\n  - {name: rl, stage: grpo, grpo: {eval_every: 3}}\n")
    with pytest.raises(ConfigError, match=r"stages\.rl\.grpo\.eval_every needs held-out rows"):
        load_pipeline(tmp_path / "alone.yaml")


def test_every_pipeline_stage_records_its_config(tmp_path):
    path = write_pipeline(tmp_path)
    run_pipeline(path, log=lambda message: None)
    record = json.loads((tmp_path / "out" / "b" / "run.json").read_text())
    assert record["status"] == "done"
    assert record["config"]["model"] == str(tmp_path / "out" / "a" / "model")
    assert (tmp_path / "out" / "b" / "config.yaml").read_text().startswith("# config hash ")


def test_every_stage_data_is_checked_before_the_first_stage_runs(tmp_path):
    data = tmp_path / "no_answers.jsonl"
    data.write_text('{"prompt": "1+1"}\n')
    path = tmp_path / "p.yaml"
    path.write_text(f"""\
pipeline: checked
output_dir: {tmp_path / 'out'}
stages:
  - {{name: a, stage: stub}}
  - {{name: rl, stage: grpo, model: "stage:a", data: {{path: {data}}}}}
""")
    with pytest.raises(ConfigError) as err:
        run_pipeline(path, log=lambda message: None)
    assert str(err.value) == (
        f"stages.rl: data {data}: rewards 'accuracy' grades against column 'answer', which no row "
        "has (columns: prompt); map one with data.columns.answer=NAME, or set the reward's "
        "params.answer_column")
    assert calls(tmp_path) == []  # stage a never ran


def test_decide():
    done = {"status": "done", "config_hash": "h", "inputs": {"a": "r1"}}
    assert decide(done, "h", {"a": "r1"}, fresh=False)[0] == "skip"
    assert decide(done, "h2", {"a": "r1"}, fresh=False)[0] == "restart"
    assert decide(done, "h", {"a": "r2"}, fresh=False)[0] == "restart"
    assert decide(done, "h", {"a": "r1"}, fresh=True)[0] == "restart"
    assert decide({**done, "status": "running"}, "h", {"a": "r1"}, fresh=False)[0] == "resume"
    assert decide({"status": "pending"}, "h", {}, fresh=False)[0] == "start"


# --------------------------------------------------------------------- real stages, eval
def test_real_stages_with_eval_and_report(tmp_path, tiny_model):
    path = tmp_path / "pipe.yaml"
    path.write_text(f"""\
pipeline: tiny
output_dir: {tmp_path / 'out'}
eval:
  data: {{path: builtin:addition, seed: 1, num_rows: 8}}
  limit: 2
  k: 2
  max_tokens: 8
  engine: {{backend: hf}}
stages:
  - name: rl
    stage: grpo
    data: {{num_rows: 4}}
    engine: {{backend: hf}}
    grpo: {{max_steps: 1, prompts_per_step: 2, group_size: 2, max_completion_len: 8,
            micro_batch_size: 4, report_to: [jsonl]}}
  - name: sample
    stage: generate
    model: stage:rl
    data: {{num_rows: 2}}
    sampling: {{n: 1, max_tokens: 4}}
    engine: {{backend: hf}}
""")
    run(path)
    out = tmp_path / "out"
    assert (out / "rl" / "model" / "config.json").is_file()
    assert len((out / "sample" / "samples.jsonl").read_text().splitlines()) == 2
    evals = {p.stem: json.loads(p.read_text()) for p in (out / "eval").glob("*.json")}
    assert sorted(evals) == ["base", "rl"]  # generate makes no model: nothing to evaluate
    assert evals["base"]["model"] == "bundled:tiny-char"
    assert evals["rl"]["model"] == str(out / "rl" / "model") and evals["rl"]["metrics"]["samples"] == 4
    report = json.loads((out / "report.json").read_text())
    by_name = {e["name"]: e for e in report["stages"]}
    assert by_name["rl"]["eval"] == evals["rl"]["metrics"]
    assert by_name["rl"]["training"]["steps"] == 1
    assert sorted(report["plots"]) == ["plots/rl_training.png", "plots/stages.png"]
    # Rerunning does nothing and rebuilds the same report from disk.
    logs = run(path)
    assert not any("evaluating" in line for line in logs)
    again = json.loads((out / "report.json").read_text())
    assert [e["eval"] for e in again["stages"]] == [e["eval"] for e in report["stages"]]


def test_pipeline_seed_sets_every_stage_training_seed_but_not_data_seeds():
    recipe = REPO / "recipes" / "quickstart" / "pipeline.yaml"
    plan = load_pipeline(recipe, ["seed=7"])
    seeds = {st.name: (st.data.get("seed"), st.data.get("train", {}).get("seed"),
                       st.data.get("grpo", {}).get("seed"), st.data.get("data", {}).get("seed")) for st in plan.stages}
    unseeded = {st.name: st.data.get("data", {}).get("seed") for st in load_pipeline(recipe).stages}
    for name, (top, train, grpo, data) in seeds.items():
        assert 7 in (top, train, grpo), name
        assert data == unseeded[name], name  # which rows a stage draws stays fixed
    assert plan.eval == load_pipeline(recipe).eval  # the held-out evaluation does not move
    with pytest.raises(ConfigError, match="seed: 'x' must be an integer"):
        load_pipeline(recipe, ["seed=x"])


def test_eval_reward_model_reference_is_bound_once_its_stage_is_done(tmp_path):
    from pipelines.pipeline import Manifest, _eval_reward_model

    path = write_pipeline(tmp_path)
    with_judge = tmp_path / "judged.yaml"
    with_judge.write_text(path.read_text().replace("stages:", "eval: {reward_model: stage:b}\nstages:"))
    plan = load_pipeline(with_judge)
    assert _eval_reward_model(plan, Manifest.load(plan), "c") == (None, None)  # b has not run: n/a
    run(path)  # the same stages and output directory, without evaluation
    done = Manifest.load(plan)
    judged = (str(tmp_path / "out" / "b" / "model"), done.stage("b")["run_id"])
    assert _eval_reward_model(plan, done, "c") == judged
    assert _eval_reward_model(plan, done, "base") == judged  # the initial model waits for the judge
    # Stages up to the judge never get it, also when it has run since: a resumed run
    # evaluates them as an uninterrupted run did.
    assert _eval_reward_model(plan, done, "a") == _eval_reward_model(plan, done, "b") == (None, None)
    with pytest.raises(ConfigError, match="eval.reward_model: `stage:nope` names no stage"):
        load_pipeline(with_judge, ["eval.reward_model=stage:nope"])
