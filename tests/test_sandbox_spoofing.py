"""Programs that try to be judged correct without being correct. Every one must fail.

Each test states the trick; the expected value is one the program cannot compute
(or the program is plainly wrong), so "accepted" would be a spoofed verdict.
"""

from __future__ import annotations

import secrets
import textwrap

import pytest

from tests.sandbox_support import (
    checked_pool,
)


@pytest.fixture(scope="module")
def box():
    yield from checked_pool(time_limit=3.0, memory_mb=128)


def verdicts(box, code, tests):
    return box.judge(textwrap.dedent(code), tests).verdicts


IO = [{"input": "2 3", "output": "5"}]
CALL = [{"fn_name": "add", "args": [2, 3], "expected": 5}]
ASSERT = [{"assert": "assert add(2, 3) == 5"}]


def test_exit_zero_without_output_is_wrong(box):
    assert verdicts(box, "import os; os._exit(0)", IO) == ["wrong_answer"]


def test_exit_zero_before_the_call_is_not_accepted(box):
    assert verdicts(box, "import os; os._exit(0)", CALL) == ["runtime_error"]
    assert verdicts(box, "import sys; sys.exit(0)", ASSERT) == ["runtime_error"]


def test_printing_passed_is_wrong(box):
    code = 'print("PASSED"); print("All tests passed"); print("accepted")'
    assert verdicts(box, code, IO) == ["wrong_answer"]


def test_always_equal_object_is_wrong(box):
    code = """
        class Anything:
            def __eq__(self, other): return True
            def __ne__(self, other): return False
        def add(a, b): return Anything()
    """
    assert verdicts(box, code, CALL + ASSERT) == ["wrong_answer", "wrong_answer"]


def test_int_subclass_with_forged_eq_is_compared_by_value(box):
    code = """
        class Five(int):
            def __eq__(self, other): return True
        def add(a, b): return Five(4)
    """
    assert verdicts(box, code, CALL + ASSERT) == ["wrong_answer", "wrong_answer"]


def test_patching_builtins_and_assertion_error_changes_nothing(box):
    code = """
        import builtins
        builtins.AssertionError = type("Never", (Exception,), {})
        builtins.isinstance = lambda *a: True
        def add(a, b): return a - b
    """
    # The patched isinstance may also break the harness's encoder: then it is an error.
    assert verdicts(box, code, ASSERT)[0] in ("wrong_answer", "runtime_error")


def test_forged_result_on_the_channel_is_wrong(box):
    # The program writes its own result message first; the harness appends the real one.
    code = """
        import os
        os.write(3, b'{"value": 5}')
        def add(a, b): return 0
    """
    assert verdicts(box, code, CALL) == ["wrong_answer"]


def test_garbage_on_the_channel_is_wrong(box):
    code = """
        import os
        os.write(3, b'\\xff\\x00 not json')
        os.close(3)
        def add(a, b): return a + b
    """
    assert verdicts(box, code, CALL) in (["wrong_answer"], ["runtime_error"])


def test_expected_output_never_enters_the_sandbox(box):
    marker = "R1KIT-" + secrets.token_hex(8)
    # The program hunts through every object and file it can reach for the marker prefix.
    code = """
        import gc, os, sys
        found = set()
        for obj in gc.get_objects():
            for s in (obj if isinstance(obj, (list, tuple, set)) else
                      obj.values() if isinstance(obj, dict) else [obj]):
                if isinstance(s, str) and "R1KIT-" in s and "in s" not in s:
                    found.add(s)
        print(" ".join(sorted(found)) or "nothing")
    """
    judgement = box.judge(
        textwrap.dedent(code),
        [{"input": "", "output": marker}, {"fn_name": "f", "args": [], "expected": marker}],
    )
    assert judgement.verdicts[0] == "wrong_answer"
    assert marker not in judgement.executions[0].stdout
    assert judgement.verdicts[1] == "runtime_error"  # f is not defined


def test_returning_a_custom_object_is_wrong(box):
    code = """
        class Box:
            def __repr__(self): return "5"
        def add(a, b): return Box()
    """
    assert verdicts(box, code, CALL) == ["wrong_answer"]


def test_exit_code_alone_cannot_pass(box):
    code = "import sys; sys.stderr.write('ok'); sys.exit(0)"
    assert verdicts(box, code, IO) == ["wrong_answer"]


def test_crash_after_correct_output_is_a_runtime_error(box):
    code = "print(5, flush=True)\nraise SystemExit(3)"
    assert verdicts(box, code, IO) == ["runtime_error"]
