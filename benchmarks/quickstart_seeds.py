"""The quickstart pipeline over several training seeds: mean and spread of every stage's held-out
scores, so a gain is told apart from a lucky seed.

    python benchmarks/quickstart_seeds.py                   # seeds 0 1 2 into runs/quickstart-seeds
    python benchmarks/quickstart_seeds.py --seeds 0 1 2 3 --jobs 2    # with cores to spare

Each seed is `r1kit run recipes/quickstart/pipeline.yaml seed=S output_dir=OUT/seed-S`, so a
rerun resumes unfinished seeds and reuses finished ones. `seed` moves every stage's training
randomness, not the data the stages draw nor the held-out evaluation.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipelines.claims import r1_claims
from pipelines.report import stage_evals

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "quickstart" / "pipeline.yaml"
STAGES = ("base", "cold_start", "reasoning_rl", "rejection_sampling", "all_scenario_rl")
SCORES = (
    ("pass@1", "math pass@1"),
    ("format_rate", "format"),
    ("code_tests_passed", "code tests"),
    ("helpfulness", "helpfulness"),
    ("refusal_rate", "refusals"),
)


def run_seed(seed: int, out: Path, overrides: list[str]) -> float:
    """Run (or resume) one seed's pipeline; returns its wall-clock seconds."""
    start = time.perf_counter()
    log = out.with_suffix(".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as f:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipelines.cli",
                "run",
                str(RECIPE),
                f"seed={seed}",
                f"output_dir={out}",
                *overrides,
            ],
            cwd=ROOT,
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    if done.returncode:
        raise SystemExit(f"seed {seed} failed (exit {done.returncode}); see {log}")
    return time.perf_counter() - start


def cell(values: list[float | None], rate: bool) -> str:
    """`mean (min-max)` over seeds, or n/a when the score does not apply."""
    got = [v for v in values if v is not None]
    if not got:
        return "n/a"
    scale, digits = (100, 1) if rate else (1, 2)
    mean = f"{statistics.fmean(got) * scale:.{digits}f}"
    if len(got) == 1:
        return mean
    return f"{mean} ({min(got) * scale:.{digits}f}-{max(got) * scale:.{digits}f})"


def table(runs: dict[int, dict[str, dict]]) -> str:
    header = ["stage", *(label for _, label in SCORES)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for stage in STAGES:
        evals = [scores[stage] for scores in runs.values() if stage in scores]
        if not evals:
            continue
        cells = [cell([e.get(key) for e in evals], key != "helpfulness") for key, _ in SCORES]
        lines.append("| " + " | ".join([stage, *cells]) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--out", default="runs/quickstart-seeds", help="one directory per seed below this"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="seeds run at once; keep 1 on a 2-core machine (two vLLM engines slow each other ~8x)",
    )
    parser.add_argument(
        "overrides", nargs="*", help="pipeline overrides for every seed, e.g. eval.k=2"
    )
    args = parser.parse_args()
    outs = {seed: Path(args.out) / f"seed-{seed}" for seed in args.seeds}
    with ThreadPoolExecutor(args.jobs) as pool:
        seconds = dict(
            zip(outs, pool.map(lambda s: run_seed(s, outs[s], args.overrides), outs), strict=True)
        )
    runs = {seed: stage_evals(out) for seed, out in outs.items()}
    print(
        f"quickstart over seeds {', '.join(map(str, args.seeds))}: mean (min-max); "
        f"percent, helpfulness a reward-model score in (0, 1)"
    )
    print(table(runs))
    for seed, secs in seconds.items():
        claims = r1_claims(runs[seed])
        held = sum(claim.holds for claim in claims)
        print(
            f"seed {seed}: {secs / 60:.1f} min in this invocation ({outs[seed]}); "
            f"{held} of {len(claims)} R1 stage claims hold"
        )
        for claim in claims:
            if not claim.holds:
                print(f"  not: {claim.text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
