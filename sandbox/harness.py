"""What the confined program process runs: the model's Python code in the warm interpreter,
or an executable (a compiled C/C++ program, or the compiler itself).

Modes:
- "script": run the code as `__main__` with the test's stdin.
- "call": run the code, then call `fn_name(*args)` (or `Solution().fn_name`) and send the
  plain-data result on fd 3, the result channel.
- "eval": run the code, then evaluate `expr` (the call side of an assert) and send it.
- "binary": exec the program written to the scratch directory.
- "compile": run the compiler on the source in scratch and send back the executable.

The exit code follows CPython's own rules, so a script behaves as under `python main.py`.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import signal
import sys
import threading
import traceback
import types
from typing import Any, NoReturn

from sandbox import values

PYTHON_MODES = frozenset({"script", "call", "eval"})
RESULT_FD = 3
_SCRIPT_NAME = "main.py"
_BROKEN_STDOUT_EXIT = 120  # what CPython exits with when flushing stdout fails at exit


def run(job: dict) -> NoReturn:
    mode = job["mode"]
    if mode == "binary":
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # ignored dispositions survive exec
        os.execve("prog", ["prog"], {})
    if mode == "compile":
        os._exit(_compile(job["compiler"]))
    os._exit(_run_python(job))


def _compile(argv: list[str]) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            os.close(RESULT_FD)
            os.execve(argv[0], argv, {"PATH": "/usr/bin:/bin", "TMPDIR": os.getcwd()})
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        with open("prog", "rb") as f:
            _send_bytes(f.read())
    return code if code >= 0 else 1


def _fresh_stdio() -> None:
    """New text streams over fds 0-2: the worker's own streams must not leak buffers in."""

    def stream(fd: int, mode: str, errors: str, line_buffering: bool) -> io.TextIOWrapper:
        raw = io.FileIO(fd, mode, closefd=False)
        buffered = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
        return io.TextIOWrapper(
            buffered, encoding="utf-8", errors=errors, line_buffering=line_buffering
        )

    sys.stdin = sys.__stdin__ = stream(0, "r", "surrogateescape", False)
    sys.stdout = sys.__stdout__ = stream(1, "w", "surrogateescape", False)
    sys.stderr = sys.__stderr__ = stream(2, "w", "backslashreplace", True)


def _run_python(job: dict) -> int:
    _fresh_stdio()
    sys.argv = [_SCRIPT_NAME]
    sys.path[:] = job["sys_path"]
    module = types.ModuleType("__main__")
    module.__file__ = os.path.join(os.getcwd(), _SCRIPT_NAME)
    sys.modules["__main__"] = module
    code = 0
    try:
        exec(compile(job["code"], _SCRIPT_NAME, "exec"), module.__dict__)  # noqa: S102
        if job["mode"] == "call":
            _send_value(_call(module.__dict__, job["fn_name"], job["args"]))
        elif job["mode"] == "eval":
            _send_value(eval(job["expr"], module.__dict__))
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException as exc:  # noqa: BLE001 - an uncaught error ends the script like CPython's
        _print_traceback(exc)
        code = 1
    return _shutdown(code)


def _print_traceback(exc: BaseException) -> None:
    """Print the traceback the way `python main.py` would: without the harness's frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)


def _call(namespace: dict, fn_name: str, args: list) -> Any:
    fn = namespace.get(fn_name)
    if fn is None and isinstance(namespace.get("Solution"), type):
        fn = getattr(namespace["Solution"](), fn_name, None)  # LeetCode-style solutions
    if fn is None:
        raise NameError(f"function {fn_name!r} is not defined")
    if not callable(fn):
        raise TypeError(f"{fn_name!r} is not callable")
    return fn(*args)


def _send_value(value: Any) -> None:
    try:
        payload = {"value": values.encode(value)}
    except (values.Unencodable, RecursionError, ValueError) as exc:
        payload = {"unencodable": str(exc)[:200]}
    _send_bytes(json.dumps(payload, allow_nan=False).encode())


def _send_bytes(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(RESULT_FD, view) :]
    os.close(RESULT_FD)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def _shutdown(code: int) -> int:
    """Mirror interpreter exit: join non-daemon threads, run atexit hooks, flush."""
    try:
        threading._shutdown()  # type: ignore[attr-defined] - what Py_Finalize calls
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001 - a failing hook must not skip the flush
        traceback.print_exc()
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        code = code or _BROKEN_STDOUT_EXIT
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return code
