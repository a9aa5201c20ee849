"""Which isolation layers this machine allows, found by trying each one for real.

Each worker probes at start-up in throw-away child processes (an unshare that fails in a
default Docker container, a read-only /sys/fs/cgroup, a kernel without Landlock...) and
then applies exactly the layers that worked. `doctor()` shows the same table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass

from sandbox import cgroups, isolation, landlock, syscalls

ALWAYS_ON = {
    "rlimits": "CPU, address space, file size, open files, processes; no core dumps",
    "wall_deadline": "killed at the wall-clock limit even when sleeping",
    "empty_environment": "no environment variables reach the program",
    "closed_fds": "only stdin, stdout, stderr and the result channel are open",
}

NAMESPACES = (
    "pid_namespace",
    "mount_namespace",
    "network_namespace",
    "ipc_namespace",
    "uts_namespace",
)
_NS_FLAGS = {
    "mount_namespace": syscalls.CLONE_NEWNS,
    "pid_namespace": syscalls.CLONE_NEWPID,
    "network_namespace": syscalls.CLONE_NEWNET,
    "ipc_namespace": syscalls.CLONE_NEWIPC,
    "uts_namespace": syscalls.CLONE_NEWUTS,
}

# Each level needs every layer of the levels below it.
LEVELS: dict[str, frozenset[str]] = {"none": frozenset()}
LEVELS["process"] = frozenset(ALWAYS_ON)
LEVELS["namespaces"] = LEVELS["process"] | {
    "pid_namespace",
    "mount_namespace",
    "network_namespace",
    "ipc_namespace",
    "scratch_tmpfs",
    "private_proc",
    "unprivileged_uid",
}
LEVELS["full"] = LEVELS["namespaces"] | {
    "uts_namespace",
    "readonly_root",
    "cgroup_memory",
    "cgroup_pids",
    "no_new_privs",
    "seccomp",
    "landlock",
}


@dataclass(frozen=True)
class Layer:
    name: str
    on: bool
    reason: str


def achieved_level(layers: list[Layer]) -> str:
    on = {layer.name for layer in layers if layer.on}
    best = "none"
    for level, needed in LEVELS.items():
        if needed <= on:
            best = level
    return best


def level_rank(level: str) -> int:
    if level not in LEVELS:
        raise ValueError(f"unknown isolation level {level!r}; choose one of {list(LEVELS)}")
    return list(LEVELS).index(level)


def _in_child(body: Callable[[], dict[str, str]]) -> dict[str, str]:
    """Run `body` in a forked child (probes change namespaces irreversibly); return its dict."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            result = body()
        except BaseException as exc:  # noqa: BLE001 - a probe must always answer
            result = {"probe": f"crashed: {exc!r}"}
        os.write(write_fd, json.dumps(result).encode())
        os._exit(0)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks) or b"{}")


def _try(results: dict[str, str], name: str, step: Callable[[], object]) -> bool:
    """Record "" for success or the error text for failure under `name`."""
    try:
        step()
    except OSError as exc:
        results[name] = exc.strerror or str(exc)
        return False
    results[name] = ""
    return True


