"""`stage: sft`: supervised fine-tuning with TRL's SFTTrainer (R1 stage 1 and stage 3's retraining).

DeepSeek-R1 (section 2.3.1) starts RL from a model fine-tuned on a small set of long
chain-of-thought demos in its template ("cold start"), and stage 3 retrains on the data kept by
rejection sampling. Both are plain SFT on prompt/completion pairs: the prompt is the chat
messages, the completion the assistant's reply, so TRL renders both with the model's chat
template and puts the loss on the completion tokens only. The training harness (resume, atomic
save, metrics) is `pipelines.stages.trainer_harness`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.config import ConfigError, to_dict
from pipelines.data import DataConfig, load_rows
from pipelines.hub import check_push, push_model
from pipelines.models import resolve_model
from pipelines.recipe import register_stage
from pipelines.stages.trainer_harness import TrainConfig, finished_result, fit_trainer, write_result


def _cold_start_data() -> DataConfig:
    return DataConfig(path="builtin:addition", num_rows=2000)


@dataclass(frozen=True)
class SFTStageConfig:
    model: str = "bundled:tiny-char"  # bundled:NAME, a local HF directory, or a hub name
    output_dir: str = "runs/sft"  # checkpoints/, metrics.jsonl, result.json, model/
    data: DataConfig = field(default_factory=_cold_start_data)
    completion_column: str = (
        "solution"  # the reference reply (an R1-format completion for cold start)
    )
    train: TrainConfig = field(default_factory=TrainConfig)
    push_to_hub: str | None = None  # hub repo id the final model is uploaded to (needs internet)

    def __post_init__(self) -> None:
        if not self.completion_column:
            raise ValueError(
                "completion_column must name the column holding the reference reply, e.g. solution"
            )


def _check_data(config: SFTStageConfig) -> None:
    sft_examples(load_rows(config.data), config.completion_column)


@register_stage(
    "sft",
    SFTStageConfig,
    "supervised fine-tuning on prompt/completion rows (TRL SFTTrainer)",
    check_data=_check_data,
    seed_fields=("train.seed",),
)
def run(
    config: SFTStageConfig, *, fresh: bool = False, resume_from: str | None = None
) -> dict[str, Any]:
    rows = load_rows(config.data)  # data problems fail here, before any model loads
    if config.push_to_hub:
        check_push(config.push_to_hub)
    result = train_sft(
        config.model,
        rows,
        config.train,
        config.output_dir,
        completion_column=config.completion_column,
        fresh=fresh,
        stage_config=to_dict(config),
        resume_from=resume_from,
    )
    if config.push_to_hub:
        result["hub_url"] = push_model(Path(result["model"]), config.push_to_hub)
    return result


def sft_examples(rows: list[dict[str, Any]], completion_column: str) -> list[dict[str, Any]]:
    """Conversational prompt/completion examples; rows without a completion are skipped.

    >>> rows = [{"prompt": [{"role": "user", "content": "1+1"}], "solution": "2"}]
    >>> sft_examples(rows, "solution")[0]["completion"]
    [{'role': 'assistant', 'content': '2'}]
    """
    if rows and not any(completion_column in row for row in rows):
        raise ConfigError(
            f"completion_column {completion_column!r} is not a column of the data "
            f"(columns: {', '.join(sorted(rows[0]))}); set completion_column=NAME"
        )
    examples = []
    for row in rows:
        completion = row.get(completion_column)
        if completion is None or completion == "":
            continue
        if isinstance(completion, str):
            completion = [{"role": "assistant", "content": completion}]
        examples.append({"prompt": row["prompt"], "completion": completion})
    return examples


def train_sft(
    model: str,
    rows: list[dict[str, Any]],
    config: TrainConfig,
    output_dir: str | Path,
    *,
    completion_column: str = "solution",
    fresh: bool = False,
    stage_config: dict[str, Any] | None = None,
    resume_from: str | None = None,
) -> dict[str, Any]:
    """Fine-tune `model` on `rows` and write `output_dir/model`; resumes from the last checkpoint.

    A finished run (its model and `result.json` written for the same `stage_config`) is not
    repeated: its result is returned. `fresh=True` deletes checkpoints and outputs first.
    """
    import datasets
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    out = Path(output_dir)
    identity = stage_config if stage_config is not None else to_dict(config)
    done = finished_result(out, identity, fresh=fresh)
    if done is not None and resume_from is None:
        return done
    examples = sft_examples(rows, completion_column)
    if not examples:
        raise ConfigError(f"no rows with a {completion_column!r} completion to train on")
    model_path = resolve_model(model)

    def make_trainer(arguments: dict[str, Any], callbacks: list[Any]) -> Any:
        # Loss on the reply only (R1 cold start trains the answer, not the question).
        args = SFTConfig(**arguments, completion_only_loss=True)
        return SFTTrainer(
            model=model_path,
            args=args,
            train_dataset=datasets.Dataset.from_list(examples),
            processing_class=AutoTokenizer.from_pretrained(model_path),
            callbacks=callbacks,
        )

    _, metrics = fit_trainer(
        make_trainer, config, out, prefix="sft", examples=len(examples), resume_from=resume_from
    )
    metrics["train/examples"] = float(len(examples))
    return write_result(out, identity, metrics)
