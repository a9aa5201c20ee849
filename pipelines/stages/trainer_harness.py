"""The harness every stage that trains with a transformers/TRL `Trainer` shares (`sft`,
`reward_model`, `rejection_sampling`): its optimisation settings (`TrainConfig`), resuming from
the last whole checkpoint, an atomic final save, a reused result for an unchanged config, and
metrics forwarded to r1kit's logger.

Layout of a stage's `output_dir`: `checkpoints/` (Trainer checkpoints: weights, optimizer,
scheduler, RNG states and step, so a rerun resumes at the last whole one), `metrics.jsonl`,
`result.json`, and the final `model/` (written to `model.tmp` and renamed, so it is either whole
or absent).
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from grpo.files import remove, replace_dir, write_json_atomic
from pipelines.config import ConfigError
from pipelines.distributed import barrier, is_main_process

Scheduler = Literal["constant", "constant_with_warmup", "linear", "cosine"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of a TRL trainer run: `stage: sft`, `reward_model`,
    `rejection_sampling`.

    The defaults suit the CPU quickstart on `bundled:tiny-char` (about 0.1M parameters, a
    randomly initialised model): a large learning rate and a few hundred steps. For a pretrained
    model use a learning rate near 1e-5 (R1-style SFT of 1.5B-7B models uses 1e-5 to 5e-5).
    """

    max_steps: int | None = 250  # optimizer steps; None: train `epochs` passes over the data
    epochs: float = 1.0  # used only when max_steps is None
    learning_rate: float = 3e-3
    lr_scheduler: Scheduler = "linear"  # linear decay to 0 over the run
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    # Sequences per micro-batch across all processes (each takes batch_size / processes), so a run
    # trains the same whatever the number of processes; per optimizer step: x grad_accum.
    batch_size: int = 32
    grad_accum: int = (
        1  # micro-batches per optimizer step; effective batch = batch_size * grad_accum
    )
    max_length: int = 512  # prompt + completion tokens; longer rows are truncated at the end
    dtype: Literal["float32", "bfloat16"] = "float32"  # bfloat16: mixed precision on GPUs
    gradient_checkpointing: bool = False
    # torch CPU threads while training (None: leave torch's setting); restored afterwards. A
    # 0.1M-parameter model is faster on 1 thread, the more so when other processes share the cores.
    num_threads: int | None = None
    seed: int = 0
    save_every: int = 100  # steps between checkpoints (the last step is always saved)
    keep_checkpoints: int = 2
    log_every: int = 10  # steps between metric lines
    report_to: list[str] = field(
        default_factory=lambda: ["console", "jsonl"]
    )  # r1kit MetricsLogger backends
    wandb_project: str = "r1kit"  # wandb project and run name (with `wandb` in report_to)
    run_name: str | None = None

    def __post_init__(self) -> None:
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(
                f"max_steps={self.max_steps} must be at least 1, or null to train by epochs"
            )
        if self.max_steps is None and self.epochs <= 0:
            raise ValueError(f"epochs={self.epochs} must be > 0 when max_steps is null")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate={self.learning_rate} must be > 0")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio={self.warmup_ratio} must be in [0, 1)")
        for name in ("batch_size", "grad_accum", "save_every", "keep_checkpoints", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(
                f"num_threads={self.num_threads} must be at least 1, or null for torch's default"
            )
        if self.max_length < 8:
            raise ValueError(f"max_length={self.max_length} is too small; use at least 8 tokens")
        from grpo.metrics import check_report_to

        check_report_to(self.report_to)


def finished_result(out: Path, identity: dict[str, Any], *, fresh: bool) -> dict[str, Any] | None:
    """The saved result of a finished run of the same config, else None; `fresh` wipes the
    directory's training outputs first."""
    if fresh:
        if is_main_process():
            for stale in (
                "checkpoints",
                "model",
                "model.tmp",
                "model.old",
                "result.json",
                "metrics.jsonl",
            ):
                remove(out / stale)
        barrier()
        return None
    final, result_path = out / "model", out / "result.json"
    if final.is_dir() and result_path.is_file():
        previous = json.loads(result_path.read_text())
        if previous.get("config") == identity:
            return {"model": str(final), "metrics": previous["metrics"]}
    return None


def write_result(out: Path, identity: dict[str, Any], metrics: dict[str, float]) -> dict[str, Any]:
    if is_main_process():
        write_json_atomic(out / "result.json", {"config": identity, "metrics": metrics})
    barrier()
    return {"model": str(out / "model"), "metrics": metrics}


def fit_trainer(
    make_trainer: Any,
    config: TrainConfig,
    out: Path,
    *,
    prefix: str,
    examples: int,
    resume_from: str | None = None,
) -> tuple[Any, dict[str, float]]:
    """Build a transformers/TRL trainer with `make_trainer(arguments, callbacks)` over `examples`
    training rows, train it (resuming from `resume_from`, else the last checkpoint in
    `out/checkpoints`), and write `out/model` atomically.

    Metrics go to r1kit's MetricsLogger as `{prefix}/...`; returns the trainer and the run's
    summary metrics.
    """
    from transformers import PrinterCallback

    from grpo.checkpoint import truncate_jsonl
    from grpo.metrics import MetricsLogger
    from grpo.threads import torch_threads

    check_one_batch(examples, config, prefix)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = out / "checkpoints"
    if is_main_process():
        last_complete_checkpoint(checkpoints, remove_torn=True)
    barrier()
    resume, step = last_complete_checkpoint(checkpoints)
    if resume_from is not None:
        resume = Path(resume_from)
        step = json.loads((resume / "trainer_state.json").read_text())["global_step"]
    # Rows a killed run logged after its last checkpoint: the resumed run logs those steps again.
    if is_main_process():
        truncate_jsonl(out / "metrics.jsonl", step)
    logger = MetricsLogger(
        out,
        backends=tuple(config.report_to),
        project=config.wandb_project,
        run_name=config.run_name,
        enabled=is_main_process(),
    )
    forward = metrics_callback(logger, prefix)
    with torch_threads(config.num_threads):
        try:
            trainer = make_trainer(
                {"output_dir": str(checkpoints), **trainer_arguments(config)}, [forward]
            )
            trainer.remove_callback(
                PrinterCallback
            )  # our logger prints; avoid a second copy of each line
            if resume:
                logger.text(f"{prefix}: resuming from {resume}")
            start = time.perf_counter()
            output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
            seconds = time.perf_counter() - start
            save_model_atomically(trainer, out / "model")
        finally:
            forward.on_train_end(None, None, None)  # closes the progress bar if training raised
            logger.close()
    steps_run = trainer.state.global_step - forward.first_step
    metrics = {
        "train/loss": float(output.training_loss),  # mean over this process's steps
        "train/last_loss": forward.last.get(
            f"{prefix}/loss", float("nan")
        ),  # the last logged window
        "train/steps": float(trainer.state.global_step),
        "time/train": seconds,
        "perf/steps_per_s": steps_run / seconds if seconds > 0 else 0.0,
    }
    return trainer, metrics


def check_one_batch(examples: int, config: TrainConfig, what: str) -> None:
    """Incomplete batches are dropped (`dataloader_drop_last`), so fewer rows than one batch would
    train zero steps and save the starting model unchanged: refuse instead."""
    if examples < config.batch_size:
        raise ConfigError(
            f"{what}: {examples} training rows, fewer than one batch (train.batch_size="
            f"{config.batch_size}); lower train.batch_size or provide more rows"
        )


def last_complete_checkpoint(
    checkpoints: Path, *, remove_torn: bool = False
) -> tuple[Path | None, int]:
    """The newest whole Trainer checkpoint in `checkpoints` and its step ((None, 0) if none).

    transformers writes `checkpoint-N/` in place, `trainer_state.json` last; a run killed while
    writing leaves a directory without it, which the Trainer would refuse to resume from. Such
    directories are skipped, and removed with `remove_torn` (by one process only).
    """
    steps = {
        path: path.name.removeprefix("checkpoint-") for path in checkpoints.glob("checkpoint-*")
    }
    found = [(int(step), path) for path, step in steps.items() if step.isdigit() and path.is_dir()]
    for step, path in sorted(found, reverse=True):
        try:
            json.loads((path / "trainer_state.json").read_text())
            return path, step
        except (OSError, ValueError):
            if remove_torn:
                shutil.rmtree(path, ignore_errors=True)  # torn by a kill mid-save
    return None, 0


def trainer_arguments(config: TrainConfig) -> dict[str, Any]:
    """TRL `SFTConfig` keyword arguments for r1kit's SFT settings.

    Integrations (wandb, tensorboard, ...) are off on the transformers side: metrics go through
    r1kit's MetricsLogger, which honours `report_to`. No hub access is attempted.
    """
    steps = (
        {"max_steps": config.max_steps}
        if config.max_steps is not None
        else {"num_train_epochs": config.epochs}
    )
    return {
        **steps,
        "learning_rate": config.learning_rate,
        "lr_scheduler_type": config.lr_scheduler,
        "warmup_steps": config.warmup_ratio,  # transformers reads a value below 1 as a ratio
        "weight_decay": config.weight_decay,
        "max_grad_norm": config.max_grad_norm,
        "per_device_train_batch_size": per_process(config.batch_size),
        "gradient_accumulation_steps": config.grad_accum,
        "max_length": config.max_length,
        "bf16": config.dtype == "bfloat16",
        "fp16": False,
        "use_cpu": not _cuda(),  # transformers refuses bf16 autocast on CPU unless told
        "gradient_checkpointing": config.gradient_checkpointing,
        "model_init_kwargs": {"dtype": "float32"},  # master weights stay fp32; bf16 is autocast
        "seed": config.seed,
        "data_seed": config.seed,
        "save_strategy": "steps",
        "save_steps": config.save_every,
        "save_total_limit": config.keep_checkpoints,
        "logging_steps": config.log_every,
        "report_to": "none",
        "disable_tqdm": True,
        "push_to_hub": False,
        "dataloader_num_workers": 0,
        # A short last batch would be split unevenly across processes (accelerate pads it with
        # repeated rows); dropping it keeps every optimizer step the same for any process count.
        "dataloader_drop_last": True,
    }


def per_process(batch_size: int) -> int:
    """This process's share of a global batch size."""
    from pipelines.distributed import launched_processes

    world = launched_processes()
    if batch_size % world:
        raise ConfigError(
            f"train.batch_size={batch_size} must be divisible by the number of processes ({world})"
        )
    return batch_size // world


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def save_model_atomically(trainer: Any, final: Path) -> None:
    """`trainer.save_model` into `final.tmp`, then swap it in, so `final` is whole or absent.

    Every process takes part in the save (under FSDP it gathers the weights); only the main
    process touches the directories, between barriers, so no process sees a half-moved model.
    """
    staging = final.with_name(final.name + ".tmp")
    main, wait = trainer.accelerator.is_main_process, trainer.accelerator.wait_for_everyone
    if main:
        remove(staging)
    wait()
    trainer.save_model(str(staging))  # weights, config, generation config, tokenizer
    wait()
    if main:
        for card in ("README.md", "training_args.bin"):
            (staging / card).unlink(missing_ok=True)
        replace_dir(staging, final)
    wait()


def metrics_callback(logger: Any, prefix: str) -> Any:
    """A `TrainerCallback` that forwards the Trainer's logs to r1kit's MetricsLogger as
    `{prefix}/loss`, `{prefix}/learning_rate`, ... and drives its progress bar (built on first use,
    so that loading recipes does not import transformers)."""
    from transformers import TrainerCallback

    class _Forward(TrainerCallback):
        def __init__(self) -> None:
            self.first_step = 0
            self.last: dict[str, float] = {}
            self._stack = ExitStack()
            self._bar: Any = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.first_step = state.global_step
            self._bar = self._stack.enter_context(
                logger.progress(state.max_steps, prefix, state.global_step)
            )

        def on_step_end(self, args, state, control, **kwargs):
            if self._bar is not None:
                self._bar.advance(1)

        def on_log(self, args, state, control, logs=None, **kwargs):
            # Figures that cover only this process's part of a resumed run are left out: TRL's
            # `num_tokens` restarts from zero on resume, and the end-of-training summary
            # (`train_loss`, `train_runtime`, ...) averages over the steps since the resume.
            values = {
                f"{prefix}/{k}": v
                for k, v in (logs or {}).items()
                if isinstance(v, (int, float))
                and not isinstance(v, bool)
                and k != "num_tokens"
                and not k.startswith("train_")
            }
            self.last.update(values)
            logger.log(state.global_step, values)

        def on_train_end(self, args, state, control, **kwargs):
            self._stack.close()
            self._bar = None

    return _Forward()
