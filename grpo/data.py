"""The prompt stream: a seeded permutation per epoch and a position, so a resumed run draws
exactly the prompts the interrupted run would have drawn next."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


@dataclass
class PromptSampler:
    num_rows: int
    seed: int = 0
    epoch: int = 0
    index: int = 0  # position inside this epoch's permutation

    def __post_init__(self) -> None:
        if self.num_rows < 1:
            raise ValueError("the prompt dataset is empty; check data.path and data.limit")
        self._order = self._permutation(self.epoch)

    def _permutation(self, epoch: int) -> list[int]:
        order = list(range(self.num_rows))
        random.Random(f"{self.seed}:{epoch}").shuffle(order)
        return order

    def take(self, count: int) -> list[int]:
        """The next `count` row indices, rolling over into a fresh permutation per epoch."""
        out = []
        while len(out) < count:
            if self.index == self.num_rows:
                self.epoch, self.index = self.epoch + 1, 0
                self._order = self._permutation(self.epoch)
            take = min(count - len(out), self.num_rows - self.index)
            out += self._order[self.index : self.index + take]
            self.index += take
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "num_rows": self.num_rows,
            "seed": self.seed,
            "epoch": self.epoch,
            "index": self.index,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PromptSampler:
        return cls(**state)
