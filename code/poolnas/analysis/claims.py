"""The paper's qualitative claims, each judged on our results with the statistics behind the verdict.

Each function takes the aggregated frames of one study (poolnas.analysis.aggregate) and returns a `Judgement`: the claim,
the test and its numbers, and a verdict: "reproduces" (our runs show the effect at the stated level), "does not
reproduce" (they do not: the effect is absent at the stated level and an effect of the paper's size is excluded, or
it points the other way), "inconclusive" (the runs cannot tell: the 95% interval of the effect holds both no effect
and the paper's effect, or is wider than `WIDE`), or "not verifiable" when the runs a test needs do not exist (a
missing run never counts as support). Thresholds are module constants, stated in every judgement. Tests come from
scipy.stats; intervals are percentile bootstraps with a fixed seed.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
from scipy import stats as sp

from poolnas import plan
from poolnas.analysis import stats
from poolnas.analysis.stats import seed_spread
from poolnas.analysis.verdicts import (  # noqa: F401  (re-exported: verify and the tests read them here)
    ALPHA, BAD_TAU, BALANCE_SLACK, BOTH_ENDS, FAILS, LEARNED, LEVEL, MISSING, NOT_COMPARABLE, ONE_HOT, REPRODUCES,
    STRADDLES, UNCLEAR, UNIFORM_SLACK, VERDICTS, WIDE, Judgement, directional, excluded, fmt_p as _fmt_p,
    long_enough, missing, power, threshold, welch)


class Evidence:
    """The runs of one (dataset, backbone) study, in the forms the tests need. Nothing here names a dataset: a
    profile with two studies gets one Evidence (and one column of verdicts) per dataset (`by_dataset`)."""

    def __init__(self, frames: dict, dataset: str | None, backbone: str = "resnet20", n_boot: int = 2000,
                 seed: int = 0):
        pick = lambda f: f[(f.dataset == dataset) & (f.backbone == backbone)]  # noqa: E731
        self.gt, self.search, self.evals, self.ranking, self.epochs, self.retrain = (
            pick(frames[k]) for k in ("groundtruth", "search", "search_eval", "ranking", "search_epochs", "retrain"))
        self.dataset, self.n_boot, self.seed = dataset, n_boot, seed
        self.runs = {c: g.test_acc.to_numpy(float) for c, g in self.gt.groupby("config")}

    def grid(self, search: str | None) -> pd.DataFrame:
        """configs x search seeds of a search's score (the value its rule ranks by; configs with ground truth)."""
        ev = self.evals[(self.evals.search == search) & self.evals.assigned]
        grid = ev.pivot(index="config", columns="seed", values="score")
        return grid.loc[[c for c in grid.index if c in self.runs]].dropna(axis=1)

    def scores(self, m: int) -> pd.DataFrame:
        return self.grid(plan.search_name("mixture", models=m))

    def named(self, method: str) -> str | None:
        """The search name of a method that runs once per study (e.g. mixture-pair), if it ran."""
        names = sorted(set(self.search.search[self.search.method == method]))
        return names[0] if names else None

    def steps(self, search: str) -> float:
        """A search's total SGD steps (median over its seeds; NaN when it did not run)."""
        steps = self.search.steps[self.search.search == search].dropna()
        return float(steps.median()) if len(steps) else float("nan")

    def equal_total(self, m: int) -> str | None:
        """The single-SuperNet search trained for the M-mixture's total steps: mixture-M1 under the release's budget
        (`total`), mixture-budget-M1-B<m> when each SuperNet got E epochs (`per_supernet`); None when none ran."""
        target = self.steps(plan.search_name("mixture", models=m))
        ones = [plan.search_name("mixture", models=1), plan.search_name("mixture-budget", 1, budget_models=m)]
        return next((n for n in ones if np.isfinite(target) and abs(self.steps(n) - target) <= 0.01 * target), None)

    def models(self) -> list[int]:
        ev = self.evals[self.evals.method == "mixture"]
        return sorted(int(m) for m in ev.models.dropna().unique())

    def learned(self, m: int | None = None, search: str | None = None) -> bool:
        """Did every run of a search (default: the M-SuperNet mixture) learn: median assigned accuracy within
        LEARNED points of the median standalone accuracy, and no config assigned to a SuperNet that never trained
        it (aggregate.search_health)?"""
        s = self.search[self.search.search == (search or plan.search_name("mixture", models=m))]
        if s.empty or "assigned_acc_median" not in s or s.assigned_acc_median.isna().all() or not self.runs:
            return False
        return long_enough(s, float(np.median([v.mean() for v in self.runs.values()])))

    def pick_values(self, search: str) -> pd.DataFrame:
        """One row per run of a search: its pick and the mean retrained accuracy of that pick (the search is the
        unit: picks that are one config share its retrained runs, so those runs count once per search, never as
        independent values)."""
        r = self.retrain[(self.retrain.search == search) & self.retrain.test_acc.notna()]
        return r.groupby("search_seed").agg(config=("config", "first"), value=("test_acc", "mean"),
                                            runs=("test_acc", "size"))


