"""Ranking statistics on constructed data whose answers are known by hand."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from poolnas.analysis import stats


def test_identical_order_gives_perfect_scores():
    gt = np.array([88.0, 89.5, 90.1, 91.0, 92.2, 87.3])
    score = 3 * gt - 200  # any increasing map keeps the order
    m = stats.ranking_metrics(gt, score)
    assert m["kendall_tau"] == pytest.approx(1.0)
    assert m["spearman"] == pytest.approx(1.0)
    assert (m["top1"], m["top3"], m["top5"]) == (1.0, 1.0, 1.0)
    assert m["regret"] == 0.0
    assert m["pick"] == m["best"] == 4


def test_reversed_order_gives_minus_one_and_worst_pick():
    gt = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    score = -gt
    assert stats.kendall_tau(gt, score) == pytest.approx(-1.0)
    assert stats.spearman(gt, score) == pytest.approx(-1.0)
    assert stats.top_k_overlap(gt, score, 1) == 0.0
    assert stats.top_k_overlap(gt, score, 3) == 0.0
    assert stats.regret(gt, score) == pytest.approx(5.0)  # picks the worst config


def test_one_adjacent_swap_matches_hand_computation():
    # 6 pairs, 5 concordant and 1 discordant: tau = 4/6; rank differences 0,1,1,0: rho = 1 - 6*2/(4*15) = 0.8.
    gt, score = [1, 2, 3, 4], [1, 3, 2, 4]
    assert stats.kendall_tau(gt, score) == pytest.approx(4 / 6)
    assert stats.spearman(gt, score) == pytest.approx(0.8)


def test_kendall_is_tau_b_under_ties():
    # Pairs: (1,2) tied in score only, (1,3) and (2,3) concordant. tau-b = 2 / sqrt(3 * 2); tau-a would be 2/3.
    assert stats.kendall_tau([1, 2, 3], [1, 1, 2]) == pytest.approx(2 / math.sqrt(6))


def test_kendall_agrees_with_a_direct_scipy_call():
    rng = np.random.default_rng(3)
    gt, score = rng.normal(size=40), rng.normal(size=40)
    assert stats.kendall_tau(gt, score) == pytest.approx(scipy.stats.kendalltau(gt, score).statistic)


def test_top_k_overlap_counts_shared_members():
    gt = pd.Series([10, 9, 8, 7, 6, 5], index=list("abcdef"))  # true top-3: a, b, c
    score = pd.Series([9, -1, 2, 8, 7, 0], index=list("abcdef"))  # score order: a, d, e, c, f, b
    assert stats.top_k_overlap(gt, score, 1) == 1.0
    assert stats.top_k_overlap(gt, score, 3) == pytest.approx(1 / 3)
    assert stats.top_k_overlap(gt, score, 5) == pytest.approx(4 / 5)  # {a,b,c,d,e} vs {a,c,d,e,f}
    with pytest.raises(ValueError):
        stats.top_k_overlap(gt, score, 7)


def test_regret_is_the_ground_truth_gap_of_the_pick():
    gt = pd.Series([90.0, 92.0, 91.0], index=["[4,3,3]", "[7,1,2]", "[5,3,2]"])
    score = pd.Series([80.3, 80.1, 80.5], index=gt.index)
    m = stats.ranking_metrics(gt, score)
    assert (m["pick"], m["best"]) == ("[5,3,2]", "[7,1,2]")
    assert m["regret"] == pytest.approx(1.0)
    assert (m["pick_gt"], m["best_gt"]) == (91.0, 92.0)


def test_series_are_aligned_by_label_not_position():
    gt = pd.Series([1.0, 2.0, 3.0, 4.0], index=list("abcd"))
    shuffled = pd.Series([4.0, 1.0, 3.0, 2.0], index=list("dacb"))  # same values per label as gt
    assert stats.kendall_tau(gt, shuffled) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same"):
        stats.kendall_tau(gt, pd.Series([1.0, 2.0, 3.0, 4.0], index=list("abcx")))


@pytest.mark.parametrize("gt, score", [([1, 2, 3], [1, 2]), ([1, 2, np.nan], [1, 2, 3]), ([1], [1])])
def test_bad_inputs_raise(gt, score):
    with pytest.raises(ValueError):
        stats.ranking_metrics(gt, score)


def _noisy(n: int, noise: float, seed: int):
    rng = np.random.default_rng(seed)
    gt = rng.normal(90, 1, size=n)
    return gt, gt + rng.normal(0, noise, size=n)


def _scipy_replicate(g, s, ks):
    """One replicate's metrics the slow, obvious way: scipy calls and the public per-metric functions."""
    out = {"kendall_tau": scipy.stats.kendalltau(g, s).statistic, "spearman": scipy.stats.spearmanr(g, s).statistic}
    out.update({f"top{k}": stats.top_k_overlap(g, s, k) if k <= len(g) else np.nan for k in ks})
    out["regret"] = stats.regret(g, s)
    return out


