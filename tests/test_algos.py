"""Tests for grpo/algos.py.

Expected values are derived by hand in the comments, or come from a naive per-token Python
loop written independently of the vectorised code. Tests run on CPU in float64 (the
half-precision test excepted).
"""

import math

import pytest
import torch

from grpo.algos import (
    LOSS_AGGREGATIONS,
    StepContext,
    _register,
    aggregate_loss,
    entropy_from_logits,
    group_advantages,
    kl_k3,
    masked_mean,
    policy_loss,
    selective_log_softmax,
)

ATOL = 1e-6  # hand-derived numbers are written to 6-7 significant digits
LOSS_TYPES = ["grpo", "bnpo", "dapo", "dr_grpo"]


@pytest.fixture(autouse=True)
def float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def close(actual, expected, atol=ATOL):
    actual, expected = torch.as_tensor(actual), torch.as_tensor(expected)
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0, check_dtype=False)


# ------------------------------------------------------------------ masked_mean


def test_masked_mean_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    m = torch.tensor([[1, 1, 0], [0, 0, 0]])
    close(masked_mean(x, m), 1.5)  # (1 + 2) / 2
    close(masked_mean(x, m, dim=-1), [1.5, 0.0])  # empty row -> 0, not NaN
    close(masked_mean(x, m, dim=0), [1.0, 2.0, 0.0])
    garbage = torch.tensor([[1.0, 2.0, float("nan")], [float("inf")] * 3])
    close(masked_mean(garbage, m), 1.5)  # masked NaN/inf never leak in


# ------------------------------------------------------------------ group_advantages

# rewards [1,0,0,1, 2,2,2,5], G = 4
#   group 1: mean 0.5, deviations (0.5, -0.5, -0.5, 0.5), Σd² = 1, var = 1/3, std = 0.5773503
#   group 2: mean 11/4 = 2.75, deviations (-0.75, -0.75, -0.75, 2.25),
#            Σd² = 3·0.5625 + 5.0625 = 6.75, var = 6.75/3 = 2.25, std = 1.5
REWARDS = [1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 5.0]
CENTERED = [0.5, -0.5, -0.5, 0.5, -0.75, -0.75, -0.75, 2.25]


def test_group_scale_by_hand():
    # eps = 0: group 1 -> ±0.5 / (1/√3) = ±√3/2 = ±0.8660254; group 2 -> d / 1.5
    s = 0.8660254
    adv = group_advantages(torch.tensor(REWARDS), 4, eps=0.0)
    close(adv, [s, -s, -s, s, -0.5, -0.5, -0.5, 1.5])
    # default eps = 1e-4 in the denominator: 0.5 / 0.5774503 = 0.8658755, 0.75 / 1.5001 = 0.4999667
    g1, g2 = 0.8658755, 0.4999667
    close(group_advantages(torch.tensor(REWARDS), 4), [g1, -g1, -g1, g1, -g2, -g2, -g2, 3 * g2])


def test_batch_scale_by_hand():
    # all 8 rewards: mean 13/8 = 1.625, deviations (-0.625, -1.625, -1.625, -0.625,
    # 0.375, 0.375, 0.375, 3.375), Σd² = 2·0.390625 + 2·2.640625 + 3·0.140625 + 11.390625
    # = 17.875, var = 17.875/7 = 2.5535714, std = 1.5979899; centre on the group mean.
    expected = [d / 1.5979899 for d in CENTERED]
    close(group_advantages(torch.tensor(REWARDS), 4, scale="batch", eps=0.0), expected)


def test_none_scale_by_hand():
    close(group_advantages(torch.tensor(REWARDS), 4, scale="none"), CENTERED)


def test_identical_rewards_give_zero_advantage_not_nan():
    # std = 0: eps keeps the division finite; (r - mean) = 0 exactly
    adv = group_advantages(torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0]), 3)
    close(adv[:3], [0.0, 0.0, 0.0])
    assert torch.isfinite(adv).all()


