"""Rebuild ``ported_suites.jsonl`` from other projects' answer-equivalence tests.

Usage: ``python tests/data/port_suites.py MATH_VERIFY_GIT_DIR > tests/data/ported_suites.jsonl``

Math-Verify's cases are read as data from its test files at ``MATH_VERIFY_COMMIT`` (the
``(gold, pred, expected)`` literals of each parametrised test, parsed with ``ast``, never
imported or run). open-r1's and TRL's reward tests build their cases inside test bodies, so
their (solution, completion, expected) triples are listed by hand below. See README.md here
for the input forms and the ``plain`` flag.
"""

from __future__ import annotations

import ast
import json
import math
import re
import subprocess
import sys

MATH_VERIFY_COMMIT = "5d148cf"
COMMITS = {
    "huggingface/Math-Verify": MATH_VERIFY_COMMIT,
    "huggingface/open-r1": "1416fa0",
    "huggingface/trl": "f2cd57710",
}
MV_FILES = [
    "tests/test_all.py",
    "tests/test_boxed.py",
    "tests/test_numina_cases.py",
    "tests/test_open_thoughts.py",
    "tests/test_strict.py",
    "tests/test_yujianll.py",
]
LICENCE = "Apache-2.0"
# Options the source tests pass to the grader that are its defaults (Math-Verify's test
# helper uses float_rounding=6 and strict=True unless a test says otherwise).
DEFAULT_OPTIONS = {"precision": 6, "strict": True, "allow_set_relation_comp": False}

# Cases whose label is not a plain statement of mathematical equality, keyed by
# (file, test, index within the test). Each is kept, with its own label, in the accuracy
# figures, but not in the "plainly labelled" subset where false positives must be zero.
NOT_PLAIN = {
    ("tests/test_all.py", "test_latex_notation", 5): "label encodes a markup rule ($ across lines)",
    ("tests/test_all.py", "test_latex_notation", 6): "label encodes a markup rule "
    "(\\( across lines)",
    ("tests/test_all.py", "test_relations_math", 10): "chain 5+5+1 = 7 = 11 is false",
    ("tests/test_all.py", "test_relations_math", 12): "chain 5+5+1 = 7 = 11 is false",
    ("tests/test_all.py", "test_relations_math", 13): "label takes 1/3 from a false chain",
    ("tests/test_all.py", "test_relations_math", 16): "prediction says 1/3 is about 1.3",
    ("tests/test_all.py", "test_relations_math", 21): "gold is a chain with an undefined symbol",
    ("tests/test_all.py", "test_relations_math", 26): "3+3 = 2 is false",
    ("tests/test_all.py", "test_relations_math", 27): "3+3 = 2 is false",
    ("tests/test_all.py", "test_complex_math_expressions", 0): "rounded decimal for 1/12",
    ("tests/test_all.py", "test_set_rel_assymetry", 3): "equal sets labelled unequal by an option",
    ("tests/test_all.py", "test_symbols", 0): "\\text{13} labelled unlike 13",
    ("tests/test_open_thoughts.py", "test_open_thoughts", 28): "label depends on the words "
    "between two boxes",
    ("tests/test_yujianll.py", "test_string_extraction", 9): "1 - 1/e labelled equal to 1 + 1/e",
}


def _literal(node: ast.expr):
    try:
        return ast.literal_eval(node)
    except ValueError:  # one gold is written as an f-string of math.sqrt(17)
        code = compile(ast.Expression(node), "<case>", "eval")
        return eval(code, {"__builtins__": {}, "math": math})


