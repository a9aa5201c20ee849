"""Result types of the sandbox API."""

from __future__ import annotations

from dataclasses import dataclass, field

STATUSES = (
    "ok",
    "runtime_error",
    "time_limit",
    "memory_limit",
    "output_limit",
    "compile_error",
    "sandbox_error",
)
VERDICTS = ("accepted", "wrong_answer") + STATUSES[1:]


class IsolationError(RuntimeError):
    """The machine offers less isolation than `min_isolation` requires."""


@dataclass(frozen=True)
class Execution:
    """What the supervisor observed about one run of a program.

    `status` is one of STATUSES. `sandbox_error` means the sandbox failed, not the program:
    rewards should drop such samples instead of scoring them. `peak_memory_mb` counts what
    the program allocated on top of the shared warm interpreter. `detail` says why a
    sandbox_error or compile_error happened.
    """

    status: str
    stdout: str
    stderr: str
    exit_code: int | None
    wall_time: float
    cpu_time: float
    peak_memory_mb: float
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Judgement:
    """One verdict per test (see VERDICTS), in the order the tests were given."""

    verdicts: list[str]
    passed: int
    total: int
    executions: list[Execution] = field(default_factory=list, repr=False, compare=False)

    @property
    def accepted(self) -> bool:
        return self.total > 0 and self.passed == self.total

    @property
    def pass_rate(self) -> float:
        return self.passed / self.total if self.total else 0.0

    @property
    def sandbox_failed(self) -> bool:
        """True when any test hit a sandbox_error: the score says nothing about the code."""
        return "sandbox_error" in self.verdicts