def test_integer_rewards_are_accepted_and_result_is_detached():
    rewards = torch.tensor([1, 0, 0, 1])
    close(group_advantages(rewards, 2, scale="none"), [0.5, -0.5, -0.5, 0.5])
    leaf = torch.tensor([1.0, 0.0], requires_grad=True)
    assert not group_advantages(leaf, 2).requires_grad


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_advantages_match_loop(scale):
    torch.manual_seed(0)
    B, G, eps = 5, 6, 1e-4
    rewards = torch.randint(0, 3, (B * G,)).double() + 0.1 * torch.randn(B * G)
    values = rewards.tolist()
    mean_all = sum(values) / len(values)
    std_all = math.sqrt(sum((v - mean_all) ** 2 for v in values) / (len(values) - 1))
    expected = []
    for b in range(B):
        group = values[b * G : (b + 1) * G]
        mean = sum(group) / G
        std = math.sqrt(sum((v - mean) ** 2 for v in group) / (G - 1))
        denom = {"group": std + eps, "batch": std_all + eps, "none": 1.0}[scale]
        expected += [(v - mean) / denom for v in group]
    close(group_advantages(rewards, G, scale=scale, eps=eps), expected, atol=1e-12)


def test_advantage_errors():
    with pytest.raises(ValueError, match="multiple of group_size=4"):
        group_advantages(torch.zeros(7), 4)
    with pytest.raises(ValueError, match="1-D"):
        group_advantages(torch.zeros(2, 4), 4)
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        group_advantages(torch.zeros(4), 1)
    with pytest.raises(ValueError, match="'batch', 'group', 'none'"):
        group_advantages(torch.zeros(4), 2, scale="std")


# ------------------------------------------------------------------ kl_k3


def test_kl_k3_by_hand():
    # π = 0.5, π_ref = 0.25: π_ref/π = 0.5, k3 = 0.5 - ln 0.5 - 1 = 0.5 + 0.6931472 - 1
    logp, ref = torch.tensor([math.log(0.5), -1.3]), torch.tensor([math.log(0.25), -1.3])
    close(kl_k3(logp, ref), [0.1931472, 0.0])  # identical distributions -> 0


# ------------------------------------------------------------------ policy_loss: by hand

# old_logp = 0 so ratio = exp(logp). eps_low = eps_high = 0.2, clip range [0.8, 1.2].
#   row 0, A = +1, ratios (1.0, 1.5, 0.7):
#     1.0 -> -min(1.0, 1.0) = -1.0
#     1.5 -> -min(1.5, 1.2) = -1.2   clipped high, no gradient
#     0.7 -> -min(0.7, 0.8) = -0.7   below the range, but A > 0 keeps the unclipped term
#   row 1, A = -2, ratios (0.5, 1.1, masked):
#     0.5 -> -min(-1.0, -1.6) = 1.6  clipped low, no gradient
#     1.1 -> -min(-2.2, -2.2) = 2.2
#   token sum = -2.9 + 3.8 = 0.9 over 5 valid tokens
HAND_RATIOS = [[1.0, 1.5, 0.7], [0.5, 1.1, 1.0]]
HAND_MASK = [[1, 1, 1], [1, 1, 0]]
HAND_ADV = [1.0, -2.0]


def hand_args():
    logp = torch.tensor(HAND_RATIOS).log().requires_grad_()
    return logp, torch.zeros(2, 3), torch.tensor(HAND_ADV), torch.tensor(HAND_MASK)


