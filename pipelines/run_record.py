"""The record a stage run keeps in its output directory, and what a rerun may do with it.

    OUTPUT/config.yaml   the resolved config as a runnable recipe (`stage: KIND` and every field)
    OUTPUT/run.json      its hash, the run's status (running, done) and, once done, its outputs

A rerun compares its config with the record before any data or model loads:
- same config, run done: nothing to do; the recorded outputs are returned;
- same config, run unfinished: the stage resumes from its last checkpoint;
- another config, run stopped before its first checkpoint: the stage starts over;
- another config otherwise: refused with the keys that changed, unless the caller starts over
  (`fresh`) or every change is safe for a run in progress (`resume_anyway`): raising
  `max_steps`, logging, saving and evaluation cadence, wandb names, thread count.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from grpo.files import write_text_atomic
from pipelines.config import ConfigError

CONFIG_FILE, RECORD_FILE = "config.yaml", "run.json"
# Keys (the last part of a dotted key) that change how a run reports, not what it trains.
SAFE_KEYS = frozenset(
    {
        "save_every",
        "keep_checkpoints",
        "log_every",
        "log_samples_every",
        "log_samples",
        "report_to",
        "num_threads",
        "wandb_project",
        "run_name",
        "eval_every",
    }
)
_SHOWN_CHANGES = 4
_CHECKPOINT_STEP = re.compile(r"^(?:step-|checkpoint-)(\d+)$")


def config_hash(plain: Any) -> str:
    """A short, stable hash of a config as plain data."""
    text = json.dumps(plain, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Change:
    key: str  # dotted, e.g. grpo.learning_rate or rewards.0.weight
    old: Any
    new: Any

    @property
    def safe(self) -> bool:
        """Safe to change under a run in progress (`max_steps` only upwards)."""
        leaf = self.key.rpartition(".")[2]
        if leaf == "max_steps":
            return isinstance(self.old, int) and isinstance(self.new, int) and self.new > self.old
        return leaf in SAFE_KEYS

    def __str__(self) -> str:
        return f"{self.key} {_short(self.old)} -> {_short(self.new)}"


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values: {"grpo": {"lr": 1}, "rewards": [{"w": 2}]} ->
    {"grpo.lr": 1, "rewards.0.w": 2}."""
    if isinstance(data, dict) and data:
        items: Any = data.items()
    elif isinstance(data, list) and data and any(isinstance(v, (dict, list)) for v in data):
        items = enumerate(data)
    else:
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in items:
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """The keys whose values differ between two plain configs, in the new config's order."""
    before, after = flatten(old), flatten(new)
    keys = list(after) + [k for k in before if k not in after]
    return [Change(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)]


def latest_step(out: Path) -> int | None:
    """The step of the newest complete checkpoint under `out/checkpoints` (GRPO's `step-N` or a
    transformers Trainer's `checkpoint-N`), or None."""
    root = out / "checkpoints"
    steps = [
        int(m.group(1))
        for p in (root.iterdir() if root.is_dir() else ())
        if (m := _CHECKPOINT_STEP.match(p.name)) and (p / "trainer_state.json").is_file()
    ]
    return max(steps, default=None)


def check_checkpoint(path: str, out: Path) -> None:
    """Raise one ConfigError line unless `path` is a complete checkpoint directory."""
    if not (Path(path) / "trainer_state.json").is_file():
        root = out / "checkpoints"
        found = (
            sorted(p.name for p in root.iterdir() if _CHECKPOINT_STEP.match(p.name))
            if root.is_dir()
            else []
        )
        raise ConfigError(
            f"--resume-from {path}: not a complete checkpoint directory (no trainer_state.json); "
            f"checkpoints in {root}: {', '.join(found) or 'none'}"
        )


class RunRecord:
    """OUTPUT/run.json and OUTPUT/config.yaml of one stage's output directory."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.path = self.out / RECORD_FILE

    def read(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"{self.path} is not readable JSON ({exc}); rerun with --fresh to start over"
            ) from exc
        return data if isinstance(data, dict) else None

    def start(self, kind: str, plain: dict[str, Any], digest: str) -> None:
        """Record the config of a run about to start or resume (status running)."""
        if not _main_process():
            return
        self.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(
            self.out / CONFIG_FILE,
            f"# config hash {digest}\n" + yaml.safe_dump({"stage": kind, **plain}, sort_keys=False),
        )
        old = self.read()
        started = (old or {}).get("started") if (old or {}).get("config_hash") == digest else None
        self._write(
            {
                "stage": kind,
                "config_hash": digest,
                "status": "running",
                "started": started or _now(),
                "config": plain,
            }
        )

    def clear_checkpoints(self) -> None:
        if _main_process():
            shutil.rmtree(self.out / "checkpoints", ignore_errors=True)

    def finish(self, outputs: Any) -> None:
        if not _main_process():
            return
        data = self.read() or {}
        data.update(
            status="done",
            finished=_now(),
            outputs=json.loads(json.dumps(outputs or {}, default=str)),
        )
        self._write(data)

    def _write(self, data: dict[str, Any]) -> None:
        write_text_atomic(self.path, json.dumps(data, indent=2, default=str) + "\n")


def check_rerun(
    record: dict[str, Any] | None,
    out: Path,
    plain: dict[str, Any],
    digest: str,
    *,
    resume_anyway: bool,
) -> dict[str, Any] | None:
    """What a rerun in `out` may do: the recorded outputs when the same config already finished
    (nothing to do), None to start or resume; raises ConfigError when the config changed."""
    if record is None:
        return None
    if record.get("config_hash") == digest:
        outputs = record.get("outputs")
        if record.get("status") == "done" and isinstance(outputs, dict) and _outputs_exist(outputs):
            return outputs
        return None
    step = latest_step(out)
    if step is None and record.get("status") != "done":
        return None  # stopped before its first checkpoint: nothing to resume, so start over
    changes = [c for c in diff(record.get("config") or {}, plain) if c.key != "output_dir"]
    if not changes:
        return None  # recorded by another version of the config's format: nothing differs
    for change in changes:
        if (
            change.key.rpartition(".")[2] == "max_steps"
            and step is not None
            and (not isinstance(change.new, int) or change.new < step)
        ):
            raise ConfigError(
                f"{out}: {change.key}={change.new} is below step {step}, where its checkpoint "
                f"is; set {change.key} to at least {step}, or rerun with --fresh to start over"
            )
    if resume_anyway and all(c.safe for c in changes):
        return None
    shown = ", ".join(str(c) for c in changes[:_SHOWN_CHANGES])
    if len(changes) > _SHOWN_CHANGES:
        shown += f" and {len(changes) - _SHOWN_CHANGES} more"
    unsafe = [c.key for c in changes if not c.safe]
    if unsafe:
        choice = (
            "rerun with --fresh to start over (or choose another output_dir); "
            f"{', '.join(unsafe[:3])} cannot change under a run in progress"
        )
    else:
        choice = (
            "rerun with --resume-anyway to continue with the new settings, or --fresh to start over"
        )
    raise ConfigError(f"{out} holds a run with another config (changed: {shown}); {choice}")


def _outputs_exist(outputs: dict[str, Any]) -> bool:
    model = outputs.get("model")
    return model is None or Path(str(model)).exists()


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def _main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