@pytest.mark.parametrize("n", [2, 5, 36])
def test_vectorised_replicates_equal_scipy_bit_for_bit(n):
    # Rounded values give many ties, as resampling (a config drawn twice) and accuracies in 0.05 steps do;
    # the rows include a constant one, where scipy returns NaN.
    rng = np.random.default_rng(n)
    g = np.round(rng.normal(90, 1, size=(300, n)), 1)
    s = np.round(g + rng.normal(0, 1, size=(300, n)), 0)
    g[0] = 3.0
    ks = (1, 3, 5)
    batch = stats._batch_metrics(g, s, ks)
    with np.errstate(all="ignore"), pytest.warns(scipy.stats.ConstantInputWarning):
        expected = [_scipy_replicate(g[i], s[i], ks) for i in range(len(g))]
    for name in batch:
        np.testing.assert_array_equal(batch[name], [row[name] for row in expected], err_msg=name)


def test_vectorised_replicates_do_not_depend_on_the_chunk_size(monkeypatch):
    g, s = _noisy(12, 1.0, seed=3)
    draws = np.random.default_rng(0).integers(0, 12, size=(50, 12))
    whole = stats._batch_metrics(g[draws], s[draws], stats.DEFAULT_KS)
    monkeypatch.setattr(stats, "PAIR_BUDGET", 7 * 66)  # 7 replicates of 66 pairs per chunk
    chunked = stats._batch_metrics(g[draws], s[draws], stats.DEFAULT_KS)
    for name in whole:
        np.testing.assert_array_equal(whole[name], chunked[name], err_msg=name)


def test_bootstrap_interval_contains_the_estimate_and_is_reproducible():
    gt, score = _noisy(36, 1.0, seed=1)
    ci = stats.bootstrap_ci(gt, score, n_boot=500, seed=7)
    assert list(ci.columns) == ["estimate", "lo", "hi"]
    for metric in ("kendall_tau", "spearman", "regret"):
        assert ci.at[metric, "lo"] <= ci.at[metric, "estimate"] <= ci.at[metric, "hi"]
    assert ci.at["kendall_tau", "lo"] < ci.at["kendall_tau", "hi"]
    pd.testing.assert_frame_equal(ci, stats.bootstrap_ci(gt, score, n_boot=500, seed=7))
    assert not ci.equals(stats.bootstrap_ci(gt, score, n_boot=500, seed=8))


def test_bootstrap_of_a_perfect_ranking_stays_perfect():
    # A config drawn twice ties with itself in both rankings: tau-b must ignore it, not penalise it.
    gt = np.arange(20.0)
    ci = stats.bootstrap_ci(gt, gt, n_boot=200, seed=0)
    assert ci.loc["kendall_tau", ["lo", "hi"]].tolist() == pytest.approx([1.0, 1.0])
    assert ci.loc["regret", ["lo", "hi"]].tolist() == [0.0, 0.0]


def test_bootstrap_interval_narrows_with_more_configs():
    def width(n):
        ci = stats.bootstrap_ci(*_noisy(n, 1.0, seed=2), n_boot=400, seed=0)
        return ci.at["kendall_tau", "hi"] - ci.at["kendall_tau", "lo"]

    assert width(400) < width(20) / 2


def _runs(gt_means, n_gt_runs, n_search_runs, gt_noise, run_offsets, score_noise, seed=0):
    """Long tables of per-seed results: standalone runs per config, and search runs scoring every config."""
    rng = np.random.default_rng(seed)
    gt = pd.DataFrame([{"config": c, "value": mu + rng.normal(0, gt_noise)}
                       for c, mu in enumerate(gt_means) for _ in range(n_gt_runs[c])])
    score = pd.DataFrame([{"config": c, "run": r, "value": mu + run_offsets[r] + rng.normal(0, score_noise)}
                          for r in range(n_search_runs) for c, mu in enumerate(gt_means)])
    return gt, score


def test_seed_bootstrap_without_noise_collapses_to_the_estimate():
    means = np.linspace(88, 92, 12)
    gt, score = _runs(means, [3] * 12, 3, gt_noise=0, run_offsets=[0, 0, 0], score_noise=0)
    ci = stats.seed_bootstrap_ci(gt, score, n_boot=100, seed=0, resample_configs=False)
    assert (ci["lo"] == ci["estimate"]).all() and (ci["hi"] == ci["estimate"]).all()
    assert ci.at["kendall_tau", "estimate"] == pytest.approx(1.0)


