"""The grader on other projects' answer-equivalence tests (``tests/data/ported_suites.jsonl``).

Each case is graded with its own label in three input forms (raw, inside ``<answer>``, inside
``\\boxed{}``; see ``tests/data/README.md``), by r1kit and, in the same run, by math-verify as
its README shows it. r1kit must be at least as accurate in every form, make no false positive
on the plainly labelled cases, and never do worse on a wrapped answer than on the same raw one.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

import pytest

from rewards.math import grade_many

DATA = Path(__file__).parent / "data" / "ported_suites.jsonl"
CASES = [json.loads(line) for line in DATA.open()]
FORMS = ("raw", "answer", "boxed")


def math_verify_grade(response: str, gold: str) -> bool:
    from math_verify import parse, verify

    try:
        return bool(verify(parse(gold), parse(response)))
    except Exception:  # noqa: BLE001  (a grader that raises has not said "equal")
        return False


@pytest.fixture(scope="module")
def verdicts() -> tuple[list[bool], list[bool]]:
    ours = grade_many([(c["response"], c["gold"]) for c in CASES], timeout=20.0)
    logging.disable(logging.WARNING)
    try:
        theirs = [math_verify_grade(c["response"], c["gold"]) for c in CASES]
    finally:
        logging.disable(logging.NOTSET)
    return ours, theirs


def test_every_case_names_its_source_and_licence():
    sources = {c["source"] for c in CASES}
    assert sources == {"huggingface/Math-Verify", "huggingface/open-r1", "huggingface/trl"}
    for case in CASES:
        assert case["licence"] == "Apache-2.0" and case["file"] and case["commit"], case
        assert case["plain"] == (case["why_not_plain"] is None), case
    counts = {f: sum(c["form"] == f for c in CASES) for f in FORMS}
    assert counts["raw"] >= 280 and counts["answer"] >= 200 and counts["boxed"] >= 100, counts


@pytest.mark.parametrize("form", FORMS)
def test_accuracy_at_least_math_verify_in_every_form(verdicts, form):
    ours, theirs = verdicts
    idx = [i for i, c in enumerate(CASES) if c["form"] == form]
    ours_right = [i for i in idx if ours[i] == CASES[i]["expected"]]
    theirs_right = sum(theirs[i] == CASES[i]["expected"] for i in idx)
    wrong = [
        (CASES[i]["gold"][:60], CASES[i]["response"][-80:]) for i in idx if i not in ours_right
    ]
    assert len(ours_right) >= theirs_right, wrong


def test_no_false_positive_on_plainly_labelled_cases(verdicts):
    ours, _ = verdicts
    false_pos = [
        (c["form"], c["gold"][:60], c["response"][-80:])
        for c, got in zip(CASES, ours, strict=True)
        if got and not c["expected"] and c["plain"]
    ]
    assert sum(c["plain"] and not c["expected"] for c in CASES) >= 80
    assert false_pos == []


def test_wrapped_answer_never_worse_than_raw(verdicts):
    ours, _ = verdicts
    right: dict[tuple, dict[str, bool]] = defaultdict(dict)
    for case, got in zip(CASES, ours, strict=True):
        key = (case["source"], case["file"], case["test"], case["index"])
        right[key][case["form"]] = got == case["expected"]
    worse = [k for k, forms in right.items() if forms["raw"] and not all(forms.values())]
    assert worse == []
