"""Math grading: the labelled set, false positives, hard timeouts and worker replacement."""

from __future__ import annotations

import json
import os
import pickle
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from rewards._pool import GradingPool
from rewards.math import Accuracy, default_pool, grade, grade_many

CASES = [json.loads(line) for line in (Path(__file__).parent / "data" / "math_cases.jsonl").open()]


@pytest.fixture(scope="module")
def pool():
    with GradingPool(1) as p:
        p.warm_up()
        yield p


def test_labelled_set_accuracy_and_false_positives():
    got = grade_many([(c["response"], c["gold"]) for c in CASES], timeout=10.0)
    wrong = [
        (c["category"], c["response"], c["gold"], c["equal"])
        for c, g in zip(CASES, got, strict=True)
        if g != c["equal"]
    ]
    negatives = [c for c in CASES if not c["equal"]]
    false_pos = sum(g and not c["equal"] for c, g in zip(CASES, got, strict=True))
    assert len(CASES) >= 250 and len(negatives) >= 80
    assert 1 - len(wrong) / len(CASES) >= 0.97, wrong
    assert false_pos / len(negatives) <= 0.01, wrong


def test_every_category_has_equal_and_unequal_cases():
    kinds = Counter((c["category"], c["equal"]) for c in CASES)
    for category in {c["category"] for c in CASES}:
        assert kinds[(category, True)] and kinds[(category, False)], category


@pytest.mark.parametrize(
    ("response", "gold"),
    [
        ("0.1000001", "0.1"),
        (r"\{1,2\}", "(1,2)"),
        ("(1,2)", r"\{1,2\}"),
        ("3 + 4 =", "7"),
        ("[1,2]", "[1,2)"),
        ("(2,1)", "(1,2)"),
        ("Tuesday", "yadseuT"),
        ("3-4i", "3+4i"),
    ],
)
def test_no_false_positives(response, gold):
    assert grade(response, gold) is False


def test_grade_accepts_whole_completion_and_bare_answer():
    assert grade("<think>We add 12 and 30.</think>\n<answer>42</answer>", "42")
    assert grade("42", r"\boxed{42}")
    assert grade([("x", "y")][0][0], "x")


@pytest.mark.parametrize(
    "response",
    [
        r"\boxed{9^{9^{9^9}}}",
        r"\boxed{10^{10^9}}",
        r"\boxed{2^{2^{2^{2^{2^{2}}}}}}",
        "\\boxed{" + "+".join(f"(x+{i})^{{{i % 7 + 2}}}" for i in range(700)) + "}",
    ],
)
def test_hard_inputs_never_block_a_worker_thread_past_timeout(pool, response):
    assert len(response) > 5000 or "^{" in response
    timeout = 1.0
    result: dict[str, object] = {}

    def run() -> None:
        start = time.monotonic()
        result["verdict"] = pool.grade([(response, "7")], timeout=timeout)[0]
        result["elapsed"] = time.monotonic() - start

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout + 5)
    assert not thread.is_alive()
    assert result["elapsed"] <= timeout + 1.0
    assert result["verdict"] in ("timeout", "incorrect", "crash")
    # the pool replaced any killed worker and still grades
    assert pool.grade([("4", "4")], timeout=10.0) == ["correct"]


def test_timeout_is_counted_and_worker_replaced(pool):
    before = pool.stats["timeout"]
    verdicts = pool.grade([(r"\boxed{9^{9^{9^9}}}", "1"), ("2", "2")], timeout=1.0)
    assert verdicts == ["timeout", "correct"]
    assert pool.stats["timeout"] == before + 1


def test_items_sent_behind_a_timed_out_item_are_graded_not_lost(pool):
    # the worker has several items in flight; the one it hangs on is killed at its deadline,
    # and the ones queued behind it are graded by the replacement worker
    pairs = [("1", "1"), (r"\boxed{9^{9^{9^9}}}", "1"), ("x+1", "1+x"), ("3", "4"), ("5", "5")]
    start = time.monotonic()
    verdicts = pool.grade(pairs, timeout=1.0)
    assert verdicts == ["correct", "timeout", "correct", "incorrect", "correct"]
    assert time.monotonic() - start < 15


def test_crashed_worker_counts_incorrect_and_is_replaced(pool):
    out: list[str] = []
    thread = threading.Thread(
        target=lambda: out.extend(pool.grade([(r"\boxed{9^{9^{9^9}}}", "1")], 30.0))
    )
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(w.job for w in pool._workers):
        time.sleep(0.01)
    busy = next(w for w in pool._workers if w.job)
    time.sleep(0.2)
    os.kill(busy.process.pid, signal.SIGKILL)  # a real worker death, e.g. the OOM killer
    thread.join(10)
    assert out == ["crash"]
    assert pool.grade([("5", "5")], timeout=10.0) == ["correct"]