@pytest.mark.parametrize(
    ("loss_type", "kwargs", "expected"),
    [
        ("grpo", {}, 0.4666667),  # (-2.9/3 + 3.8/2) / 2 = (-0.9666667 + 1.9) / 2 = 7/15
        ("bnpo", {}, 0.18),  # 0.9 / 5
        ("dapo", {}, 0.18),  # local token count 5
        ("dapo", {"step": StepContext(rows=2, tokens=5, global_tokens=10)}, 0.09),  # 0.9 / 10
        ("dr_grpo", {"max_completion_len": 4}, 0.1125),  # 0.9 / (N·L) = 0.9 / (2·4)
    ],
)
def test_policy_loss_by_hand(loss_type, kwargs, expected):
    loss, metrics = policy_loss(*hand_args(), loss_type=loss_type, **kwargs)
    close(loss, expected)
    # ratio mean (1 + 1.5 + 0.7 + 0.5 + 1.1) / 5 = 0.96; one clipped token each side out of 5
    assert metrics == pytest.approx(
        {"policy/ratio_mean": 0.96, "policy/clip_frac_low": 0.2, "policy/clip_frac_high": 0.2},
        abs=ATOL,
    )


@pytest.mark.parametrize(
    ("loss_type", "kwargs", "weight0", "weight1"),
    [
        ("grpo", {}, 1 / 6, 1 / 4),  # 1/(N·|o_i|): 1/(2·3), 1/(2·2)
        ("bnpo", {}, 1 / 5, 1 / 5),  # 1/Σ|o_i|
        ("dr_grpo", {"max_completion_len": 4}, 1 / 8, 1 / 8),  # 1/(N·L)
    ],
)
def test_policy_gradient_by_hand(loss_type, kwargs, weight0, weight1):
    # d term / d logp = d term / d r · r: unclipped row 0 -> -A·r = -r, row 1 -> -A·r = 2r;
    # clipped tokens and the masked token get 0.
    logp, *rest = hand_args()
    loss, _ = policy_loss(logp, *rest, loss_type=loss_type, **kwargs)
    loss.backward()
    expected = [[-1.0 * weight0, 0.0, -0.7 * weight0], [0.0, 2.2 * weight1, 0.0]]
    close(logp.grad, expected)


def test_clip_higher_is_asymmetric():
    # One token per case, old_logp = 0, eps_low = 0.2.
    def loss_and_grad(ratio, adv, eps_high):
        logp = torch.tensor([[math.log(ratio)]], requires_grad=True)
        loss, _ = policy_loss(
            logp,
            torch.zeros(1, 1),
            torch.tensor([adv]),
            torch.ones(1, 1),
            eps_low=0.2,
            eps_high=eps_high,
        )
        loss.backward()
        return loss.item(), logp.grad.item()

    # r = 1.25, A = +1: eps_high 0.2 clips at 1.2 (loss -1.2, no gradient);
    # DAPO's eps_high 0.28 leaves it inside (loss -1.25, gradient -A·r = -1.25).
    assert loss_and_grad(1.25, 1.0, 0.2) == pytest.approx((-1.2, 0.0), abs=ATOL)
    assert loss_and_grad(1.25, 1.0, 0.28) == pytest.approx((-1.25, -1.25), abs=ATOL)
    # r = 0.75, A = -1: clipped at 1 - eps_low = 0.8 whatever eps_high: -min(-0.75, -0.8) = 0.8
    assert loss_and_grad(0.75, -1.0, 0.28) == pytest.approx((0.8, 0.0), abs=ATOL)
    # r = 1.25, A = -1: the pessimistic min keeps the unclipped -r·A = 1.25, gradient r = 1.25
    assert loss_and_grad(1.25, -1.0, 0.2) == pytest.approx((1.25, 1.25), abs=ATOL)


def test_kl_penalty_by_hand():
    # ratio 1 and A = 0, so only beta·k3 remains: k3 = 0.1931472 (see test_kl_k3_by_hand),
    # loss = 0.1 · 0.1931472; d k3 / d logp = 1 - π_ref/π = 1 - 0.5, times beta = 0.05.
    logp = torch.tensor([[math.log(0.5)]], requires_grad=True)
    old, ref = torch.tensor([[math.log(0.5)]]), torch.tensor([[math.log(0.25)]])
    loss, metrics = policy_loss(logp, old, torch.zeros(1), torch.ones(1, 1), ref_logp=ref, beta=0.1)
    loss.backward()
    close(loss, 0.01931472)
    close(logp.grad, [[0.05]])
    assert metrics["policy/kl_mean"] == pytest.approx(0.1931472, abs=ATOL)
    # beta = 0 with ref_logp given: KL is reported but not in the loss
    loss0, metrics0 = policy_loss(logp, old, torch.zeros(1), torch.ones(1, 1), ref_logp=ref)
    close(loss0, 0.0)
    assert metrics0["policy/kl_mean"] == pytest.approx(0.1931472, abs=ATOL)


