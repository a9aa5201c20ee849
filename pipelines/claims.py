"""What each DeepSeek-R1 stage should add, checked on a pipeline's held-out scores.

R1 (§2.3) motivates every stage by what it adds: the cold start teaches a readable format,
reasoning-oriented RL raises accuracy, rejection-sampling SFT distils the RL model's skill into
a clean one, and all-scenario RL makes the model helpful and harmless while keeping its
reasoning. `r1_claims` turns that into thresholds on the scores `pipelines.evaluate` writes per
stage (rates in [0, 1]), so the quickstart's test and the seeds benchmark read them one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FORMAT_AFTER_COLD_START = 0.95
RL_GAIN = 0.10  # reasoning RL over the cold start, math pass@1
DISTILL_SLACK = 0.02  # rejection-sampling SFT may trail reasoning RL by this much


@dataclass(frozen=True)
class Claim:
    text: str  # the claim with the scores it was judged on
    holds: bool


def r1_claims(evals: dict[str, dict[str, Any]]) -> list[Claim]:
    """The six per-stage claims, judged on `evals` (stage name -> held-out scores) for the four
    R1 stages named as in the quickstart: cold_start, reasoning_rl, rejection_sampling,
    all_scenario_rl."""
    cold, rl, rs, final = (
        evals[name]
        for name in ("cold_start", "reasoning_rl", "rejection_sampling", "all_scenario_rl")
    )

    def pct(x: float) -> str:
        return f"{100 * x:.1f}%"

    def claim(text: str, before: float, after: float, holds: bool, rate: bool = True) -> Claim:
        show = pct if rate else (lambda x: f"{x:.3f}")
        return Claim(f"{text}: {show(before)} -> {show(after)}", holds)

    return [
        Claim(
            f"cold start format >= {pct(FORMAT_AFTER_COLD_START)}: {pct(cold['format_rate'])}",
            cold["format_rate"] >= FORMAT_AFTER_COLD_START,
        ),
        claim(
            f"reasoning RL math >= cold start + {100 * RL_GAIN:.0f} points",
            cold["pass@1"],
            rl["pass@1"],
            rl["pass@1"] >= cold["pass@1"] + RL_GAIN,
        ),
        claim(
            f"rejection sampling math >= reasoning RL - {100 * DISTILL_SLACK:.0f} points",
            rl["pass@1"],
            rs["pass@1"],
            rs["pass@1"] >= rl["pass@1"] - DISTILL_SLACK,
        ),
        claim(
            "all-scenario RL math >= rejection sampling",
            rs["pass@1"],
            final["pass@1"],
            final["pass@1"] >= rs["pass@1"],
        ),
        claim(
            "all-scenario RL code tests > rejection sampling",
            rs["code_tests_passed"],
            final["code_tests_passed"],
            final["code_tests_passed"] > rs["code_tests_passed"],
        ),
        claim(
            "all-scenario RL helpfulness > rejection sampling",
            rs["helpfulness"],
            final["helpfulness"],
            final["helpfulness"] > rs["helpfulness"],
            rate=False,
        ),
    ]
