"""Adversarial programs against the real sandbox: one property per test.

Every program runs in real kernel isolation (namespaces, cgroups, seccomp, Landlock); the
machine must offer the "full" level (`r1kit sandbox doctor`), otherwise the module is
skipped with the doctor's reason. Destructive attacks (bombs, floods, disk filling) run
only after a test has confirmed the limit that contains them.
"""

from __future__ import annotations

import os
import socket
import textwrap
import time

import pytest

import sandbox
from tests.sandbox_support import (
    checked_pool,
    processes_with_uids,
    sandbox_uids,
    worker_pids,
)

# Generous, so that a loaded 2-core machine cannot turn a memory or output verdict into a
# time limit; tests about time pass their own short limit.
TIME_LIMIT = 3.0
MEMORY_MB = 128


@pytest.fixture(scope="module")
def box():
    yield from checked_pool(time_limit=TIME_LIMIT, memory_mb=MEMORY_MB)


def run(box, code, **kwargs) -> sandbox.Execution:
    return box.execute(textwrap.dedent(code), **kwargs)


def no_strays(box) -> bool:
    return processes_with_uids(sandbox_uids(box)) == []


# ----- time ----------------------------------------------------------------------------
def test_cpu_loop_is_stopped_at_the_time_limit(box):
    result = run(box, "while True: pass", time_limit=0.5)
    assert result.status == "time_limit"
    assert result.wall_time < 2.0  # the deadline plus the kill, on a busy 2-core machine


def test_sleep_is_stopped_by_the_wall_clock(box):
    result = run(box, "import time; time.sleep(60)", time_limit=0.5)
    assert result.status == "time_limit"
    assert result.cpu_time < 0.4 and result.wall_time < 2.0


def test_reading_stdin_never_blocks(box):
    result = run(box, "import sys; print(len(sys.stdin.read())); print(len(sys.stdin.read()))")
    assert (result.status, result.stdout.split()) == ("ok", ["0", "0"])


def test_input_at_end_of_stdin_is_a_runtime_error(box):
    result = run(box, "input(); input()", stdin="one line\n")
    assert result.status == "runtime_error" and "EOFError" in result.stderr


def test_unread_large_stdin_does_not_hang(box):
    result = run(box, "print('done')", stdin="x" * (8 * 2**20))
    assert (result.status, result.stdout) == ("ok", "done\n")


def test_ignoring_sigxcpu_does_not_help(box):
    result = run(
        box,
        """
        import signal
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)
        while True: pass
    """,
        time_limit=0.5,
    )
    assert result.status == "time_limit" and result.wall_time < 2.0


# ----- processes -----------------------------------------------------------------------
def test_process_count_is_capped(box):
    result = run(
        box,
        """
        import os, time
        n = 0
        try:
            for _ in range(1000):
                if os.fork() == 0:
                    time.sleep(30); os._exit(0)
                n += 1
        except OSError:
            pass
        print(n)
    """,
    )
    assert result.status == "ok"
    assert 0 < int(result.stdout) < 64  # pids.max is 64 including the program itself
    assert no_strays(box)


def test_fork_bomb_is_contained_and_leaves_nothing(box):
    result = run(
        box,
        """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """,
        time_limit=0.5,
    )
    assert result.status in ("time_limit", "runtime_error")
    assert no_strays(box)
    assert run(box, "print('next run works')").stdout == "next run works\n"


def test_thread_bomb_is_capped(box):
    result = run(
        box,
        """
        import threading, time
        n = 0
        try:
            for _ in range(1000):
                threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
                n += 1
        except (RuntimeError, MemoryError):
            pass
        print(n, flush=True)
        import os; os._exit(0)  # skip joining the sleeping threads
    """,
    )
    assert result.status == "ok" and int(result.stdout) < 64


