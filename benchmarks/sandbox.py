"""Sandbox speed: executions per second and latency, every isolation layer on, next to a
plain `subprocess.run` of a fresh interpreter (no isolation at all).

    python benchmarks/sandbox.py [--workers 2] [--n 300]

Throughput runs a batch through all workers at once; latency times one call at a time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import sandbox

TRIVIAL = "print(1)"
SOLUTION = """
n = int(input())
values = sorted(map(int, input().split()))
print(sum(values[-3:]), values[0])
"""
TESTS = [
    {"input": f"{k + 5}\n" + " ".join(str((i * 37 + k) % 101) for i in range(k + 5)), "output": ""}
    for k in range(10)
]


def _expected(test: dict) -> str:
    values = sorted(int(x) for x in test["input"].split("\n")[1].split())
    return f"{sum(values[-3:])} {values[0]}"


for _test in TESTS:
    _test["output"] = _expected(_test)


def _percentiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):6.1f} ms  p99 {p99:6.1f} ms"


def _timed(fn, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def bench_sandbox(box: sandbox.Sandbox, n: int) -> None:
    box.execute_many([{"code": TRIVIAL}] * 20)  # warm up
    start = time.perf_counter()
    results = box.execute_many([{"code": TRIVIAL}] * n)
    rate = n / (time.perf_counter() - start)
    assert all(r.status == "ok" for r in results), {r.status for r in results}
    latency = _timed(lambda: box.execute(TRIVIAL), max(50, n // 4))
    print(f"sandbox, trivial program      {rate:7.1f} exec/s   {_percentiles(latency)}")

    programs = max(10, n // 10)
    start = time.perf_counter()
    judgements = box.judge_many([SOLUTION] * programs, [TESTS] * programs)
    elapsed = time.perf_counter() - start
    assert all(j.accepted for j in judgements), judgements[0].verdicts
    latency = _timed(lambda: box.judge(SOLUTION, TESTS), max(10, n // 20))
    print(
        f"sandbox, judged (10 tests)    {programs / elapsed:7.1f} solutions/s "
        f"({programs * 10 / elapsed:.0f} exec/s)   {_percentiles(latency)}"
    )


def bench_subprocess(workers: int, n: int) -> None:
    def once() -> None:
        subprocess.run([sys.executable, "-c", TRIVIAL], capture_output=True, check=True)

    with ThreadPoolExecutor(workers) as pool:
        start = time.perf_counter()
        list(pool.map(lambda _: once(), range(n)))
        rate = n / (time.perf_counter() - start)
    latency = _timed(once, max(50, n // 4))
    print(f"subprocess.run (no isolation) {rate:7.1f} exec/s   {_percentiles(latency)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args(argv)
    with sandbox.Sandbox(workers=args.workers, min_isolation="full") as box:
        on = sum(layer.on for layer in box.layers)
        print(
            f"{os.cpu_count()} CPUs, {args.workers} workers, isolation level "
            f"'{box.isolation_level}' ({on}/{len(box.layers)} layers on)"
        )
        bench_sandbox(box, args.n)
    bench_subprocess(args.workers, args.n)


if __name__ == "__main__":
    main()
