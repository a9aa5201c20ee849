"""Built-in task generators by name (`data.path: builtin:NAME`), and the R1 completion format
they write their reference solutions in. `addition`, the default task, lives here; the others
(coding, general, preferences, mixture) register themselves in `pipelines.tasks`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

TaskGenerator = Callable[[int, random.Random], list[dict[str, Any]]]
TASKS: dict[str, TaskGenerator] = {}


def register_task(name: str) -> Callable[[TaskGenerator], TaskGenerator]:
    def wrap(fn: TaskGenerator) -> TaskGenerator:
        TASKS[name] = fn
        return fn

    return wrap


def builtin_names() -> str:
    return ", ".join(f"builtin:{n}" for n in sorted(TASKS))


def r1_completion(reasoning: str, answer: str) -> str:
    """The R1 template (DeepSeek-R1, Table 1):
    `<think> reasoning </think> <answer> answer </answer>`."""
    return f"<think>{reasoning}</think><answer>{answer}</answer>"


@register_task("addition")
def addition(
    num_rows: int, rng: random.Random, low: int = 0, high: int = 99
) -> list[dict[str, Any]]:
    """Two-number addition with a worked, digit-by-digit chain of thought.

    The reasoning adds units then tens with the carry, so a tiny model can learn the method.
    """
    return [addition_row(rng.randint(low, high), rng.randint(low, high)) for _ in range(num_rows)]


def addition_row(a: int, b: int) -> dict[str, Any]:
    """One addition problem `a+b` with its gold answer and worked R1-format solution."""
    return {
        "prompt": f"{a}+{b}",
        "answer": str(a + b),
        "solution": r1_completion(_addition_steps(a, b), str(a + b)),
        "task": "math",
    }


def _addition_steps(a: int, b: int) -> str:
    units = a % 10 + b % 10
    tens = a // 10 + b // 10 + units // 10
    return f"{a % 10}+{b % 10}={units},{a // 10}+{b // 10}+{units // 10}={tens}"
