"""Ranking statistics: how well SuperNet scores order configurations against their ground truth.

The functions know nothing about file formats: they take the per-config ground truth (`gt`, e.g. the mean
standalone test accuracy) and the per-config SuperNet `score` as plain arrays or pandas Series, so the same
code serves the authors' released table and our own results. Higher is better for both. When both inputs are
Series they are aligned by index (the config labels) and must hold the same labels. Accuracies are in
percent, so a regret is in accuracy points.

Rank correlations come from scipy.stats; ties follow scipy (Kendall's tau-b, average ranks for Spearman).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as _sp

DEFAULT_KS = (1, 3, 5)
PAIR_BUDGET = 2 ** 24  # config pairs x replicates held at once by _batch_metrics (int8 signs: 16 MB each)


def seed_spread(means, stds) -> dict[str, float]:
    """How far apart configs are against seed noise, from per-config means and seed SDs (NaN SDs skipped):
    the spread of the means (max - min), their SD, and the median seed SD."""
    means, stds = pd.Series(means, dtype=float), pd.Series(stds, dtype=float)
    return {"spread": means.max() - means.min(), "sd": means.std(ddof=1), "median_sd": stds.median()}


def erratic_by_chance(seeds_per_config, ratio: float, alpha: float = 0.05, reps: int = 4000,
                      seed: int = 0) -> dict[str, float]:
    """What the rule "a config's seed range exceeds `ratio` x the median seed SD" does when every config has the
    same Gaussian seed noise (nothing failed), by simulation of the same design (configs with their numbers of seeds):
    the expected count of flagged configs, the chance that it flags none, and `calibrated`, the ratio that flawless
    grids of this design exceed (in any config) only `alpha` of the time. With 36 configs x 3 seeds and ratio 4 the
    rule flags about 1.8 configs by chance alone and none only 21 % of the time, so a count near that says nothing
    about failed seeds; a range above `calibrated` x the median seed SD does (a seed that failed or started late)."""
    n = np.asarray(seeds_per_config, dtype=int)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((reps, len(n), max(n.max(), 1)))
    x[:, np.arange(x.shape[2])[None, :] >= n[:, None]] = np.nan  # config i keeps its first n[i] draws
    sd = np.full(x.shape[:2], np.nan)
    sd[:, n >= 2] = np.nanstd(x[:, n >= 2], axis=2, ddof=1)
    spans = (np.nanmax(x, axis=2) - np.nanmin(x, axis=2)) / np.nanmedian(sd, axis=1, keepdims=True)
    count = (spans > ratio).sum(axis=1)
    return {"expected": float(count.mean()), "p_none": float((count == 0).mean()),
            "calibrated": float(np.quantile(spans.max(axis=1), 1 - alpha))}


def _aligned(gt, score) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """Float arrays of equal length plus the config labels (a RangeIndex for plain arrays)."""
    if isinstance(gt, pd.Series) and isinstance(score, pd.Series):
        if not gt.index.sort_values().equals(score.index.sort_values()) or gt.index.has_duplicates:
            raise ValueError("gt and score must be indexed by the same, unique config labels")
        score = score.reindex(gt.index)
    labels = gt.index if isinstance(gt, pd.Series) else pd.RangeIndex(len(gt))
    g, s = np.asarray(gt, dtype=float), np.asarray(score, dtype=float)
    if g.ndim != 1 or g.shape != s.shape:
        raise ValueError(f"gt and score must be 1-D and of equal length, got shapes {g.shape} and {s.shape}")
    if len(g) < 2:
        raise ValueError("ranking needs at least 2 configs")
    if not (np.isfinite(g).all() and np.isfinite(s).all()):
        raise ValueError("gt and score must be finite (no NaN)")
    return g, s, labels


def kendall_tau(gt, score) -> float:
    """Kendall's tau-b between gt and score: 1 same order, -1 reversed, about 0 unrelated."""
    g, s, _ = _aligned(gt, score)
    return float(_sp.kendalltau(g, s, variant="b").statistic)


