"""Every stage of the quickstart adds what DeepSeek-R1 says it adds (held-out scores, fixed seed):
the cold start teaches the format, reasoning RL raises accuracy, rejection-sampling SFT keeps
it, and all-scenario RL keeps math while raising the code and general scores.

Run with `make test-gains`, not in `make test`: the whole quickstart takes about 14 minutes, and
the claims (pipelines/claims.py) do not all hold yet. On the default seed (0) stage 4 keeps
math and code within the evaluation's noise of stage 3 (90.1% -> 89.5%, 98.4% -> 97.7%)
instead of at or above it; seeds 1 and 2 miss one claim each (README, "The R1 pipeline")."""

from __future__ import annotations

import pytest

from pipelines.claims import r1_claims
from pipelines.report import stage_evals
from tests.test_quickstart_resume import finish, start_quickstart


@pytest.mark.slow
@pytest.mark.gains
def test_every_stage_of_the_quickstart_adds_what_r1_says(tiny_model, tmp_path):
    out = tmp_path / "quickstart"
    finish(start_quickstart(out, shrink=False), out, timeout=3600)
    failed = [claim.text for claim in r1_claims(stage_evals(out)) if not claim.holds]
    assert not failed, failed
