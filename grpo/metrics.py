"""One metrics logger for every stage: console (rich), JSONL, TensorBoard, and wandb if installed.

Keys are slash-separated families, e.g. `reward/accuracy/mean`, `time/generate`. Only the main
process (rank 0) writes; other ranks get a logger that does nothing.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

BACKENDS = ("console", "jsonl", "tensorboard", "wandb")


def check_report_to(backends: Sequence[str]) -> None:
    """Raise ValueError (naming `report_to`) for an unknown backend or a missing package, so a
    recipe fails when it is loaded rather than after the model has loaded."""
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        raise ValueError(
            f"report_to={list(backends)}: unknown backend {unknown[0]!r}; "
            f"choose from {', '.join(BACKENDS)}"
        )
    if "wandb" in backends and importlib.util.find_spec("wandb") is None:
        raise ValueError(
            "report_to: 'wandb' needs the wandb package; run `pip install wandb` "
            "or drop wandb from report_to"
        )


class MetricsLogger:
    """Write a flat dict of floats per step to each configured backend."""

    def __init__(
        self,
        log_dir: str | Path,
        backends: tuple[str, ...] = ("console", "jsonl", "tensorboard"),
        *,
        enabled: bool = True,
        console_keys: tuple[str, ...] = (),
        project: str = "r1kit",
        run_name: str | None = None,
    ):
        check_report_to(backends)
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.console_keys = console_keys
        self.log_dir = Path(log_dir)
        self._jsonl = self._tb = self._wandb = None
        self._show_console = "console" in backends
        if not enabled:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if "jsonl" in backends:
            self._jsonl = open(self.log_dir / "metrics.jsonl", "a", buffering=1)  # noqa: SIM115
        if "tensorboard" in backends:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.log_dir / "tensorboard"))
        if "wandb" in backends:
            self._wandb = _start_wandb(project, run_name, self.log_dir)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in metrics.items() if v is not None}
        if self._jsonl is not None:
            self._jsonl.write(json.dumps({"step": step, **clean}) + "\n")
        if self._tb is not None:
            for key, value in clean.items():
                if math.isfinite(value):
                    self._tb.add_scalar(key, value, step)
        if self._wandb is not None:
            self._wandb.log(clean, step=step)
        if self._show_console:
            # soft_wrap: one line per step, also when stderr is a file rich would wrap at 80 columns
            self.console.print(_console_line(step, clean, self.console_keys), soft_wrap=True)

    def text(self, message: str) -> None:
        if self.enabled and self._show_console:
            self.console.print(message, soft_wrap=True, markup=False, highlight=False)

    @contextmanager
    def progress(self, total: int, description: str, completed: int = 0) -> Iterator[ProgressBar]:
        """A rich progress bar with ETA, for one task: `bar.advance(n)` moves it on."""
        bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not (self.enabled and self._show_console),
            transient=False,
        )
        with bar:
            yield ProgressBar(bar, bar.add_task(description, total=total, completed=completed))

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


@dataclass(frozen=True)
class ProgressBar:
    """One task of a rich `Progress` display."""

    progress: Progress
    task: TaskID

    def advance(self, n: float = 1) -> None:
        self.progress.advance(self.task, n)


def _start_wandb(project: str, run_name: str | None, log_dir: Path) -> Any:
    try:
        import wandb
    except ImportError as exc:
        raise ValueError("logging backend 'wandb' needs `pip install wandb`") from exc
    return wandb.init(project=project, name=run_name, dir=str(log_dir))


def _console_line(step: int, metrics: Mapping[str, float], keys: tuple[str, ...]) -> str:
    """`step N  key=value ...` for the metrics `keys` selects (all when empty). A key may be a
    shell-style pattern, `reward/*/mean`, so every reward's mean shows, custom rewards included."""
    names: list[str] = []
    for key in keys or tuple(metrics):
        if key in metrics:
            matches = [key]
        else:
            matches = sorted(fnmatch.filter(metrics, key)) if "*" in key else []
        names += [name for name in matches if name not in names]
    shown = [(k, metrics[k]) for k in names]
    body = "  ".join(f"{k}={_fmt(v)}" for k, v in shown)
    return f"[cyan]step {step}[/cyan]  {body}"


def _fmt(value: float) -> str:
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.2e}"


class Timer:
    """Accumulates wall time per named phase: `with timer("generate"): ...`."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.totals[name] = self.totals.get(name, 0.0) + seconds

    def pop(self) -> dict[str, float]:
        out, self.totals = {f"time/{k}": v for k, v in self.totals.items()}, {}
        return out


def max_over_processes(accelerator, value: float) -> float:
    """The largest of each process's `value` (an int stays an int)."""
    if accelerator.num_processes == 1:
        return value
    import torch

    return accelerator.reduce(
        torch.tensor(value, device=accelerator.device), reduction="max"
    ).item()


def mean_over_processes(accelerator, metrics: dict[str, float]) -> dict[str, float]:
    """Average each metric over the data-parallel processes that report it (equal shares: the
    mean of means). Processes may report different keys, e.g. a reward routed to a task that
    only some processes' prompts have this step."""
    if accelerator.num_processes == 1:
        return metrics
    import torch
    from accelerate.utils import gather_object

    gather = getattr(accelerator, "gather_object", gather_object)  # a SideGroup brings its own
    keys = sorted({key for keys in gather([sorted(metrics)]) for key in keys})
    values = torch.tensor(
        [[metrics.get(k, 0.0), float(k in metrics)] for k in keys],
        dtype=torch.float64,
        device=accelerator.device,
    )  # (K, 2): value, reported
    totals = accelerator.reduce(values, reduction="sum").tolist()
    return {k: total / count for k, (total, count) in zip(keys, totals, strict=True) if count}
