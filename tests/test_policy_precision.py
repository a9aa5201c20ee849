"""The policy trains in fp32 whatever the engine's dtype, and its log-probs are computed
without the full (n, L, V) logits: chunked values and gradients equal the plain computation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from grpo.policy import MicroBatch, completion_logprobs, micro_batches
from tests.test_trainer import final_weights, grpo_recipe, run_stage


def _changed_fraction(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> float:
    changed = sum(int((before[k] != after[k].to(before[k].dtype)).sum()) for k in before)
    return changed / sum(t.numel() for t in before.values())


@pytest.mark.parametrize("mixed_precision", ["no", "bf16"])
def test_bf16_engine_small_lr_still_moves_nearly_every_weight(
    tmp_path, tiny_model, mixed_precision
):
    """R1's learning rate on bf16 weights rounds most updates away; fp32 master weights keep them.
    (Loading the policy in the engine's bf16, as before, changed about 4% of the weights.)"""
    out = tmp_path / "run"
    recipe = grpo_recipe(out, learning_rate=3e-6, mixed_precision=mixed_precision, save_every=10)
    recipe["engine"]["dtype"] = "bfloat16"
    run_stage(recipe)
    before = load_file(Path(tiny_model) / "model.safetensors")
    after = final_weights(out)
    assert all(t.dtype == torch.float32 for t in after.values())
    assert _changed_fraction(before, after) >= 0.99


def _batch(seed: int = 0, vocab: int = 100) -> MicroBatch:
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(3, vocab, (n,), generator=g).tolist() for n in (5, 9, 3)]
    completions = [torch.randint(3, vocab, (n,), generator=g).tolist() for n in (7, 2, 11)]
    return MicroBatch.build(prompts, completions, pad_id=0)


@pytest.mark.parametrize("chunk", [1, 4, 1024])
def test_chunked_logprobs_equal_full_logits_values_and_gradients(tiny_model, chunk):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    batch = _batch()
    results = {}
    for name, chunk_tokens in (("full", None), ("chunked", chunk)):
        model.zero_grad()
        logp, entropy = completion_logprobs(
            model, batch, temperature=0.7, with_entropy=True, chunk_tokens=chunk_tokens
        )
        weights = torch.linspace(-1, 1, logp.numel()).view_as(logp)  # any downstream loss
        (logp * weights * batch.completion_mask).sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        results[name] = (logp.detach(), entropy, grads)
    (lf, ef, gf), (lc, ec, gc) = results["full"], results["chunked"]
    mask = batch.completion_mask
    torch.testing.assert_close(lc[mask], lf[mask], atol=1e-5, rtol=0)
    torch.testing.assert_close(ec[mask], ef[mask], atol=1e-5, rtol=0)
    assert (lc[~mask] == 0).all()
    for name in gf:
        torch.testing.assert_close(gc[name], gf[name], atol=1e-5, rtol=1e-4)
    assert any(g.abs().sum() > 0 for g in gc.values())


def test_token_budget_packs_short_rows_and_isolates_long_ones():
    lengths = [10, 12, 50, 11, 9, 10, 10, 10]
    rows = list(range(8))
    packed = micro_batches(rows, lengths, size=2, token_budget=40)
    assert [r for mb in packed for r in mb] == rows  # every row once, in order
    assert [2] in packed  # 50 tokens exceed the budget: alone
    for mb in packed:
        assert len(mb) == 1 or len(mb) * max(lengths[r] for r in mb) <= 40
    assert max(len(mb) for mb in packed) == 3  # 3 x 12 <= 40: more than micro_batch_size rows


def test_token_budget_micro_batches_train_like_row_micro_batches(tmp_path, tiny_model):
    """How rows are grouped into forward passes does not change the step (float rounding aside)."""
    runs = {}
    for name, settings in (
        ("rows", {"micro_batch_size": 4}),
        ("tokens", {"micro_batch_tokens": 200}),
    ):
        out = tmp_path / name
        run_stage(grpo_recipe(out, backend="hf", max_steps=2, save_every=10, beta=0.01, **settings))
        runs[name] = final_weights(out)
    for key in runs["rows"]:
        torch.testing.assert_close(runs["tokens"][key], runs["rows"][key], atol=1e-5, rtol=0)


def test_truncated_importance_sampling_reweights_by_the_engine_mismatch(tmp_path, tiny_model):
    """Under bf16 autocast the fp32 engine's log-probs differ from the trainer's; with tis_cap the
    update is reweighted by pi_old / pi_engine (capped), so it differs from the plain update."""
    runs = {}
    for name, cap in (("plain", None), ("tis", 1.0)):
        out = tmp_path / name
        run_stage(
            grpo_recipe(
                out, backend="hf", max_steps=1, save_every=10, mixed_precision="bf16", tis_cap=cap
            )
        )
        runs[name] = final_weights(out)
    rows = [json.loads(x) for x in (tmp_path / "tis" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["rollout/logprob_abs_diff_max"] > 1e-4  # bf16 compute vs the fp32 engine
    assert any(not torch.equal(runs["tis"][k], runs["plain"][k]) for k in runs["plain"])
