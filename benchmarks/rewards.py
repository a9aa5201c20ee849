"""Math grader benchmark: r1kit against math-verify on other projects' test suites, and speed.

Run: ``python benchmarks/rewards.py [--repeat 4]``. Prints, per input form (raw, inside
``<answer>``, inside ``\\boxed{}``) of ``tests/data/ported_suites.jsonl``, each grader's
accuracy, false positives and false negatives against the suites' own labels, the same on the
plainly labelled cases, then grades per second on ``tests/data/math_cases.jsonl`` (repeated).
math-verify is called as its README shows: ``verify(parse(gold), parse(response))``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
# This file is named rewards.py: keep its folder from shadowing the rewards package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))


def math_verify_grade(response: str, gold: str) -> bool:
    from math_verify import parse, verify

    try:
        return bool(verify(parse(gold), parse(response)))
    except Exception:  # noqa: BLE001  (a grader that raises has not said "equal")
        return False


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).open()]


def tally(got: list[bool], cases: list[dict]) -> str:
    pos = sum(c["expected"] for c in cases)
    neg = len(cases) - pos
    right = sum(g == c["expected"] for g, c in zip(got, cases, strict=True))
    fp = sum(g and not c["expected"] for g, c in zip(got, cases, strict=True))
    fn = sum(c["expected"] and not g for g, c in zip(got, cases, strict=True))
    return f"{right / len(cases):6.1%}  FP {fp:2d}/{neg:<3d} FN {fn:3d}/{pos:<3d}"


def suite_table(cases: list[dict], ours: list[bool], theirs: list[bool]) -> None:
    print(f"{'subset':28s} {'r1kit':32s} {'math-verify':32s}")
    groups = [("all", lambda c: True), ("plainly labelled", lambda c: c["plain"])]
    groups += [(f"form {f}", lambda c, f=f: c["form"] == f) for f in ("raw", "answer", "boxed")]
    groups += [
        (f"form {f}, plain", lambda c, f=f: c["form"] == f and c["plain"])
        for f in ("raw", "answer", "boxed")
    ]
    for name, keep in groups:
        idx = [i for i, c in enumerate(cases) if keep(c)]
        sub = [cases[i] for i in idx]
        label = f"{name} ({len(sub)})"
        print(
            f"{label:28s} {tally([ours[i] for i in idx], sub):32s} "
            f"{tally([theirs[i] for i in idx], sub):32s}"
        )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes (Linux ``/proc``), in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def timed_grading(pairs: list[tuple[str, str]]) -> tuple[float, float, float]:
    """Grades per second, and the CPU seconds the workers and the caller used."""
    from rewards.math import default_pool, grade_many

    pids = [w.process.pid for w in default_pool()._workers]
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers_cpu = cpu_seconds(pids)
    start = time.perf_counter()
    grade_many(pairs)
    rate = len(pairs) / (time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF)
    caller_cpu = after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime
    return rate, cpu_seconds(pids) - workers_cpu, caller_cpu


def speed(distinct: list[tuple[str, str]], repeat: int, latency_n: int) -> None:
    from rewards.math import default_pool, grade

    pool = default_pool()
    pool.warm_up()
    # First sight of every pair (nothing parsed yet), then the set repeated: a gold is graded
    # once per sample of its group, and the workers keep parsed expressions.
    first = timed_grading(distinct)
    pairs = distinct * repeat
    ours, workers_cpu, caller_cpu = timed_grading(pairs)
    latencies = []
    for response, gold in pairs[:latency_n]:
        t0 = time.perf_counter()
        grade(response, gold)
        latencies.append(time.perf_counter() - t0)
    start = time.perf_counter()
    for response, gold in pairs:
        math_verify_grade(response, "\\boxed{" + gold + "}")
    theirs = len(pairs) / (time.perf_counter() - start)
    print(f"speed on math_cases.jsonl, r1kit with {pool.size} worker process(es), hard timeouts:")
    print(f"  r1kit, {len(distinct)} pairs seen for the first time    {first[0]:7.0f} grades/s")
    print(
        f"  r1kit, the same pairs {repeat} times ({len(pairs)})        {ours:7.0f} grades/s"
        f"  p50 {1e3 * statistics.median(latencies):.2f} ms"
        f"  p99 {1e3 * percentile(latencies, 0.99):.2f} ms"
    )
    print(f"  math-verify in-process, the {len(pairs)} pairs          {theirs:7.0f} grades/s")
    # CPU time does not depend on what else the machine runs: with one core for the workers
    # and one for the caller, the busier side bounds the rate on otherwise idle cores.
    for name, (n, w_cpu, c_cpu) in (
        ("first sight", (len(distinct), *first[1:])),
        ("repeated", (len(pairs), workers_cpu, caller_cpu)),
    ):
        bound = n / max(w_cpu / pool.size, c_cpu)
        print(
            f"  r1kit CPU, {name}: workers {w_cpu:.2f} s, caller {c_cpu:.2f} s; on idle cores"
            f" (one per worker, one for the caller) {bound:.0f} grades/s"
        )
    print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=4, help="times math_cases.jsonl is repeated")
    parser.add_argument("--latency-n", type=int, default=300, help="sequential single grades timed")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # math-verify warns on every disabled timeout
    from rewards.math import grade_many

    cases = load("ported_suites.jsonl")
    ours = grade_many([(c["response"], c["gold"]) for c in cases], timeout=10.0)
    theirs = [math_verify_grade(c["response"], c["gold"]) for c in cases]
    print(f"ported suites: {len(cases)} graded pairs (Math-Verify, open-r1, TRL tests)")
    suite_table(cases, ours, theirs)
    pairs = [(c["response"], c["gold"]) for c in load("math_cases.jsonl")]
    speed(pairs, args.repeat, args.latency_n)


if __name__ == "__main__":
    main()