def test_truncated_importance_weights_scale_the_policy_term_not_the_kl():
    # Two tokens, ratio 1, A = 1: each clipped term is -1; weights 0.5 and 2 give -(0.5 + 2)/2
    # = -1.25 ("grpo": the row's token mean), gradient d/dlogp_t = -w_t / 2 = (-0.25, -1.0).
    # A KL of beta k3 is added unweighted: same ref as test_kl_penalty_by_hand on token 0 only.
    logp = torch.tensor([[math.log(0.5), math.log(0.5)]], requires_grad=True)
    old = logp.detach().clone()
    weights = torch.tensor([[0.5, 2.0]])
    loss, _ = policy_loss(logp, old, torch.ones(1), torch.ones(1, 2), tis_weights=weights)
    loss.backward()
    close(loss, -1.25)
    close(logp.grad, [[-0.25, -1.0]])
    ref = torch.tensor([[math.log(0.25), math.log(0.5)]])
    with_kl, _ = policy_loss(
        logp, old, torch.ones(1), torch.ones(1, 2), tis_weights=weights, ref_logp=ref, beta=0.1
    )
    close(with_kl, -1.25 + 0.1 * 0.1931472 / 2)


def test_sequence_level_ratio_by_hand():
    # Valid log-ratios (ln 2, 0): s = exp((ln 2 + 0)/2) = √2 = 1.4142136, on every token.
    logp = torch.tensor([[math.log(2.0), 0.0, float("nan")]], requires_grad=True)
    args = (torch.zeros(1, 3), torch.tensor([1.0]), torch.tensor([[1, 1, 0]]))
    loss, metrics = policy_loss(logp, *args, importance_level="sequence")
    loss.backward()
    close(loss, -1.2)  # √2 > 1.2 with A > 0: clipped, no gradient
    close(logp.grad, [[0.0, 0.0, 0.0]])
    assert metrics["policy/ratio_mean"] == pytest.approx(1.4142136, abs=ATOL)
    assert metrics["policy/clip_frac_high"] == pytest.approx(1.0, abs=ATOL)
    # eps_high = 1: unclipped, loss = mean_t(-s) = -√2; each token gets s·A / |o| = √2/2
    logp.grad = None
    loss, _ = policy_loss(logp, *args, importance_level="sequence", eps_high=1.0)
    loss.backward()
    close(loss, -1.4142136)
    close(logp.grad, [[-0.7071068, -0.7071068, 0.0]])


# ------------------------------------------------------------------ policy_loss: naive loop


def naive_policy_loss(logp, old, adv, mask, loss_type, level, eps_low, eps_high, ref, beta, L):
    """Token by token with 0-d tensors, so autograd gives the reference gradient too.

    The sequence level uses GSPO's own sequence objective (gradient through s_i), not the
    GSPO-token trick, so the gradient comparison checks that trick.
    """
    N, T = logp.shape
    rows = []
    for i in range(N):
        valid = [t for t in range(T) if mask[i, t]]
        if level == "sequence" and valid:
            s = torch.exp(sum(logp[i, t] - old[i, t] for t in valid) / len(valid))
        terms = []
        for t in valid:
            r = s if level == "sequence" else torch.exp(logp[i, t] - old[i, t])
            term = -torch.minimum(r * adv[i], r.clamp(1 - eps_low, 1 + eps_high) * adv[i])
            d = ref[i, t] - logp[i, t]
            terms.append(term + beta * (torch.exp(d) - d - 1))
        rows.append(terms)
    total = sum(t for terms in rows for t in terms)
    count = sum(len(terms) for terms in rows)
    if loss_type == "grpo":
        return sum(sum(terms) / len(terms) for terms in rows if terms) / N
    if loss_type == "dr_grpo":
        return total / (N * L)
    return total / count