def _probe_namespaces(plan: isolation.Plan) -> dict[str, str]:
    """Try each namespace and mount step that `plan` asks for, in a throw-away child."""
    results: dict[str, str] = {}
    wanted = plan.layers
    for name in NAMESPACES:
        if name in wanted:
            _try(results, name, lambda flag=_NS_FLAGS[name]: syscalls.unshare(flag))
    if results.get("mount_namespace") == "":
        private = ("none", "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE, None)
        _try(results, "mount_namespace", lambda: syscalls.mount(*private))
    if results.get("mount_namespace") == "":
        if "readonly_root" in wanted:
            _try(results, "readonly_root", lambda: syscalls.make_tree_readonly("/"))
        for parent, exposed in plan.hidden_parents:
            if not _try(
                results, "interpreter_view", lambda p=parent, e=exposed: isolation.hide_except(p, e)
            ):
                results["interpreter_view"] = f"cannot hide {parent} to expose the interpreter"
        if "scratch_tmpfs" in wanted:
            _try(
                results,
                "scratch_tmpfs",
                lambda: syscalls.mount("tmpfs", "/tmp", "tmpfs", 0, "size=1m"),
            )
    elif plan.hidden_parents:
        results["interpreter_view"] = (
            f"the interpreter lies under {plan.hidden_parents[0][0]}, which other uids cannot "
            "enter, and without a mount namespace it cannot be exposed"
        )
    results.update(_in_child(lambda: _probe_confinement(plan, results)))
    return results


def _probe_confinement(plan: isolation.Plan, earlier: dict[str, str]) -> dict[str, str]:
    """Runs as PID 1 of the probe's PID namespace: the same steps a program takes."""
    results: dict[str, str] = {}
    wanted = plan.layers
    if earlier.get("pid_namespace") == "" and earlier.get("mount_namespace") == "":
        _try(
            results,
            "private_proc",
            lambda: syscalls.mount(
                "proc", "/proc", "proc", syscalls.MS_NOSUID | syscalls.MS_NODEV, None
            ),
        )
    if "no_new_privs" in wanted:
        _try(results, "no_new_privs", lambda: syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1))
    if plan.landlock_abi and "landlock" in wanted:
        _try(
            results,
            "landlock",
            lambda: landlock.restrict(
                plan.landlock_abi, list(plan.read_paths), ["/tmp"], ["/dev/null"]
            ),
        )
    if "unprivileged_uid" in wanted:
        _try(
            results,
            "unprivileged_uid",
            lambda: (
                os.setgroups([]),
                os.setresgid(plan.gid, plan.gid, plan.gid),
                os.setresuid(plan.uid, plan.uid, plan.uid),
            ),
        )
        if earlier.get("interpreter_view"):
            results["unprivileged_uid"] = earlier["interpreter_view"]
    if plan.seccomp_bpf and "seccomp" in wanted and results.get("no_new_privs") == "":
        _try(results, "seccomp", lambda: syscalls.load_seccomp_bpf(plan.seccomp_bpf))
    try:  # the interpreter must still import a module it has not loaded yet
        import colorsys  # noqa: F401
    except ImportError as exc:
        key = "landlock" if results.get("landlock") == "" else "unprivileged_uid"
        results[key] = f"stdlib import fails when confined: {exc}"
    return results


def _cgroup_layers(hierarchies: list[cgroups.Hierarchy], problems: list[str]) -> list[Layer]:
    found: dict[str, str] = {}
    for h in hierarchies:
        for ctrl in sorted(h.controllers):
            found.setdefault(ctrl, f"cgroup v{h.version} {ctrl} controller")
    why = "; ".join(problems) or "controller not mounted or not delegated to this cgroup"
    layers = [
        Layer(f"cgroup_{ctrl}", ctrl in found, found.get(ctrl, why)) for ctrl in ("memory", "pids")
    ]
    has_kill = any(h.version == 2 for h in hierarchies)
    layers.append(
        Layer(
            "cgroup_kill",
            has_kill,
            "cgroup v2 cgroup.kill"
            if has_kill
            else "no writable cgroup v2 group; "
            "leftovers are killed by the PID namespace and by listing cgroup.procs",
        )
    )
    return layers


def detect(
    plan: isolation.Plan,
    hierarchies: list[cgroups.Hierarchy],
    problems: list[str],
    disable: frozenset[str],
) -> list[Layer]:
    """Probe every layer with `plan` (which lists all candidate layers) and return the table."""
    layers = [Layer(name, True, why) for name, why in ALWAYS_ON.items()]
    probed = _in_child(lambda: _probe_namespaces(plan))
    if "probe" in probed:
        probed = {name: probed["probe"] for name in LEVELS["full"]}
    descriptions = {
        "pid_namespace": "program is PID 1 of a new PID namespace; its exit kills all inside",
        "mount_namespace": "private mount table",
        "network_namespace": "only a loopback device, down: no route anywhere",
        "ipc_namespace": "private System V IPC and POSIX queues",
        "uts_namespace": "own hostname",
        "readonly_root": "every mount read-only, nosuid, nodev",
        "scratch_tmpfs": f"fresh {plan.scratch_mb} MiB tmpfs on /tmp and 1 MiB on /dev/shm",
        "private_proc": "/proc shows only the program's own processes",
        "unprivileged_uid": f"uid {plan.uid}, no groups, no capabilities",
        "no_new_privs": "no set-uid or file-capability gains",
        "seccomp": "denies namespaces, mount, ptrace, bpf, io_uring, non-UNIX sockets",
        "landlock": f"Landlock ABI {plan.landlock_abi}: read-only interpreter, writable scratch",
    }
    if not plan.seccomp_bpf:
        probed["seccomp"] = "pyseccomp/libseccomp unavailable (pip install pyseccomp)"
    if not plan.landlock_abi:
        probed["landlock"] = "Landlock not offered by this kernel"
    for name, description in descriptions.items():
        error = probed.get(name, "not probed (an earlier step failed)")
        layers.append(Layer(name, error == "", description if error == "" else error))
    layers += _cgroup_layers(hierarchies, problems)
    return [
        Layer(layer.name, False, "disabled by caller") if layer.name in disable else layer
        for layer in layers
    ]