def spearman(gt, score) -> float:
    """Spearman's rank correlation between gt and score (ties get average ranks)."""
    g, s, _ = _aligned(gt, score)
    return float(_sp.spearmanr(g, s).statistic)


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest values. Ties go to the earlier position so the answer is deterministic."""
    return np.argsort(-values, kind="stable")[:k]


def top_k_overlap(gt, score, k: int) -> float:
    """|top-k by gt  ∩  top-k by score| / k: the share of the truly best k configs the scores also put on top."""
    g, s, _ = _aligned(gt, score)
    if not 1 <= k <= len(g):
        raise ValueError(f"k must be in 1..{len(g)}, got {k}")
    return len(np.intersect1d(_top(g, k), _top(s, k))) / k


def regret(gt, score) -> float:
    """Ground truth of the best config minus ground truth of the config the scores pick (>= 0)."""
    g, s, _ = _aligned(gt, score)
    return float(g.max() - g[_top(s, 1)[0]])


def _batch_metrics(g: np.ndarray, s: np.ndarray, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """The numeric metrics of each row of g and s (shape replicates x configs), all rows at once.

    The bootstrap calls this on thousands of replicates, where a scipy call per row costs seconds. The
    results equal scipy's bit for bit (tests check it): tau-b from integer pair counts, divided in
    scipy.stats.kendalltau's order; Spearman as np.corrcoef of average ranks, whose centred ranks are
    multiples of 1/2, so every sum is exact. An undefined value (a constant row) is NaN.
    """
    n = g.shape[1]
    upper_i, upper_j = np.triu_indices(n, k=1)
    chunk = max(1, PAIR_BUDGET // max(len(upper_i), 1))
    if len(g) > chunk:  # a 455-config space has 103,285 pairs per replicate: keep the sign arrays small
        parts = [_batch_metrics(g[i:i + chunk], s[i:i + chunk], ks) for i in range(0, len(g), chunk)]
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    sign_g = np.sign(g[:, upper_i] - g[:, upper_j]).astype(np.int8)
    sign_s = np.sign(s[:, upper_i] - s[:, upper_j]).astype(np.int8)
    pairs = len(upper_i)
    ties_g, ties_s = (sign_g == 0).sum(axis=1), (sign_s == 0).sum(axis=1)
    concordant_minus_discordant = (sign_g * sign_s).sum(axis=1, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = concordant_minus_discordant / np.sqrt(pairs - ties_g) / np.sqrt(pairs - ties_s)
        tau = np.where((ties_g == pairs) | (ties_s == pairs), np.nan, np.clip(tau, -1.0, 1.0))
        rank_g = _sp.rankdata(g, axis=1)
        rank_s = _sp.rankdata(s, axis=1)
        rank_g -= rank_g.mean(axis=1, keepdims=True)
        rank_s -= rank_s.mean(axis=1, keepdims=True)
        scale = np.true_divide(1, n - 1)
        cov = (rank_g * rank_s).sum(axis=1) * scale
        rho = cov / np.sqrt((rank_s ** 2).sum(axis=1) * scale) / np.sqrt((rank_g ** 2).sum(axis=1) * scale)
        constant = (g.max(axis=1) == g.min(axis=1)) | (s.max(axis=1) == s.min(axis=1))
        rho = np.where(constant, np.nan, np.clip(rho, -1.0, 1.0))
    out = {"kendall_tau": tau, "spearman": rho}
    # The top-k sets by position (ties go to the earlier one, as in _top), each marked in a boolean row.
    order_g, order_s = np.argsort(-g, axis=1, kind="stable"), np.argsort(-s, axis=1, kind="stable")
    rows = np.arange(len(g))[:, None]
    for k in ks:
        if k > n:
            out[f"top{k}"] = np.full(len(g), np.nan)
            continue
        in_g, in_s = np.zeros(g.shape, bool), np.zeros(g.shape, bool)
        in_g[rows, order_g[:, :k]] = True
        in_s[rows, order_s[:, :k]] = True
        out[f"top{k}"] = (in_g & in_s).sum(axis=1) / k
    out["regret"] = g.max(axis=1) - g[rows[:, 0], order_s[:, 0]]
    return out


def _point_metrics(g: np.ndarray, s: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """The numeric metrics of one (validated) pair of arrays."""
    return {name: float(values[0]) for name, values in _batch_metrics(g[None], s[None], ks).items()}


def ranking_metrics(gt, score, ks: Sequence[int] = DEFAULT_KS) -> dict:
    """All point metrics, plus which config the scores pick (`pick`, `pick_gt`) and the true best (`best`)."""
    g, s, labels = _aligned(gt, score)
    picked, best = _top(s, 1)[0], _top(g, 1)[0]
    return {**_point_metrics(g, s, ks), "n_configs": len(g),
            "pick": labels[picked], "pick_gt": float(g[picked]), "best": labels[best], "best_gt": float(g[best])}


def _percentile_ci(point: dict[str, float], replicates: dict[str, np.ndarray], level: float) -> pd.DataFrame:
    """Rows = metrics; columns estimate, lo, hi (percentile interval of the replicates)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    reps = pd.DataFrame(replicates, columns=list(point))
    tail = (1 - level) / 2
    # A replicate can be undefined (e.g. tau when every drawn config is the same one): it is dropped.
    lo = reps.apply(lambda col: np.nanquantile(col, tail) if col.notna().any() else np.nan)
    hi = reps.apply(lambda col: np.nanquantile(col, 1 - tail) if col.notna().any() else np.nan)
    return pd.DataFrame({"estimate": pd.Series(point), "lo": lo, "hi": hi}).rename_axis("metric")


