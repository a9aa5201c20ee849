"""Atomic, resumable checkpoints.

Layout of `OUTPUT/checkpoints/step-000010/`:
    config.json, model.safetensors, tokenizer files   HF format: loads in transformers and vLLM
    state/                                            accelerate state: trained weights (incl.
                                                      LoRA adapters), optimizer, scheduler, RNG
                                                      of every process (python, numpy, torch)
    trainer_state.json                                step, prompt-stream position, extras
A checkpoint is written into `step-000010.tmp/` and renamed only when complete, so a run
killed while saving leaves the previous checkpoint as the latest one.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from grpo.files import replace_dir, write_json_atomic, write_text_atomic

_STEP_DIR = re.compile(r"^step-(\d{6,})$")


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / "checkpoints" / f"step-{step:06d}"


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint, or None. Half-written `.tmp` directories are ignored."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return None
    done = [
        p
        for p in root.iterdir()
        if _STEP_DIR.match(p.name) and (p / "trainer_state.json").is_file()
    ]
    return max(done, key=lambda p: int(_STEP_DIR.match(p.name).group(1)), default=None)


def save_checkpoint(
    accelerator,
    model,
    tokenizer,
    output_dir: str | Path,
    step: int,
    trainer_state: dict[str, Any],
    export_model,
    keep: int,
) -> Path:
    """Write checkpoint `step` atomically on every process; return its final path."""
    final = checkpoint_dir(output_dir, step)
    staging = final.with_name(final.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging / "state"))
    export_model(staging)  # the HF-format model the engine and the next stage load
    if accelerator.is_main_process:
        tokenizer.save_pretrained(staging)
        write_json_atomic(staging / "trainer_state.json", {"step": step, **trainer_state})
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        replace_dir(staging, final)
        _prune(final.parent, keep)
    accelerator.wait_for_everyone()
    return final


def load_trainer_state(path: Path) -> dict[str, Any]:
    return json.loads((path / "trainer_state.json").read_text())


def _prune(root: Path, keep: int) -> None:
    steps = sorted((p for p in root.iterdir() if _STEP_DIR.match(p.name)), key=lambda p: p.name)
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob("*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)


def truncate_jsonl(path: Path, max_step: int) -> None:
    """Drop rows logged after `max_step` (a killed run logged them; the resumed run redoes them)."""
    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line and json.loads(line).get("step", 0) <= max_step
    ]
    write_text_atomic(path, "".join(line + "\n" for line in kept))
