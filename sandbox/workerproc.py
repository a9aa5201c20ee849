"""The pool's handle on one worker process: start it, talk to it, stop it."""

from __future__ import annotations

import os
import select
import subprocess
import sys

from sandbox import protocol

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# -I: ignore PYTHON* variables, the user site and the current directory; the worker adds
# only the directory that holds the `sandbox` package.
_BOOTSTRAP = "import sys; sys.path.insert(0, sys.argv[1]); from sandbox.worker import main; main()"
_START_TIMEOUT = 60.0


class WorkerDied(RuntimeError):
    """The worker process ended or stopped answering."""


class WorkerProcess:
    def __init__(self, python: str, config: dict) -> None:
        # An empty environment: nothing from the trainer (tokens, paths) reaches the worker.
        self.proc = subprocess.Popen(
            [python, "-I", "-X", "utf8", "-c", _BOOTSTRAP, _ROOT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={},
            close_fds=True,
            start_new_session=True,  # a Ctrl-C aimed at the trainer does not hit the sandbox
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        protocol.send(self._in, config)
        hello = self._recv(_START_TIMEOUT)
        if not isinstance(hello, dict) or "layers" not in hello:
            self.close()
            raise WorkerDied(f"worker sent no layer table: {hello!r}")
        self.layers: list[list] = hello["layers"]

    def _recv(self, timeout: float) -> object:
        ready, _, _ = select.select([self._out], [], [], timeout)
        if not ready:
            raise WorkerDied(f"worker did not answer within {timeout:.0f} s")
        message = protocol.recv(self._out)
        if message is None:
            raise WorkerDied(f"worker exited with code {self.proc.poll()}")
        return message

    def call(self, job: dict, timeout: float) -> dict:
        try:
            protocol.send(self._in, job)
            reply = self._recv(timeout)
        except (OSError, ValueError) as exc:
            raise WorkerDied(str(exc)) from exc
        if not isinstance(reply, dict):
            raise WorkerDied(f"malformed reply {reply!r}")
        return reply

    def close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def default_python() -> str:
    return sys.executable
