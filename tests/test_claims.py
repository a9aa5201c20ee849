"""The R1 per-stage claims are judged on the scores as written, at their thresholds."""

from __future__ import annotations

from pipelines.claims import r1_claims


def _scores(math: float, fmt: float = 0.99, code: float = 0.5, help: float = 0.5) -> dict:
    return {"pass@1": math, "format_rate": fmt, "code_tests_passed": code, "helpfulness": help}


def _evals(**stages) -> dict:
    base = {
        "cold_start": _scores(0.40, fmt=0.96),
        "reasoning_rl": _scores(0.60),
        "rejection_sampling": _scores(0.60, code=0.70, help=0.60),
        "all_scenario_rl": _scores(0.61, code=0.75, help=0.70),
    }
    return {**base, **stages}


def test_every_claim_holds_on_a_pipeline_that_gains_at_every_stage():
    claims = r1_claims(_evals())
    assert len(claims) == 6 and all(c.holds for c in claims), claims
    assert claims[1].text == "reasoning RL math >= cold start + 10 points: 40.0% -> 60.0%"


def test_each_claim_fails_on_its_own_shortfall():
    cases = {
        0: {"cold_start": _scores(0.40, fmt=0.94)},
        1: {"reasoning_rl": _scores(0.49)},
        2: {"rejection_sampling": _scores(0.57, code=0.70, help=0.60)},
        3: {"all_scenario_rl": _scores(0.59, code=0.75, help=0.70)},
        4: {"all_scenario_rl": _scores(0.61, code=0.70, help=0.70)},  # equal is not higher
        5: {"all_scenario_rl": _scores(0.61, code=0.75, help=0.59)},
    }
    for index, stages in cases.items():
        failed = [i for i, c in enumerate(r1_claims(_evals(**stages))) if not c.holds]
        assert failed == [index], (index, failed)


def test_thresholds_are_inclusive_where_r1_says_at_least():
    exact = _evals(
        cold_start=_scores(0.40, fmt=0.95),
        reasoning_rl=_scores(0.50),
        rejection_sampling=_scores(0.48, code=0.70, help=0.60),
        all_scenario_rl=_scores(0.48, code=0.71, help=0.61),
    )
    assert all(c.holds for c in r1_claims(exact))
