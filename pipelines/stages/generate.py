"""`stage: generate`: sample completions for a dataset's prompts and write them as JSONL."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from grpo.engines import EngineConfig, SamplingConfig, make_engine
from grpo.files import write_text_atomic
from grpo.metrics import MetricsLogger
from pipelines.data import DataConfig, load_rows
from pipelines.distributed import barrier, gather_lists, rank_and_world
from pipelines.models import resolve_model
from pipelines.recipe import register_stage


@dataclass(frozen=True)
class GenerateConfig:
    model: str = "bundled:tiny-char"
    output_dir: str = "runs/generate"
    data: DataConfig = field(default_factory=DataConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    batch_prompts: int = 64  # prompts per engine call (one progress-bar tick)
    seed: int = 0


@register_stage(
    "generate",
    GenerateConfig,
    "sample completions for a dataset's prompts (JSONL)",
    check_data=lambda config: load_rows(config.data),
    seed_fields=("seed",),
)
def run(config: GenerateConfig, *, fresh: bool = False) -> dict[str, Any]:
    out_dir = Path(config.output_dir)
    rank, world = rank_and_world()
    logger = MetricsLogger(out_dir, backends=("console",), enabled=rank == 0)
    rows = load_rows(config.data)
    engine = make_engine(resolve_model(config.model), config.engine, seed=config.seed)
    lines: list[tuple[int, str]] = []  # (batch start, JSONL text of its samples)
    tokens, start = 0, time.perf_counter()
    with logger.progress(len(rows), "generate") as bar:
        # Under several processes each takes every world-th batch; a batch's seed depends only
        # on where it starts, so the file is the same whatever the number of processes.
        for i in range(rank * config.batch_prompts, len(rows), world * config.batch_prompts):
            batch = rows[i : i + config.batch_prompts]
            sampling = config.sampling
            if sampling.seed is None:
                sampling = replace(sampling, seed=config.seed + i)
            groups = engine.generate([r["prompt"] for r in batch], sampling)
            text = ""
            for row, group in zip(batch, groups, strict=True):
                for sample in group.samples:
                    tokens += len(sample.token_ids)
                    text += (
                        json.dumps(
                            {
                                **row,
                                "completion": sample.text,
                                "finish_reason": sample.finish_reason,
                            }
                        )
                        + "\n"
                    )
            lines.append((i, text))
            bar.advance(len(batch) * world)
    engine.close()
    lines = sorted(gather_lists(lines))
    tokens = sum(gather_lists([tokens]))
    if rank == 0:
        write_text_atomic(out_dir / "samples.jsonl", "".join(text for _, text in lines))
    barrier()
    seconds = time.perf_counter() - start
    stats = {
        "rows": len(rows),
        "completion_tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
    }
    logger.text(
        f"wrote {out_dir / 'samples.jsonl'}: {len(rows)} prompts, {tokens} tokens, "
        f"{tokens / seconds:.0f} tok/s"
    )
    return stats