def test_workers_are_fresh_interpreters_running_the_worker_module(pool):
    pool.grade([("1", "1")], timeout=30.0)
    for worker in pool._workers:
        cmdline = Path(f"/proc/{worker.process.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:3] == [b"-m", b"rewards._worker"]


def test_accuracy_reward_rows_none_and_timeout_metric():
    reward = Accuracy(timeout=1.0)
    scores = reward(
        [
            "<think>r</think><answer>4</answer>",
            r"\boxed{9^{9^{9^9}}}",
            "anything",
            [{"role": "assistant", "content": "7"}],
        ],
        prompts=["q"] * 4,
        answer=["4", "1", None, "7"],
    )
    assert scores == [1.0, 0.0, None, 1.0]
    assert reward.pop_metrics() == {"timeouts": 1.0, "crashes": 0.0}


def test_accuracy_is_picklable_and_validates():
    reward = pickle.loads(pickle.dumps(Accuracy(timeout=2.0)))
    assert reward(["5"], prompts=["q"], answer=["5"]) == [1.0]
    with pytest.raises(ValueError, match="timeout"):
        Accuracy(timeout=0)
    with pytest.raises(KeyError, match="no 'answer' column"):
        Accuracy()(["5"], prompts=["q"])


def test_default_pool_is_shared():
    assert default_pool() is default_pool()


def test_plain_numerals_are_graded_in_process_with_the_workers_verdict():
    """The in-process shortcut for two plain numerals must agree with full grading."""
    import random

    from rewards._equiv import grade_text
    from rewards.math import plain_number_verdict

    rng = random.Random(0)
    numerals = [
        "0",
        "-0",
        "7",
        "007",
        "12",
        "12.0",
        "12.50",
        "12.5",
        "-3",
        "-3.0",
        "0.1",
        "0.1000001",
        "1000",
        "999999999999999999999",
        "1000000000000000000000",
        "3.14159",
        "3.1416",
    ]
    numerals += [str(rng.randint(-999, 999)) for _ in range(40)]
    numerals += [f"{rng.uniform(-50, 50):.{rng.randint(1, 4)}f}" for _ in range(40)]
    shapes = [
        "{}",
        " {} ",
        "<think>1+1=2</think><answer>{}</answer>",
        "<answer>9</answer><answer>{}</answer>",
    ]
    checked = 0
    for _ in range(600):
        gold, shape = rng.choice(numerals), rng.choice(shapes)
        answer = gold if rng.random() < 0.3 else rng.choice(numerals)
        response = shape.format(answer)
        verdict = plain_number_verdict(response, gold)
        assert verdict is not None, (response, gold)
        assert (verdict == "correct") == grade_text(response, gold), (response, gold)
        checked += verdict == "correct"
    assert checked > 100  # equal pairs were exercised, not only unequal ones
    for response, gold in [
        ("<answer>1/2</answer>", "0.5"),
        ("12.", "12"),
        ("1,000", "1000"),
        ("<answer>x = 3</answer>", "3"),
        ("12", r"\boxed{12}"),
        ("#### 12", "12"),
    ]:
        assert plain_number_verdict(response, gold) is None  # left to the workers


def test_grading_random_junk_never_raises():
    """An untrained model's output: grading says False, never raises (a raise costs a worker
    round trip and is counted as a crash)."""
    import random

    from rewards._equiv import grade_text

    rng = random.Random(0)
    chars = "0123456789+-=<>/ithnkaswer,{}^.i"
    for _ in range(300):
        response = "".join(rng.choice(chars) for _ in range(rng.randint(1, 40)))
        assert grade_text(response, str(rng.randint(0, 200))) in (True, False), response


def test_grading_latex_shaped_junk_never_raises():
    """Fragments of markup in random order (unbalanced delimiters, empty groups, stray tags)."""
    import random

    from rewards._equiv import grade_text
    from rewards._numbers import parse_number

    assert parse_number("{}") is None and parse_number("{ }") is None  # empty once unwrapped
    rng = random.Random(1)
    tokens = [
        "$",
        "$$",
        "\\(",
        "\\)",
        "\\[",
        "\\]",
        "\\boxed{",
        "}",
        "{",
        "x",
        "1",
        "2,",
        "3.5",
        " and ",
        ";",
        "=",
        "\\frac{1}{2}",
        "answer is ",
        "<think>",
        "</think>",
        "<answer>",
        "</answer>",
        "\\\\",
        "\\!",
        "(",
        ")",
        "[",
        "]",
        "\\pm",
        "\\approx",
        "\\text{ so }",
        "%",
        " ",
        "\n",
        "\\infty",
        "-",
        "+",
    ]
    golds = ["1", "2, 3", "x = 1", "(1,2)", "\\frac{1}{2}", "Tuesday", "[0, \\infty)"]
    for _ in range(200):
        response = "".join(rng.choice(tokens) for _ in range(rng.randint(5, 120)))
        assert grade_text(response, rng.choice(golds)) in (True, False), response