def test_subprocess_spawn_bomb_is_capped(box):
    result = run(
        box,
        """
        import subprocess
        procs = []
        try:
            for _ in range(200):
                procs.append(subprocess.Popen(["/bin/sleep", "30"]))
        except OSError:
            pass
        print(len(procs))
    """,
        time_limit=2.0,
    )
    assert result.status == "ok" and 0 < int(result.stdout) < 64
    assert no_strays(box)


# ----- memory --------------------------------------------------------------------------
def test_one_huge_allocation_is_a_memory_limit(box):
    result = run(box, "x = bytearray(4 * 2**30)")
    assert result.status == "memory_limit"


def test_gradual_allocation_is_stopped_by_the_cgroup(box):
    result = run(
        box,
        """
        chunks = []
        while True:
            chunks.append(bytearray(4 * 2**20))  # zero-filled, so every page is touched
    """,
        memory_mb=64,
    )
    assert result.status == "memory_limit"
    assert result.peak_memory_mb <= 64 + 1


def test_python_recursion_without_limit_fails_cleanly(box):
    # CPython 3.11 keeps Python frames on the heap, so this runs out of memory, not stack.
    result = run(
        box,
        """
        import sys
        sys.setrecursionlimit(10**8)
        def f(n): return f(n + 1) + 1
        f(0)
    """,
    )
    assert result.status in ("memory_limit", "runtime_error")


def test_c_stack_overflow_is_a_runtime_error(box):
    # Each level passes through C (map), so the C stack overflows: SIGSEGV.
    result = run(
        box,
        """
        import sys
        sys.setrecursionlimit(10**8)
        def f(n): return list(map(f, [n + 1]))
        f(0)
    """,
    )
    assert result.status == "runtime_error" and result.exit_code == -11


# ----- output --------------------------------------------------------------------------
def test_stdout_flood_is_an_output_limit(box):
    result = run(box, "while True: print('spam' * 100)")
    assert result.status == "output_limit"
    assert len(result.stdout) <= 8 * 2**20


def test_stderr_flood_is_an_output_limit(box):
    result = run(box, "import sys\nwhile True: sys.stderr.write('spam' * 1000)")
    assert result.status == "output_limit"
    assert len(result.stderr) <= 64 * 1024


def test_one_huge_line_is_an_output_limit(box):
    result = run(box, "import sys; sys.stdout.write('x' * (40 * 2**20))")
    assert result.status == "output_limit"


def test_binary_garbage_output_is_survived(box):
    result = run(box, "import sys; sys.stdout.buffer.write(bytes(range(256)) * 64)")
    assert result.status == "ok"
    assert "\ufffd" in result.stdout  # invalid UTF-8 is replaced, not fatal


def test_closing_stdout_and_spinning_times_out(box):
    result = run(box, "import os; os.close(1); os.close(2)\nwhile True: pass", time_limit=0.5)
    assert result.status == "time_limit"


# ----- file system ---------------------------------------------------------------------
def test_scratch_directory_is_size_limited(box):
    result = run(
        box,
        """
        written = 0
        try:
            with open("fill", "wb") as f:
                while True:
                    f.write(b"x" * 2**20); f.flush(); written += 2**20
        except OSError:
            pass
        print(written // 2**20)
    """,
        memory_mb=256,
    )
    assert result.status == "ok" and int(result.stdout) <= 64  # the 64 MiB scratch tmpfs


def test_filling_tmp_and_dev_shm_stays_private(box):
    result = run(
        box,
        """
        import os
        for d in ("/tmp", "/dev/shm"):
            written = 0
            try:
                with open(os.path.join(d, "fill"), "wb") as f:
                    while written < 200 * 2**20:
                        f.write(b"x" * 2**20); f.flush(); written += 2**20
            except OSError:
                pass
            print(d, written // 2**20)
    """,
        memory_mb=256,
    )
    sizes = dict(line.split() for line in result.stdout.splitlines())
    assert int(sizes["/tmp"]) <= 64 and int(sizes["/dev/shm"]) <= 1
    assert not os.path.exists("/tmp/fill") and not os.path.exists("/dev/shm/fill")


