"""Rollouts from vLLM servers (`vllm serve` or `r1kit serve`) over vLLM's OpenAI-compatible API.

Generation: one `/v1/completions` request per sample, prompt given as token ids, with the
sample's own seed (sample j of a prompt seeded s gets s + j, as the colocated engine does)
and `logprobs: 0` (the sampled token's log-prob, after temperature when the server runs with
`--logprobs-mode processed_logprobs`). All G samples of a prompt go to the same server, so
they share its prefix cache; prompts are spread over the servers round-robin.

Weight pushes use what vLLM's server offers in development mode (VLLM_SERVER_DEV_MODE=1):

    file   (any device) the trainer writes safetensors shards to `engine.weights_dir`
           (default /dev/shm, shared memory), then on every server: POST /pause?mode=wait,
           POST /collective_rpc {"method": "reload_weights", "kwargs": {"weights_path": DIR}}
           (the worker's in-place reload from a checkpoint directory), POST
           /reset_prefix_cache, POST /update_weight_version, POST /resume.
    nccl   (GPUs) vLLM's weight-transfer engine: servers started with
           `--weight-transfer-config '{"backend": "nccl"}'`; the trainer joins an NCCL group
           with each server (`/init_weight_transfer_engine`) and broadcasts the tensors
           (see `grpo.engines.weight_transfer`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import torch

from grpo.engines.base import (
    EngineConfig,
    Finished,
    Group,
    OnFinished,
    Prompt,
    Sample,
    SamplingConfig,
    encode_prompt,
)

SHARD_BYTES = 1 << 30  # tensors per safetensors file while pushing: bounds the copy held in memory


class ServerError(RuntimeError):
    """A vLLM server could not be reached or refused a request; the message names it."""


class Server:
    """One vLLM server: JSON over HTTP, every failure raised as one line naming the server."""

    def __init__(self, url: str, timeout: float):
        self.url, self.timeout = url.rstrip("/"), timeout

    def call(self, path: str, body: dict[str, Any] | None = None, *, method: str = "POST") -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace").strip().replace("\n", " ")[:300]
            if exc.code == 404 and path in _DEV_ROUTES:
                raise ServerError(
                    f"vLLM server {self.url} has no {path} route: start it with "
                    "VLLM_SERVER_DEV_MODE=1 (r1kit serve does)"
                ) from exc
            raise ServerError(
                f"vLLM server {self.url} answered {path} with HTTP {exc.code}: {detail}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerError(
                f"vLLM server {self.url} is not reachable ({reason}); start it "
                "again (r1kit serve MODEL) and rerun the same command to resume "
                "from the last checkpoint"
            ) from exc
        return json.loads(text) if text.strip() else None

    def served_model(self) -> dict[str, Any]:
        """The model entry the server lists (its name is what requests must carry)."""
        models = self.call("/v1/models", method="GET")["data"]
        if len(models) != 1:
            raise ServerError(
                f"vLLM server {self.url} serves {len(models)} models; r1kit needs "
                "a server for one model"
            )
        return models[0]


_DEV_ROUTES = (
    "/collective_rpc",
    "/reset_prefix_cache",
    "/pause",
    "/resume",
    "/update_weight_version",
    "/is_paused",
    "/init_weight_transfer_engine",
)


class VLLMServerEngine:
    """Generate on `config.servers`; `update_weights` pushes the trainer's weights to them.

    `rank`: this training process's index. Process 0 delivers the weights; the others consume
    the iterator (a collective under FSDP2) and push nothing. Each process starts its
    round-robin over the servers at its own rank, so the processes share them evenly.
    """

    def __init__(self, model: str, config: EngineConfig, *, seed: int = 0, rank: int = 0):
        from transformers import AutoTokenizer

        if not config.servers:
            raise ValueError(
                "engine.backend=vllm_server needs engine.servers: [URL, ...] "
                "(e.g. [http://localhost:8000])"
            )
        self.config, self.seed, self.rank, self.pusher = config, seed, rank, rank == 0
        self.servers = [Server(url, config.request_timeout) for url in config.servers]
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.names = [server.served_model()["id"] for server in self.servers]
        self.max_model_len = min(
            int(s.served_model().get("max_model_len") or 1 << 30) for s in self.servers
        )
        if self.pusher:
            for server in self.servers:  # fail at start, not at the first push
                server.call("/is_paused", method="GET")
        self.version: int | None = None  # the policy version the servers hold (set by pushes)
        self.transfer = None  # vLLM's NCCL weight-transfer engines (weight_sync: nccl), lazily
        self._pool = ThreadPoolExecutor(
            max_workers=config.max_concurrent_requests, thread_name_prefix="r1kit-vllm-client"
        )

    # ---------------------------------------------------------------------------- generation
    def generate(
        self,
        prompts: Sequence[Prompt],
        sampling: SamplingConfig,
        seeds: Sequence[int] | None = None,
        on_finished: OnFinished | None = None,
    ) -> list[Group]:
        seeds = [sampling.seed] * len(prompts) if seeds is None else list(seeds)
        prompt_ids = [encode_prompt(self.tokenizer, p) for p in prompts]
        groups = [
            Group(prompt_ids=ids, samples=[None] * sampling.n)  # type: ignore[list-item]
            for ids in prompt_ids
        ]
        futures: dict[Future, tuple[int, int]] = {}
        for i, ids in enumerate(prompt_ids):
            k = (i + self.rank) % len(self.servers)
            for j in range(sampling.n):
                seed = None if seeds[i] is None else seeds[i] + j
                body = self._request(self.names[k], ids, sampling, seed)
                futures[self._pool.submit(self.servers[k].call, "/v1/completions", body)] = (i, j)
        # Whole groups are reported in prompt order as they complete, so reward parts are the
        # same on every run whatever order the server finished requests in.
        remaining, missing, reported = set(futures), [sampling.n] * len(prompts), 0
        try:
            while remaining:
                done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                for future in done:
                    i, j = futures[future]
                    groups[i].samples[j] = _to_sample(future.result()["choices"][0])
                    missing[i] -= 1
                ready: list[Finished] = []
                while reported < len(groups) and missing[reported] == 0:
                    ready += [(reported, j, s) for j, s in enumerate(groups[reported].samples)]
                    reported += 1
                if ready and on_finished is not None:
                    on_finished(ready)
        except BaseException:
            for future in remaining:
                future.cancel()
            raise
        return groups

    def _request(
        self, name: str, prompt_ids: list[int], sampling: SamplingConfig, seed: int | None
    ) -> dict[str, Any]:
        body = {
            "model": name,
            "prompt": prompt_ids,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "logprobs": 0,  # the sampled token's log-prob only
            "return_token_ids": True,
            "include_stop_str_in_output": True,  # RL must see, and be rewarded for, the stop tag
            "skip_special_tokens": True,
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if seed is not None:
            body["seed"] = seed
        return body

    # ---------------------------------------------------------------------------- weights
    def update_weights(
        self, named_tensors: Iterable[tuple[str, torch.Tensor]], version: int | None = None
    ) -> int:
        """Deliver the tensors to every server (on the pusher; the others only consume the
        iterator); return how many were consumed. `version` tags the servers' weights."""
        if self.config.weight_sync == "nccl":
            from grpo.engines.weight_transfer import nccl_push

            loaded = nccl_push(self, named_tensors)
        elif not self.pusher:
            loaded = sum(1 for _ in named_tensors)
        else:
            loaded = self._push_files(named_tensors)
        if self.pusher and version is not None:
            for server in self.servers:
                server.call("/update_weight_version", {"new_version": str(version)})
        self.version = version
        return loaded

    def _push_files(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        from safetensors.torch import save_file

        root = Path(self.config.weights_dir)
        root.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix="r1kit-weights-", dir=root))
        try:
            loaded, shard, size, files = 0, {}, 0, 0
            for name, tensor in named_tensors:
                loaded += 1
                shard[name] = tensor.detach().to("cpu", copy=True).contiguous()  # tied: own copy
                size += shard[name].numel() * shard[name].element_size()
                if size >= SHARD_BYTES:
                    save_file(shard, directory / f"model-{files:05d}.safetensors", {"format": "pt"})
                    shard, size, files = {}, 0, files + 1
            if shard:
                save_file(shard, directory / f"model-{files:05d}.safetensors", {"format": "pt"})
            os.chmod(directory, 0o755)  # a server running as another user must read it
            for server in self.servers:
                reload_from(server, str(directory))
            return loaded
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def sleep(self) -> None:
        """The servers keep their memory: they are not on the trainer's devices."""

    def close(self) -> None:
        """Stop the client threads; the servers belong to whoever started them and keep running."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.transfer is not None:
            for engine in self.transfer:
                engine.shutdown()
            self.transfer = None


def reload_from(server: Server, directory: str) -> None:
    """Load a checkpoint directory into a running server in place, between its steps."""
    server.call("/pause?mode=wait")  # requests in flight finish on the old weights
    try:
        server.call(
            "/collective_rpc", {"method": "reload_weights", "kwargs": {"weights_path": directory}}
        )
        server.call("/reset_prefix_cache")  # its KV entries came from the old weights
    finally:
        server.call("/resume")


def wait_until_up(url: str, timeout: float, process=None) -> None:
    """Block until `url` answers /health (or `process` exits, or `timeout` seconds pass)."""
    server, deadline = Server(url, timeout=5), time.monotonic() + timeout
    while True:
        try:
            server.call("/health", method="GET")
            return
        except ServerError:
            if process is not None and process.poll() is not None:
                raise ServerError(
                    f"vLLM server {url} exited with code {process.returncode} "
                    "while starting; see its log"
                ) from None
            if time.monotonic() > deadline:
                raise ServerError(
                    f"vLLM server {url} did not answer /health within {timeout:.0f} s"
                ) from None
            time.sleep(0.5)


def _to_sample(choice: dict[str, Any]) -> Sample:
    ids = list(choice["token_ids"])
    logprobs = [float(x) for x in choice["logprobs"]["token_logprobs"]]
    if len(logprobs) != len(ids):
        raise ServerError(f"the server returned {len(logprobs)} log-probs for {len(ids)} tokens")
    # vLLM reports "stop" for EOS and for stop strings, "length" when max_tokens ran out.
    finish = "length" if choice["finish_reason"] == "length" else "stop"
    return Sample(text=choice["text"], token_ids=ids, logprobs=logprobs, finish_reason=finish)
