"""`stage: rejection_sampling`: R1 stage 3, rejection-sampled reasoning data plus general data,
then SFT.

DeepSeek-R1 (section 2.3.3): from the reasoning-RL checkpoint, sample several responses per
prompt, keep only correct ones, and filter out chains of thought with mixed languages, long
paragraphs and code blocks; add non-reasoning data (about 600k reasoning and 200k
non-reasoning samples in the paper); then fine-tune. R1 fine-tunes the *base* model on this
data (`init: base`), not the RL model.

Steps, each one resumable:
1. sample `k` completions per prompt with the rollout engine (vLLM by default);
2. keep a sample only if it passes every filter, in this order (the first failure is its drop
   reason in `data_stats.json`): truncated, each `keep_if` reward rule (`incorrect:<name>`),
   `mixed_language`, `overlong_paragraph`, `stray_code`, `duplicate`, `over_max_per_prompt`;
3. add non-reasoning rows (`general`, e.g. builtin:general) by count or ratio;
4. write `data.jsonl` and `data_stats.json` atomically (a rerun with the same sampling settings
   reuses them), then SFT with `pipelines.stages.sft.train_sft` into `output_dir/model`.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from grpo.engines import EngineConfig, SamplingConfig
from grpo.files import write_text_atomic
from grpo.reward import reward_columns
from pipelines.config import ConfigError, to_dict
from pipelines.data import DataConfig, load_rows
from pipelines.data_checks import check_reward_columns, gold_column
from pipelines.distributed import barrier, gather_lists, is_main_process, rank_and_world
from pipelines.recipe import register_stage
from pipelines.stages.sft import train_sft
from pipelines.stages.trainer_harness import TrainConfig
from rewards import RewardSet, RewardSpec, completion_text

_FENCE = "```"
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n|</?think>|</?answer>")  # R1 tags also end a paragraph


@dataclass(frozen=True)
class KeepRule(RewardSpec):
    """A reward spec (`name`, `params`, `alias`, `tasks`) with a threshold: keep a sample only if
    the reward scores at least `min` on it. A None score (the reward does not apply to the row,
    e.g. `code` on a math row, or `accuracy` on a row without an answer) passes."""

    min: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.weight != 1.0:
            raise ValueError(f"keep_if rule '{self.name}': a rule has a `min` score, not a weight")


def _default_rules() -> list[KeepRule]:
    # Correct (math answer; all code tests when the row has tests) and well-formed.
    return [KeepRule("accuracy"), KeepRule("code", params={"mode": "all"}), KeepRule("format")]


def _prompts() -> DataConfig:
    return DataConfig(path="builtin:addition", num_rows=256, seed=1)


def _general() -> DataConfig:
    return DataConfig(path="builtin:general", num_rows=256, seed=1)


def _sampling() -> SamplingConfig:
    return SamplingConfig(temperature=1.0, max_tokens=128, stop=("</answer>",))


@dataclass(frozen=True)
class FilterConfig:
    """Which samples survive. R1 drops mixed-language chains of thought, long paragraphs and
    code blocks in answers to non-code questions."""

    keep_if: list[KeepRule] = field(default_factory=_default_rules)
    language_threshold: float = (
        0.95  # min language_consistency of the think block (rows with a target)
    )
    language: str | None = (
        None  # target language for rows without a `language` column; None: skip them
    )
    max_paragraph_chars: int = (
        1500  # a longer paragraph (text between blank lines) drops the sample
    )
    drop_truncated: bool = True  # samples cut at max_tokens (finish_reason "length")
    max_per_prompt: int = 2  # m: distinct kept samples per prompt

    def __post_init__(self) -> None:
        if not 0 <= self.language_threshold <= 1:
            raise ValueError(f"language_threshold={self.language_threshold} must be in [0, 1]")
        if self.max_paragraph_chars < 1 or self.max_per_prompt < 1:
            raise ValueError("max_paragraph_chars and max_per_prompt must be at least 1")


@dataclass(frozen=True)
class RejectionSamplingConfig:
    model: str = "runs/reasoning_rl/model"  # the sampling model (R1: the stage-2 RL model)
    base_model: str = "bundled:tiny-char"  # trained when init is base
    init: Literal["base", "previous"] = (
        "base"  # R1 retrains the base model; previous: the sampling model
    )
    output_dir: str = "runs/rejection_sampling"  # data.jsonl, data_stats.json, checkpoints/, model/
    data: DataConfig = field(
        default_factory=_prompts
    )  # prompts to sample (with their answer/tests columns)
    k: int = 8  # samples per prompt
    sampling: SamplingConfig = field(default_factory=_sampling)  # leave n at 1: k sets it
    engine: EngineConfig = field(default_factory=EngineConfig)
    batch_prompts: int = 64  # prompts per engine call
    filters: FilterConfig = field(default_factory=FilterConfig)
    general: DataConfig | None = field(default_factory=_general)  # non-reasoning rows; null: none
    general_ratio: float = 0.33  # general rows per kept reasoning row (R1: 200k / 600k)
    general_count: int | None = None  # an exact number of general rows instead of the ratio
    completion_column: str = "solution"  # the general rows' reply column
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k={self.k} must be at least 1")
        if self.sampling.n != 1:
            raise ValueError(
                f"sampling.n={self.sampling.n}: set k (samples per prompt) instead of sampling.n"
            )
        if self.general_ratio < 0 or (self.general_count is not None and self.general_count < 0):
            raise ValueError("general_ratio and general_count must be >= 0")
        if self.batch_prompts < 1:
            raise ValueError(f"batch_prompts={self.batch_prompts} must be at least 1")


def source_rows(config: RejectionSamplingConfig) -> tuple[list[dict], list[dict]]:
    """(prompts, general rows), read and checked against the keep_if rules (no model loaded)."""
    prompts = load_rows(config.data)
    check_reward_columns(prompts, config.filters.keep_if, config.data.path, where="filters.keep_if")
    return prompts, load_rows(config.general) if config.general is not None else []


@register_stage(
    "rejection_sampling",
    RejectionSamplingConfig,
    "R1 stage 3: keep correct, readable samples, add general data, SFT",
    check_data=source_rows,
    seed_fields=("seed", "train.seed"),
)
def run(config: RejectionSamplingConfig, *, fresh: bool = False) -> dict[str, Any]:
    out = Path(config.output_dir)
    rows, stats = build_dataset(config, fresh=fresh)
    if not rows:
        raise ConfigError(
            f"rejection sampling kept no rows (see {out / 'data_stats.json'}); sample more prompts "
            f"or a larger k, loosen filters.keep_if, or add general rows"
        )
    start = config.base_model if config.init == "base" else config.model
    result = train_sft(
        start,
        rows,
        config.train,
        out,
        completion_column="solution",
        fresh=fresh,
        stage_config=to_dict(config),
    )
    return {**result, "data": str(out / "data.jsonl"), "data_stats": stats}


# ---------------------------------------------------------------------------------------------
# Data set: sample, filter, mix, write
# ---------------------------------------------------------------------------------------------


def _data_identity(config: RejectionSamplingConfig) -> dict[str, Any]:
    """The settings the data set depends on (not the SFT settings)."""
    keys = (
        "model",
        "data",
        "k",
        "sampling",
        "engine",
        "filters",
        "general",
        "general_ratio",
        "general_count",
        "completion_column",
        "seed",
    )
    return {key: to_dict(getattr(config, key)) for key in keys}


def build_dataset(
    config: RejectionSamplingConfig, *, fresh: bool = False
) -> tuple[list[dict], dict]:
    """The SFT rows and their statistics: read back from `data.jsonl` when an earlier run with the
    same data settings finished writing it, else sampled, filtered and written."""
    out = Path(config.output_dir)
    data_path, stats_path = out / "data.jsonl", out / "data_stats.json"
    identity = _data_identity(config)
    if not fresh and data_path.is_file() and stats_path.is_file():
        stats = json.loads(stats_path.read_text())
        if stats.get("config") == identity:
            return [json.loads(line) for line in data_path.read_text().splitlines() if line], stats
    from pipelines.models import resolve_model

    prompts, general_source = source_rows(config)  # checked before the sampling model loads
    # Each process samples and filters its own prompts (every filter acts within a prompt's
    # samples), then the kept samples and the counts are gathered in prompt order.
    samples = sample(resolve_model(config.model), prompts, config)
    kept, dropped, unscored = filter_samples(samples, config.filters)
    kept = sorted(gather_lists(kept), key=lambda s: s["prompt_index"])  # stable: sample order kept
    n_samples = sum(gather_lists([len(samples)]))
    dropped, unscored = (_merged(gather_lists([counts])) for counts in (dropped, unscored))
    general = general_rows(config, general_source, n_reasoning=len(kept))
    rows = [_sft_row(s) for s in kept] + general
    random.Random(config.seed).shuffle(rows)
    stats = {
        "prompts": len(prompts),
        "samples": n_samples,
        "kept": len(kept),
        "prompts_with_kept": len({s["prompt_index"] for s in kept}),
        "dropped": dict(dropped),
        "unscored": dict(unscored),  # per keep_if reward: samples it did not apply to
        "general_rows": len(general),
        "rows": len(rows),
        "config": identity,
    }
    if is_main_process():
        write_text_atomic(stats_path, json.dumps(stats, indent=2))
        # Written last: its presence marks the data set done.
        write_text_atomic(data_path, "".join(json.dumps(row) + "\n" for row in rows))
    barrier()
    return rows, stats


def _merged(counters: list[Counter]) -> Counter:
    """The counts summed; keys counted 0 stay (unlike `sum`, which drops them)."""
    total: Counter = Counter()
    for counts in counters:
        total.update(counts)
    return total


def sample(
    model_path: str, prompts: list[dict[str, Any]], config: RejectionSamplingConfig
) -> list[dict[str, Any]]:
    """k samples per prompt: `{**row, "completion", "finish_reason", "prompt_index"}`.

    Under several processes each takes every world-th batch of `batch_prompts` prompts with its
    own engine and returns its own samples. A batch's seed depends only on where it starts, so
    the samples are the same whatever the number of processes.
    """
    from grpo.engines import make_engine
    from grpo.metrics import MetricsLogger

    rank, world = rank_and_world()
    logger = MetricsLogger(config.output_dir, backends=("console",), enabled=rank == 0)
    engine = make_engine(model_path, config.engine, seed=config.seed)
    sampling = dataclasses.replace(config.sampling, n=config.k)
    starts = list(range(0, len(prompts), config.batch_prompts))
    samples = []
    with logger.progress(len(prompts), "rejection sampling") as bar:
        for start in starts[rank::world]:
            batch = prompts[start : start + config.batch_prompts]
            seed = config.sampling.seed if config.sampling.seed is not None else config.seed + start
            groups = engine.generate(
                [r["prompt"] for r in batch], dataclasses.replace(sampling, seed=seed)
            )
            for offset, (row, group) in enumerate(zip(batch, groups, strict=True)):
                samples += [
                    {
                        **row,
                        "completion": s.text,
                        "finish_reason": s.finish_reason,
                        "prompt_index": start + offset,
                    }
                    for s in group.samples
                ]
            bar.advance(len(batch) * world)
    engine.close()  # free vLLM's weights and KV cache before SFT
    return samples


def _sft_row(sample: dict[str, Any]) -> dict[str, Any]:
    row = {
        "prompt": sample["prompt"],
        "solution": sample["completion"],
        "task": sample.get("task"),
        "source": "rejection_sampling",
    }
    if sample.get("answer") is not None:
        row["answer"] = sample["answer"]
    return row


def general_rows(
    config: RejectionSamplingConfig, source: list[dict[str, Any]], *, n_reasoning: int
) -> list[dict[str, Any]]:
    """Non-reasoning SFT rows from `source` (the rows of `config.general`): `general_count` of
    them, else `general_ratio * n_reasoning`."""
    if config.general is None:
        return []
    count = (
        config.general_count
        if config.general_count is not None
        else round(config.general_ratio * n_reasoning)
    )
    rows = [r for r in source if r.get(config.completion_column)]
    if count > len(rows):
        raise ValueError(
            f"general: {count} rows wanted but {config.general.path} gives {len(rows)}; "
            f"raise general.num_rows or lower general_ratio / general_count"
        )
    return [
        {
            "prompt": r["prompt"],
            "solution": r[config.completion_column],
            "task": r.get("task", "general"),
            "source": "general",
        }
        for r in rows[:count]
    ]


# ---------------------------------------------------------------------------------------------
# Filters (pure: samples in, kept samples and drop counts out)
# ---------------------------------------------------------------------------------------------


def filter_samples(
    samples: list[dict[str, Any]], config: FilterConfig
) -> tuple[list[dict], Counter, Counter]:
    """Apply every filter; returns the kept samples (input order), drop counts per reason, and
    per reward the number of samples it did not score (None: the rule does not apply to them).

    Each sample is a row with `prompt`, `completion`, `prompt_index`, optionally `finish_reason`,
    `task` and the columns the rewards read (`answer`, `tests`, `language`).
    """
    reasons: list[str | None] = [None] * len(samples)
    unscored: Counter = Counter()
    if config.drop_truncated:
        _mark(reasons, [s.get("finish_reason") == "length" for s in samples], "truncated")
    for rule in config.keep_if:
        alive = sum(r is None for r in reasons)
        scores = _reward(rule, samples, reasons)
        unscored[rule.key] = alive - sum(v is not None for v in scores)
        _mark(reasons, [v is not None and v < rule.min for v in scores], f"incorrect:{rule.key}")
    language = RewardSpec("language_consistency", params={"language": config.language})
    consistency = _reward(language, samples, reasons)
    _mark(
        reasons,
        [v is not None and v < config.language_threshold for v in consistency],
        "mixed_language",
    )
    _mark(
        reasons,
        [longest_paragraph(s["completion"]) > config.max_paragraph_chars for s in samples],
        "overlong_paragraph",
    )
    _mark(reasons, [stray_code(s["completion"], s.get("task")) for s in samples], "stray_code")
    seen: set[tuple[int, str]] = set()
    per_prompt: Counter = Counter()
    for i, s in enumerate(samples):
        if reasons[i] is not None:
            continue
        key = (s["prompt_index"], " ".join(s["completion"].split()))
        if key in seen:
            reasons[i] = "duplicate"
        elif per_prompt[s["prompt_index"]] >= config.max_per_prompt:
            reasons[i] = "over_max_per_prompt"
        else:
            seen.add(key)
            per_prompt[s["prompt_index"]] += 1
    kept = [s for s, r in zip(samples, reasons, strict=True) if r is None]
    return kept, Counter(r for r in reasons if r is not None), unscored


def _mark(reasons: list[str | None], failed: Sequence[bool], reason: str) -> None:
    for i, bad in enumerate(failed):
        if bad and reasons[i] is None:
            reasons[i] = reason


def _reward(
    spec: RewardSpec, samples: list[dict[str, Any]], reasons: list[str | None]
) -> list[float | None]:
    """Scores of the reward `spec` names for the samples still alive (None for dropped ones, and
    where the reward does not apply). A sample without the column the reward grades against
    (`answer` for accuracy) gets None for it: the rule does not apply to that sample, and
    data_stats.json counts it under "unscored"."""
    alive = [i for i, r in enumerate(reasons) if r is None]
    scores: list[float | None] = [None] * len(samples)
    if not alive:
        return scores
    rows = [samples[i] for i in alive]
    columns = reward_columns(rows, exclude=("prompt", "completion"))
    gold = gold_column(spec.name, spec.params)
    if gold is not None:
        columns.setdefault(gold, [None] * len(rows))
    out = RewardSet([spec])(
        [r["completion"] for r in rows], prompts=[r["prompt"] for r in rows], **columns
    )
    for i, value in zip(alive, out.per_reward[spec.key], strict=True):
        scores[i] = value
    return scores


def longest_paragraph(text: str) -> int:
    """Characters in the longest paragraph (text between blank lines or R1 tags) of a completion.

    >>> longest_paragraph("<think>ab\\n\\nabcd</think><answer>4</answer>")
    4
    """
    return max((len(p.strip()) for p in _PARAGRAPH_BREAK.split(completion_text(text))), default=0)


def stray_code(text: str, task: str | None) -> bool:
    """A fenced code block in a reply to a non-code question (R1 filters these out).

    >>> stray_code("<answer>```python\\nprint(4)\\n```</answer>", "math")
    True
    >>> stray_code("```x```", "code")
    False
    """
    return task != "code" and _FENCE in completion_text(text)
