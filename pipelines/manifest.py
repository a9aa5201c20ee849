"""OUTPUT/manifest.json, the pipeline's record of what finished, and the rule that decides
whether a stage is skipped, started, resumed or run again."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from grpo.files import write_json_atomic
from pipelines.config import ConfigError
from pipelines.distributed import is_main_process
from pipelines.plan import PipelinePlan


class Manifest:
    """OUTPUT/manifest.json: per stage status (pending, running, done), config hash, inputs,
    outputs and times. Every save writes a temporary file and renames it over the old one."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path, self.data = path, data

    @classmethod
    def load(cls, plan: PipelinePlan, *, fresh: bool = False) -> Manifest:
        path = plan.output_dir / "manifest.json"
        data: dict[str, Any] = {}
        if path.is_file() and not fresh:
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"{path} is not valid JSON ({exc}); delete it or rerun with --fresh"
                ) from exc
        old = data.get("stages", {})
        data = {
            "pipeline": plan.name,
            "output_dir": str(plan.output_dir),
            "order": plan.names,
            "stages": {n: old.get(n) or {"status": "pending"} for n in plan.names},
            "eval_hash": plan.eval_hash,
        }
        return cls(path, data)

    def stage(self, name: str) -> dict[str, Any]:
        return self.data["stages"][name]

    def outputs(self) -> dict[str, dict[str, Any]]:
        return {
            n: rec.get("outputs") or {}
            for n, rec in self.data["stages"].items()
            if rec["status"] == "done"
        }

    def save(self) -> None:
        """Write the manifest (the main process only: under several processes every process
        keeps the same manifest in memory, and one file has one writer)."""
        self.data["updated"] = now()
        if is_main_process():
            write_json_atomic(self.path, self.data)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def decide(
    record: dict[str, Any], config_hash: str, inputs: dict[str, str | None], *, fresh: bool
) -> tuple[str, str]:
    """(action, reason) for one stage: action is skip, start, resume or restart (from scratch).

    A stage is up to date when it is done with the same config hash and the same runs of the
    stages before it; any earlier stage that ran again makes it stale.
    """
    status = record.get("status", "pending")
    if fresh:
        return "restart", "starting over (--fresh)"
    if status == "pending":
        return "start", "starting"
    if record.get("config_hash") != config_hash:
        return "restart", "config changed since its last run; rerunning it and the stages after it"
    changed = [n for n, run in inputs.items() if (record.get("inputs") or {}).get(n) != run]
    if changed:
        return "restart", f"earlier stage {', '.join(changed)} ran again since; rerunning it"
    if status == "done":
        return "skip", "done (config unchanged); skipping"
    return "resume", "unfinished; resuming from its last checkpoint"