def math_verify_cases(git_dir: str) -> list[dict]:
    cases = []
    for path in MV_FILES:
        source = subprocess.run(
            ["git", "-C", git_dir, "show", f"{MATH_VERIFY_COMMIT}:{path}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.FunctionDef):
                continue
            for dec in node.decorator_list:
                name = getattr(getattr(dec, "func", None), "attr", "")
                if not (isinstance(dec, ast.Call) and name == "parametrize"):
                    continue
                names = [n.strip() for n in ast.literal_eval(dec.args[0]).split(",")]
                if "gold" not in names:
                    continue
                for index, row in enumerate(dec.args[1].elts):
                    values = dict(zip(names, _literal(row), strict=True))
                    expected = values.pop("expected", values.pop("result", None))
                    gold, pred = values.pop("gold"), values.pop("pred")
                    options = {k: v for k, v in values.items() if DEFAULT_OPTIONS.get(k) != v}
                    why = NOT_PLAIN.get((path, node.name, index))
                    if options and why is None:
                        why = f"asserted under non-default options {options}"
                    cases.append(
                        {
                            "source": "huggingface/Math-Verify",
                            "file": path,
                            "test": node.name,
                            "index": index,
                            "gold": gold,
                            "response": pred,
                            "expected": bool(expected),
                            "plain": why is None,
                            "why_not_plain": why,
                        }
                    )
    return cases


_F = r"\frac{63}{400}"
_BOXED = r"\boxed{" + _F + "}"
_WRONG = r"\boxed{\frac{64}{400}}"
# (repository, test, solution, completion, expected, why not plain or None)
HAND_CASES = [
    ("huggingface/open-r1", "test_accuracy_reward_correct_answer", _F, _BOXED, 1, None),
    ("huggingface/open-r1", "test_accuracy_reward_wrong_answer", _F, _WRONG, 0, None),
    (
        "huggingface/open-r1",
        "test_accuracy_reward_wrong_answer_no_latex",
        "6",
        r"\boxed{3}",
        0,
        None,
    ),
    (
        "huggingface/open-r1",
        "test_different_lengths_correct_answers",
        _F,
        r"\boxed{" + _F + "}  " + "x" * 10,
        1,
        None,
    ),
    (
        "huggingface/open-r1",
        "test_different_lengths_incorrect_answers",
        _F,
        _WRONG + "  " + "x" * 10,
        0,
        None,
    ),
    ("huggingface/trl", "test_accuracy_reward_correct_answer", "63/400", _BOXED, 1, None),
    (
        "huggingface/trl",
        "test_accuracy_reward_in_worker_thread",
        r"\frac{1}{3}",
        r"\boxed{\frac{1}{3}}",
        1,
        None,
    ),
    (
        "huggingface/trl",
        "test_correct_answer_yields_unit_reward",
        _F,
        r"<think> Reasoning content </think> \boxed{" + _F + "}",
        1,
        None,
    ),
    (
        "huggingface/trl",
        "test_correct_answer_yields_unit_reward",
        _F,
        r"Reasoning content </think> \boxed{" + _F + "}",
        1,
        None,
    ),
    (
        "huggingface/trl",
        "test_correct_answer_with_custom_tags_yields_unit_reward",
        _F,
        r"<REASONING_START> Reasoning content </REASONING_END> \boxed{" + _F + "}",
        1,
        "asserted with custom reasoning delimiters",
    ),
    (
        "huggingface/trl",
        "test_incorrect_answer_yields_zero_reward",
        _F,
        r"<think> Reasoning content </think> " + _WRONG,
        0,
        None,
    ),
    (
        "huggingface/trl",
        "test_correct_answer_in_reasoning_yields_zero_reward",
        r"\boxed{42}",
        r"<think> My answer is \boxed{42} </think> Some other text.",
        0,
        None,
    ),
    (
        "huggingface/trl",
        "test_correct_answer_in_reasoning_yields_zero_reward",
        r"\boxed{42}",
        r"<think> The answer is \boxed{42} </think> Here's a wrong answer: \boxed{43}.",
        0,
        None,
    ),
    (
        "huggingface/trl",
        "test_incomplete_reasoning_yields_zero_reward",
        _F,
        r"<think> Incomplete reasoning without closing tag",
        0,
        None,
    ),
    (
        "huggingface/trl",
        "test_incomplete_reasoning_yields_zero_reward",
        _F,
        r"Correct answer \frac{63}{400} but completely missing reasoning content",
        0,
        "label requires a closed reasoning block",
    ),
]


def hand_cases() -> list[dict]:
    seen: dict[tuple[str, str], int] = {}
    cases = []
    for repo, test, gold, response, expected, why in HAND_CASES:
        index = seen[(repo, test)] = seen.get((repo, test), -1) + 1
        cases.append(
            {
                "source": repo,
                "file": "tests/test_rewards.py",
                "test": test,
                "index": index,
                "gold": gold,
                "response": response,
                "expected": bool(expected),
                "plain": why is None,
                "why_not_plain": why,
            }
        )
    return cases


_DELIMS = [("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")]
_PROSE_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
_TEXT_RE = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox)\{[^{}]*\}")
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def as_answer(response: str) -> str | None:
    """The response inside ``<answer>``, when it reads as a final answer: one line of at most
    100 characters with no R1 tags (a worked solution does not go in an answer block)."""
    if any(t in response for t in _TAGS) or "\n" in response.strip() or len(response) > 100:
        return None
    return f"<answer>{response}</answer>"


def as_boxed(response: str) -> str | None:
    """The response inside ``\\boxed{}``, when it is one expression: at most one outer math
    delimiter, no prose words (``\\text{}`` aside), no box or ``$`` inside, balanced braces."""
    text = response.strip()
    for left, right in _DELIMS:
        if text.startswith(left) and text.endswith(right) and len(text) > len(left) + len(right):
            text = text[len(left) : -len(right)].strip()
            break
    bare = re.sub(r"\\[A-Za-z]+", "", _TEXT_RE.sub("", text))
    if (
        any(t in text for t in _TAGS)
        or "$" in text
        or "\\boxed" in text
        or "\n" in text
        or _PROSE_RE.search(bare)
        or text.count("{") != text.count("}")
        or not text
    ):
        return None
    return "\\boxed{" + text + "}"


def main() -> None:
    cases = math_verify_cases(sys.argv[1]) + hand_cases()
    for case in cases:
        for form, make in (("raw", lambda r: r), ("answer", as_answer), ("boxed", as_boxed)):
            response = make(case["response"])
            if response is None:
                continue
            row = {
                "form": form,
                **case,
                "response": response,
                "licence": LICENCE,
                "commit": COMMITS[case["source"]],
            }
            print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main()