def random_batch(seed, B=4, G=3, T=7):
    gen = torch.Generator().manual_seed(seed)
    N = B * G
    old = -torch.rand(N, T, generator=gen) * 3
    logp = old + 0.3 * torch.randn(N, T, generator=gen)  # ratios spread across the clip range
    ref = old + 0.2 * torch.randn(N, T, generator=gen)
    lengths = torch.randint(1, T + 1, (N,), generator=gen)
    lengths[1] = 0  # one empty completion
    mask = torch.arange(T) < lengths[:, None]  # (N, T) right padding
    rewards = torch.randint(0, 2, (N,), generator=gen).double()
    return logp, old, group_advantages(rewards, G), mask, ref


@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_policy_loss_matches_naive_loop(loss_type, level, beta):
    logp, old, adv, mask, ref = random_batch(seed=1)
    kw = {"eps_low": 0.2, "eps_high": 0.28}
    fast_logp, slow_logp = logp.clone().requires_grad_(), logp.clone().requires_grad_()
    loss, _ = policy_loss(
        fast_logp,
        old,
        adv,
        mask,
        loss_type=loss_type,
        ref_logp=ref,
        beta=beta,
        max_completion_len=10,
        importance_level=level,
        **kw,
    )
    expected = naive_policy_loss(
        slow_logp, old, adv, mask, loss_type, level, ref=ref, beta=beta, L=10, **kw
    )
    close(loss, expected, atol=1e-12)
    loss.backward()
    expected.backward()
    close(fast_logp.grad, slow_logp.grad, atol=1e-12)


def test_metrics_match_naive_loop():
    logp, old, adv, mask, ref = random_batch(seed=2)
    _, m = policy_loss(logp, old, adv, mask, eps_low=0.2, eps_high=0.28, ref_logp=ref)
    tokens = [(i, t) for i in range(mask.shape[0]) for t in range(mask.shape[1]) if mask[i, t]]
    ratio = {(i, t): math.exp(logp[i, t] - old[i, t]) for i, t in tokens}
    a = adv.tolist()
    low = sum(ratio[i, t] < 0.8 and a[i] < 0 for i, t in tokens) / len(tokens)
    high = sum(ratio[i, t] > 1.28 and a[i] > 0 for i, t in tokens) / len(tokens)
    kl = sum(kl_k3(logp[i, t], ref[i, t]).item() for i, t in tokens) / len(tokens)
    assert 0 < low < 1 and 0 < high < 1  # the data does exercise both clips
    expected = {
        "policy/ratio_mean": sum(ratio.values()) / len(tokens),
        "policy/clip_frac_low": low,
        "policy/clip_frac_high": high,
        "policy/kl_mean": kl,
    }
    assert m == pytest.approx(expected, abs=ATOL)  # metrics are float32 logging values


# ------------------------------------------------------------------ gradient flow


@pytest.mark.parametrize("level", ["token", "sequence"])
def test_only_logp_gets_gradient(level):
    logp, old, adv, mask, ref = random_batch(seed=3)
    leaves = [x.clone().requires_grad_() for x in (logp, old, adv, ref)]
    logp, old, adv, ref = leaves
    loss, _ = policy_loss(logp, old, adv, mask, ref_logp=ref, beta=0.1, importance_level=level)
    loss.backward()
    assert old.grad is None and adv.grad is None and ref.grad is None
    assert (logp.grad[~mask] == 0).all()
    assert (logp.grad[mask] != 0).all()  # the KL term reaches even clipped tokens


# ------------------------------------------------------------------ token_count, shards, masks


