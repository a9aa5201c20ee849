"""What the trainer needs of rewards, and the plainest things that satisfy it.

A reward is ``fn(completions, *, prompts, **columns) -> list[float | None]``: one value per
completion, None where the reward does not apply to the row (left out of its mean, adds 0 to
the total). The trainer scores a batch through a ``RewardSource``: a callable with the same
arguments that returns a ``RewardOutput`` (per-row totals, each reward's values, metrics).
``as_reward_source`` turns what a user passes into one:

    a reward                 scored as itself, metrics under ``reward/<its name>/...``
    a list of rewards        summed with weight 1 each
    a RewardSource           used as is (``rewards.RewardSet``: weights, params, task filters)

Plain Python only (no torch), so ``rewards`` builds on it without loading the trainer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

RewardFn = Callable[..., list[float | None]]  # (completions, *, prompts, **columns) -> values


class RewardError(RuntimeError):
    """A reward raised or returned a malformed result; says which reward, row and why."""


@dataclass(frozen=True)
class RewardOutput:
    """Per-row weighted totals, each reward's raw values, and ``reward/...`` metrics."""

    total: list[float]
    per_reward: dict[str, list[float | None]]
    metrics: dict[str, float]


class RewardSource(Protocol):
    """Scores a batch: what the trainer calls once per part of every step."""

    def __call__(
        self, completions: Sequence[Any], *, prompts: Sequence[Any], **columns: Any
    ) -> RewardOutput: ...


def check_values(key: str, values: Any, n: int) -> list[float | None]:
    """A reward's return value as ``n`` floats or None; anything else raises RewardError."""
    if not isinstance(values, (list, tuple)) or len(values) != n:
        got = len(values) if isinstance(values, (list, tuple)) else type(values).__name__
        raise RewardError(f"reward '{key}' must return a list of {n} floats or None, got {got}")
    out: list[float | None] = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out.append(float(v))
        else:
            raise RewardError(
                f"reward '{key}' returned {v!r} for row {i}: want a finite float or None"
            )
    return out


def summarize(prefix: str, values: Sequence[float | None]) -> dict[str, float]:
    """``{prefix}/none_rate`` and, over the values that are not None, ``/mean`` and ``/std``."""
    present = [v for v in values if v is not None]
    metrics = {f"{prefix}/none_rate": (1 - len(present) / len(values)) if values else 0.0}
    if present:
        mean = sum(present) / len(present)
        metrics[f"{prefix}/mean"] = mean
        metrics[f"{prefix}/std"] = math.sqrt(sum((v - mean) ** 2 for v in present) / len(present))
    return metrics


def combine(
    per_reward: dict[str, list[float | None]],
    weights: Mapping[str, float],
    n: int,
    counts: Mapping[str, float] | None = None,
) -> RewardOutput:
    """Sum ``weight * value`` per row (None adds 0) and summarise each reward and the total;
    ``counts`` are further metrics (error counts, a reward's own figures), passed through."""
    total = [0.0] * n
    metrics: dict[str, float] = {}
    for key, values in per_reward.items():
        for i, value in enumerate(values):
            if value is not None:
                total[i] += weights[key] * value
        metrics.update(summarize(f"reward/{key}", values))
    metrics.update(counts or {})
    metrics.update(summarize("reward/total", total))
    return RewardOutput(total, per_reward, metrics)


_SUMMARIES = ("/mean", "/std", "/none_rate")  # recomputed over all rows when parts are merged


