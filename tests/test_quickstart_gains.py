"""Every stage of the quickstart adds what DeepSeek-R1 says it adds (held-out scores, fixed seed):
the cold start teaches the format, reasoning RL raises accuracy, rejection-sampling SFT keeps
it, and all-scenario RL keeps math while raising the code and general scores.

Run with `make test-gains`, not in `make test`: the whole quickstart takes about 14 minutes, and
stage 4's claims hold for the default seed (0) but not yet for every seed (seed 1 loses math and
code in stage 4; README, "The R1 pipeline")."""

from __future__ import annotations

import pytest

from pipelines.report import stage_evals
from tests.test_quickstart_resume import finish, start_quickstart


@pytest.mark.slow
@pytest.mark.gains
def test_every_stage_of_the_quickstart_adds_what_r1_says(tiny_model, tmp_path):
    out = tmp_path / "quickstart"
    finish(start_quickstart(out, shrink=False), out, timeout=3600)
    s = stage_evals(out)
    cold, rl, rs, final = (
        s[name] for name in ("cold_start", "reasoning_rl", "rejection_sampling", "all_scenario_rl")
    )
    assert cold["format_rate"] >= 0.95, cold
    assert rl["pass@1"] >= cold["pass@1"] + 0.10, (cold, rl)
    assert rs["pass@1"] >= rl["pass@1"] - 0.02, (rl, rs)
    assert final["pass@1"] >= rs["pass@1"], (rs, final)
    assert final["code_tests_passed"] > rs["code_tests_passed"], (rs, final)
    assert final["helpfulness"] > rs["helpfulness"], (rs, final)