def bootstrap_ci(gt, score, n_boot: int = 2000, seed: int = 0, level: float = 0.95,
                 ks: Sequence[int] = DEFAULT_KS) -> pd.DataFrame:
    """Percentile confidence intervals of every metric, resampling configs with replacement.

    Answers "how much does the metric depend on which configs happen to be in the space". A config drawn
    twice ties with itself in both rankings; tau-b and spearman discount such ties, and top-k counts each copy.
    Returns a DataFrame indexed by metric with columns estimate, lo, hi; deterministic for a given seed.
    """
    g, s, _ = _aligned(gt, score)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(g), size=(n_boot, len(g)))
    return _percentile_ci(_point_metrics(g, s, ks), _batch_metrics(g[draws], s[draws], ks), level)


def small_n_scale(n) -> np.ndarray:
    """sqrt(n / (n - 1)) (1 where n < 2): the factor that gives a bootstrap mean of n values the variance of the
    sample mean. Drawing n values with replacement, the resampled mean varies by (n - 1) / n s^2 / n, short of s^2 / n
    by a third at n = 3; stretching its deviation from the sample mean by this factor restores s^2 / n."""
    n = np.asarray(n, dtype=float)
    return np.sqrt(np.divide(n, n - 1, out=np.ones_like(n), where=n > 1))


