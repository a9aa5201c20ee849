"""Every stage of the quickstart adds what DeepSeek-R1 says it adds (held-out scores, fixed seed):
the cold start teaches the format, reasoning RL raises accuracy, rejection-sampling SFT keeps
it, and all-scenario RL keeps math while raising the code and general scores.

Run with `make test-gains`, not in `make test`: the whole quickstart takes about 13 minutes, and
its scores are exact on one machine but not across machines, while two of the claims hold by
small margins on the default seed (0): format 95.2% >= 95%, code 83.4% -> 84.0% (README,
"The R1 pipeline", has every seed's figures)."""

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
