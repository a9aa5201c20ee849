"""Grading from anywhere: a script with no main guard, threads, a TRL-style reward function.

Workers are ``python -m rewards._worker`` processes, so the caller's ``__main__`` is never
imported again; these tests run real scripts in real interpreters.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from rewards.math import grade, grade_many

ROOT = Path(__file__).resolve().parents[1]


def run_script(tmp_path: Path, body: str, folder: str = ".") -> subprocess.CompletedProcess:
    script = tmp_path / folder / "user_script.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "R1KIT_GRADER_WORKERS": "1"}
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_script_without_main_guard_grades_and_runs_once(tmp_path):
    # Top-level code with a side effect: a worker that re-imported __main__ would run it again.
    result = run_script(
        tmp_path,
        """
        from pathlib import Path
        with Path("runs.txt").open("a") as f:
            f.write("ran\\n")
        from rewards.math import grade_many
        print(grade_many([("<answer>42</answer>", "42"), (r"\\boxed{x^2}", "x^3"),
                          (r"\\frac{1}{2}", "0.5")]))
    """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[True, False, True]"
    assert (tmp_path / "runs.txt").read_text() == "ran\n"


def test_code_without_a_file_as_in_a_notebook(tmp_path):
    # A notebook's __main__ has no file to re-import; code fed on stdin is the same case.
    code = "from rewards.math import grade\nprint(grade(r'\\boxed{\\frac{1}{2}}', '0.5'))\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "R1KIT_GRADER_WORKERS": "1"}
    result = subprocess.run(
        [sys.executable, "-"],
        input=code,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_a_rewards_module_in_the_callers_folder_does_not_shadow_the_workers(tmp_path):
    # The user's project has its own "rewards" package in the working directory.
    (tmp_path / "rewards").mkdir()
    (tmp_path / "rewards" / "__init__.py").write_text("raise ImportError('the user module')\n")
    result = run_script(
        tmp_path,
        """
        from rewards.math import grade
        print(grade("<answer>x^2-1</answer>", "(x-1)(x+1)"))
    """,
        folder="app",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_workers_end_with_the_process_that_started_them(tmp_path):
    # os._exit skips atexit: the workers still see their stdin close and exit
    result = run_script(
        tmp_path,
        """
        import os
        from rewards.math import default_pool, grade
        grade("x^2", "x^3")
        print(*[w.process.pid for w in default_pool()._workers])
        os._exit(0)
    """,
    )
    assert result.returncode == 0, result.stderr
    pids = [int(p) for p in result.stdout.split()]
    assert pids
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(map(running, pids)):
        time.sleep(0.1)
    assert not any(map(running, pids))


def running(pid: int) -> bool:
    """Alive and not a zombie (a container's init may be slow to reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_trl_style_reward_function_called_from_a_thread_of_an_unguarded_script(tmp_path):
    # TRL calls reward functions as fn(prompts=..., completions=..., **dataset_columns) and may
    # do so from a worker thread; this script has no main guard either.
    result = run_script(
        tmp_path,
        """
        import threading
        from rewards import get

        accuracy = get("accuracy")

        def math_reward(completions, solution, **kwargs):
            return accuracy(completions, prompts=kwargs["prompts"], answer=solution)

        out = []
        t = threading.Thread(target=lambda: out.extend(math_reward(
            completions=[[{"role": "assistant", "content": r"\\boxed{\\frac{1}{3}}"}],
                         [{"role": "assistant", "content": r"\\boxed{0.333}"}]],
            prompts=["q", "q"], solution=[r"\\frac{1}{3}", r"\\frac{1}{3}"])))
        t.start()
        t.join()
        print(out)
    """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[1.0, 0.0]"


def test_grading_from_many_threads_at_once():
    pairs = [(f"<answer>{i}</answer>", str(i)) for i in range(40)] + [("7", "8")] * 10
    results: dict[int, list[bool]] = {}

    def work(k: int) -> None:
        results[k] = grade_many(pairs)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(results[k] == [True] * 40 + [False] * 10 for k in range(4))
    assert grade(r"x \in [-2, 7]", "[-2,7]")
