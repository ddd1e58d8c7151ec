"""The balanced-mixture state (paper.md section 3): balancing, re-application, sampling, EMA, selection rules."""

import math

import pytest
import torch

from poolnas.search import balancing
from poolnas.search.balancing import Mixture, apply_balancing, balance, kl_to_uniform, select, temperature

F64 = torch.float64


def random_W(C, M, seed):
    return torch.rand(C, M, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("M", [1, 2, 4, 8])
@pytest.mark.parametrize("T", [1.0, 10.0, 50.5, 100.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_balancing_brings_the_model_marginal_within_the_threshold(M, T, seed):
    W = random_W(36, M, seed)
    P, marginals = balance(W, T, threshold=1e-4)
    p = P.mean(dim=0)
    assert kl_to_uniform(p) <= 1e-4
    assert torch.allclose(P.sum(dim=1), torch.ones(36, dtype=F64))
    assert (P >= 0).all()
    assert marginals.shape[1] == M
    if M == 1:
        assert len(marginals) == 0 and (P == 1.0).all()
    if len(marginals):  # the first marginal divided by is the unbalanced softmax's
        assert torch.equal(marginals[0], torch.softmax(T * W, dim=1).mean(dim=0))


def test_balanced_input_needs_no_iteration():
    P, marginals = balance(torch.ones(36, 4, dtype=F64), 100.0)
    assert len(marginals) == 0 and torch.equal(P, torch.full((36, 4), 0.25, dtype=F64))


def test_kl_to_uniform():
    assert kl_to_uniform(torch.tensor([0.25] * 4, dtype=F64)) == 0.0
    assert kl_to_uniform(torch.tensor([1.0, 0.0], dtype=F64)) == pytest.approx(math.log(2))
    assert kl_to_uniform(torch.tensor([0.75, 0.25], dtype=F64)) == pytest.approx(
        0.75 * math.log(1.5) + 0.25 * math.log(0.5))


def test_planted_blocks_at_high_temperature_give_a_near_one_hot_balanced_assignment():
    """Configs 0-8 prefer model 0, 9-17 model 1, ...: a hot, balanced P recovers the blocks."""
    C, M = 36, 4
    truth = torch.arange(C) // (C // M)
    W = 0.5 + 0.05 * random_W(C, M, 3)
    W[torch.arange(C), truth] += 0.2
    P, _ = balance(W, 100.0)
    assert torch.equal(P.argmax(dim=1), truth)
    assert (P.max(dim=1).values > 0.99).all()
    assert kl_to_uniform(P.mean(dim=0)) <= 1e-4
    # At T = 1 the same W gives a nearly uniform P.
    cold, _ = balance(W, 1.0)
    assert (cold.max(dim=1).values < 0.35).all()


def test_balancing_spreads_configs_when_every_config_prefers_one_model():
    """All 36 configs prefer model 0, by different margins: balancing hands the weakest preferences to others."""
    C, M = 36, 4
    W = torch.full((C, M), 0.5, dtype=F64)
    W[:, 0] += torch.linspace(0.01, 0.3, C, dtype=F64)
    raw = torch.softmax(100.0 * W, dim=1)
    assert (raw.argmax(dim=1) == 0).all()
    P, marginals = balance(W, 100.0)
    assert len(marginals) > 1
    assert kl_to_uniform(P.mean(dim=0)) <= 1e-4
    assert P[-1].argmax() == 0  # the strongest preference keeps its model
    assert (P.argmax(dim=1) != 0).sum() >= C // 2  # at least half the configs moved away from model 0


def test_the_stored_sequence_reapplied_reproduces_the_balanced_P_exactly():
    W = random_W(36, 8, 7)
    P, marginals = balance(W, 73.0)
    assert len(marginals) > 3
    assert torch.equal(apply_balancing(W, 73.0, marginals), P)
    assert torch.equal(apply_balancing(W, 73.0, marginals, rows=5), P[5])
    assert torch.equal(apply_balancing(W, 73.0, marginals, rows=[3, 1]), P[[3, 1]])
    # the per-step form softmax(T W + b) equals the literal re-application up to float64 rounding
    mix = Mixture(36, 8, epochs=10, t0=1.0, tmax=73.0)
    mix.W = W.clone()
    assert torch.equal(mix.start_epoch(10), P)
    assert torch.allclose(mix.probs(), P, rtol=1e-9, atol=0)
    # after W changes, both forms still agree and differ from P
    mix.update(5, int(P[5].argmax()), 0.0)
    assert torch.allclose(mix.probs(), apply_balancing(mix.W, 73.0, marginals), rtol=1e-9, atol=0)
    assert not torch.allclose(mix.probs(5), P[5])


def test_balancing_that_cannot_converge_raises_a_clear_error():
    with pytest.raises(balancing.BalancingError, match="KL"):
        balance(random_W(36, 4, 0), 100.0, threshold=1e-12, max_iter=3)


def test_temperature_schedule_is_linear_from_t0_to_tmax():
    assert temperature(0, 100, 1.0, 100.0) == 1.0
    assert temperature(100, 100, 1.0, 100.0) == 100.0
    assert temperature(50, 100, 1.0, 100.0) == pytest.approx(50.5)
    mix = Mixture(4, 2, epochs=4, t0=2.0, tmax=10.0)
    temps = []
    for e in range(5):
        mix.start_epoch(e)
        temps.append(mix.T)
    assert temps == [2.0, 4.0, 6.0, 8.0, 10.0]


def test_ema_update_arithmetic_and_counts():
    mix = Mixture(3, 2, epochs=1, ema=0.9)
    mix.update(1, 0, 0.5)
    assert mix.W[1, 0].item() == pytest.approx(0.9 + 0.1 * 0.5)
    mix.update(1, 0, 0.25)
    assert mix.W[1, 0].item() == pytest.approx(0.9 * 0.95 + 0.1 * 0.25)
    assert mix.W.sum().item() == pytest.approx(5 + 0.9 * 0.95 + 0.025)
    assert mix.counts.tolist() == [[0, 0], [2, 0], [0, 0]]
    state = mix.state_dict()
    other = Mixture(3, 2, epochs=1, ema=0.9)
    other.load_state_dict(state)
    assert torch.equal(other.W, mix.W) and torch.equal(other.counts, mix.counts)


def test_single_supernet_is_uniform_single_path_sampling():
    mix = Mixture(36, 1, epochs=10)
    g = torch.Generator().manual_seed(0)
    seen = torch.zeros(36)
    for e in range(11):
        P = mix.start_epoch(e)
        assert torch.equal(P, torch.ones(36, 1, dtype=F64)) and len(mix.marginals) == 0
        for _ in range(720):
            c, m = mix.sample(g)
            assert m == 0
            seen[c] += 1
            mix.update(c, m, float(torch.rand(1, generator=g)))
        assert torch.equal(mix.probs(), torch.ones(36, 1, dtype=F64))
    # configs uniform: 7920 draws, 220 expected per config; a chi-square test at a generous level
    chi2 = ((seen - 220) ** 2 / 220).sum().item()
    assert chi2 < 80, chi2  # 35 degrees of freedom: P(chi2 > 80) < 1e-4
    assert mix.counts[:, 0].sum() == 7920


def test_sampling_follows_the_balanced_probabilities_and_is_seeded():
    mix = Mixture(4, 3, epochs=1, tmax=1.0)
    mix.W = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]], dtype=F64)
    mix.start_epoch(0)
    P = mix.probs()
    g = torch.Generator().manual_seed(1)
    draws = torch.tensor([mix.sample_model(3, g) for _ in range(20000)])
    freq = torch.bincount(draws, minlength=3).double() / len(draws)
    assert torch.allclose(freq, P[3], atol=0.015)
    a = [Mixture(36, 4, epochs=1).sample(torch.Generator().manual_seed(5)) for _ in range(2)]
    assert a[0] == a[1]


