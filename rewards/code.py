"""Code reward: run the completion's program against the row's tests in ``sandbox``."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from rewards._text import answer_block, completion_text
from rewards.registry import register

_FENCE_RE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)


def extract_code(text: str) -> str | None:
    """The last fenced code block (inside the answer block if there is one), else the answer
    block itself, else None.

    >>> extract_code("<think>plan</think><answer>```python\\nprint(1)\\n```</answer>")
    'print(1)\\n'
    >>> extract_code("<answer>print(2)</answer>"), extract_code("no code")
    ('print(2)', None)
    """
    block = answer_block(text)
    fences = _FENCE_RE.findall(block if block is not None else text)
    if fences:
        return fences[-1]
    if block is not None and block.strip():
        return block.strip()
    return None


@register("code")
class Code:
    """Fraction of the row's ``tests`` passed (``mode="fraction"``) or 1.0 only if all pass
    (``mode="all"``), judged in ``sandbox``. No code scores 0.0; rows without tests, or any
    ``sandbox_error`` verdict (the sandbox's fault, not the program's), get None.

    >>> Code()(["```python\\nprint(input())\\n```"], prompts=["echo"],  # doctest: +SKIP
    ...        tests=[[{"input": "hi\\n", "output": "hi\\n"}]])
    [1.0]
    """

    def __init__(
        self,
        mode: Literal["fraction", "all"] = "fraction",
        time_limit: float = 2.0,
        memory_mb: int = 512,
        tests_column: str = "tests",
    ) -> None:
        if mode not in ("fraction", "all"):
            raise ValueError(f"code: mode must be 'fraction' or 'all', got {mode!r}")
        self.mode, self.time_limit, self.memory_mb = mode, time_limit, memory_mb
        self.tests_column = tests_column

    def __call__(
        self, completions: list[Any], *, prompts: list[Any], **columns: Any
    ) -> list[float | None]:
        import sandbox

        tests_col = columns.get(self.tests_column) or [None] * len(completions)
        scores: list[float | None] = [None] * len(completions)
        # A group's samples often hold the same program: each distinct (program, tests) pair is
        # judged once, and all of them in one batch spread over the sandbox's workers.
        # (program, repr(tests)) -> (tests, the rows holding that pair)
        programs: dict[tuple[str, str], tuple[Any, list[int]]] = {}
        for i, (completion, tests) in enumerate(zip(completions, tests_col, strict=True)):
            if isinstance(tests, str):  # datasets often store the tests as a JSON string
                tests = json.loads(tests)
            if not tests:
                continue
            code = extract_code(completion_text(completion))
            if code is None:
                scores[i] = 0.0
            else:
                programs.setdefault((code, repr(tests)), (tests, []))[1].append(i)
        if programs:
            judgements = sandbox.default_sandbox().judge_many(
                [code for code, _ in programs],
                [tests for tests, _ in programs.values()],
                time_limit=self.time_limit,
                memory_mb=self.memory_mb,
            )
            for (_, rows), result in zip(programs.values(), judgements, strict=True):
                score = self._score(result)
                for i in rows:
                    scores[i] = score
        return scores

    def _score(self, result: Any) -> float | None:
        if "sandbox_error" in result.verdicts or not result.total:
            return None
        if self.mode == "all":
            return 1.0 if result.passed == result.total else 0.0
        return result.passed / result.total