def test_dapo_shards_with_global_token_count_sum_to_full_batch():
    logp, old, adv, mask, _ = random_batch(seed=4)
    full_logp = logp.clone().requires_grad_()
    full, _ = policy_loss(full_logp, old, adv, mask, loss_type="dapo")
    full.backward()
    token_count = int(mask.sum())  # all-reduced over processes in a real run
    shard_logp = logp.clone().requires_grad_()
    shards = [slice(0, 2), slice(2, 3), slice(3, 9), slice(9, 12)]  # uneven token counts
    local = [
        policy_loss(
            shard_logp[s],
            old[s],
            adv[s],
            mask[s],
            loss_type="dapo",
            step=StepContext(rows=12, tokens=token_count, global_tokens=token_count),
        )[0]
        for k, s in enumerate(shards)
    ]
    summed = sum(local)
    summed.backward()
    close(summed, full, atol=1e-12)
    close(shard_logp.grad, full_logp.grad, atol=1e-12)
    # Without token_count each shard normalises locally; averaging those is another loss.
    local = [policy_loss(logp[s], old[s], adv[s], mask[s], loss_type="dapo")[0] for s in shards]
    assert abs(sum(local) / len(shards) - full) > 1e-3


def test_trailing_padding_changes_nothing():
    logp, old, adv, mask, ref = random_batch(seed=5)

    def pad(x, value):
        return torch.cat([x, torch.full((x.shape[0], 3), value, dtype=x.dtype)], dim=1)

    for loss_type in LOSS_TYPES:
        for level in ("token", "sequence"):
            kw = {"loss_type": loss_type, "importance_level": level, "max_completion_len": 16}
            a, _ = policy_loss(logp, old, adv, mask, ref_logp=ref, beta=0.1, **kw)
            b, _ = policy_loss(
                pad(logp, 0.3),
                pad(old, -1.0),
                adv,
                pad(mask, False),
                ref_logp=pad(ref, 2.0),
                beta=0.1,
                **kw,
            )
            close(a, b, atol=1e-12)


def test_fully_masked_rows():
    # Row 0: ratios (1, 1), A = 1 -> terms (-1, -1). Row 1 fully masked: adds 0.
    #   grpo: (-1 + 0) / 2 = -0.5 (the empty row still counts in N)
    #   bnpo/dapo: -2 / 2 = -1;   dr_grpo with L = 2: -2 / (2·2) = -0.5
    logp = torch.zeros(2, 2, requires_grad=True)
    mask = torch.tensor([[1, 1], [0, 0]])
    expected = {"grpo": -0.5, "bnpo": -1.0, "dapo": -1.0, "dr_grpo": -0.5}
    for loss_type, value in expected.items():
        for level in ("token", "sequence"):
            loss, _ = policy_loss(
                logp,
                torch.zeros(2, 2),
                torch.tensor([1.0, 1.0]),
                mask,
                loss_type=loss_type,
                max_completion_len=2,
                importance_level=level,
            )
            close(loss, value)
    # Nothing valid at all: loss 0, zero gradient, zero metrics, no NaN anywhere.
    for loss_type in LOSS_TYPES:
        logp.grad = None
        loss, m = policy_loss(
            logp,
            torch.zeros(2, 2),
            torch.ones(2),
            torch.zeros(2, 2),
            loss_type=loss_type,
            max_completion_len=2,
            ref_logp=torch.zeros(2, 2),
            beta=0.1,
        )
        loss.backward()
        close(loss, 0.0)
        close(logp.grad, torch.zeros(2, 2))
        assert m == {
            "policy/ratio_mean": 0.0,
            "policy/clip_frac_low": 0.0,
            "policy/clip_frac_high": 0.0,
            "policy/kl_mean": 0.0,
        }


