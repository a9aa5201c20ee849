"""`stage: reward_model`: train a scalar reward model on preference pairs with TRL's RewardTrainer.

DeepSeek-R1 (section 2.3.4) judges general prompts with reward models: helpfulness on the final
answer, harmlessness on the whole response. This stage trains one: a sequence-classification
model with one output, initialised from a causal LM (the score head starts random), with the
Bradley-Terry loss `-log sigmoid(r(chosen) - r(rejected))` (InstructGPT eq. 1).

The model sees exactly what the `reward_model` reward (rewards/reward_model.py) gives it at RL
time: the tokenizer's pair encoding of (prompt text, judged text), where the judged text is the
answer block (`judge: answer`) or the whole response (`judge: response`). Pairs are tokenized
here that way, so training and scoring agree.

Output: `output_dir/model` (loadable by `rewards.get("reward_model", model=...)`), checkpoints,
`metrics.jsonl` and `result.json` with held-out preference accuracy.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from grpo.engines import ensure_pad_token
from pipelines.config import ConfigError, to_dict
from pipelines.data import DataConfig, load_rows
from pipelines.models import resolve_model
from pipelines.recipe import register_stage
from pipelines.stages.trainer_harness import TrainConfig, finished_result, fit_trainer, write_result
from rewards.reward_model import judged_text, prompt_text  # the reward's own input format


def _preference_data() -> DataConfig:
    return DataConfig(path="builtin:preferences", num_rows=2000)


def _rm_training() -> TrainConfig:
    return TrainConfig(max_steps=300, learning_rate=1e-3, batch_size=32, max_length=256)


@dataclass(frozen=True)
class RewardModelStageConfig:
    model: str = (
        "bundled:tiny-char"  # a causal LM to start from: bundled:NAME, a directory or a hub name
    )
    output_dir: str = "runs/reward_model"  # checkpoints/, metrics.jsonl, result.json, model/
    data: DataConfig = field(default_factory=_preference_data)
    chosen_column: str = "chosen"
    rejected_column: str = "rejected"
    judge: Literal["answer", "response"] = (
        "answer"  # what the reward scores: answer block or whole reply
    )
    eval_fraction: float = 0.1  # held-out share of pairs for the preference accuracy in result.json
    train: TrainConfig = field(default_factory=_rm_training)

    def __post_init__(self) -> None:
        if not 0 <= self.eval_fraction < 1:
            raise ValueError(f"eval_fraction={self.eval_fraction} must be in [0, 1)")


def _check_data(config: RewardModelStageConfig) -> None:
    check_pair_columns(load_rows(config.data), config)


@register_stage(
    "reward_model",
    RewardModelStageConfig,
    "train a reward model on preference pairs (TRL RewardTrainer)",
    generative=False,
    check_data=_check_data,
    seed_fields=("train.seed",),
)
def run(config: RewardModelStageConfig, *, fresh: bool = False) -> dict[str, Any]:
    from transformers import AutoTokenizer

    out = Path(config.output_dir)
    identity = to_dict(config)
    done = finished_result(out, identity, fresh=fresh)
    if done is not None:
        return done
    rows = load_rows(config.data)  # data problems fail here, before any model loads
    check_pair_columns(rows, config)
    model_path = resolve_model(config.model)
    tokenizer = ensure_pad_token(AutoTokenizer.from_pretrained(model_path))  # as the reward does
    pairs = tokenize_pairs(rows, tokenizer, config)
    train, held_out = split_pairs(pairs, config.eval_fraction, config.train.seed)
    trainer, metrics = fit_trainer(
        _trainer_factory(model_path, tokenizer, train),
        config.train,
        out,
        prefix="reward_model",
        examples=len(train),
    )
    metrics["train/pairs"] = float(len(train))
    if held_out:
        metrics.update(preference_accuracy(trainer.model, held_out, tokenizer.pad_token_id))
    return write_result(out, identity, metrics)


def _trainer_factory(model_path: str, tokenizer: Any, pairs: list[dict[str, Any]]) -> Any:
    def make_trainer(arguments: dict[str, Any], callbacks: list[Any]) -> Any:
        import datasets
        from trl import RewardConfig, RewardTrainer

        # disable_dropout: TRL's default; the score must not depend on dropout noise.
        args = RewardConfig(**arguments, disable_dropout=True)
        # Given a path, RewardTrainer loads AutoModelForSequenceClassification(num_labels=1) and
        # mirrors the tokenizer's pad token onto the model config (the head pools at the last
        # non-pad token, so pad_token_id must be set).
        return RewardTrainer(
            model=model_path,
            args=args,
            train_dataset=datasets.Dataset.from_list(pairs),
            processing_class=tokenizer,
            callbacks=callbacks,
        )

    return make_trainer


def check_pair_columns(rows: list[dict[str, Any]], config: RewardModelStageConfig) -> None:
    for column in (config.chosen_column, config.rejected_column):
        if rows and column not in rows[0]:
            raise ConfigError(
                f"data {config.data.path} has no {column!r} column (columns: "
                f"{', '.join(sorted(rows[0]))}); set chosen_column/rejected_column"
            )


def tokenize_pairs(
    rows: list[dict[str, Any]], tokenizer: Any, config: RewardModelStageConfig
) -> list[dict[str, Any]]:
    """`{"chosen_ids", "rejected_ids"}` per row, encoded as the `reward_model` reward encodes its
    inputs: `tokenizer(prompt_text, judged_text(reply, judge))`, truncated to `max_length`."""
    check_pair_columns(rows, config)

    def encode(prompt: Any, reply: Any) -> list[int]:
        if isinstance(reply, list):  # conversational: the assistant message's content
            reply = next(
                (m.get("content", "") for m in reversed(reply) if m.get("role") == "assistant"), ""
            )
        return tokenizer(
            prompt_text(prompt),
            judged_text(str(reply), config.judge),
            truncation=True,
            max_length=config.train.max_length,
        )["input_ids"]

    return [
        {
            "chosen_ids": encode(row["prompt"], row[config.chosen_column]),
            "rejected_ids": encode(row["prompt"], row[config.rejected_column]),
        }
        for row in rows
    ]


def split_pairs(pairs: list[dict[str, Any]], eval_fraction: float, seed: int) -> tuple[list, list]:
    """(train, held_out): a seeded shuffle, the last `eval_fraction` held out."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_eval = int(len(pairs) * eval_fraction)
    shuffled = [pairs[i] for i in order]
    return shuffled[: len(pairs) - n_eval], shuffled[len(pairs) - n_eval :]


def preference_accuracy(
    model: Any, pairs: list[dict[str, Any]], pad_id: int, batch_size: int = 64
) -> dict[str, float]:
    """Share of held-out pairs where r(chosen) > r(rejected), and the mean margin."""
    import torch

    def scores(batch: list[list[int]]) -> torch.Tensor:
        width = max(len(ids) for ids in batch)
        input_ids = torch.tensor([ids + [pad_id] * (width - len(ids)) for ids in batch])  # (B, T)
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in batch])
        return model(
            input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device)
        ).logits[:, 0]

    was_training = model.training
    model.eval()
    wins, margins = 0, 0.0
    with torch.inference_mode():
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            margin = scores([p["chosen_ids"] for p in chunk]) - scores(
                [p["rejected_ids"] for p in chunk]
            )  # (B,)
            wins += int((margin > 0).sum())
            margins += float(margin.sum())
    model.train(was_training)
    return {
        "eval/preference_accuracy": wins / len(pairs),
        "eval/margin": margins / len(pairs),
        "eval/pairs": float(len(pairs)),
    }
