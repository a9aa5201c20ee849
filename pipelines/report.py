"""Pipeline reports: report.json, report.md and PNG plots, rebuilt from the files of a run.

Everything comes from disk: OUTPUT/manifest.json (stages, status, times), OUTPUT/eval/NAME.json
(held-out evaluation of each stage's model and of the initial model, `base`) and each stage's
metrics.jsonl. A run that was killed and resumed therefore gets the same report as one that
was not: metrics.jsonl rows logged twice for one step keep the later row, the one the resumed
run wrote.

    python -m pipelines.report runs/quickstart   # rebuild the report of a run by hand
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipelines.config import ConfigError

SKIP_PREFIXES = ("time/", "perf/")  # wall-clock figures: not training results
HEADLINE_KEY = "reward/mean"  # shown in report.md for RL stages; other stages show their loss
EVAL_COLUMNS = (
    ("pass@1", "pass@1", True),
    ("cons", "cons@K", True),
    ("format_rate", "format", True),
    ("language_consistency", "language", True),
    ("length_mean", "length", False),
    ("truncation_rate", "truncated", True),
)
# Per-task scores: a column only when some stage's evaluation has it (see pipelines.evaluate).
TASK_COLUMNS = (
    ("code_tests_passed", "code tests", True),
    ("helpfulness", "helpfulness", False),
    ("refusal_rate", "refusals", True),
)
# Bars of the per-stage plot: (metric, label), shown when some stage has the metric.
STAGE_BARS = (
    ("pass@1", "math pass@1"),
    ("format_rate", "format rate"),
    ("code_tests_passed", "code tests passed"),
    ("helpfulness", "helpfulness (RM)"),
    ("refusal_rate", "harmful requests refused"),
)


# ------------------------------------------------------------------------------ reading
def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a metrics.jsonl, one per step in step order. Rows logged for the same step are
    merged, later values winning: a resumed run redoing the steps after its last checkpoint
    replaces the lost run's values, and a trainer's end-of-training row joins its last step.
    A torn last line (a process killed mid-write) is skipped."""
    if not path.is_file():
        return []
    by_step: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            by_step[row["step"]] = {**by_step.get(row["step"], {}), **row}
    return [by_step[s] for s in sorted(by_step)]


