"""`Sandbox`: a pool of warm workers that runs and judges batches of programs."""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import queue
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future

from sandbox import languages, verdicts
from sandbox.cpus import usable_cpus
from sandbox.layers import Layer, achieved_level, level_rank
from sandbox.types import Execution, IsolationError, Judgement
from sandbox.workerproc import WorkerDied, WorkerProcess, default_python

_UID_BASE = 1_000_000  # far above any real account; one uid per worker slot
_MAX_WORKERS = 64
logger = logging.getLogger(__name__)


def pool_size(requested: int | None) -> int:
    """Workers for a pool: `requested`, or the CPUs this process may use; above 64 (each worker
    is a warm interpreter and a uid) the pool is capped, with a logged note."""
    workers = requested or usable_cpus()
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if workers > _MAX_WORKERS:
        logger.warning("sandbox: %d workers requested, using %d (the cap)", workers, _MAX_WORKERS)
        return _MAX_WORKERS
    return workers


_BINARY_CACHE = 64
_pool_ids = itertools.count()


def _uid_block() -> int:
    """A uid range of our own, so concurrent pools (other trainers, tests) rarely share uids."""
    block = (os.getpid() * 8 + next(_pool_ids)) % 200_000
    return _UID_BASE + block * _MAX_WORKERS


