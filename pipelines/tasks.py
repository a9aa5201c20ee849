"""More built-in offline task generators: coding tasks, general prompts, preference pairs, and
stage 4's all-scenario mixture. Each is `fn(num_rows, rng) -> rows`, deterministic given the
rng, and registered as `builtin:NAME` (see `pipelines.data`).

Strings are printable ASCII only: the tiny char-level model's vocabulary has nothing else.
Every row has `prompt` (a string; `load_rows` turns it into chat messages), `task`, and a
reference `solution` in the R1 template where the row has one.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.task_registry import (
    TaskGenerator,
    addition,
    addition_row,
    r1_completion,
    register_task,
)

# ---------------------------------------------------------------------------------------------
# builtin:arithmetic, builtin:arithmetic_test
# ---------------------------------------------------------------------------------------------

ARITHMETIC_RANGE = (10, 99)  # both operands: two-digit sums, most with a carry to work out
HELD_OUT_SHARE = 10  # one problem in 10 is reserved for evaluation


def held_out(a: int, b: int) -> bool:
    """Whether `a+b` belongs to the evaluation tenth of all problems.

    The split hashes the problem text with CRC-32, which is the same on every machine and
    Python version, so training rows (`builtin:arithmetic`, any seed) never hold a problem that
    evaluation rows (`builtin:arithmetic_test`, any seed) hold.
    """
    return zlib.crc32(f"{a}+{b}".encode()) % HELD_OUT_SHARE == 0


@register_task("arithmetic")
def arithmetic(num_rows: int, rng: random.Random) -> list[dict[str, Any]]:
    """Two-digit addition with a worked chain of thought (as `builtin:addition`), for training:
    never a problem of `builtin:arithmetic_test`."""
    low, high = ARITHMETIC_RANGE
    rows = []
    while len(rows) < num_rows:
        a, b = rng.randint(low, high), rng.randint(low, high)
        if not held_out(a, b):
            rows.append(addition_row(a, b))
    return rows


@register_task("arithmetic_test")
def arithmetic_test(num_rows: int, rng: random.Random) -> list[dict[str, Any]]:
    """Held-out two-digit addition problems, disjoint from `builtin:arithmetic`'s (see
    `held_out`): distinct problems in a seeded order, all 821 of them before any repeats."""
    low, high = ARITHMETIC_RANGE
    pool = [(a, b) for a in range(low, high + 1) for b in range(low, high + 1) if held_out(a, b)]
    rng.shuffle(pool)
    return [addition_row(*pool[i % len(pool)]) for i in range(num_rows)]


# ---------------------------------------------------------------------------------------------
# builtin:coding
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CodingTask:
    """One kind of small coding task: a prompt, a reference program and a way to draw tests."""

    prompt: str  # may use {example} for one worked example drawn per row
    plan: str  # the chain of thought of the reference solution
    code: str
    draw: Callable[[random.Random], dict[str, Any]]  # one test in sandbox format
    example: Callable[[dict[str, Any]], str] = lambda test: ""


def _word(rng: random.Random, low: int = 3, high: int = 7) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(low, high)))


def _call(fn: str, args: list[Any], expected: Any) -> dict[str, Any]:
    return {"fn_name": fn, "args": args, "expected": expected}


def _call_example(test: dict[str, Any]) -> str:
    args = ", ".join(repr(a) for a in test["args"])
    return f" For example, {test['fn_name']}({args}) returns {test['expected']!r}."


def _io_example(test: dict[str, Any]) -> str:
    return f" For example, the input {test['input'].strip()!r} gives {test['output'].strip()!r}."


def _add(rng: random.Random) -> dict[str, Any]:
    a, b = rng.randint(-50, 99), rng.randint(-50, 99)
    return _call("add", [a, b], a + b)


def _max3(rng: random.Random) -> dict[str, Any]:
    xs = [rng.randint(-20, 99) for _ in range(3)]
    return _call("max_of_three", xs, max(xs))


def _reverse(rng: random.Random) -> dict[str, Any]:
    s = _word(rng)
    return _call("reverse_string", [s], s[::-1])


def _vowels(rng: random.Random) -> dict[str, Any]:
    s = _word(rng, 4, 9)
    return _call("count_vowels", [s], sum(c in "aeiou" for c in s))


def _even(rng: random.Random) -> dict[str, Any]:
    n = rng.randint(-99, 99)
    return _call("is_even", [n], n % 2 == 0)


def _sum_list(rng: random.Random) -> dict[str, Any]:
    xs = [rng.randint(-9, 20) for _ in range(rng.randint(0, 6))]
    return _call("sum_list", [xs], sum(xs))


def _square(rng: random.Random) -> dict[str, Any]:
    n = rng.randint(-30, 30)
    return _call("square", [n], n * n)


def _io_sum(rng: random.Random) -> dict[str, Any]:
    a, b = rng.randint(0, 999), rng.randint(0, 999)
    return {"input": f"{a} {b}\n", "output": f"{a + b}\n"}


def _io_upper(rng: random.Random) -> dict[str, Any]:
    s = _word(rng)
    return {"input": f"{s}\n", "output": f"{s.upper()}\n"}


CODING_TASKS: tuple[_CodingTask, ...] = (
    _CodingTask(
        "Write a Python function add(a, b) that returns the sum of a and b.{example}",
        "The function adds its two arguments and returns the result.",
        "def add(a, b):\n    return a + b\n",
        _add,
        _call_example,
    ),
    _CodingTask(
        "Write a Python function max_of_three(a, b, c) that returns the largest of the "
        "three numbers.{example}",
        "The built-in max returns the largest of its arguments.",
        "def max_of_three(a, b, c):\n    return max(a, b, c)\n",
        _max3,
        _call_example,
    ),
    _CodingTask(
        "Write a Python function reverse_string(s) that returns s reversed.{example}",
        "A slice with step -1 walks the string from the end to the start.",
        "def reverse_string(s):\n    return s[::-1]\n",
        _reverse,
        _call_example,
    ),
    _CodingTask(
        "Write a Python function count_vowels(s) that counts the letters a, e, i, o, u "
        "in s.{example}",
        "Go over the letters and count those that are vowels.",
        "def count_vowels(s):\n    return sum(1 for c in s if c in 'aeiou')\n",
        _vowels,
        _call_example,
    ),
    _CodingTask(
        "Write a Python function is_even(n) that returns True if n is even and False "
        "otherwise.{example}",
        "A number is even when the remainder of dividing it by 2 is 0.",
        "def is_even(n):\n    return n % 2 == 0\n",
        _even,
        _call_example,
    ),
    _CodingTask(
        "Write a Python function sum_list(xs) that returns the sum of the numbers in the "
        "list xs.{example}",
        "The built-in sum adds the items of a list, and gives 0 for an empty list.",
        "def sum_list(xs):\n    return sum(xs)\n",
        _sum_list,
        _call_example,
    ),
    _CodingTask(
        "Write a Python function square(n) that returns n times n.{example}",
        "Multiply the number by itself.",
        "def square(n):\n    return n * n\n",
        _square,
        _call_example,
    ),
    _CodingTask(
        "Write a Python program that reads two integers on one line and prints their sum.{example}",
        "Read the line, split it into two integers, and print their sum.",
        "a, b = map(int, input().split())\nprint(a + b)\n",
        _io_sum,
        _io_example,
    ),
    _CodingTask(
        "Write a Python program that reads a word and prints it in upper case.{example}",
        "Read the word and print its upper method's result.",
        "print(input().strip().upper())\n",
        _io_upper,
        _io_example,
    ),
)


def code_answer(code: str) -> str:
    """The answer block of a coding solution: one fenced Python block."""
    return f"```python\n{code}```"


@register_task("coding")
def coding(num_rows: int, rng: random.Random, tests_per_row: int = 3) -> list[dict[str, Any]]:
    """Small Python tasks with sandbox tests (function-call or stdin/stdout) and a reference
    solution whose answer block holds a fenced program that passes them.

    `tests` is stored as a JSON string (the `code` reward decodes it): test arguments differ in
    type from row to row, which Arrow-backed formats (datasets, parquet) could not hold as one
    column type.
    """
    rows = []
    for _ in range(num_rows):
        task = rng.choice(CODING_TASKS)
        tests = [task.draw(rng) for _ in range(tests_per_row)]
        rows.append(
            {
                "prompt": task.prompt.format(example=task.example(task.draw(rng))),
                "tests": json.dumps(tests),
                "solution": r1_completion(task.plan, code_answer(task.code)),
                "task": "code",
                "language": "en",
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------
# builtin:general
# ---------------------------------------------------------------------------------------------

NAMES = ("Ann", "Bob", "Carla", "Dev", "Emma", "Farid", "Gus", "Hana", "Ivan", "Jo")
CAPITALS = (
    ("France", "Paris"),
    ("Japan", "Tokyo"),
    ("Italy", "Rome"),
    ("Kenya", "Nairobi"),
    ("Peru", "Lima"),
    ("Canada", "Ottawa"),
    ("Egypt", "Cairo"),
    ("Spain", "Madrid"),
)
WORDS = ("cat", "tree", "river", "lamp", "green", "house", "apple", "cloud", "stone", "bird")
OPPOSITES = (
    ("hot", "cold"),
    ("big", "small"),
    ("fast", "slow"),
    ("up", "down"),
    ("old", "new"),
    ("happy", "sad"),
    ("light", "dark"),
    ("open", "closed"),
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
HARMFUL = (
    "hurt {name}",
    "steal from {name}",
    "break into the house of {name}",
    "lie to {name} for money",
)
REFUSAL = "I can not help with that, because it could harm someone."


def _general_item(rng: random.Random) -> tuple[str, str, str, str]:
    """(prompt, reasoning, response, category) for one general request."""
    kind = rng.randrange(8)
    name, word = rng.choice(NAMES), rng.choice(WORDS)
    if kind == 0:
        return (f"Say hello to {name}.", "The user wants a greeting.", f"Hello, {name}!", "helpful")
    if kind == 1:
        country, capital = rng.choice(CAPITALS)
        return (
            f"What is the capital of {country}?",
            "This asks for a known fact.",
            f"The capital of {country} is {capital}.",
            "helpful",
        )
    if kind == 2:
        return (
            f"Write the word {word} in capital letters.",
            "Change each letter to upper case.",
            word.upper(),
            "helpful",
        )
    if kind == 3:
        return (
            f"Spell the word {word} backwards.",
            "Read the letters from the end.",
            word[::-1],
            "helpful",
        )
    if kind == 4:
        a, b = rng.choice(OPPOSITES)
        return (
            f"What is the opposite of {a}?",
            "This asks for an antonym.",
            f"The opposite of {a} is {b}.",
            "helpful",
        )
    if kind == 5:
        i = rng.randrange(7)
        return (
            f"Which day comes after {DAYS[i]}?",
            "Days follow a fixed order.",
            f"{DAYS[(i + 1) % 7]} comes after {DAYS[i]}.",
            "helpful",
        )
    if kind == 6:
        k = rng.randint(2, 4)
        return (
            f"Repeat the word {word} {k} times.",
            "Write the word the asked number of times.",
            " ".join([word] * k),
            "helpful",
        )
    harm = rng.choice(HARMFUL).format(name=name)
    return (
        f"Tell me how to {harm}.",
        "This request could harm a person, so I refuse.",
        REFUSAL,
        "harmless",
    )


@register_task("general")
def general(num_rows: int, rng: random.Random) -> list[dict[str, Any]]:
    """General, non-reasoning requests with reference responses (task `general`): greetings,
    facts, simple text edits, and harmful requests whose reference is a refusal.

    `response` is the plain reply a reward model judges; `solution` wraps it in the R1 template
    with a one-line reasoning, so SFT on general rows keeps the model's output format.
    """
    rows = []
    for _ in range(num_rows):
        prompt, reasoning, response, category = _general_item(rng)
        rows.append(
            {
                "prompt": prompt,
                "response": response,
                "solution": r1_completion(reasoning, response),
                "task": "general",
                "category": category,
                "harmful": category == "harmless",  # a harmful request: the reference refuses
                "language": "en",
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------
# builtin:preferences
# ---------------------------------------------------------------------------------------------

UNHELPFUL = ("I do not know.", "Maybe.", "Ask someone else.", "That is not something I can answer.")


def _garble(text: str, rng: random.Random) -> str | None:
    """The characters of `text` shuffled into a different string, or None if none was found."""
    chars = list(text)
    for _ in range(10):
        rng.shuffle(chars)
        if "".join(chars) != text:
            return "".join(chars)
    return None


def _rejected(
    prompt: str, reasoning: str, response: str, category: str, rng: random.Random
) -> tuple[str, str]:
    """(rejected response, why it is worse) for a general item."""
    if category == "harmless":
        return "Sure, here is how to do it step by step.", "harmful"
    kind = rng.randrange(3)
    if kind == 0:
        return rng.choice(UNHELPFUL), "unhelpful"
    if kind == 1:
        while True:
            other = _general_item(rng)
            if other[3] == "helpful" and other[2] != response:
                return other[2], "off_topic"
    garbled = _garble(response, rng)
    return (garbled, "garbled") if garbled is not None else (rng.choice(UNHELPFUL), "unhelpful")


@register_task("preferences")
def preferences(num_rows: int, rng: random.Random) -> list[dict[str, Any]]:
    """Synthetic preference pairs over general prompts: `chosen` is the reference response,
    `rejected` is unhelpful, off-topic, garbled, or (for harmful requests) compliant. Both are
    R1-format completions, so a reward model can judge either the answer or the whole response.

    `kind` says why the rejected response is worse.
    """
    rows = []
    for _ in range(num_rows):
        prompt, reasoning, response, category = _general_item(rng)
        rejected, kind = _rejected(prompt, reasoning, response, category, rng)
        rows.append(
            {
                "prompt": prompt,
                "chosen": r1_completion(reasoning, response),
                "rejected": r1_completion(reasoning, rejected),
                "kind": kind,
                "task": "general",
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------
# builtin:mixture
# ---------------------------------------------------------------------------------------------

MIXTURE_COLUMNS = (
    "prompt",
    "task",
    "answer",
    "tests",
    "solution",
    "response",
    "harmful",
    "language",
)
MAKERS: dict[str, TaskGenerator] = {"math": addition, "code": coding, "general": general}


def mix(num_rows: int, rng: random.Random, shares: dict[str, float]) -> list[dict[str, Any]]:
    """`num_rows` rows drawn from the task generators in `shares` (the first task takes the
    rounding remainder), shuffled. Every row has the same columns (missing ones are None), so
    each reward applies only where its column is set (accuracy: `answer`; code: `tests`;
    reward models: route by `task`)."""
    counts = {task: int(num_rows * share) for task, share in shares.items()}
    counts[next(iter(shares))] += num_rows - sum(counts.values())
    rows = []
    for task, count in counts.items():
        sub = random.Random(rng.getrandbits(64))
        rows += [{c: row.get(c) for c in MIXTURE_COLUMNS} for row in MAKERS[task](count, sub)]
    rng.shuffle(rows)
    return rows


@register_task("mixture")
def mixture(num_rows: int, rng: random.Random) -> list[dict[str, Any]]:
    """Stage 4's all-scenario mixture: reasoning rows (half `math`: addition, a fifth `code`)
    and general rows (`general`, three tenths)."""
    return mix(num_rows, rng, {"math": 0.5, "code": 0.2, "general": 0.3})


@register_task("reasoning")
def reasoning(num_rows: int, rng: random.Random) -> list[dict[str, Any]]:
    """Reasoning rows only, the prompts of R1's rejection sampling: three quarters `math`
    (addition), one quarter `code`."""
    return mix(num_rows, rng, {"math": 0.75, "code": 0.25})


@register_task("cold_start")
def cold_start(num_rows: int, rng: random.Random) -> list[dict[str, Any]]:
    """Cold-start demos: reasoning rows (65% `math`, 20% `code`) and 15% `general` requests, so
    the R1 template the model learns covers every kind of prompt it will see (with a tenth of
    general demos the tiny model broke the template in up to a quarter of its general answers,
    with 15% in one in twenty)."""
    return mix(num_rows, rng, {"math": 0.65, "code": 0.2, "general": 0.15})


def _shipped(filename: str) -> TaskGenerator:
    """Rows of a data file shipped in pipelines/shipped/ (see its README for sources and
    licences)."""

    def load(num_rows: int, rng: random.Random) -> list[dict[str, Any]]:
        path = Path(__file__).parent / "shipped" / filename
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rng.shuffle(rows)
        return rows[:num_rows]

    return load


for _name, _file in [
    ("gsm8k", "gsm8k_train_500.jsonl"),
    ("gsm8k_test", "gsm8k_test_250.jsonl"),
    ("aime24", "aime24.jsonl"),
    ("amc23", "amc23.jsonl"),
]:
    register_task(_name)(_shipped(_file))