def test_seed_bootstrap_resamples_whole_search_runs():
    # Each search run shifts every config by its own offset: the order inside a run is intact, so resampling
    # whole runs must leave tau at 1. Resampling runs per config would mix offsets and break the order.
    means = np.linspace(88, 92, 12)
    gt, score = _runs(means, [2] * 12, 4, gt_noise=0, run_offsets=[-5, 0, 3, 9], score_noise=0)
    ci = stats.seed_bootstrap_ci(gt, score, n_boot=200, seed=0, resample_configs=False)
    assert ci.loc["kendall_tau", "lo"] == pytest.approx(1.0)


def test_seed_bootstrap_carries_seed_noise_and_is_reproducible():
    means = np.linspace(88, 92, 12)
    counts = [1, 2, 3] * 4  # unequal numbers of standalone runs per config
    gt, score = _runs(means, counts, 3, gt_noise=0.8, run_offsets=[0, 0, 0], score_noise=0.8, seed=4)
    ci = stats.seed_bootstrap_ci(gt, score, n_boot=300, seed=1, resample_configs=False)
    assert ci.at["kendall_tau", "lo"] < ci.at["kendall_tau", "estimate"] <= ci.at["kendall_tau", "hi"]
    pd.testing.assert_frame_equal(ci, stats.seed_bootstrap_ci(gt, score, n_boot=300, seed=1,
                                                              resample_configs=False))
    both = stats.seed_bootstrap_ci(gt, score, n_boot=300, seed=1)
    assert both.at["kendall_tau", "lo"] <= both.at["kendall_tau", "estimate"] <= both.at["kendall_tau", "hi"]


def test_seed_bootstrap_rejects_an_incomplete_search_run():
    gt, score = _runs(np.arange(5.0), [2] * 5, 2, 0, [0, 0], 0)
    with pytest.raises(ValueError, match="every run"):
        stats.seed_bootstrap_ci(gt, score.iloc[1:], n_boot=10)


def test_ranking_table_has_one_row_per_group():
    gt = np.linspace(88, 92, 10)
    frame = pd.concat([pd.DataFrame({"config": [f"c{i}" for i in range(10)], "gt_mean": gt,
                                     "supernet_mean": sign * gt, "models": m})
                       for m, sign in ((1, -1), (4, 1))])
    table = stats.ranking_table(frame, n_boot=50, seed=0)
    assert list(table["models"]) == [1, 4]
    assert list(table["kendall_tau"]) == pytest.approx([-1.0, 1.0])
    assert list(table["pick"]) == ["c0", "c9"]
    assert {"kendall_tau_lo", "kendall_tau_hi", "top5_hi", "regret_lo"} <= set(table.columns)
    assert not any(c.endswith("_lo") for c in stats.ranking_table(frame, n_boot=0).columns)


def test_trend_line_recovers_a_quadratic():
    x = np.linspace(87, 92, 30)
    fit = stats.trend_line(x, 2 * x**2 - 3 * x + 1, n_points=50)
    assert fit["coefficients"] == pytest.approx([2, -3, 1], rel=1e-6, abs=1e-6)
    assert len(fit["x"]) == 50 and fit["x"][0] == x.min() and fit["x"][-1] == x.max()
    with pytest.raises(ValueError):
        stats.trend_line([1, 2], [1, 2], degree=2)


def test_the_seed_range_rule_flags_configs_by_chance_as_often_as_brute_force_says():
    """erratic_by_chance against a direct simulation of the same rule on the same design: 36 configs x 3 seeds of
    equal Gaussian noise (issue 18's bar "no config whose seed range exceeds 4 x the median seed SD")."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 36, 3))
    med = np.median(x.std(axis=2, ddof=1), axis=1, keepdims=True)
    count = ((x.max(axis=2) - x.min(axis=2)) > 4 * med).sum(axis=1)
    got = stats.erratic_by_chance([3] * 36, 4.0)
    assert abs(got["expected"] - count.mean()) < 0.15 and abs(got["p_none"] - (count == 0).mean()) < 0.04
    assert 1.5 < got["expected"] < 2.3 and 0.1 < got["p_none"] < 0.3  # the rule fails most flawless grids
    worst = ((x.max(axis=2) - x.min(axis=2)) / med).max(axis=1)  # the largest span of each flawless grid
    assert abs((worst > got["calibrated"]).mean() - 0.05) < 0.015 and got["calibrated"] > 4  # 4 x is below chance's
    strict = stats.erratic_by_chance([3] * 36, 100.0)
    assert (strict["expected"], strict["p_none"], strict["calibrated"]) == (0.0, 1.0, got["calibrated"])
    more_seeds = stats.erratic_by_chance([5] * 36, 4.0)
    assert more_seeds["expected"] > got["expected"]  # a range grows with the number of seeds, an SD does not
    one_seed = stats.erratic_by_chance([3] * 35 + [1], 4.0)  # a single seed has no range: never flagged
    assert one_seed["expected"] < got["expected"]