class Sandbox:
    """A pool of `workers` warm worker processes.

    Args:
        workers: parallel executions (default: the CPUs this process may use, `usable_cpus`;
            at most 64).
        min_isolation: refuse to start below this level ("none", "process", "namespaces",
            "full"); see `sandbox.doctor()` for what the machine offers.
        time_limit / memory_mb: defaults for each execution (seconds of wall and CPU time,
            MiB the program may allocate on top of the warm interpreter).
        pids_max: processes and threads one execution may have at once.
        scratch_mb: size of the private tmpfs on /tmp (also the largest file).
        output_limit_mb: stdout (or stderr) beyond this ends the run as "output_limit".
        disable: layer names to leave off (for debugging a layer that misbehaves).
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        min_isolation: str = "full",
        time_limit: float = 2.0,
        memory_mb: int = 256,
        pids_max: int = 64,
        scratch_mb: int = 64,
        output_limit_mb: int = 8,
        result_limit_mb: int = 32,
        disable: Iterable[str] = (),
        python: str | None = None,
    ) -> None:
        workers = pool_size(workers)
        if time_limit <= 0 or memory_mb <= 0 or pids_max <= 0 or scratch_mb <= 0:
            raise ValueError("time_limit, memory_mb, pids_max and scratch_mb must be positive")
        required = level_rank(min_isolation)
        self.time_limit, self.memory_mb = float(time_limit), int(memory_mb)
        uid_base = _uid_block()
        self._python = python or default_python()
        self._configs = [
            {
                "uid": uid_base + slot,
                "scratch_mb": scratch_mb,
                "pids_max": pids_max,
                "output_limit_mb": output_limit_mb,
                "result_limit_mb": result_limit_mb,
                "disable": sorted(disable),
            }
            for slot in range(workers)
        ]
        self._jobs: queue.Queue = queue.Queue()
        self._binaries: OrderedDict[str, tuple[str | None, Execution]] = OrderedDict()
        self._lock = threading.Lock()
        self._closed = False
        self._procs: list[WorkerProcess | None] = []
        try:
            for config in self._configs:
                self._procs.append(WorkerProcess(self._python, config))
        except BaseException:
            self._stop_procs()
            raise
        self.layers = [Layer(name, on, reason) for name, on, reason in self._procs[0].layers]
        self.isolation_level = achieved_level(self.layers)
        if level_rank(self.isolation_level) < required:
            self._stop_procs()
            missing = [f"{x.name} ({x.reason})" for x in self.layers if not x.on]
            raise IsolationError(
                f"sandbox isolation is '{self.isolation_level}' but min_isolation="
                f"'{min_isolation}'; off: {', '.join(missing)}. Run `r1kit sandbox doctor`."
            )
        self._threads = [
            threading.Thread(
                target=self._serve, args=(slot,), daemon=True, name=f"sandbox-worker-{slot}"
            )
            for slot in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    # ----- lifecycle -----------------------------------------------------------------
    def __enter__(self) -> Sandbox:  # noqa: PYI034 - py310 has no typing.Self
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        self._stop_procs()

    def _stop_procs(self) -> None:
        for proc in self._procs:
            if proc is not None:
                proc.close()
        self._procs = []

    def _serve(self, slot: int) -> None:
        """One thread per worker: hand it jobs, restart it if it dies."""
        while (item := self._jobs.get()) is not None:
            job, future = item
            try:
                proc = self._procs[slot] or WorkerProcess(self._python, self._configs[slot])
                self._procs[slot] = proc
                future.set_result(proc.call(job, timeout=float(job["time_limit"]) + 60.0))
            except (WorkerDied, OSError) as exc:
                if self._procs[slot] is not None:
                    self._procs[slot].close()
                self._procs[slot] = None
                future.set_result({"status": "sandbox_error", "detail": f"worker: {exc}"})
            except Exception as exc:  # noqa: BLE001 - a bug must reach the caller, not hang it
                future.set_exception(exc)

    def _run(self, jobs: list[dict]) -> list[dict]:
        if self._closed:
            raise RuntimeError("this Sandbox is closed")
        futures: list[Future] = []
        for job in jobs:
            future: Future = Future()
            self._jobs.put((job, future))
            futures.append(future)
        return [f.result() for f in futures]

    # ----- execution -----------------------------------------------------------------
    def _limits(self, time_limit: float | None, memory_mb: int | None) -> dict:
        return {
            "time_limit": float(time_limit or self.time_limit),
            "memory_mb": int(memory_mb or self.memory_mb),
        }

    def execute(
        self,
        code: str,
        *,
        stdin: str = "",
        time_limit: float | None = None,
        memory_mb: int | None = None,
        language: str = "python",
    ) -> Execution:
        return self.execute_many(
            [{"code": code, "stdin": stdin, "language": language}],
            time_limit=time_limit,
            memory_mb=memory_mb,
        )[0]

    def execute_many(
        self,
        requests: Sequence[Mapping],
        *,
        time_limit: float | None = None,
        memory_mb: int | None = None,
    ) -> list[Execution]:
        """Run programs given as dicts with "code" and optional "stdin" and "language"."""
        limits = self._limits(time_limit, memory_mb)
        langs = [languages.canonical(r.get("language", "python")) for r in requests]
        built = self._build([(lang, r["code"]) for lang, r in zip(langs, requests, strict=True)])
        jobs, slots, results = [], [], [None] * len(requests)
        for i, (request, lang) in enumerate(zip(requests, langs, strict=True)):
            job = self._job(lang, request["code"], built, limits, mode="script")
            if isinstance(job, Execution):
                results[i] = job
                continue
            jobs.append({**job, "stdin": request.get("stdin", "")})
            slots.append(i)
        for i, reply in zip(slots, self._run(jobs), strict=True):
            results[i] = _execution(reply)
        return results  # type: ignore[return-value]

    def _job(
        self, lang: str, code: str, built: Mapping, limits: dict, mode: str
    ) -> dict | Execution:
        if lang == languages.PYTHON:
            return {"mode": mode, "code": code, **limits}
        binary, compiled = built[_source_key(lang, code)]
        if binary is None:
            return compiled
        return {"mode": "binary", "binary": binary, **limits}

    def _build(self, sources: list[tuple[str, str]]) -> dict[str, tuple[str | None, Execution]]:
        """Compile each distinct C/C++ source once (in a sandbox), with an LRU cache."""
        wanted = {
            _source_key(lang, code): (lang, code)
            for lang, code in sources
            if lang != languages.PYTHON
        }
        with self._lock:  # a snapshot, so a concurrent eviction cannot lose an entry
            built = {key: self._binaries[key] for key in wanted if key in self._binaries}
            for key in built:
                self._binaries.move_to_end(key)
        missing = [key for key in wanted if key not in built]
        jobs = []
        for key in missing:
            lang, code = wanted[key]
            compiler = languages.COMPILED[lang]
            jobs.append(
                {
                    "mode": "compile",
                    "code": code,
                    "compiler": compiler.argv(),
                    "source_name": compiler.source_name,
                    "stdin": "",
                    "time_limit": compiler.time_limit,
                    "memory_mb": compiler.memory_mb,
                }
            )
        for key, reply in zip(missing, self._run(jobs), strict=True):
            execution = _execution(reply)
            binary = reply.get("result") if execution.status == "ok" else None
            if execution.status != "sandbox_error" and binary is None:
                execution = _as_compile_error(execution)
            built[key] = (binary, execution)
        with self._lock:
            # A sandbox failure says nothing about the source: compile it again next time.
            self._binaries.update(
                {key: built[key] for key in missing if built[key][1].status != "sandbox_error"}
            )
            while len(self._binaries) > _BINARY_CACHE:
                self._binaries.popitem(last=False)
        return built

    # ----- judging -------------------------------------------------------------------
    def judge(
        self,
        code: str,
        tests: Sequence[dict],
        *,
        time_limit: float | None = None,
        memory_mb: int | None = None,
        language: str = "python",
        float_tolerance: float | None = None,
    ) -> Judgement:
        return self.judge_many(
            [code],
            [tests],
            time_limit=time_limit,
            memory_mb=memory_mb,
            language=language,
            float_tolerance=float_tolerance,
        )[0]

    def judge_many(
        self,
        codes: Sequence[str],
        tests: Sequence[Sequence[dict]],
        *,
        time_limit: float | None = None,
        memory_mb: int | None = None,
        language: str = "python",
        float_tolerance: float | None = None,
    ) -> list[Judgement]:
        """Judge `codes[i]` against `tests[i]`; every test of every program runs in its own
        sandbox, spread over the workers."""
        if len(codes) != len(tests):
            raise ValueError(f"{len(codes)} programs but {len(tests)} test lists")
        lang = languages.canonical(language)
        limits = self._limits(time_limit, memory_mb)
        cases = [[verdicts.prepare(t, float_tolerance) for t in ts] for ts in tests]
        if lang != languages.PYTHON and any(c.kind != "io" for cs in cases for c in cs):
            raise ValueError("compiled languages support only stdin/stdout tests")
        built = self._build([(lang, code) for code in codes])
        jobs, owners = [], []
        outcome: list[list] = [[None] * len(cs) for cs in cases]
        for p, (code, program_cases) in enumerate(zip(codes, cases, strict=True)):
            for t, case in enumerate(program_cases):
                job = self._job(lang, code, built, limits, mode=case.job["mode"])
                if isinstance(job, Execution):
                    outcome[p][t] = (job, None)
                    continue
                jobs.append({**case.job, **job})
                owners.append((p, t))
        for (p, t), reply in zip(owners, self._run(jobs), strict=True):
            outcome[p][t] = (_execution(reply), reply.get("result"))
        judgements = []
        for program_cases, results in zip(cases, outcome, strict=True):
            given = [
                verdicts.verdict(case, ex, res)
                for case, (ex, res) in zip(program_cases, results, strict=True)
            ]
            judgements.append(
                Judgement(given, given.count("accepted"), len(given), [ex for ex, _ in results])
            )
        return judgements


def _source_key(lang: str, code: str) -> str:
    return lang + ":" + hashlib.sha256(code.encode()).hexdigest()


def _execution(reply: Mapping) -> Execution:
    return Execution(
        status=reply.get("status", "sandbox_error"),
        stdout=reply.get("stdout", ""),
        stderr=reply.get("stderr", ""),
        exit_code=reply.get("exit_code"),
        wall_time=float(reply.get("wall_time", 0.0)),
        cpu_time=float(reply.get("cpu_time", 0.0)),
        peak_memory_mb=float(reply.get("peak_memory_mb", 0.0)),
        detail=reply.get("detail", ""),
    )


def _as_compile_error(execution: Execution) -> Execution:
    detail = f"compiler ended with {execution.status}"
    return Execution(
        "compile_error",
        execution.stdout,
        execution.stderr,
        execution.exit_code,
        execution.wall_time,
        execution.cpu_time,
        execution.peak_memory_mb,
        detail,
    )
