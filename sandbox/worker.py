"""The warm worker: a small stdlib-only process that forks one sandbox per job.

Started by the pool with `python -I` and an empty environment, it imports what programs
commonly need once, probes the isolation layers, compiles the seccomp filter, and then
answers jobs on stdin/stdout. Forking this ~20 MB process costs about a millisecond;
forking the trainer (hundreds of MB, threads, CUDA state) would be slow and would copy its
memory, including secrets, into every child.

Run as: python -I -X utf8 -c "<bootstrap>" <r1kit root>   (see pool.py)
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace

from sandbox import cgroups, isolation, landlock, layers, protocol, seccomp_filter, supervise

# Imported here once so that programs find them already loaded after the fork.
_PRELOAD = (
    "array",
    "bisect",
    "collections",
    "copy",
    "dataclasses",
    "datetime",
    "decimal",
    "fractions",
    "functools",
    "heapq",
    "itertools",
    "json",
    "math",
    "operator",
    "random",
    "re",
    "statistics",
    "string",
    "typing",
)

_IN, _OUT = 0, 1


def _read_paths() -> tuple[str, ...]:
    """What a program may read: system libraries, the interpreter, its site-packages."""
    candidates = [
        "/usr",
        "/lib",
        "/lib64",
        "/lib32",
        "/bin",
        "/etc/ld.so.cache",
        "/etc/localtime",
        "/proc",
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
    ]
    seen: list[str] = []
    for path in candidates:
        real = os.path.realpath(path)
        if os.path.exists(real) and real not in seen:
            seen.append(real)
    return tuple(seen)


def _candidate_plan(config: dict) -> isolation.Plan:
    try:
        abi = landlock.abi_version()
    except OSError:
        abi = 0
    try:
        bpf = seccomp_filter.compile_filter()
    except (ImportError, OSError):
        bpf = b""
    uid = config["uid"]
    interpreter = [sys.base_prefix, sys.prefix, os.path.realpath(sys.executable)]
    return isolation.Plan(
        layers=frozenset(layers.LEVELS["full"]) - frozenset(config["disable"]),
        uid=uid,
        gid=uid,
        scratch_mb=config["scratch_mb"],
        read_paths=_read_paths(),
        hidden_parents=isolation.plan_hidden_parents(interpreter, uid),
        landlock_abi=abi,
        seccomp_bpf=bpf,
    )


def _usable_hierarchies(
    found: list[cgroups.Hierarchy], on: frozenset[str]
) -> list[cgroups.Hierarchy]:
    usable = []
    for h in found:
        ctrls = frozenset(c for c in h.controllers if f"cgroup_{c}" in on)
        if ctrls or (h.version == 2 and "cgroup_kill" in on):
            usable.append(replace(h, controllers=ctrls))
    return usable


def main() -> None:
    root = sys.argv[1]
    config = protocol.recv(_IN)
    if not isinstance(config, dict):
        return
    for name in _PRELOAD:
        __import__(name)
    plan = _candidate_plan(config)
    cgroups.sweep_stale()  # directories of workers that were killed before cleaning up
    found, problems = cgroups.discover(cgroups.worker_dir_name())
    table = layers.detect(plan, found, problems, frozenset(config["disable"]))
    on = frozenset(layer.name for layer in table if layer.on)
    plan = replace(plan, layers=on)
    hierarchies = _usable_hierarchies(found, on)
    sys_path = [p for p in sys.path if p != root]
    caps = supervise.Caps(config["output_limit_mb"] * 2**20, config["result_limit_mb"] * 2**20)
    protocol.send(_OUT, {"layers": [[t.name, t.on, t.reason] for t in table]})
    try:
        _serve(plan, caps, hierarchies, sys_path, config)
    except BrokenPipeError:
        pass  # the pool went away while we answered: nothing left to tell it
    finally:
        cgroups.remove_worker_dirs(found)


def _serve(
    plan: isolation.Plan,
    caps: supervise.Caps,
    hierarchies: list[cgroups.Hierarchy],
    sys_path: list[str],
    config: dict,
) -> None:
    count = 0
    while True:
        job = protocol.recv(_IN)
        if not isinstance(job, dict):
            return  # the pool closed our stdin: it is shutting down or gone
        count += 1
        limits = isolation.Limits(
            time_limit=float(job["time_limit"]),
            memory_mb=int(job["memory_mb"]),
            pids_max=int(job.get("pids_max", config["pids_max"])),
            file_mb=plan.scratch_mb,
        )
        job["sys_path"] = sys_path
        reply = supervise.execute(plan, limits, caps, hierarchies, job, f"x{count}")
        protocol.send(_OUT, reply)


if __name__ == "__main__":
    main()
