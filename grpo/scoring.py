"""Rewards computed while the engine is still generating.

The engine reports the samples that ended at each of its steps (`on_finished`). Once at least
G have gathered (one call per sample would cost more in thread hand-offs than it saves), they
are scored as one part in a background thread, parts in order, while generation goes on; so
when the last sample ends most of the batch is already scored.
The rewards' heavy work runs in worker processes (sympy graders, code sandboxes) or in torch
(reward models), outside the GIL, so generation keeps its pace.

Parts follow the order samples ended in, the same for the same inputs and weights, so a reward
model sees the same batches on a rerun and resume stays exact. The values and metrics equal
one reward call over the whole batch (`merge_outputs`) for rewards that score rows
independently, as the reward signature says they should.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from grpo.engines import Finished, Group, Sample
from grpo.reward import RewardOutput, RewardSource, merge_outputs, reward_columns


class RewardStream:
    """Score a batch of B prompts x G samples in parts of at least G, as they finish.

    >>> with RewardStream(reward_fn, rows, group_size=G) as stream:  # doctest: +SKIP
    ...     groups = engine.generate(prompts, sampling, on_finished=stream.submit)
    ...     out = stream.result(groups)  # RewardOutput over the B*G rows, prompt-major
    """

    def __init__(self, reward_fn: RewardSource, rows: Sequence[dict[str, Any]], group_size: int):
        self.reward_fn, self.rows, self.group_size = reward_fn, list(rows), group_size
        self.pending: list[Finished] = []
        self.submitted: set[tuple[int, int]] = set()
        # Columns come from the whole batch, so every part sees the same columns (a part of
        # rows without an `answer` key still gets an `answer` column, of Nones).
        self.columns = sorted({k for row in self.rows for k in row} - {"prompt"})
        self.parts: list[tuple[list[int], Future[RewardOutput]]] = []
        self.busy = 0.0  # seconds spent in reward calls, overlapped with generation or not
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="r1kit-rewards")

    def submit(self, finished: list[Finished]) -> None:
        """Queue samples for scoring (the engine's `on_finished`); returns at once."""
        self.pending += finished
        self.submitted.update((i, j) for i, j, _ in finished)
        if len(self.pending) >= self.group_size:
            self._flush()

    def result(self, groups: Sequence[Group]) -> RewardOutput:
        """Score the samples not submitted yet (all of them when generation ran without
        `on_finished`), wait for every part, and return one output over all B*G rows."""
        self.submit(
            [
                (i, j, s)
                for i, g in enumerate(groups)
                for j, s in enumerate(g.samples)
                if (i, j) not in self.submitted
            ]
        )
        self._flush()
        parts = [(positions, future.result()) for positions, future in self.parts]
        return merge_outputs(parts, len(self.rows) * self.group_size)

    def _flush(self) -> None:
        finished, self.pending = self.pending, []
        if not finished:
            return
        rows = [self.rows[i] for i, _, _ in finished]
        samples = [sample for _, _, sample in finished]
        positions = [i * self.group_size + j for i, j, _ in finished]  # in the prompt-major batch
        self.parts.append((positions, self._executor.submit(self._score, rows, samples)))

    def _score(self, rows: list[dict[str, Any]], samples: list[Sample]) -> RewardOutput:
        start = time.perf_counter()
        columns = reward_columns(rows, self.columns)
        # Token counts for length shaping (DAPO's overlong penalty is defined in tokens).
        columns["completion_ids"] = [s.token_ids for s in samples]
        try:
            return self.reward_fn(
                [s.text for s in samples], prompts=[row["prompt"] for row in rows], **columns
            )
        finally:
            self.busy += time.perf_counter() - start

    def __enter__(self) -> RewardStream:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
