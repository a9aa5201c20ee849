"""``r1kit score --rewards REWARDS.yaml --data completions.jsonl``: score a file of
completions with a reward recipe and print a per-reward table, to debug rewards before
training. REWARDS.yaml is a list of ``{name, weight, params}``; each JSONL row has
``completion``, ``prompt`` and any other dataset columns (``answer``, ``tests``, ...).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from grpo.reward import RewardError, check_values, reward_columns, summarize
from rewards.combine import RewardSet


def load_specs(path: Path) -> RewardSet:
    import yaml

    data = yaml.safe_load(path.read_text())
    if not isinstance(data, list):
        raise TypeError(
            f"{path}: expected a YAML list of {{name, weight, params}}, got {type(data).__name__}"
        )
    return RewardSet(data)


def load_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path}:{line_no}: not valid JSON ({err.msg} at column {err.colno})"
            ) from err
        if not isinstance(row, dict) or "completion" not in row:
            raise ValueError(f"{path}:{line_no}: row has no 'completion' field")
        rows.append(row)
    return rows


def score_rows(reward_set: RewardSet, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Score each row alone with each reward, timing it: one summary dict per reward."""
    columns = reward_columns(rows, exclude=("completion", "prompt"))
    results = []
    for spec in reward_set.specs:
        fn = reward_set.fns[spec.key]
        values: list[float | None] = []
        times: list[tuple[float, int]] = []
        errors: list[str] = []
        for i, row in enumerate(rows):
            row_columns = {k: v[i : i + 1] for k, v in columns.items()}
            start = time.perf_counter()
            try:
                values.extend(
                    check_values(
                        spec.key,
                        fn([row["completion"]], prompts=[row.get("prompt", "")], **row_columns),
                        1,
                    )
                )
            except Exception as err:  # noqa: BLE001  (reported in the table, like on_error=skip)
                values.append(None)
                errors.append(f"row {i}: {type(err).__name__}: {err}")
            times.append((time.perf_counter() - start, i))
        summary = summarize("", values)
        results.append(
            {
                "name": spec.key,
                "weight": spec.weight,
                "mean": summary.get("/mean"),
                "std": summary.get("/std"),
                "none_rate": summary["/none_rate"],
                "errors": errors,
                "slowest": sorted(times, reverse=True)[:3],
                "values": values,
            }
        )
    return results


def render(results: list[dict[str, Any]], n_rows: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"rewards over {n_rows} rows")
    for column in (
        "reward",
        "weight",
        "mean",
        "std",
        "None-rate",
        "errors",
        "slowest items (row: s)",
    ):
        table.add_column(column)

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    for r in results:
        slowest = ", ".join(f"{i}: {t:.3f}" for t, i in r["slowest"])
        table.add_row(
            r["name"],
            f"{r['weight']:g}",
            fmt(r["mean"]),
            fmt(r["std"]),
            f"{r['none_rate']:.0%}",
            str(len(r["errors"])),
            slowest,
        )
    console = Console()
    console.print(table)
    for r in results:
        for error in r["errors"][:5]:
            console.print(f"[red]{r['name']}[/red] {error}")


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``r1kit score``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="r1kit score", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rewards", type=Path, required=True, help="YAML list of {name, weight, params}"
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="JSONL with completion, prompt, columns"
    )
    args = parser.parse_args(argv)
    try:
        reward_set = load_specs(args.rewards)
        rows = load_rows(args.data)
    except (OSError, TypeError, ValueError, RewardError) as err:
        parser.error(str(err))
    render(score_rows(reward_set, rows), len(rows))
    return 0