@pytest.mark.parametrize("level", ["token", "sequence"])
def test_garbage_under_the_mask_does_not_leak(level):
    logp, old, adv, mask, ref = random_batch(seed=6)
    clean, _ = policy_loss(logp, old, adv, mask, ref_logp=ref, beta=0.1, importance_level=level)
    dirty_logp = logp.masked_fill(~mask, float("nan")).requires_grad_()
    dirty, m = policy_loss(
        dirty_logp,
        old.masked_fill(~mask, -float("inf")),
        adv,
        mask,
        ref_logp=ref.masked_fill(~mask, float("inf")),
        beta=0.1,
        importance_level=level,
    )
    dirty.backward()
    close(dirty, clean, atol=1e-12)
    assert torch.isfinite(dirty_logp.grad).all()
    assert all(math.isfinite(v) for v in m.values())


# ------------------------------------------------------------------ errors


def test_policy_loss_errors():
    logp, old, adv, mask = torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2), torch.ones(2, 3)
    with pytest.raises(ValueError, match="'bnpo', 'dapo', 'dr_grpo', 'grpo'"):
        policy_loss(logp, old, adv, mask, loss_type="ppo")
    with pytest.raises(ValueError, match="'sequence', 'token'"):
        policy_loss(logp, old, adv, mask, importance_level="seq")
    with pytest.raises(ValueError, match="pass ref_logp"):
        policy_loss(logp, old, adv, mask, beta=0.1)
    with pytest.raises(ValueError, match="beta .* must be >= 0"):
        policy_loss(logp, old, adv, mask, beta=-0.1, ref_logp=old)
    with pytest.raises(ValueError, match="needs max_completion_len"):
        policy_loss(logp, old, adv, mask, loss_type="dr_grpo")
    with pytest.raises(ValueError, match="pass max_completion_len inside step"):
        policy_loss(
            logp,
            old,
            adv,
            mask,
            loss_type="dr_grpo",
            max_completion_len=3,
            step=StepContext(rows=2, tokens=6, global_tokens=6),
        )
    with pytest.raises(ValueError, match="token counts must be >= 0"):
        StepContext(rows=2, tokens=6, global_tokens=-1)
    with pytest.raises(ValueError, match=r"advantages has shape \(2, 1\); expected \(2,\)"):
        policy_loss(logp, old, adv[:, None], mask)
    with pytest.raises(ValueError, match=r"mask has shape \(2, 2\); expected \(2, 3\)"):
        policy_loss(logp, old, adv, mask[:, :2])


# ------------------------------------------------------------------ logits helpers


def test_selective_log_softmax_by_hand():
    # softmax(0, ln 3) = (1/4, 3/4): log p = (ln 0.25, ln 0.75) = (-1.3862944, -0.2876821)
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, math.log(3.0)]]])
    close(selective_log_softmax(logits, torch.tensor([[0, 1]])), [[-1.3862944, -0.2876821]])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_selective_log_softmax_matches_full_log_softmax(dtype):
    gen = torch.Generator().manual_seed(7)
    logits = (5 * torch.randn(3, 5, 11, generator=gen)).to(dtype)
    ids = torch.randint(0, 11, (3, 5), generator=gen)
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    fast = selective_log_softmax(a, ids)
    slow = torch.log_softmax(b, dim=-1).gather(-1, ids[..., None]).squeeze(-1)
    assert fast.dtype == dtype
    close(fast, slow, atol=1e-6 if dtype == torch.float32 else 1e-12)
    fast.sum().backward()
    slow.sum().backward()
    close(a.grad, b.grad, atol=1e-6 if dtype == torch.float32 else 1e-12)


def test_selective_log_softmax_upcasts_half_precision():
    gen = torch.Generator().manual_seed(8)
    logits = (5 * torch.randn(2, 4, 32, generator=gen)).bfloat16()
    ids = torch.randint(0, 32, (2, 4), generator=gen)
    out = selective_log_softmax(logits, ids)
    assert out.dtype == torch.float32
    expected = torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[..., None]).squeeze(-1)
    close(out, expected)
    with pytest.raises(ValueError, match="minus V"):
        selective_log_softmax(logits, ids[:, :3])