def summarize_training(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """First, last and mean of every logged metric (wall-clock keys left out).

    >>> s = summarize_training([{"step": 1, "reward/mean": 0.2}, {"step": 2, "reward/mean": 0.6}])
    >>> m = s["metrics"]["reward/mean"]
    >>> s["steps"], m["last"], round(m["mean"], 3)
    (2, 0.6, 0.4)
    """
    keys: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            if (
                key != "step"
                and not key.startswith(SKIP_PREFIXES)
                and isinstance(value, (int, float))
            ):
                keys.setdefault(key, []).append(float(value))
    return {
        "steps": len(rows),
        "last_step": rows[-1]["step"] if rows else None,
        "metrics": {
            k: {"first": v[0], "last": v[-1], "mean": sum(v) / len(v)}
            for k, v in sorted(keys.items())
        },
    }


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def collect(output_dir: Path) -> dict[str, Any]:
    """The report's data: one entry for the initial model (if evaluated) and one per stage."""
    manifest = _read_json(output_dir / "manifest.json")
    if manifest is None:
        raise ConfigError(
            f"{output_dir}: no readable manifest.json; is this a pipeline output directory?"
        )
    evals = {
        p.stem: e for p in sorted((output_dir / "eval").glob("*.json")) if (e := _read_json(p))
    }
    entries: list[dict[str, Any]] = []
    if "base" in evals:
        base = evals["base"]
        entries.append(
            {
                "name": "base",
                "kind": "initial model",
                "status": "done",
                "model": base.get("model"),
                "eval": base.get("metrics"),
                "training": None,
                "seconds": None,
            }
        )
    for name in manifest.get("order", []):
        record = manifest["stages"].get(name, {})
        stage_eval = evals.get(name)
        # An eval file from an earlier run of the stage (other run id) describes another model.
        fresh_eval = stage_eval is not None and stage_eval.get("run_id") == record.get("run_id")
        metrics_file = Path(record.get("output_dir", output_dir / name)) / "metrics.jsonl"
        rows = read_metrics(metrics_file)
        entries.append(
            {
                "name": name,
                "kind": record.get("kind"),
                "status": record.get("status", "pending"),
                "model": (record.get("outputs") or {}).get("model"),
                "eval": stage_eval["metrics"] if fresh_eval else None,
                "training": summarize_training(rows) if rows else None,
                "metrics_file": str(metrics_file),
                "seconds": record.get("seconds"),
                "attempts": record.get("attempts"),
            }
        )
    return {"pipeline": manifest.get("pipeline"), "output_dir": str(output_dir), "stages": entries}


# ---------------------------------------------------------------------------- writing
def build_report(output_dir: str | Path) -> dict[str, Any]:
    """Write OUTPUT/report.json, OUTPUT/report.md and OUTPUT/plots/*.png; return the report."""
    from grpo.files import write_json_atomic, write_text_atomic

    output_dir = Path(output_dir)
    report = collect(output_dir)
    plots = []
    for entry in report["stages"]:
        rows = read_metrics(Path(entry["metrics_file"])) if entry["training"] else []
        if any(key in row for row in rows for key, _ in reward_curves(rows)):
            plots.append(
                plot_training(
                    rows,
                    output_dir / "plots" / f"{entry['name']}_training.png",
                    title=f"{entry['name']} ({entry['kind']})",
                )
            )
    if any(entry["eval"] for entry in report["stages"]):
        plots.append(plot_stages(report["stages"], output_dir / "plots" / "stages.png"))
    report["plots"] = [str(p.relative_to(output_dir)) for p in plots]
    write_json_atomic(output_dir / "report.json", report)
    write_text_atomic(output_dir / "report.md", render_markdown(report))
    return report


def stage_evals(output_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Each evaluated stage's held-out scores (`base` included), read from OUTPUT/report.json."""
    report = json.loads((Path(output_dir) / "report.json").read_text())
    return {stage["name"]: stage["eval"] for stage in report["stages"] if stage["eval"]}


def _pct(value: float | None, rate: bool) -> str:
    if value is None:
        return "n/a"  # the stage was evaluated, but the metric does not apply to its samples
    return f"{100 * value:.1f}%" if rate else f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{seconds:.1f}s"


def _headline(training: dict[str, Any] | None) -> str:
    if not training:
        return "–"
    keys = training["metrics"]
    losses = [k for k in keys if k == "loss" or k.endswith("/loss")]  # sft/loss, reward_model/loss
    key = HEADLINE_KEY if HEADLINE_KEY in keys else next(iter(losses), None)
    if key is None:
        return "–"
    return f"{key} {keys[key]['first']:.3g} → {keys[key]['last']:.3g}"


def eval_value(metrics: dict[str, Any] | None, key: str) -> float | None:
    if not metrics:
        return None
    return metrics.get(f"cons@{metrics.get('k')}") if key == "cons" else metrics.get(key)


def eval_columns(entries: Sequence[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    """The report's metric columns: the common ones, and each per-task score some stage has."""
    evals = [e["eval"] for e in entries if e["eval"]]
    return [
        *EVAL_COLUMNS,
        *(
            (key, label, rate)
            for key, label, rate in TASK_COLUMNS
            if any(m.get(key) is not None for m in evals)
        ),
    ]


def render_markdown(report: dict[str, Any]) -> str:
    entries = report["stages"]
    k = next((e["eval"]["k"] for e in entries if e["eval"]), None)
    columns = eval_columns(entries)
    header = ["stage", "kind", "status"] + [
        label.replace("K", str(k or "K")) for _, label, _ in columns
    ]
    header += ["train steps", "training", "time"]
    lines = [f"# Pipeline report: {report['pipeline']}", ""]
    evaluated = next((e["eval"] for e in entries if e["eval"]), None)
    if evaluated:
        lines += [
            (
                f"Held-out evaluation: {evaluated['prompts']} prompts x {evaluated['k']} samples "
                f"(temperature {evaluated.get('temperature')}, "
                f"max {evaluated.get('max_tokens')} tokens). "
                f"pass@1 is mean correctness, cons@{evaluated['k']} the majority-vote accuracy."
            ),
            "",
        ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for e in entries:
        cells = [e["name"], e["kind"] or "–", e["status"]]
        cells += [
            _pct(eval_value(e["eval"], key), rate) if e["eval"] else "–" for key, _, rate in columns
        ]
        steps = e["training"]["last_step"] if e["training"] else None  # logged every N steps
        cells += [
            str(steps) if steps is not None else "–",
            _headline(e["training"]),
            _duration(e["seconds"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for plot in report.get("plots", []):
        title = (
            "Held-out scores per stage"
            if plot.endswith("stages.png")
            else f"Training curves: {Path(plot).stem.removesuffix('_training')}"
        )
        lines += ["", f"## {title}", "", f"![{title}]({plot})"]
    return "\n".join(lines) + "\n"


def _figure(width: float = 6.4, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)  # Agg: no display and no global pyplot state
    return fig


def reward_curves(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(metric key, label) of the curves an RL stage's plot shows: the total reward, then the
    mean of each reward the run logged (`reward/<name>/mean`), whatever the rewards are called.

    >>> reward_curves([{"reward/mean": 1, "reward/total/mean": 1, "reward/format/mean": 1}])
    [('reward/mean', 'reward (total)'), ('reward/format/mean', 'format')]
    """
    names = sorted(
        {
            k.split("/")[1]
            for row in rows
            for k in row
            if k.startswith("reward/") and k.endswith("/mean") and k.count("/") == 2
        }
    )
    return [("reward/mean", "reward (total)")] + [
        (f"reward/{n}/mean", n) for n in names if n != "total"
    ]


def plot_training(rows: Sequence[dict[str, Any]], path: Path, *, title: str) -> Path:
    """The total reward and each reward's mean over steps, for one RL stage."""
    fig = _figure()
    ax = fig.add_subplot()
    for key, label in reward_curves(rows):
        points = [(r["step"], r[key]) for r in rows if key in r]
        if points:
            steps, values = zip(*points, strict=True)
            ax.plot(
                steps, values, marker="o" if len(points) < 30 else None, markersize=3, label=label
            )
    ax.set_xlabel("step")
    ax.set_ylabel("mean over the step's samples")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def plot_stages(entries: Sequence[dict[str, Any]], path: Path) -> Path:
    """Grouped bars: each held-out score after each stage (and of the base model), per task;
    a score a stage's evaluation lacks has no bar."""
    shown = [e for e in entries if e["eval"]]
    bars = [
        (key, label)
        for key, label in STAGE_BARS
        if any(e["eval"].get(key) is not None for e in shown)
    ]
    fig = _figure(max(5.0, (0.25 * len(bars) + 0.5) * len(shown) + 2), 4.2)
    ax = fig.add_subplot()
    width = 0.8 / len(bars)
    for i, (key, label) in enumerate(bars):
        points = [
            (x, 100 * e["eval"][key]) for x, e in enumerate(shown) if e["eval"].get(key) is not None
        ]
        xs, values = zip(*points, strict=True)
        drawn = ax.bar(
            [x + (i - (len(bars) - 1) / 2) * width for x in xs], values, width, label=label
        )
        ax.bar_label(drawn, fmt="%.0f", fontsize=7)
    ax.set_xticks(list(range(len(shown))), [e["name"] for e in shown], fontsize=8)
    ax.set_ylim(0, 118)
    ax.set_ylabel("% (helpfulness: mean reward-model score x 100)")
    ax.set_title("Held-out scores per stage")
    ax.legend(loc="upper left", fontsize=7, ncol=len(bars))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        sys.stdout.write(
            "usage: python -m pipelines.report OUTPUT_DIR  (rebuild a pipeline run's report)\n"
        )
        return 0 if args and args[0] in ("-h", "--help") else 2
    try:
        report = build_report(args[0])
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(f"wrote {Path(args[0]) / 'report.md'} ({len(report['plots'])} plots)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
