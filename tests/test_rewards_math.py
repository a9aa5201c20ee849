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
    wrong = [(c["category"], c["response"], c["gold"], c["equal"]) for c, g in zip(CASES, got) if g != c["equal"]]
    negatives = [c for c in CASES if not c["equal"]]
    false_pos = sum(g and not c["equal"] for c, g in zip(CASES, got))
    assert len(CASES) >= 250 and len(negatives) >= 80
    assert 1 - len(wrong) / len(CASES) >= 0.97, wrong
    assert false_pos / len(negatives) <= 0.01, wrong


def test_every_category_has_equal_and_unequal_cases():
    kinds = Counter((c["category"], c["equal"]) for c in CASES)
    for category in {c["category"] for c in CASES}:
        assert kinds[(category, True)] and kinds[(category, False)], category


@pytest.mark.parametrize(
    ("response", "gold"),
    [("0.1000001", "0.1"), (r"\{1,2\}", "(1,2)"), ("(1,2)", r"\{1,2\}"), ("3 + 4 =", "7"),
     ("[1,2]", "[1,2)"), ("(2,1)", "(1,2)"), ("Tuesday", "yadseuT"), ("3-4i", "3+4i")],
)
def test_no_false_positives(response, gold):
    assert grade(response, gold) is False


def test_grade_accepts_whole_completion_and_bare_answer():
    assert grade("<think>We add 12 and 30.</think>\n<answer>42</answer>", "42")
    assert grade("42", r"\boxed{42}")
    assert grade([("x", "y")][0][0], "x")


@pytest.mark.parametrize(
    "response",
    [r"\boxed{9^{9^{9^9}}}", r"\boxed{10^{10^9}}", r"\boxed{2^{2^{2^{2^{2^{2}}}}}}",
     "\\boxed{" + "+".join(f"(x+{i})^{{{i % 7 + 2}}}" for i in range(700)) + "}"],
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


def test_crashed_worker_counts_incorrect_and_is_replaced(pool):
    out: list[str] = []
    thread = threading.Thread(target=lambda: out.extend(pool.grade([(r"\boxed{9^{9^{9^9}}}", "1")], 30.0)))
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


def test_workers_do_not_fork_the_caller(pool):
    assert pool._ctx.get_start_method() in ("forkserver", "spawn")


def test_accuracy_reward_rows_none_and_timeout_metric():
    reward = Accuracy(timeout=1.0)
    scores = reward(
        ["<think>r</think><answer>4</answer>", r"\boxed{9^{9^{9^9}}}", "anything", [{"role": "assistant", "content": "7"}]],
        prompts=["q"] * 4, answer=["4", "1", None, "7"],
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
