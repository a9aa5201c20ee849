"""wandb project and run names reach wandb. wandb is an external service, so it is replaced
here by a stand-in package on sys.path that records what `wandb.init` and `log` receive."""

from __future__ import annotations

import json
import sys

from pipelines.recipe import STAGES, resolve

STAND_IN = """\
import json, os

_LOG = os.environ["FAKE_WANDB_LOG"]


class _Run:
    def log(self, metrics, step):
        with open(_LOG, "a") as f:
            f.write(json.dumps({"step": step}) + "\\n")

    def finish(self):
        pass


def init(**kwargs):
    with open(_LOG, "a") as f:
        f.write(json.dumps({"init": {k: str(v) for k, v in kwargs.items()}}) + "\\n")
    return _Run()
"""


def test_grpo_passes_wandb_project_and_run_name(tmp_path, tiny_model, monkeypatch):
    (tmp_path / "site" / "wandb").mkdir(parents=True)
    (tmp_path / "site" / "wandb" / "__init__.py").write_text(STAND_IN)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("FAKE_WANDB_LOG", str(tmp_path / "wandb.jsonl"))
    monkeypatch.delitem(sys.modules, "wandb", raising=False)
    kind, config = resolve(
        {
            "stage": "grpo",
            "output_dir": str(tmp_path / "out"),
            "data": {"num_rows": 16},
            "grpo": {
                "max_steps": 1,
                "prompts_per_step": 2,
                "group_size": 2,
                "max_completion_len": 8,
                "beta": 0.0,
                "report_to": ["wandb"],
                "wandb_project": "addition-rl",
                "run_name": "try-1",
            },
            "engine": {"backend": "hf"},
        }
    )
    STAGES[kind].run(config)
    lines = [json.loads(line) for line in (tmp_path / "wandb.jsonl").read_text().splitlines()]
    assert lines[0]["init"]["project"] == "addition-rl" and lines[0]["init"]["name"] == "try-1"
    assert lines[1] == {"step": 1}