def padded_runs(runs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-row value arrays of unequal length as one NaN-padded matrix (row i left-aligned) and the row lengths."""
    n_runs = np.array([len(r) for r in runs])
    padded = np.full((len(runs), max(n_runs.max(initial=0), 1)), np.nan)
    for row, values in enumerate(runs):
        padded[row, :len(values)] = values
    return padded, n_runs


def seed_replicates(rng: np.random.Generator, gt_runs: np.ndarray, n_runs: np.ndarray, grids: Sequence[np.ndarray],
                    small_n: bool = True) -> tuple[np.ndarray, list[np.ndarray]]:
    """One bootstrap replicate of the seeds, the configs held fixed: each config's mean over its ground-truth runs
    drawn with replacement (`gt_runs`, as from `padded_runs`), and for each score grid (configs x search runs) the
    mean over its runs drawn with replacement as whole columns (one search scores every config, so a draw keeps the
    correlation between configs of one run); grids are drawn independently of each other. With `small_n`, every
    resampled mean's deviation from its sample mean is stretched by `small_n_scale` of its number of values, so that
    it varies as a mean of that many independent values does (the draws stay discrete: n search runs have only
    C(2n - 1, n) distinct resamples, 10 at n = 3)."""
    rows = np.arange(len(gt_runs))[:, None]
    picks = (rng.random(gt_runs.shape) * n_runs[:, None]).astype(int)  # uniform in 0..n_c-1 per row
    gt = gt_runs[rows, picks].mean(axis=1)
    out = []
    for grid in grids:
        drawn = grid[:, rng.integers(0, grid.shape[1], grid.shape[1])].mean(axis=1)
        if small_n:
            drawn = grid.mean(axis=1) + small_n_scale(grid.shape[1]) * (drawn - grid.mean(axis=1))
        out.append(drawn)
    if small_n:
        means = np.nanmean(gt_runs, axis=1)  # the padding is NaN
        gt = means + small_n_scale(n_runs) * (gt - means)
    return gt, out


def batch_tau(g: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row of g against the same row of s (replicates x configs), equal to scipy's."""
    return _batch_metrics(g, s, ())["kendall_tau"]


def seed_bootstrap_ci(gt_runs: pd.DataFrame, score_runs: pd.DataFrame, n_boot: int = 2000, seed: int = 0,
                      level: float = 0.95, ks: Sequence[int] = DEFAULT_KS,
                      resample_configs: bool = False, small_n: bool = True) -> pd.DataFrame:
    """Percentile confidence intervals that carry the seed-to-seed noise of both measurements.

    gt_runs: one row per standalone training, columns `config`, `value`. Each config's runs are independent,
        so every replicate resamples them within each config (any number of runs per config).
    score_runs: one row per (search run, config), columns `config`, `run`, `value`. One search scores every
        config, so a replicate resamples whole runs, keeping the correlation between configs of one run;
        every run must score every config.
    The configs are held fixed by default: a study that trains every config of its space has the whole space, not
    a sample of it, and what a rerun would change is the seeds. `resample_configs` resamples them on top (as
    `bootstrap_ci` does). `small_n`: see `seed_replicates`. The estimate is computed on the per-config means.
    Returns the same shape as `bootstrap_ci`.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    grid = score_runs.pivot(index="config", columns="run", values="value")
    configs = grid.index
    if set(gt_runs["config"]) != set(configs) or grid.isna().any().any():
        raise ValueError("gt_runs and score_runs must cover the same configs, and every run must score every config")
    by_config = gt_runs.groupby("config")["value"]
    padded, n_runs = padded_runs([np.asarray(v, dtype=float) for v in by_config.apply(list).reindex(configs)])
    scores = grid.to_numpy(dtype=float)
    g, s, _ = _aligned(by_config.mean().reindex(configs).to_numpy(), scores.mean(axis=1))

    rng = np.random.default_rng(seed)
    gt_means, score_means = np.empty((n_boot, len(configs))), np.empty((n_boot, len(configs)))
    for b in range(n_boot):  # the draws stay in this order, so a seed gives the same replicates as ever
        gt_mean, (score_mean,) = seed_replicates(rng, padded, n_runs, [scores], small_n)
        cfg = rng.integers(0, len(configs), len(configs)) if resample_configs else slice(None)
        gt_means[b], score_means[b] = gt_mean[cfg], score_mean[cfg]
    return _percentile_ci(_point_metrics(g, s, ks), _batch_metrics(gt_means, score_means, ks), level)


def ranking_table(frame: pd.DataFrame, by: str = "models", gt: str = "gt_mean", score: str = "supernet_mean",
                  label: str = "config", n_boot: int = 2000, seed: int = 0, level: float = 0.95,
                  ks: Sequence[int] = DEFAULT_KS) -> pd.DataFrame:
    """One row of metrics per group of a tidy frame (e.g. per number of SuperNets M).

    Columns: `by`, n_configs, each metric with `<metric>_lo` / `<metric>_hi` (config bootstrap; left out when
    n_boot is 0), pick / pick_gt (the config the scores choose and its ground truth), best / best_gt.
    Every group's bootstrap uses the same seed, so groups over the same configs see the same resamples.
    """
    rows = []
    for key, group in frame.groupby(by, sort=True):
        g, s = group.set_index(label)[gt], group.set_index(label)[score]
        row = {by: key, **ranking_metrics(g, s, ks)}
        if n_boot:
            ci = bootstrap_ci(g, s, n_boot=n_boot, seed=seed, level=level, ks=ks)
            row.update({f"{m}_{end}": ci.at[m, end] for m in ci.index for end in ("lo", "hi")})
        rows.append(row)
    table = pd.DataFrame(rows)
    metrics = ["kendall_tau", "spearman", *(f"top{k}" for k in ks), "regret"]
    ordered = [by, "n_configs"] + [c for m in metrics for c in (m, f"{m}_lo", f"{m}_hi") if c in table]
    return table[ordered + ["pick", "pick_gt", "best", "best_gt"]]


def trend_line(x, y, degree: int = 2, n_points: int = 100) -> dict:
    """Least-squares polynomial of y on x (numpy.polyfit), as drawn through each cloud of Figure 3.

    Returns coefficients (highest power first) and `n_points` evenly spaced (x, y) points of the fitted curve
    over the range of x, ready to plot.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) <= degree or x.shape != y.shape:
        raise ValueError(f"a degree-{degree} fit needs more than {degree} (x, y) pairs of equal length")
    coefficients = np.polyfit(x, y, degree)
    grid = np.linspace(x.min(), x.max(), n_points)
    return {"coefficients": coefficients, "x": grid, "y": np.polyval(coefficients, grid)}