def pooling_matters(ev: Evidence, effect: float | None = None) -> Judgement:
    """`effect`: the SD of the config means the paper reports (its released ground truth)."""
    key, claim, source = "position", "Where the pooling goes changes accuracy", "Sec. 1, Fig. 1, Table 2"
    test = (f"one-way ANOVA across configs over seeds (p < {ALPHA}); Kruskal-Wallis as a rank-based check (it has "
            "little power with 2-3 seeds per config)")
    groups = [v for v in ev.runs.values() if len(v) >= 2]
    if len(groups) < 2:
        return missing(key, claim, source, test, "ground truth of >= 2 configs with >= 2 seeds each")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        f, p_f = sp.f_oneway(*groups)
        h, p_h = sp.kruskal(*groups)
    spread = seed_spread([g.mean() for g in groups], [g.std(ddof=1) for g in groups])
    allv = np.concatenate(groups)
    eta2 = sum(len(g) * (g.mean() - allv.mean()) ** 2 for g in groups) / ((allv - allv.mean()) ** 2).sum()
    ok = p_f < ALPHA
    return Judgement(key, claim, source, test,
                     f"{len(groups)} configs, {len(allv)} runs: F = {f:.2f}, p = {_fmt_p(p_f)}; H = {h:.2f}, "
                     f"p = {_fmt_p(p_h)}; eta² = {eta2:.2f}; means span {spread['spread']:.2f} points "
                     f"(SD {spread['sd']:.2f}) against a median per-config SD of {spread['median_sd']:.2f}",
                     REPRODUCES if ok else FAILS,
                     power(2 * spread["median_sd"] / np.sqrt(np.median([len(g) for g in groups])), effect,
                           "SD of config means (our half-width: of one config mean)"), uses=("groundtruth",))


def default_not_optimal(ev: Evidence, default: str, effect: float | None = None) -> Judgement:
    key, claim, source = "default", f"The default {default} is not the best placement", "Tables 1-2"
    test = (f"Dunnett's many-to-one test (one-sided, pooled variance, family-wise alpha {ALPHA}) of every config "
            "against the default; and Welch's t-test of the best config against the default")
    if default not in ev.runs or len(ev.runs[default]) < 2 or sum(len(v) >= 2 for v in ev.runs.values()) < 2:
        return missing(key, claim, source, test, f"ground truth of {default} and of other configs, >= 2 seeds each")
    others = {c: v for c, v in ev.runs.items() if c != default and len(v) >= 2}
    base = ev.runs[default]
    with warnings.catch_warnings():  # scipy warns about precision when seeds give (nearly) equal accuracies
        warnings.simplefilter("ignore", RuntimeWarning)
        dunnett = sp.dunnett(*others.values(), control=base, alternative="greater", random_state=ev.seed)
    p_adj = dict(zip(others, dunnett.pvalue))
    better = sorted((c for c in others if p_adj[c] < ALPHA), key=lambda c: -others[c].mean())
    best = max(others, key=lambda c: others[c].mean())
    w = welch(others[best], base)
    t, p = w["t"], w["p"]
    rank = 1 + sum(v.mean() > base.mean() for v in others.values())
    listed = f": {', '.join(better[:6])}" + (" ..." if len(better) > 6 else "") if better else ""
    return Judgement(key, claim, source, test,
                     f"default {base.mean():.2f} ± {base.std(ddof=1):.2f}, rank {rank} of {len(others) + 1}; "
                     f"{len(better)} configs significantly better by Dunnett{listed}; best {best} "
                     f"{others[best].mean():.2f} (+{others[best].mean() - base.mean():.2f}; Dunnett p = "
                     f"{_fmt_p(p_adj[best])}; Welch t = {t:.2f}, p = {_fmt_p(p)}, not corrected for choosing the "
                     "best from the same runs)", REPRODUCES if better else FAILS,
                     power((w["hi"] - w["lo"]) / 2, effect, "best - default gap"), uses=("groundtruth",))


