"""Weighted combination of rewards, with per-reward metrics and an error policy."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from grpo.reward import RewardError, RewardFn, RewardOutput, check_values, combine
from rewards.registry import get, resolve

OnError = Literal["fail", "skip"]


@dataclass(frozen=True)
class RewardSpec:
    """One reward in a recipe: ``{name, weight, params}`` (``alias`` names its metrics when the
    same reward appears twice; ``tasks`` limits it to rows whose ``task`` column is listed, as in
    R1's all-scenario RL: rule-based rewards for reasoning rows, reward models for general rows).

    >>> RewardSpec("accuracy", weight=2.0).key
    'accuracy'
    >>> RewardSpec("acuracy")
    Traceback (most recent call last):
    ...
    ValueError: unknown reward 'acuracy'; valid names: accuracy, code, ... (or 'module:function')
    """

    name: str
    weight: float = 1.0
    params: Mapping[str, Any] = field(default_factory=dict)
    alias: str | None = None
    tasks: list[str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"reward name must be a non-empty string, got {self.name!r}")
        # A spec is read from YAML by `r1kit run` and `r1kit score` alike: a quoted number
        # (`weight: "0.5"`, or `1e-3`, which YAML 1.1 reads as a string) is that number, and
        # `tasks: math` is the one-task list.
        weight = _number(self.weight)
        if weight is None or not math.isfinite(weight):
            raise ValueError(
                f"reward '{self.name}': weight must be a finite number, got {self.weight!r}"
            )
        object.__setattr__(self, "weight", weight)
        if isinstance(self.tasks, str):
            object.__setattr__(self, "tasks", [self.tasks])
        if self.tasks is not None and not all(isinstance(t, str) for t in self.tasks):
            raise ValueError(
                f"reward '{self.name}': tasks must be a list of task names, got {self.tasks!r}"
            )
        if not isinstance(self.params, Mapping):
            raise TypeError(f"reward '{self.name}': params must be a mapping, got {self.params!r}")
        resolve(self.name)

    @property
    def key(self) -> str:
        """The name used in metric keys: ``reward/<key>/mean``."""
        return self.alias or self.name.rpartition(":")[2]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RewardSpec:
        unknown = set(data) - {"name", "weight", "params", "alias", "tasks"}
        if unknown:
            raise ValueError(
                f"reward spec {dict(data)!r}: unknown keys {sorted(unknown)}; "
                "allowed: name, weight, params, alias, tasks"
            )
        return cls(**data)


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


class RewardSet:
    """Call each reward, sum ``weight * value`` per row (None adds 0 and is left out of that
    reward's mean), and log ``reward/<name>/{mean,std,none_rate,errors}``.

    ``on_error="fail"`` raises ``RewardError`` naming the reward and row; ``"skip"`` scores the
    failing rows None for that reward and counts them in ``reward/<name>/errors``.

    >>> rs = RewardSet([RewardSpec("format", 1.0), RewardSpec("format_soft", 0.5)])
    >>> out = rs(["<think>a</think><answer>1</answer>", "1"], prompts=["q", "q"])
    >>> out.total, out.metrics["reward/format/mean"]
    ([1.5, 0.0], 0.5)
    """

    def __init__(
        self, specs: Sequence[RewardSpec | Mapping[str, Any]], on_error: OnError = "fail"
    ) -> None:
        if on_error not in ("fail", "skip"):
            raise ValueError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
        self.specs = [s if isinstance(s, RewardSpec) else RewardSpec.from_dict(s) for s in specs]
        keys = [s.key for s in self.specs]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"rewards {duplicates} appear twice; give each an 'alias'")
        self.on_error = on_error
        self.fns: dict[str, RewardFn] = {s.key: get(s.name, **dict(s.params)) for s in self.specs}

    def __call__(
        self, completions: Sequence[Any], *, prompts: Sequence[Any], **columns: Any
    ) -> RewardOutput:
        n = len(completions)
        per_reward: dict[str, list[float | None]] = {}
        counts: dict[str, float] = {}
        for spec in self.specs:
            rows = _rows_for(spec, n, columns)
            values, errors = (
                self._call_one(
                    spec.key,
                    [completions[i] for i in rows],
                    [prompts[i] for i in rows],
                    {k: [v[i] for i in rows] for k, v in columns.items()},
                )
                if rows
                else ([], 0)
            )
            per_reward[spec.key] = _scatter(values, rows, n)
            counts[f"reward/{spec.key}/errors"] = float(errors)
            pop = getattr(self.fns[spec.key], "pop_metrics", None)
            for name, value in (pop() if callable(pop) else {}).items():
                counts[f"reward/{spec.key}/{name}"] = float(value)
        return combine(per_reward, {s.key: s.weight for s in self.specs}, n, counts)

    def _call_one(
        self, key: str, completions: list[Any], prompts: list[Any], columns: dict[str, Any]
    ) -> tuple[list[float | None], int]:
        fn = self.fns[key]
        try:
            return check_values(
                key, fn(completions, prompts=prompts, **columns), len(completions)
            ), 0
        except Exception as err:  # noqa: BLE001  (any reward bug becomes a RewardError)
            batch_error = err
        # Re-run row by row to name the failing rows (only on the error path).
        values: list[float | None] = []
        failed: list[tuple[int, Exception]] = []
        for i in range(len(completions)):
            row_cols = {k: [v[i]] for k, v in columns.items()}
            try:
                values.extend(
                    check_values(key, fn([completions[i]], prompts=[prompts[i]], **row_cols), 1)
                )
            except Exception as err:  # noqa: BLE001
                failed.append((i, err))
                values.append(None)
        if self.on_error == "fail":
            row, why = failed[0] if failed else (None, batch_error)
            where = f"row {row}" if row is not None else "the batch (every row passes alone)"
            raise RewardError(
                f"reward '{key}' failed on {where}: {type(why).__name__}: {why}"
            ) from why
        if not failed:  # fails only as a batch: no row to blame, skip them all
            return [None] * len(completions), len(completions)
        return values, len(failed)


def _rows_for(spec: RewardSpec, n: int, columns: Mapping[str, Any]) -> list[int]:
    """Rows the reward applies to: all, or those whose ``task`` is in ``spec.tasks``."""
    if spec.tasks is None:
        return list(range(n))
    if "task" not in columns:
        raise RewardError(
            f"reward '{spec.key}' has tasks={spec.tasks} but the data has no 'task' column"
        )
    return [i for i, task in enumerate(columns["task"]) if task in spec.tasks]


def _scatter(values: list[float | None], rows: list[int], n: int) -> list[float | None]:
    out: list[float | None] = [None] * n
    for i, value in zip(rows, values, strict=True):
        out[i] = value
    return out
