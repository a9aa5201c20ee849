"""The grader's rules, one property per test: what counts as the answer, and strictness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewards import get
from rewards.math import grade, grade_many


@pytest.mark.parametrize(
    ("response", "gold", "expected"),
    [
        # only the text after </think> is graded
        (r"<think> My answer is \boxed{42} </think> Some other text.", "42", False),
        (r"<think> The answer is \boxed{42} </think> Wrong: \boxed{43}.", "42", False),
        (r"<think> Reasoning </think> \boxed{\frac{63}{400}}", "63/400", True),
        (r"Reasoning (the prompt opened the block) </think> \boxed{7}", "7", True),
        ("<think>I think it is 7 but let me check", "7", False),  # never closed: no answer
        ("<think>so 7</think><answer>7</answer>", "7", True),
        ("<think>so 7</think>", "7", False),  # nothing after the think block
    ],
)
def test_think_rule(response, gold, expected):
    assert grade(response, gold) is expected


@pytest.mark.parametrize(
    ("response", "gold"),
    [
        ("1.414", r"\sqrt{2}"),
        ("3.14", r"\pi"),
        ("33.3", r"\frac{100}{3}"),
        ("0.333", r"\frac{1}{3}"),
        (r"\boxed{0.0833333333333333}", r"\frac{1}{12}"),
        (r"-\infty", r"\infty"),
        (r"\infty", r"-\infty"),
        (r"(-\infty, 3)", r"(-\infty, 3]"),
        (r"[2, \infty)", r"(2, \infty)"),
        (r"\{1, 2\}", "(1, 2)"),
        ("(2, 1)", "(1, 2)"),
        ("1:00", "12:00"),
        ("32, 349", "32349"),
        ("32, 349", "32,349"),
        ("(0, 5)", "0,5"),
        ("1.2", "1,2"),
        (r"x \ge 5", "x > 5"),
    ],
)
def test_strict_by_default(response, gold):
    assert grade(response, gold) is False


@pytest.mark.parametrize(
    ("response", "gold"),
    [
        (r"\sqrt{2}", "1.414"),
        (r"\frac{70}{9}", "7.78"),
        (r"2\pi", "6.283"),
        ("0.25", r"\frac14"),
        (r"(-\infty, 3]", r"(-\infty, 3]"),
        (r"-\infty", r"-\infty"),
    ],
)
def test_a_decimal_gold_accepts_the_exact_value_it_rounds(response, gold):
    assert grade(response, gold) is True


def test_tolerance_is_opt_in_through_the_accuracy_params():
    rows = {"prompts": ["q"] * 3, "answer": [r"\pi", r"\frac{100}{3}", r"\sqrt{2}"]}
    completions = ["<answer>3.1416</answer>", "<answer>33.33</answer>", "<answer>1.5</answer>"]
    assert get("accuracy")(completions, **rows) == [0.0, 0.0, 0.0]
    assert get("accuracy", tolerance=1e-4)(completions, **rows) == [1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="tolerance"):
        get("accuracy", tolerance=-1)


@pytest.mark.parametrize(
    ("response", "gold"),
    [
        ("Final Answer: The largest $n$ is 34.", "34"),
        (r"Therefore $x \geq 5$ is the solution.", "x >= 5"),
        (
            r"The identity matrix is $\begin{pmatrix}1 & 0 \\ 0 & 1\end{pmatrix}$.",
            r"\begin{pmatrix}1 & 0 \\ 0 & 1\end{pmatrix}",
        ),
        ("Answer $ 9 $", "9"),
        (r"\boxed{(3,2)}", "(p,q)=(3,2)"),
        (r"\boxed{x \in [-2,7]}", "[-2, 7]"),
        (r"\boxed{32,\! 349}", "32349"),
        ("$28$ %", r"28\%"),
        ("1,22", "1.22"),
        (r"\boxed{6,8}", r"6 \text{ and } 8"),
        (r"\boxed{(1, 2), (3,4), (1,2)}", "(1,2),(3,4)"),
        (
            r"\text{The midpoints form a regular hexagon}",
            r"\text{The midpoints form a regular hexagon}",
        ),
        (r"$\boxed{a_{37} = 19, \quad a_3 = 2}$", "a_3 = 2, a_{37} = 19"),
        ("$(5,2),(7,2)$", "p=5,q=2;p=7,q=2"),
        (r"\boxed{-2021, 2021}", r"\pm 2021"),
        ("The final answer is 12,\\!000,\\!023. I hope it is correct.", "12000023"),
    ],
)
def test_answers_written_as_people_write_them(response, gold):
    assert grade(response, gold) is True
    assert grade(f"<answer>{response}</answer>", gold) is True


@pytest.mark.parametrize(
    ("response", "gold"),
    [
        ("Final Answer: The largest $n$ is 35.", "34"),
        (r"\boxed{(2,3)}", "(p,q)=(3,2)"),
        (r"\boxed{6,9}", r"6 \text{ and } 8"),
        (r"\boxed{11a+c}", "7 = 11a+c"),
        ("AZYUK2A", "2"),
        (r"\boxed{2021}", r"\pm 2021"),
        (r"\boxed{a_{37} = 2, a_3 = 19}", "a_3 = 2, a_{37} = 19"),
    ],
)
def test_near_misses_stay_wrong(response, gold):
    assert grade(response, gold) is False


def test_batch_matches_single_grades():
    pairs = [("x = 3", "3"), ("y = 3", "x = 3"), ("The answer is $\\frac{1}{2}$.", "0.5")]
    assert grade_many(pairs) == [grade(r, g) for r, g in pairs] == [True, False, True]


def test_an_answer_in_a_completion_is_never_worse_than_the_same_answer_raw():
    data = Path(__file__).parent / "data"
    own = [json.loads(line) for line in (data / "math_cases.jsonl").open()]
    ported = [json.loads(line) for line in (data / "ported_suites.jsonl").open()]
    pairs = [(c["response"], c["gold"]) for c in own]
    pairs += [(c["response"], c["gold"]) for c in ported if c["form"] == "raw" and c["plain"]]
    pairs = [(r, g) for r, g in pairs if "<" not in r]  # raw answers, not whole completions
    wraps = [
        "<answer>\n{}\n</answer>",
        "<think>\nFirst 2 + 3 = 5, then 7.\n</think>\n{}",
        "<think>\nFirst 2 + 3 = 5, then 7.\n</think>\n<answer>{}</answer>",
    ]
    raw = grade_many(pairs, timeout=20.0)
    for wrap in wraps:
        wrapped = grade_many([(wrap.format(r), g) for r, g in pairs], timeout=20.0)
        worse = [p for p, a, b in zip(pairs, raw, wrapped, strict=True) if a and not b]
        assert worse == [], wrap