def late_beats_early(ev: Evidence, early: str = "[1,1,8]", late: str = "[6,2,2]",
                     effect: float | None = None) -> Judgement:
    key, claim, source = "late_vs_early", f"Late pooling {late} beats early pooling {early} standalone", "Fig. 1"
    test = WELCH_TEST
    if any(len(ev.runs.get(c, [])) < 2 for c in (early, late)):
        return missing(key, claim, source, test, f"ground truth of {early} and {late}, >= 2 seeds each",
                       uses=("groundtruth",))
    w = welch(ev.runs[late], ev.runs[early])
    verdict = directional(w["lo"], w["hi"], 0.0, effect)
    return Judgement(key, claim, source, test, f"{late} {ev.runs[late].mean():.2f} vs {early} "
                     f"{ev.runs[early].mean():.2f} (n = {len(ev.runs[late])} and {len(ev.runs[early])} standalone "
                     f"runs): {_welch_text(w)}", verdict,
                     power((w["hi"] - w["lo"]) / 2, effect, "late - early gap", verdict=verdict),
                     uses=("groundtruth",))


def _drops(ev: Evidence, grid: pd.DataFrame, early: str, late: str) -> tuple[float, float, float, float, float]:
    """(drop of late, drop of early, their difference, its 95% interval): drop = standalone mean - SuperNet score.
    The bootstrap resamples ground-truth seeds within each config and whole search runs (`stats.seed_replicates`)."""
    configs = [late, early]
    padded, n_runs = stats.padded_runs([ev.runs[c] for c in configs])
    cols = grid.loc[configs].to_numpy(float)
    rng = np.random.default_rng(ev.seed)
    reps = []
    for _ in range(ev.n_boot):
        g, (s,) = stats.seed_replicates(rng, padded, n_runs, [cols])
        reps.append((g[0] - s[0]) - (g[1] - s[1]))
    d = [ev.runs[c].mean() - grid.loc[c].mean() for c in configs]
    lo, hi = np.quantile(reps, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return d[0], d[1], d[0] - d[1], float(lo), float(hi)


def sharing_hurts_late_more(ev: Evidence, early: str = "[1,1,8]", late: str = "[6,2,2]",
                            effect: float | None = None) -> Judgement:
    """Judged on the paper's protocol, `mixture-pair` (one SuperNet over just the two configs); our M=1 SuperNet
    over all configs is a second line, with its protocol named."""
    key = "sharing_gap"
    claim = f"Trained together in one SuperNet, the late-pooling {late} loses more than the early {early}"
    source, test = "Fig. 1", ("difference of drops (standalone test accuracy - SuperNet score on search-validation), "
                              "the SuperNet over just the two configs (the paper's protocol: mixture-pair); "
                              "bootstrap over ground-truth seeds and searches; loses more = 95% CI above 0"
                              f"{BOTH_ENDS}; our M=1 SuperNet over every config as a second line")
    pair, single = ev.named("mixture-pair"), plan.search_name("mixture", models=1)
    ok = lambda g: g.shape[1] >= 1 and {early, late} <= set(g.index)  # noqa: E731
    if any(len(ev.runs.get(c, [])) < 2 for c in (early, late)):
        return missing(key, claim, source, test, f"ground truth of {early} and {late} (>= 2 seeds)")
    lines = {}
    for name, what in ((pair, "two-config SuperNet (mixture-pair)"),
                       (single, f"second line, the M=1 SuperNet over all {ev.grid(single).shape[0]} configs")):
        g = ev.grid(name) if name else pd.DataFrame()
        if name and ok(g):
            d_late, d_early, d, lo, hi = _drops(ev, g, early, late)
            note = " (one search: its seed noise is not in the interval)" if g.shape[1] == 1 else ""
            lines[name] = (d, lo, hi, f"{what}, {g.shape[1]} searches: drop {late} {d_late:.2f}, {early} "
                                      f"{d_early:.2f}; difference {d:+.2f} [95% CI {lo:+.2f}, {hi:+.2f}]{note}")
    if pair not in lines:
        return missing(key, claim, source, test, f"the two-config SuperNet search (mixture-pair) over {early} and "
                       f"{late}" + (f"; {lines[single][3]}" if single in lines else ""))
    d, lo, hi, text = lines[pair]
    verdict = directional(lo, hi, 0.0, effect)
    second = f"; {lines[single][3]}" if single in lines else ""
    return Judgement(key, claim, source, test, text + second, verdict,
                     power((hi - lo) / 2, effect, "difference of drops", ev.learned(search=pair), verdict))


def _tau_ci(ev: Evidence, m: int) -> tuple[float, float, float] | None:
    r = ev.ranking[(ev.ranking.search == plan.search_name("mixture", models=m)) & ev.ranking.search_seed.isna()]
    if r.empty:
        return None
    r = r.iloc[0]
    lo, hi = (r.kendall_tau_seed_lo, r.kendall_tau_seed_hi) if pd.notna(r.kendall_tau_seed_lo) \
        else (r.kendall_tau_lo, r.kendall_tau_hi)
    return float(r.kendall_tau), float(lo), float(hi)


def gt_self_agreement(ev: Evidence) -> float | None:
    """Mean Kendall tau between the per-config accuracies of two ground-truth seeds (configs with both)."""
    wide = ev.gt.pivot(index="config", columns="seed", values="test_acc")
    taus = [sp.kendalltau(wide[a], wide[b]).statistic for a, b in itertools.combinations(wide.columns, 2)
            if wide[[a, b]].dropna().shape[0] >= 3 and not wide[[a, b]].isna().any().any()]
    return float(np.mean(taus)) if taus else None


def single_supernet_ranks_badly(ev: Evidence, effect: float | None = None) -> Judgement:
    """`effect`: how far the paper's M=1 tau lies below BAD_TAU. A threshold claim (`threshold`)."""
    key, claim, source = "m1_tau", "One shared SuperNet (M=1) ranks configs badly", "Fig. 3 (tau 0.142)"
    test = (f"Kendall tau-b of the mean M=1 score vs ground truth, 95% CI over seeds (configs fixed); badly = tau "
            f"below {BAD_TAU:g}: reproduces when the CI lies below {BAD_TAU:g}, does not when it lies above"
            f"{STRADDLES}")
    tau = _tau_ci(ev, 1)
    if tau is None or pd.isna(tau[2]):
        return missing(key, claim, source, test, "an M=1 search, ground truth of >= 3 configs and intervals in "
                                                 "ranking.csv (aggregate with --bootstrap > 0)")
    ceiling = gt_self_agreement(ev)
    extra = f"; ground truth seed vs seed: tau {ceiling:.2f} (what one noisy measurement of the truth reaches)" \
        if ceiling is not None else ""
    paper_tau = None if effect is None else BAD_TAU - effect
    verdict = UNCLEAR if tau[2] - tau[1] > WIDE else threshold(tau[1], tau[2], BAD_TAU, below=True)
    where = excluded(tau[1], tau[2], paper_tau, "the paper's tau")
    n = ev.grid(plan.search_name("mixture", models=1)).shape[1]
    return Judgement(key, claim, source, test, f"tau = {tau[0]:.3f} [95% CI {tau[1]:.3f}, {tau[2]:.3f}] "
                     f"({n} searches){'; ' + where if where else ''}{extra}", verdict,
                     power((tau[2] - tau[1]) / 2, effect, f"distance below tau {BAD_TAU:g}", ev.learned(1))
                     + (f"; this outcome did not: our interval straddles {BAD_TAU:g}" if verdict == UNCLEAR else ""))


def paired_tau_difference(ev: Evidence, search: str, base: str) -> tuple[float, float, float, int]:
    """tau(search) - tau(base) and its 95% CI over seeds, the configs held fixed: one bootstrap draw resamples
    ground-truth seeds within configs (shared by both taus) and the runs of each search (independently)."""
    a, b = ev.grid(search), ev.grid(base)
    configs = sorted(set(a.index) & set(b.index))
    a, b = a.loc[configs].to_numpy(float), b.loc[configs].to_numpy(float)
    padded, n_runs = stats.padded_runs([ev.runs[c] for c in configs])
    gt = np.array([ev.runs[c].mean() for c in configs])
    point = stats.batch_tau(gt[None], a.mean(1)[None])[0] - stats.batch_tau(gt[None], b.mean(1)[None])[0]
    rng = np.random.default_rng(ev.seed)
    g, sa, sb = np.empty((ev.n_boot, len(configs))), np.empty((ev.n_boot, len(configs))), np.empty((ev.n_boot,
                                                                                                   len(configs)))
    for i in range(ev.n_boot):
        g[i], (sa[i], sb[i]) = stats.seed_replicates(rng, padded, n_runs, [a, b])
    lo, hi = np.nanquantile(stats.batch_tau(g, sa) - stats.batch_tau(g, sb), [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return float(point), float(lo), float(hi), len(configs)


def mixture_ranks_better(ev: Evidence, m: int, effect: float | None = None) -> Judgement:
    """Judged at equal total training steps (the release's ResNet20 design: M=1 trained as long as the mixture);
    the comparison with M=1 at E epochs (equal steps per SuperNet) is a second line when it is another search."""
    key, claim, source = f"tau_gain_M{m}", f"A mixture of M={m} SuperNets ranks better than one", "Fig. 3"
    test = (f"tau(M) - tau(M=1 trained for the same total steps), 95% CI over ground-truth seeds and searches "
            f"(configs fixed); better = CI above 0{BOTH_ENDS}; equal steps per SuperNet (M=1 at E) as a second line")
    mix, per = plan.search_name("mixture", models=m), plan.search_name("mixture", models=1)
    primary = ev.equal_total(m)

    def line(base: str, what: str) -> tuple[float, float, float, str] | None:
        a, b = ev.grid(mix), ev.grid(base)
        if a.shape[1] == 0 or b.shape[1] == 0 or len(set(a.index) & set(b.index)) < 3:
            return None
        d, lo, hi, n = paired_tau_difference(ev, mix, base)
        return d, lo, hi, (f"{what} (vs {base}, {ev.steps(base):,.0f} steps against {ev.steps(mix):,.0f}; "
                           f"{a.shape[1]} and {b.shape[1]} searches, {n} configs): difference {d:+.3f} "
                           f"[95% CI {lo:+.3f}, {hi:+.3f}]")

    second = line(per, "second line, equal steps per SuperNet") if primary != per else None
    first = line(primary, "equal total steps") if primary else None
    tail = f"; {second[3]}" + (f" (alone: {directional(*second[1:3], 0.0, effect)})") if second else ""
    if first is None:
        return missing(key, claim, source, test, f"M={m} searches and M=1 trained for their total steps "
                       f"({plan.search_name('mixture-budget', 1, budget_models=m)} under budget per_supernet)" + tail)
    d, lo, hi, text = first
    verdict = UNCLEAR if hi - lo > WIDE else directional(lo, hi, 0.0, effect)
    return Judgement(key, claim, source, test, text + tail, verdict,
                     power((hi - lo) / 2, effect, "tau gain", ev.learned(m) and ev.learned(search=primary), verdict))


def _regrets(ev: Evidence, search: str) -> np.ndarray:
    r = ev.ranking[(ev.ranking.search == search) & ev.ranking.search_seed.notna()]
    return r.selected_regret.dropna().to_numpy(float)


WELCH_TEST = (f"Welch's t-test; reproduces when the {LEVEL:.0%} Welch t interval of the difference lies above 0 "
              f"(one-sided p < {(1 - LEVEL) / 2:g}){BOTH_ENDS}")


def _welch_text(w: dict) -> str:
    df = f", df = {w['df']:.1f}" if np.isfinite(w["df"]) else ""
    return (f"difference {w['diff']:+.2f} [95% t interval {w['lo']:+.2f}, {w['hi']:+.2f}]; t = {w['t']:.2f}{df}, "
            f"one-sided p = {_fmt_p(w['p'])}")


def _picks_text(ev: Evidence, values: pd.DataFrame, name: str) -> str:
    shared = len(values) - values.config.nunique()
    share = f"; {shared + 1 if shared else 0} of {len(values)} picks are one config and share its runs" \
        if shared else ""
    return (f"{name}: picks {', '.join(values.config)} -> {values.value.mean():.2f} ± {values.value.std(ddof=1):.2f} "
            f"(n = {len(values)} searches, each the mean of its pick's {int(values.runs.median())} retrained runs"
            f"{share})")


def picks_better(ev: Evidence, m: int, rival: str, rival_search: str | None, source: str,
                 effect: float | None = None, default: str | None = None) -> Judgement:
    """The M-mixture's picks against a rival: another search's picks (`rival_search`, n = its searches) or the
    `default` config's standalone runs (n = its runs). The unit is the search: one value per search."""
    key, claim = f"pick_M{m}_vs_{rival.split()[0].lower()}", f"The M={m} mixture's pick beats the {rival}"
    test = (f"retrained accuracy of each search's pick, one value per search (the mean of its pick's retrained runs);"
            f" {WELCH_TEST}; regret of each search's pick")
    mix = plan.search_name("mixture", models=m)
    ours = ev.pick_values(mix)
    other = ev.pick_values(rival_search) if rival_search else None
    rival_runs = ev.runs.get(default) if default else other.value.to_numpy(float) if other is not None else None
    if len(ours) < 2 or rival_runs is None or len(rival_runs) < 2:
        return missing(key, claim, source, test, f"retrained picks of >= 2 M={m} searches and >= 2 values of the "
                                                 f"{rival}")
    w = welch(ours.value.to_numpy(float), rival_runs)
    verdict = directional(w["lo"], w["hi"], 0.0, effect)
    if other is not None:
        theirs = _picks_text(ev, other, rival_search)
        common = sorted(set(ours.config) & set(other.config))
        if common:  # their shared runs cancel in the difference; Welch treats the groups as independent
            theirs += f"; both picked {', '.join(common)} (independence assumed: conservative)"
    else:
        theirs = f"{default} {rival_runs.mean():.2f} ± {rival_runs.std(ddof=1):.2f} (n = {len(rival_runs)} runs)"
        if default in set(ours.config):
            theirs += f"; a pick is {default} itself and shares its runs (independence assumed: conservative)"
    regret = _regrets(ev, mix)
    regret_text = f"; regret of the picks {regret.mean():.2f} (n = {len(regret)})" if len(regret) else ""
    return Judgement(key, claim, source, test, f"{_picks_text(ev, ours, mix)} vs {theirs}; {_welch_text(w)}"
                     f"{regret_text}", verdict,
                     power((w["hi"] - w["lo"]) / 2, effect, "accuracy gain", ev.learned(m), verdict))


def assignments_sharpen(ev: Evidence) -> Judgement:
    key, claim, source = "p_sharpens", "P(m|c) goes from near uniform to near one-hot during the search", "Fig. 5"
    test = f"mean over configs of max_m P(m|c): first epoch <= 1/M + {UNIFORM_SLACK}, last epoch >= {ONE_HOT}"
    e = ev.epochs[(ev.epochs.method == "mixture") & (ev.epochs.models > 1)]
    if e.empty:
        return missing(key, claim, source, test, "mixture searches with M > 1")
    rows, ok = [], True
    for m, g in e.groupby("models"):
        first = g[g.epoch == g.epoch.min()].p_max_mean.mean()
        last = g[g.epoch == g.epoch.max()].p_max_mean.mean()
        ok &= first <= 1 / m + UNIFORM_SLACK and last >= ONE_HOT
        rows.append(f"M={m}: {first:.2f} -> {last:.2f}")
    learned = all(ev.learned(int(m)) for m in e.models.unique())
    return Judgement(key, claim, source, test, "; ".join(rows) + " (means over searches)", REPRODUCES if ok else FAILS,
                     "yes: a threshold on the measured P, no sampling error to speak of" if learned else
                     power(0.0, None, "", learned=False), uses=("search",))


def models_balanced(ev: Evidence) -> Judgement:
    key, claim, source = "balanced", "Balancing keeps every SuperNet in use (no model collapse)", "Sec. 3"
    test = f"each model's share of all training steps within (1 ± {BALANCE_SLACK}) / M"
    ev_mix = ev.evals[(ev.evals.method == "mixture") & (ev.evals.models > 1) & ev.evals["count"].notna()]
    if ev_mix.empty:
        return missing(key, claim, source, test, "mixture searches with M > 1")
    rows, ok = [], True
    for m, g in ev_mix.groupby("models"):
        share = g.groupby(["seed", "model"])["count"].sum() / g.groupby("seed")["count"].sum()
        lo, hi = share.min(), share.max()
        ok &= (1 - BALANCE_SLACK) / m <= lo and hi <= (1 + BALANCE_SLACK) / m
        rows.append(f"M={m}: shares {lo:.3f}..{hi:.3f} (1/M = {1 / m:.3f})")
    return Judgement(key, claim, source, test, "; ".join(rows), REPRODUCES if ok else FAILS,
                     "yes: the step counts are exact, no sampling error", uses=("search",))
