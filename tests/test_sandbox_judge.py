"""Functional tests of `sandbox`: the API, the three test kinds, C/C++, doctor, min_isolation."""

from __future__ import annotations

import shutil

import pytest

import sandbox
from sandbox.asserts import parse_assert
from sandbox.compare import tokens_match, values_equal
from sandbox.diagnostics import format_table, main
from tests.sandbox_support import (
    checked_pool,
)


@pytest.fixture(scope="module")
def box():
    yield from checked_pool(time_limit=3.0)


# ----- pure comparison logic (no sandbox) ---------------------------------------------
def test_tokens_must_match_one_for_one():
    assert tokens_match("1  2\n3\n", "1 2 3")
    assert not tokens_match("1 2 3 4", "1 2 3")  # an extra token is wrong
    assert not tokens_match("1 2", "1 2 3")


def test_float_tolerance_is_absolute_or_relative():
    # |0.3333333 - 1/3| = 3.3e-8 <= 1e-6: accepted; 0.334 is off by 6.7e-4: rejected.
    assert tokens_match("0.3333333", "0.333333333", tolerance=1e-6)
    assert not tokens_match("0.334", "0.333333333", tolerance=1e-6)
    assert not tokens_match("0.3333333", "0.333333333")  # no tolerance: exact tokens
    # relative for large numbers: 1e9 * 1e-6 = 1000 >= |1000000500 - 1000000000|
    assert tokens_match("1000000500", "1000000000", tolerance=1e-6)


def test_values_treat_tuples_as_lists_and_keep_types():
    assert values_equal((1, [2, 3]), [1, [2, 3]])
    assert not values_equal("5", 5)
    assert values_equal({"a": 1.0}, {"a": 1})
    assert values_equal(0.1 + 0.2, 0.3, tolerance=1e-9) and not values_equal(0.1 + 0.2, 0.3)


def test_assert_is_split_at_the_comparison():
    check = parse_assert("assert add(2, 3) == 5")
    assert (check.expr, check.op, check.expected) == ("add(2, 3)", "==", 5)
    flipped = parse_assert("assert [1, 2] == f(x=1)")
    assert (flipped.expr, flipped.op, flipped.expected) == ("f(x=1)", "==", [1, 2])
    close = parse_assert("assert math.isclose(area(2), 12.56, rel_tol=0.01)")
    assert (close.expr, close.op, close.expected, close.rel_tol) == (
        "area(2)",
        "isclose",
        12.56,
        0.01,
    )
    assert parse_assert("assert set(f(1)) == set((4, 5))").expected == {4, 5}


@pytest.mark.parametrize("text", ["assert f(1) == g(1)", "x = 1", "assert f(1) is 5"])
def test_unsupported_asserts_are_refused(text):
    with pytest.raises(ValueError):
        parse_assert(text)


# ----- execute -------------------------------------------------------------------------
def test_execute_reports_output_and_measurements(box):
    result = box.execute(
        "import sys; print(input()[::-1]); print('warn', file=sys.stderr)", stdin="abc\n"
    )
    assert (result.status, result.stdout, result.stderr, result.exit_code) == (
        "ok",
        "cba\n",
        "warn\n",
        0,
    )
    assert 0 < result.wall_time < 3 and result.cpu_time >= 0 and result.peak_memory_mb > 0


def test_runtime_error_keeps_the_traceback(box):
    result = box.execute("def f():\n    raise ValueError('boom')\nf()")
    assert result.status == "runtime_error" and result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "ValueError: boom"
    assert "harness" not in result.stderr  # only the program's frames, as under python


def test_execute_many_keeps_order(box):
    results = box.execute_many([{"code": f"print({i})"} for i in range(10)])
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(10)]


def test_module_level_functions_use_the_default_pool():
    result = sandbox.execute("print(6 * 7)")
    judgement = sandbox.judge(
        "def f(x): return x * 2", [{"fn_name": "f", "args": [4], "expected": 8}]
    )
    assert result.stdout == "42\n" and judgement.verdicts == ["accepted"]


# ----- judge: the three kinds ------------------------------------------------------------
def test_stdin_stdout_tests(box):
    code = "a, b = map(int, input().split())\nprint(a + b)\nprint(a * b)"
    tests = [
        {"input": "2 3\n", "output": "5\n6\n"},
        {"input": "1 1", "output": "2 1"},
        {"input": "2 2", "output": "4"},
        {"input": "x", "output": "0"},
    ]
    judgement = box.judge(code, tests)
    assert judgement.verdicts == ["accepted", "accepted", "wrong_answer", "runtime_error"]
    assert (judgement.passed, judgement.total) == (2, 4)


def test_float_tolerance_in_io_tests(box):
    tests = [{"input": "", "output": "0.333333"}]
    assert box.judge("print(1/3)", tests).verdicts == ["wrong_answer"]
    assert box.judge("print(1/3)", tests, float_tolerance=1e-5).verdicts == ["accepted"]


