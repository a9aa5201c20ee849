"""Built-in task generators: deterministic, ASCII-only, and their references pass their own
checks."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from pipelines.data import TASKS, DataConfig, load_rows
from rewards import get

NEW_TASKS = ("coding", "general", "preferences", "mixture", "arithmetic", "arithmetic_test")


def _prompts(rows):
    return [r["prompt"] for r in rows]


@pytest.mark.parametrize("name", NEW_TASKS)
def test_registered_deterministic_and_ascii(name):
    assert name in TASKS
    first = TASKS[name](40, random.Random(3))
    again = TASKS[name](40, random.Random(3))
    other = TASKS[name](40, random.Random(4))
    assert first == again
    assert first != other
    assert len(first) == 40
    text = json.dumps(first)  # every string in every row
    assert text.isascii()
    assert all(isinstance(r["prompt"], str) and r["prompt"] for r in first)


def test_general_rows_follow_the_r1_template():
    rows = load_rows(DataConfig(path="builtin:general", num_rows=60))
    assert {r["task"] for r in rows} == {"general"}
    assert get("format")([r["solution"] for r in rows], prompts=_prompts(rows)) == [1.0] * 60
    # The answer block is exactly the plain reference response a reward model judges.
    assert all(r["solution"].endswith(f"<answer>{r['response']}</answer>") for r in rows)
    assert {"helpful", "harmless"} <= {r["category"] for r in rows}


def test_preferences_differ_and_keep_the_format():
    rows = load_rows(DataConfig(path="builtin:preferences", num_rows=80))
    assert all(r["chosen"] != r["rejected"] for r in rows)
    fmt = get("format")
    assert fmt([r["chosen"] for r in rows], prompts=_prompts(rows)) == [1.0] * 80
    assert fmt([r["rejected"] for r in rows], prompts=_prompts(rows)) == [1.0] * 80
    assert set(Counter(r["kind"] for r in rows)) == {"unhelpful", "off_topic", "garbled", "harmful"}


def test_mixture_routes_by_task_and_references_score_correct():
    rows = load_rows(DataConfig(path="builtin:mixture", num_rows=50))
    counts = Counter(r["task"] for r in rows)
    assert counts == {"math": 25, "code": 10, "general": 15}
    assert all(
        set(r)
        == {"prompt", "task", "answer", "tests", "solution", "response", "harmful", "language"}
        for r in rows
    )
    columns = {c: [r[c] for r in rows] for c in ("answer", "tests", "language")}
    solutions = [r["solution"] for r in rows]
    accuracy = get("accuracy")(solutions, prompts=_prompts(rows), **columns)
    # accuracy applies to math rows only (None elsewhere) and every math reference is right.
    assert [a is not None for a in accuracy] == [r["task"] == "math" for r in rows]
    assert all(a == 1.0 for a in accuracy if a is not None)
    assert get("format")(solutions, prompts=_prompts(rows)) == [1.0] * 50


def test_coding_references_pass_their_tests_in_the_sandbox():
    rows = load_rows(DataConfig(path="builtin:coding", num_rows=30, seed=5))
    assert {r["task"] for r in rows} == {"code"}
    kinds = {next(iter(json.loads(r["tests"])[0])) for r in rows}
    assert kinds == {"fn_name", "input"}  # both function-call and stdin/stdout tests appear
    solutions = [r["solution"] for r in rows]
    assert get("format")(solutions, prompts=_prompts(rows)) == [1.0] * 30
    assert all("```python\n" in s.split("<answer>")[1] for s in solutions)
    scores = get("code", mode="all")(
        solutions, prompts=_prompts(rows), tests=[r["tests"] for r in rows]
    )
    assert scores == [1.0] * 30
    # A wrong program fails: the tests can tell.
    wrong = [
        s.replace("    return ", "    return 1 + ")
        if "    return " in s
        else s.replace("print(", "print(0, ")
        for s in solutions
    ]
    assert 1.0 not in get("code", mode="all")(
        wrong, prompts=_prompts(rows), tests=[r["tests"] for r in rows]
    )


def _problems(rows):
    return {r["prompt"][-1]["content"] for r in rows}


def test_arithmetic_train_and_test_problems_are_disjoint():
    from pipelines.tasks import held_out

    train = load_rows(DataConfig(path="builtin:arithmetic", num_rows=3000, seed=0))
    train += load_rows(DataConfig(path="builtin:arithmetic", num_rows=3000, seed=2))
    test = load_rows(DataConfig(path="builtin:arithmetic_test", num_rows=400, seed=1))
    assert not _problems(train) & _problems(test)
    assert len(_problems(test)) == 400  # distinct problems, no repeats within the pool's size
    assert all(held_out(*map(int, p.split("+"))) for p in _problems(test))
    # Training draws from the other nine tenths: thousands of distinct problems, not a few.
    assert len(_problems(train)) > 3000
    # Both use two-digit operands, gold answers that are the sum, and solutions the graders accept.
    rows = train[:50] + test[:50]
    for row in rows:
        a, b = map(int, row["prompt"][-1]["content"].split("+"))
        assert 10 <= a <= 99 and 10 <= b <= 99 and row["answer"] == str(a + b)
    solutions = [r["solution"] for r in rows]
    assert get("format")(solutions, prompts=_prompts(rows)) == [1.0] * 100
    answers = [r["answer"] for r in rows]
    assert get("accuracy")(solutions, prompts=_prompts(rows), answer=answers) == [1.0] * 100


def test_arithmetic_is_seeded():
    first = TASKS["arithmetic_test"](30, random.Random(1))
    assert first == TASKS["arithmetic_test"](30, random.Random(1))
    assert first != TASKS["arithmetic_test"](30, random.Random(2))
    assert TASKS["arithmetic"](30, random.Random(0)) != TASKS["arithmetic"](30, random.Random(2))


def test_reasoning_rows_are_math_and_code_and_general_rows_mark_harmful_requests():
    rows = load_rows(DataConfig(path="builtin:reasoning", num_rows=40))
    assert Counter(r["task"] for r in rows) == {"math": 30, "code": 10}
    assert all((r["answer"] is None) == (r["task"] == "code") for r in rows)
    general = load_rows(DataConfig(path="builtin:general", num_rows=60))
    assert all(r["harmful"] == (r["category"] == "harmless") for r in general)
    assert any(r["harmful"] for r in general) and not all(r["harmful"] for r in general)