def test_entropy_by_hand():
    # uniform over 4: ln 4 = 1.3862944
    # p = (1/4, 3/4): -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.3465736 + 0.2157616 = 0.5623351
    # logits (1000, 0, 0): p ≈ (1, e^-1000, e^-1000), H ≈ 0, and finite
    close(entropy_from_logits(torch.zeros(2, 3, 4)), torch.full((2, 3), 1.3862944))
    close(entropy_from_logits(torch.tensor([[0.0, math.log(3.0)]])), [0.5623351])
    close(entropy_from_logits(torch.tensor([[1000.0, 0.0, 0.0]])), [0.0])


def test_entropy_matches_categorical():
    logits = 4 * torch.randn(3, 6, 17, generator=torch.Generator().manual_seed(9))
    expected = torch.distributions.Categorical(logits=logits).entropy()
    close(entropy_from_logits(logits), expected, atol=1e-12)


# ------------------------------------------------------------------ registries and step context


def test_register_refuses_a_taken_name():
    with pytest.raises(ValueError, match="'grpo' is already registered"):
        _register(LOSS_AGGREGATIONS, "grpo")(lambda term, mask, step: term.sum())
    assert LOSS_AGGREGATIONS["grpo"].__name__ == "_agg_grpo"  # the first one stays


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_micro_batch_shares_add_up_to_the_step_loss(loss_type):
    # One process, its step split into uneven micro-batches: the shares computed with the
    # step's context sum to the loss of the step computed in one call, gradient included.
    logp, old, adv, mask, _ = random_batch(seed=7)
    kw = {"loss_type": loss_type}
    full_logp = logp.clone().requires_grad_()
    full, _ = policy_loss(full_logp, old, adv, mask, max_completion_len=16, **kw)
    full.backward()
    tokens = float(mask.sum())
    step = StepContext(rows=12, tokens=tokens, global_tokens=tokens, max_completion_len=16)
    part_logp = logp.clone().requires_grad_()
    parts = [slice(0, 5), slice(5, 6), slice(6, 12)]
    summed = sum(
        policy_loss(part_logp[s], old[s], adv[s], mask[s], step=step, **kw)[0] for s in parts
    )
    summed.backward()
    close(summed, full, atol=1e-12)
    close(part_logp.grad, full_logp.grad, atol=1e-12)


def test_dapo_divides_by_the_tokens_of_the_whole_step_over_processes():
    # Terms 1 on 3 valid tokens of this process; the step has 8 tokens over 2 processes.
    # DDP averages the two processes' gradients, so each divides by 8 / 2: 3 / 4 = 0.75.
    # bnpo ignores the other process: 3 / 3 = 1.
    term, mask = torch.ones(2, 2), torch.tensor([[1, 1], [1, 0]])
    step = StepContext(rows=2, tokens=3, global_tokens=8, world=2)
    close(aggregate_loss(term, mask, "dapo", step), 0.75)
    close(aggregate_loss(term, mask, "bnpo", step), 1.0)


def test_a_registered_loss_type_needs_no_other_change():
    # Sum over tokens / L_max of the step's rows: row 0 has 2 valid tokens, row 1 one, terms 1:
    # 3 / (4 rows · 2) = 0.375 (the step has 4 rows; this call holds 2 of them).
    name = "test_sum_over_budget"

    def aggregate(term, mask, step):
        return torch.where(mask, term, 0.0).sum() / (step.rows * step.max_completion_len)

    _register(LOSS_AGGREGATIONS, name)(aggregate)
    try:
        term, mask = torch.ones(2, 2), torch.tensor([[1, 1], [1, 0]])
        step = StepContext(rows=4, tokens=3, global_tokens=3, max_completion_len=2)
        close(aggregate_loss(term, mask, name, step), 0.375)
        logp = torch.zeros(2, 2, requires_grad=True)
        loss, _ = policy_loss(
            logp, torch.zeros(2, 2), -torch.ones(2), mask, loss_type=name, step=step
        )
        close(loss, 0.375)  # ratio 1, A = -1: every term is 1
    finally:
        del LOSS_AGGREGATIONS[name]
