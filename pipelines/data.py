"""Datasets for every stage: hub names, local files and built-in offline task generators.

Rows come out as plain dicts with r1kit's column names: `prompt` (chat messages), and whatever
else the rewards need (`answer`, `tests`, `language`, `task`, `solution`, ...). A recipe maps the
source's column names onto these with `columns: {prompt: question, answer: final}`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pipelines.tasks  # noqa: F401  (registers builtin:coding, general, preferences, mixture)
from pipelines.config import ConfigError
from pipelines.data_files import read_rows
from pipelines.task_registry import TASKS, builtin_names

R1_SYSTEM_PROMPT = (
    "The assistant first thinks about the reasoning process and then gives the answer. "
    "The reasoning is enclosed in <think> </think> and the answer in <answer> </answer>."
)


@dataclass(frozen=True)
class DataConfig:
    """Where rows come from and how their columns map onto r1kit's."""

    path: str = (
        "builtin:addition"  # builtin:NAME, a local .jsonl/.json/.parquet/.csv/dir, or a hub name
    )
    split: str = "train"
    columns: dict[str, str] = field(default_factory=dict)  # r1kit name -> source column name
    limit: int | None = None  # keep the first N rows (after shuffling, if seeded)
    num_rows: int = 1000  # rows to generate for builtin tasks
    seed: int = 0
    system_prompt: str | None = None  # prepended as a system message to string prompts

    def __post_init__(self) -> None:
        if self.path.startswith("builtin:") and self.path.removeprefix("builtin:") not in TASKS:
            raise ValueError(
                f"path: unknown builtin task {self.path!r}; choose one of {builtin_names()}"
            )
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit={self.limit} must be at least 1")


def load_rows(config: DataConfig) -> list[dict[str, Any]]:
    """Load, rename columns, and turn string prompts into chat messages. Any problem with the
    source (missing, unreadable, malformed, empty, no prompt column) is one ConfigError line."""
    if config.path.startswith("builtin:"):
        rows = TASKS[config.path.removeprefix("builtin:")](
            config.num_rows, random.Random(config.seed)
        )
    else:
        rows = read_rows(config.path, config.split)
    if not rows:
        raise ConfigError(f"data {config.path} has no rows; give a file with at least one row")
    rows = [_rename(row, config.columns) for row in rows]
    if config.limit is not None:
        rows = rows[: config.limit]
    if rows and "prompt" not in rows[0]:
        found = ", ".join(sorted(rows[0]))
        raise ConfigError(
            f"data {config.path} has no prompt column (found: {found}); "
            "map one with data.columns.prompt=NAME"
        )
    return [_as_chat(row, config.system_prompt) for row in rows]


def _rename(row: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    if not columns:
        return dict(row)
    missing = [src for src in columns.values() if src not in row]
    if missing:
        raise ConfigError(
            f"data column {missing[0]!r} not found; the rows have: {', '.join(sorted(row))}"
        )
    renamed = {k: v for k, v in row.items() if k not in columns.values()}
    renamed.update({dst: row[src] for dst, src in columns.items()})
    return renamed


def _as_chat(row: dict[str, Any], system_prompt: str | None) -> dict[str, Any]:
    prompt = row["prompt"]
    if isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
        if system_prompt:
            messages.insert(0, {"role": "system", "content": system_prompt})
        row = {**row, "prompt": messages}
    return row