def merge_outputs(parts: Sequence[tuple[Sequence[int], RewardOutput]], n: int) -> RewardOutput:
    """One output for ``n`` rows scored in parts (each part: its row indices and its output),
    equal to scoring them in one call when the rewards score rows independently: values go
    back to their rows, means, stds and none rates are recomputed over all rows, and every
    other metric (error counts, the rewards' own counts) is summed.

    >>> one = RewardFunctions([lambda completions, **_: [float(len(c)) for c in completions]])
    >>> parts = [([1], one(["ab"], prompts=["q"])), ([0, 2], one(["a", "abc"], prompts=["q"] * 2))]
    >>> merge_outputs(parts, 3) == one(["a", "ab", "abc"], prompts=["q"] * 3)
    True
    """
    total: list[float] = [0.0] * n
    per_reward: dict[str, list[float | None]] = {}
    counts: dict[str, float] = {}
    for rows, out in parts:
        for i, value in zip(rows, out.total, strict=True):
            total[i] = value
        for key, values in out.per_reward.items():
            merged = per_reward.setdefault(key, [None] * n)
            for i, value in zip(rows, values, strict=True):
                merged[i] = value
        for name, value in out.metrics.items():
            if not name.endswith(_SUMMARIES):
                counts[name] = counts.get(name, 0.0) + value
    metrics: dict[str, float] = {}
    for key, values in per_reward.items():
        metrics.update(summarize(f"reward/{key}", values))
    metrics.update(counts)
    metrics.update(summarize("reward/total", total))
    return RewardOutput(total, per_reward, metrics)


def reward_name(fn: Any) -> str:
    """The name a plain reward's metrics go under: its function or class name."""
    return getattr(fn, "__name__", None) or type(fn).__name__


class RewardFunctions:
    """Plain rewards as a RewardSource: each called on the whole batch, totals summed with
    weight 1, metrics under ``reward/<function name>/...``.

    >>> def short(completions, *, prompts, **columns):
    ...     return [1.0 if len(c) < 3 else 0.0 for c in completions]
    >>> RewardFunctions([short])(["ab", "abcd"], prompts=["q", "q"]).total
    [1.0, 0.0]
    """

    def __init__(self, fns: Sequence[RewardFn]) -> None:
        if not fns:
            raise ValueError("give at least one reward function")
        bad = [fn for fn in fns if not callable(fn)]
        if bad:
            raise TypeError(
                f"rewards must be callables fn(completions, *, prompts, **columns); got {bad[0]!r}"
            )
        keys = [reward_name(fn) for fn in fns]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(
                f"reward functions {twice} share a name, which names their metrics; rename one"
            )
        self.fns = dict(zip(keys, fns, strict=True))

    def __call__(
        self, completions: Sequence[Any], *, prompts: Sequence[Any], **columns: Any
    ) -> RewardOutput:
        n = len(completions)
        per_reward = {
            key: check_values(key, fn(completions, prompts=prompts, **columns), n)
            for key, fn in self.fns.items()
        }
        return combine(per_reward, dict.fromkeys(per_reward, 1.0), n)


class _SourceOrReward:
    """A single callable: a RewardSource when it returns a RewardOutput-like object (total,
    per_reward, metrics), a plain reward when it returns a list."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(
        self, completions: Sequence[Any], *, prompts: Sequence[Any], **columns: Any
    ) -> RewardOutput:
        out = self.fn(completions, prompts=prompts, **columns)
        if all(hasattr(out, a) for a in ("total", "per_reward", "metrics")):
            return out
        key = reward_name(self.fn)
        return combine(
            {key: check_values(key, out, len(completions))}, {key: 1.0}, len(completions)
        )


def as_reward_source(rewards: RewardFn | Sequence[RewardFn] | RewardSource) -> RewardSource:
    """What the trainer scores with, from a reward, a list of rewards, or a RewardSource."""
    if isinstance(rewards, (list, tuple)):
        return RewardFunctions(rewards)
    if isinstance(rewards, (RewardFunctions, _SourceOrReward)):
        return rewards
    if not callable(rewards):
        raise TypeError(
            f"rewards must be a reward function, a list of them or a RewardSet; "
            f"got {type(rewards).__name__}"
        )
    return _SourceOrReward(rewards)


def reward_columns(
    rows: Sequence[Mapping[str, Any]],
    names: Sequence[str] | None = None,
    exclude: Sequence[str] = ("prompt",),
) -> dict[str, list[Any]]:
    """Dataset rows as the reward's keyword columns: one list per column, None where a row
    lacks it. ``names`` default to every key of any row, less ``exclude``.

    >>> reward_columns([{"prompt": "q", "answer": "4"}, {"prompt": "r"}])
    {'answer': ['4', None]}
    """
    if names is None:
        names = sorted({k for row in rows for k in row} - set(exclude))
    return {k: [row.get(k) for row in rows] for k in names}