def test_selection_rules():
    acc = torch.tensor([[50.0, 90.0], [80.0, 10.0], [70.0, 85.0]], dtype=F64)
    P = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6]], dtype=F64)  # assigned models 0, 0, 1
    W = torch.tensor([[0.95, 0.1], [0.7, 0.2], [0.3, 0.9]], dtype=F64)
    picks = select(acc, P, W)
    assert picks["assigned"]["index"] == 2 and picks["assigned"]["score"] == 85.0
    assert picks["assigned"]["scores"] == [50.0, 80.0, 85.0]
    assert picks["best_model"]["index"] == 0 and picks["best_model"]["score"] == 90.0
    assert picks["ema"]["index"] == 0 and picks["ema"]["score"] == 0.95
    # ties go to the lowest config index
    tie = select(torch.full((3, 2), 60.0, dtype=F64), P, torch.ones(3, 2, dtype=F64))
    assert all(p["index"] == 0 for p in tie.values())
    # with one model every rule reduces to the config's own accuracy (and W)
    one = select(acc[:, :1], torch.ones(3, 1, dtype=F64), W[:, :1])
    assert one["assigned"]["index"] == one["best_model"]["index"] == 1 and one["ema"]["index"] == 0


def test_shortlist_rule_scores_only_the_top_max_w_configs_with_their_assigned_supernet():
    """The released Food101 search (utils/NAS_trainer.py): the K configs with the highest max over SuperNets of W,
    each scored with its assigned SuperNet; a config outside the shortlist cannot be picked however it scores."""
    acc = torch.tensor([[50.0, 90.0], [80.0, 10.0], [70.0, 85.0], [99.0, 99.0]], dtype=F64)
    P = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.5, 0.5]], dtype=F64)  # assigned 0, 0, 1, 0
    W = torch.tensor([[0.95, 0.1], [0.7, 0.2], [0.3, 0.9], [0.1, 0.2]], dtype=F64)  # max W: 0.95, 0.7, 0.9, 0.2
    assert balancing.shortlist(W, 2).tolist() == [0, 2]
    picks = select(acc, P, W, shortlist_size=2)
    assert picks["assigned"]["index"] == 3  # the full evaluation's pick: config 3 is outside the shortlist
    assert picks["shortlist"]["index"] == 2 and picks["shortlist"]["score"] == 85.0
    assert picks["shortlist"]["scores"] == [50.0, None, 85.0, None]
    assert select(acc, P, W, shortlist_size=4)["shortlist"]["index"] == picks["assigned"]["index"]
    assert "shortlist" not in select(acc, P, W)  # only where the rule is in force
    assert balancing.shortlist_size({"selection": "shortlist"}) == 50  # absent: the release's 50
    assert balancing.shortlist_size({"selection": "shortlist", "shortlist_size": 7}) == 7
    assert balancing.shortlist_size({"selection": "assigned", "shortlist_size": 7}) is None
