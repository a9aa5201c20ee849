"""Math grader benchmark: r1kit (worker processes, hard timeouts) vs math-verify in-process.

Run: ``python benchmarks/rewards.py [--repeat 4]``. Prints grades/s and p50/p99 latency on
the labelled pairs of ``tests/data/math_cases.jsonl`` (repeated), and each grader's
accuracy and false-positive rate on that set (math-verify with the gold wrapped in
``\\boxed{}``, as its docs advise).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "data" / "math_cases.jsonl"
# This file is named rewards.py: keep its folder from shadowing the rewards package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))


def math_verify_grade(response: str, gold: str) -> bool:
    from math_verify import parse, verify

    return bool(verify(parse("\\boxed{" + gold + "}"), parse(response)))


def quality(got: list[bool], cases: list[dict]) -> tuple[float, float]:
    negatives = [c for c in cases if not c["equal"]]
    correct = sum(g == c["equal"] for g, c in zip(got, cases))
    false_pos = sum(g and not c["equal"] for g, c in zip(got, cases))
    return correct / len(cases), false_pos / max(1, len(negatives))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_r1kit(pairs: list[tuple[str, str]], latency_n: int) -> dict[str, float]:
    from rewards.math import default_pool, grade, grade_many

    default_pool().warm_up()
    start = time.perf_counter()
    grade_many(pairs)
    throughput = len(pairs) / (time.perf_counter() - start)
    latencies = []
    for response, gold in pairs[:latency_n]:
        t0 = time.perf_counter()
        grade(response, gold)
        latencies.append(time.perf_counter() - t0)
    return {"grades_per_s": throughput, "p50_ms": 1e3 * statistics.median(latencies),
            "p99_ms": 1e3 * percentile(latencies, 0.99), "workers": float(default_pool()._size)}


def bench_math_verify(pairs: list[tuple[str, str]]) -> dict[str, float]:
    latencies = []
    start = time.perf_counter()
    for response, gold in pairs:
        t0 = time.perf_counter()
        math_verify_grade(response, gold)
        latencies.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    return {"grades_per_s": len(pairs) / total, "p50_ms": 1e3 * statistics.median(latencies),
            "p99_ms": 1e3 * percentile(latencies, 0.99), "workers": 1.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=4, help="times the labelled pairs are repeated")
    parser.add_argument("--latency-n", type=int, default=300, help="sequential single grades timed")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # math-verify warns on every disabled timeout
    cases = [json.loads(line) for line in CASES.open()]
    pairs = [(c["response"], c["gold"]) for c in cases]

    from rewards.math import grade_many

    r1kit_acc = quality(grade_many(pairs), cases)
    mv_acc = quality([math_verify_grade(r, g) for r, g in pairs], cases)
    print(f"labelled set: {len(cases)} pairs ({sum(not c['equal'] for c in cases)} not equal)")
    print(f"  r1kit       accuracy {r1kit_acc[0]:.1%}  false positives {r1kit_acc[1]:.1%}")
    print(f"  math-verify accuracy {mv_acc[0]:.1%}  false positives {mv_acc[1]:.1%}")

    timed = pairs * args.repeat
    print(f"speed on {len(timed)} pairs:")
    for name, stats in (("r1kit (process pool)", bench_r1kit(timed, args.latency_n)),
                        ("math-verify in-process", bench_math_verify(timed))):
        print(f"  {name:24s} {stats['grades_per_s']:7.0f} grades/s  p50 {stats['p50_ms']:6.2f} ms"
              f"  p99 {stats['p99_ms']:7.2f} ms  ({stats['workers']:.0f} worker(s))")


if __name__ == "__main__":
    main()
