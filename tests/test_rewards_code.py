"""code reward against the real sandbox."""

from __future__ import annotations

import json
from types import SimpleNamespace

from rewards import get
from rewards.code import Code, extract_code

ECHO_TESTS = [{"input": "hi\n", "output": "hi\n"}, {"input": "yo\n", "output": "yo\n"}]


def _sandbox_judge():
    import sandbox

    return sandbox


def fence(code: str) -> str:
    return f"<think>plan</think><answer>```python\n{code}\n```</answer>"


def test_extract_code_takes_last_fence():
    text = "```python\nprint(1)\n```\nbetter:\n```py\nprint(2)\n```"
    assert extract_code(text) == "print(2)\n"


def test_scoring_rule_for_judgements():
    # Judgement-shaped values as sandbox.judge documents them
    partial = SimpleNamespace(verdicts=["accepted", "wrong_answer"], passed=1, total=2)
    broken = SimpleNamespace(verdicts=["accepted", "sandbox_error"], passed=1, total=2)
    assert Code()._score(partial) == 0.5 and Code(mode="all")._score(partial) == 0.0
    assert Code()._score(broken) is None  # the sandbox's fault: no reward either way


def test_code_reward_real_sandbox():
    _sandbox_judge()
    reward = get("code", time_limit=2.0)
    completions = [
        fence("print(input())"),
        fence("s = input()\nprint(s if s == 'hi' else 'no')"),
        fence("while True:\n    pass"),
        "I will not write code.",
        fence("print(input())"),
    ]
    tests = [ECHO_TESTS, ECHO_TESTS, ECHO_TESTS, ECHO_TESTS, None]
    assert reward(completions, prompts=["echo"] * 5, tests=tests) == [1.0, 0.5, 0.0, 0.0, None]
    all_or_nothing = get("code", mode="all")
    assert all_or_nothing(
        completions[:2], prompts=["echo"] * 2, tests=[json.dumps(ECHO_TESTS)] * 2
    ) == [1.0, 0.0]


def test_code_reward_assert_and_function_tests():
    _sandbox_judge()
    reward = get("code")
    code = fence("def add(a, b):\n    return a + b")
    tests = [{"assert": "assert add(2, 3) == 5"}, {"fn_name": "add", "args": [1, 1], "expected": 3}]
    assert reward([code], prompts=["add"], tests=[tests]) == [0.5]


def test_repeated_programs_score_against_their_own_rows_tests():
    # A GRPO group repeats programs; each distinct (program, tests) pair is judged once, and the
    # verdict goes back to every row that holds that pair, never to a row with other tests.
    reward = get("code")
    square = fence("def f(x):\n    return x * x")
    double = fence("def f(x):\n    return x + x")
    twos = [{"fn_name": "f", "args": [2], "expected": 4}]  # both programs pass
    threes = [{"fn_name": "f", "args": [3], "expected": 9}]  # only square passes
    completions = [square, double, square, double, square, double, fence("f("), "no code"]
    tests = [twos, twos, threes, threes, twos, threes, twos, twos]
    scores = reward(completions, prompts=["f"] * 8, tests=tests)
    assert scores == [1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]