def test_function_call_tests(box):
    code = (
        "def pair(a, b):\n    return (b, a)\n\nclass Solution:\n    def twice(self, x):\n"
        "        return [x, x]"
    )
    tests = [
        {"fn_name": "pair", "args": [1, "x"], "expected": ["x", 1]},
        {"fn_name": "twice", "args": [{"k": 1}], "expected": [{"k": 1}, {"k": 1}]},
        {"fn_name": "pair", "args": [1, 2], "expected": [1, 2]},
        {"fn_name": "missing", "args": [], "expected": None},
    ]
    assert box.judge(code, tests).verdicts == [
        "accepted",
        "accepted",
        "wrong_answer",
        "runtime_error",
    ]


def test_assert_tests(box):
    code = (
        "import math\ndef area(r): return math.pi * r * r\ndef evens(n): "
        "return {i for i in range(n) if i % 2 == 0}\ndef empty(): return []"
    )
    tests = [
        {"assert": "assert math.isclose(area(1), 3.14159, rel_tol=1e-4)"},
        {"assert": "assert evens(5) == {0, 2, 4}"},
        {"assert": "assert not empty()"},
        {"assert": "assert abs(area(1) - 3) < 0.2"},
        {"assert": "assert evens(3) == set([0, 2, 4])"},
    ]
    assert box.judge(code, tests).verdicts == ["accepted"] * 4 + ["wrong_answer"]


def test_time_and_memory_verdicts(box):
    judgement = box.judge(
        "import time\nx = input()\nif x == 'slow': time.sleep(9)\n"
        "if x == 'big': y = bytearray(2**31)\nprint(x)",
        [
            {"input": "slow", "output": "slow"},
            {"input": "big", "output": "big"},
            {"input": "ok", "output": "ok"},
        ],
        time_limit=0.5,
    )
    assert judgement.verdicts == ["time_limit", "memory_limit", "accepted"]


def test_unknown_test_kind_is_refused(box):
    with pytest.raises(ValueError, match="valid kinds"):
        box.judge("print(1)", [{"stdin": "1", "stdout": "1"}])


def test_judge_many_pairs_programs_with_tests(box):
    judgements = box.judge_many(
        ["print(int(input()) + 1)", "print(0)"],
        [
            [{"input": "1", "output": "2"}],
            [{"input": "", "output": "0"}, {"input": "", "output": "1"}],
        ],
    )
    assert [j.verdicts for j in judgements] == [["accepted"], ["accepted", "wrong_answer"]]


# ----- C and C++ -----------------------------------------------------------------------
needs_gcc = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")


@needs_gcc
def test_cpp_solution_is_compiled_once_and_judged(box):
    code = "#include <iostream>\nint main(){long a,b; std::cin>>a>>b; std::cout<<a+b<<'\\n';}"
    tests = [{"input": "1 2", "output": "3"}, {"input": "5 5", "output": "11"}]
    assert box.judge(code, tests, language="cpp").verdicts == ["accepted", "wrong_answer"]


@needs_gcc
def test_cpp_compile_error(box):
    judgement = box.judge(
        "int main() { return }", [{"input": "", "output": ""}] * 2, language="c++"
    )
    assert judgement.verdicts == ["compile_error", "compile_error"]
    assert "error" in judgement.executions[0].stderr


@needs_gcc
def test_c_program_runs_confined(box):
    code = (
        '#include <stdio.h>\nint main(){FILE*f=fopen("/etc/shadow","r");'
        'printf("%s\\n", f ? "open" : "denied"); fflush(stdout); for(;;);}'
    )
    result = box.execute(code, language="c", time_limit=0.5)
    assert (result.status, result.stdout) == ("time_limit", "denied\n")


# ----- layers --------------------------------------------------------------------------
def test_doctor_lists_every_layer_with_a_reason():
    table = sandbox.doctor()
    names = {name for name, _, _ in table}
    assert {"pid_namespace", "seccomp", "landlock", "cgroup_memory"} <= names
    assert all(isinstance(on, bool) and reason for _, on, reason in table)


def test_doctor_cli_prints_the_table(capsys):
    code = main(["--min-isolation", "none"])
    out = capsys.readouterr().out
    assert code == 0 and "isolation level:" in out and "seccomp" in out


def test_min_isolation_refuses_a_weaker_sandbox():
    with pytest.raises(sandbox.IsolationError, match="min_isolation='full'.*seccomp"):
        sandbox.Sandbox(workers=1, min_isolation="full", disable=["seccomp"])


def test_disabled_layer_shows_as_off():
    with sandbox.Sandbox(workers=1, min_isolation="namespaces", disable=["landlock"]) as weak:
        layers = {layer.name: layer for layer in weak.layers}
        assert not layers["landlock"].on and layers["landlock"].reason == "disabled by caller"
        assert weak.execute("print(1)").stdout == "1\n"
        assert format_table(weak.layers).count("OFF") == 1


def test_sandbox_error_is_distinct_when_the_worker_dies():
    import threading
    import time

    with sandbox.Sandbox(workers=1) as one:
        result = {}
        thread = threading.Thread(
            target=lambda: result.update(r=one.execute("import time; time.sleep(5)", time_limit=4))
        )
        thread.start()
        time.sleep(0.5)
        one._procs[0].proc.kill()  # the sandbox fails, not the program
        thread.join()
        assert result["r"].status == "sandbox_error"
        assert one.execute("print('restarted')").stdout == "restarted\n"