def test_writing_outside_scratch_fails(box):
    targets = [
        "/etc/r1kit-pwned",
        "/var/tmp/r1kit-pwned",
        "/root/r1kit-pwned",
        os.path.abspath("r1kit-pwned"),
        "/dev/r1kit-pwned",
        "/run/r1kit-pwned",
    ]
    result = run(
        box,
        f"""
        for path in {targets!r}:
            try:
                open(path, "w").write("x")
                print("WROTE", path)
            except OSError:
                pass
    """,
    )
    assert result.status == "ok" and "WROTE" not in result.stdout
    assert not any(os.path.exists(p) for p in targets)


def test_host_secrets_are_unreadable(box, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("hf_secret")
    secret.chmod(0o644)  # world-readable on purpose: only the sandbox may stop the read
    paths = ["/etc/shadow", "/root/.bashrc", str(secret), os.path.abspath("pyproject.toml")]
    result = run(
        box,
        f"""
        for path in {paths!r}:
            try:
                print("READ", path, open(path).read()[:20])
            except OSError:
                pass
    """,
    )
    assert result.status == "ok" and "READ" not in result.stdout


def test_environment_is_empty(box, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    result = run(
        box,
        """
        import os
        print(dict(os.environ))
        print(open('/proc/self/environ').read())
    """,
    )
    assert result.status == "ok" and "hf_secret" not in result.stdout
    assert result.stdout.split("\n")[0] == "{}"  # and /proc/self/environ is empty


def test_only_standard_descriptors_are_open(box, tmp_path):
    with open(tmp_path / "held", "w"):  # an open file in the trainer must not leak in
        result = run(box, "import os; print(sorted(int(f) for f in os.listdir('/proc/self/fd')))")
    fds = eval(result.stdout)
    assert set(fds) - {0, 1, 2, 3} <= {max(fds)}  # max is the directory fd of the listing


def test_proc_shows_only_the_program(box):
    result = run(
        box,
        """
        import os
        print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()), os.getpid(), os.getppid())
    """,
    )
    assert result.stdout.split("\n")[0] == "[1] 1 0"


# ----- network -------------------------------------------------------------------------
def test_loopback_service_is_unreachable(box):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    port = server.getsockname()[1]
    result = run(
        box,
        f"""
        import socket
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=1)
            print("CONNECTED")
        except OSError as exc:
            print("refused", exc.errno)
    """,
    )
    with pytest.raises(TimeoutError):
        server.accept()
    server.close()
    assert result.status == "ok" and "CONNECTED" not in result.stdout


def test_public_network_fails_immediately(box):
    result = run(
        box,
        """
        import socket
        try:
            socket.create_connection(("192.0.2.1", 80), timeout=5)  # TEST-NET-1
            print("CONNECTED")
        except OSError as exc:
            print("failed", exc.errno)
    """,
    )
    assert result.status == "ok" and result.stdout.startswith("failed")
    assert result.wall_time < 2.0  # no route at all: not the 5 s connect timeout


def test_host_unix_sockets_are_unreachable(box, tmp_path):
    path = str(tmp_path / "host.sock")
    addresses = [path, f"\0r1kit-test-{os.getpid()}"]  # a file socket and an abstract one
    servers = []
    for address in addresses:
        s = socket.socket(socket.AF_UNIX)
        s.bind(address)
        s.listen()
        servers.append(s)
    result = run(
        box,
        f"""
        import socket
        for address in {addresses!r}:
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(address); print("CONNECTED", repr(address))
            except OSError:
                pass
        a, b = socket.socketpair(); a.send(b"ok"); print(b.recv(2).decode())
    """,
    )
    for s in servers:
        s.close()
    assert result.status == "ok" and result.stdout == "ok\n"


# ----- other processes and the kernel ----------------------------------------------------
def test_signals_cannot_reach_the_supervisor_or_trainer(box):
    targets = [os.getpid(), *worker_pids(box)]
    result = run(
        box,
        f"""
        import os, signal
        for pid in {targets!r} + [-1, 0]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        print("still here")
    """,
    )
    assert result.status == "ok" and result.stdout == "still here\n"
    assert all(proc.proc.poll() is None for proc in box._procs)
    assert run(box, "print(1)").stdout == "1\n"


def test_ptrace_is_denied(box):
    result = run(
        box,
        """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        pid = os.fork()
        if pid == 0:
            import time; time.sleep(5); os._exit(0)
        print(libc.ptrace(16, pid, 0, 0), ctypes.get_errno())  # PTRACE_ATTACH
        print(libc.ptrace(0, 0, 0, 0), ctypes.get_errno())  # PTRACE_TRACEME
    """,
    )
    assert result.stdout.split() == ["-1", "1", "-1", "1"]  # EPERM


def test_rlimits_cannot_be_raised(box):
    result = run(
        box,
        """
        import resource
        for r in (resource.RLIMIT_CPU, resource.RLIMIT_AS, resource.RLIMIT_NPROC):
            try:
                resource.setrlimit(r, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
                print("RAISED", r)
            except (ValueError, OSError):
                pass
    """,
    )
    assert result.status == "ok" and "RAISED" not in result.stdout


def test_setsid_daemon_does_not_survive(box):
    result = run(
        box,
        """
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            os._exit(0)
        print("parent done")
    """,
    )
    assert result.status == "ok" and result.stdout == "parent done\n"
    assert no_strays(box)


def test_orphan_holding_the_output_pipe_does_not_delay_the_verdict(box):
    result = run(
        box,
        """
        import os, time
        if os.fork() == 0:
            time.sleep(60)  # keeps stdout open
            os._exit(0)
        print("parent done")
    """,
    )
    assert result.status == "ok" and result.wall_time < 2.0  # not the orphan's 60 s
    assert no_strays(box)


def test_raw_syscalls_cannot_escape(box):
    result = run(
        box,
        """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        def errno_of(rc): return ctypes.get_errno() if rc == -1 else 0
        print(errno_of(libc.syscall(272, 0x10000000)))   # unshare(CLONE_NEWUSER)
        print(errno_of(libc.syscall(272, 0x40000000)))   # unshare(CLONE_NEWNET)
        print(errno_of(libc.syscall(41, 2, 1, 0)))       # socket(AF_INET, SOCK_STREAM)
        print(errno_of(libc.syscall(41, 17, 3, 0)))      # socket(AF_PACKET, SOCK_RAW)
        print(errno_of(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)))
        print(errno_of(libc.syscall(425, 8, 0)))         # io_uring_setup
        print(errno_of(libc.syscall(321, 0, 0, 0)))      # bpf
    """,
    )
    codes = [int(x) for x in result.stdout.split()]
    assert result.status == "ok" and len(codes) == 7 and 0 not in codes


def test_shell_runs_with_the_same_confinement(box):
    result = run(
        box,
        """
        import subprocess
        r = subprocess.run(["/bin/sh", "-c", "id -u; cat /etc/shadow; echo x > /etc/pwned"],
                           capture_output=True, text=True)
        print(r.stdout.strip())
    """,
    )
    assert result.status == "ok"
    assert int(result.stdout.split()[0]) in sandbox_uids(box)
    assert "root:" not in result.stdout and not os.path.exists("/etc/pwned")


def test_leftovers_are_cleaned_between_runs(box):
    start = time.monotonic()
    results = box.execute_many(
        [{"code": "import os\nif os.fork() == 0:\n    import time; time.sleep(60)\nprint('x')"}] * 8
    )
    assert all(r.status == "ok" for r in results)
    assert time.monotonic() - start < 5
    assert no_strays(box)
