"""Checks that a stage's rows carry the columns its rewards need, run before any model loads.

A reward that grades against a gold column (`accuracy`, `cosine_accuracy`) takes the column's
name as its `answer_column` parameter; such a reward needs that column filled in at least one
of the rows it applies to (all rows, or those whose `task` is in the reward's `tasks`).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pipelines.config import ConfigError


def gold_column(name: str, params: Mapping[str, Any]) -> str | None:
    """The column reward `name` grades against, or None when it needs none."""
    from rewards.registry import resolve

    if "answer_column" in params:
        return str(params["answer_column"])
    obj = resolve(name)
    if not inspect.isclass(obj):
        return None
    param = inspect.signature(obj).parameters.get("answer_column")
    return None if param is None or param.default is inspect.Parameter.empty else str(param.default)


def check_reward_columns(
    rows: Sequence[dict[str, Any]], rewards: Iterable[Any], source: str, where: str = "rewards"
) -> None:
    """Raise one ConfigError line when a reward's gold column is missing from the rows it scores.

    `rewards` holds RewardSpec-like items (`name`, `params`, optional `tasks`).
    """
    for reward in rewards:
        column = gold_column(reward.name, getattr(reward, "params", {}) or {})
        if column is None:
            continue
        tasks = getattr(reward, "tasks", None)
        scored = [row for row in rows if tasks is None or row.get("task") in tasks]
        if scored and not any(row.get(column) is not None for row in scored):
            found = ", ".join(sorted({k for row in rows for k in row}))
            raise ConfigError(
                f"data {source}: {where} {reward.name!r} grades against column {column!r}, "
                f"which no row has (columns: {found}); map one with "
                f"data.columns.{column}=NAME, or set the reward's params.answer_column"
            )
