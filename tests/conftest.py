"""Shared fixtures: a hermetic R1KIT_HOME and the bundled tiny model built once per session."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def r1kit_home(tmp_path_factory):
    home = os.environ.get("R1KIT_TEST_HOME") or str(tmp_path_factory.mktemp("r1kit_home"))
    os.environ["R1KIT_HOME"] = home
    return home


@pytest.fixture(scope="session")
def tiny_model(r1kit_home) -> str:
    from pipelines.models import resolve_model

    return resolve_model("bundled:tiny-char")


@pytest.fixture(scope="session")
def vllm_engine(tiny_model):
    pytest.importorskip("vllm")
    from grpo.engines import EngineConfig
    from grpo.engines.vllm_engine import VLLMEngine

    return VLLMEngine(tiny_model, EngineConfig(max_model_len=256), seed=0)


@pytest.fixture(scope="session")
def vllm_server(tiny_model, tmp_path_factory):
    """A vLLM server process serving the tiny model (`r1kit serve`), shared by the tests that
    generate on a server; a test that kills it leaves it restarted."""
    pytest.importorskip("vllm")
    from tests._server import ServerProcess

    server = ServerProcess(tiny_model, tmp_path_factory.mktemp("vllm_server") / "server.log")
    server.start()
    yield server
    server.stop()
