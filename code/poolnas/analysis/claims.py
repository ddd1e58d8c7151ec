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
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sp

from poolnas.analysis.stats import seed_spread

ALPHA = 0.05            # significance level of every test
BAD_TAU = 0.5           # "ranks badly": the upper end of tau's 95% CI is below this
UNIFORM_SLACK = 0.1     # "near uniform": mean max_m P(m|c) <= 1/M + this, at the first epoch
ONE_HOT = 0.9           # "near one-hot": mean max_m P(m|c) >= this, at the last epoch
BALANCE_SLACK = 0.5     # "balanced": every model's share of the steps is within (1 +- this) / M
WIDE = 1.0             # a tau interval wider than this (of the range -1..1) is too wide to tell anything
LEARNED = 15.0         # a search learned when its median assigned accuracy is within this of the median standalone
                       # (issue 18; the released CIFAR10 data: about 11 points)
REPRODUCES, FAILS, MISSING, UNCLEAR = "reproduces", "does not reproduce", "not verifiable", "inconclusive"
NOT_COMPARABLE = "not comparable"  # a number measured on another dataset than the paper's: context, never a failure
VERDICTS = (REPRODUCES, FAILS, UNCLEAR, MISSING, NOT_COMPARABLE)
BOTH_ENDS = "; inconclusive when the 95% interval holds both no effect and the paper's"  # `directional`, in words


@dataclass
class Judgement:
    key: str
    claim: str          # the paper's claim, in our words
    source: str         # where the paper makes it
    test: str           # what we computed
    evidence: str       # the numbers
    verdict: str
    power: str = ""     # could these runs have decided it: our uncertainty against the effect the paper reports


def directional(lo: float, hi: float, null: float, paper: float | None, above: bool = True) -> str:
    """The verdict of a one-sided claim from the 95% interval [lo, hi] of its effect.

    It reproduces when the interval lies beyond `null` on the claimed side (`above`: greater). Otherwise the runs
    failed to show it, which says something only if they could have: when the interval also holds the paper's effect
    `paper`, no effect and the paper's are both consistent with the runs ("inconclusive"); when it excludes the
    paper's effect (or lies on the other side), the claim as the paper measured it does not reproduce."""
    if (lo > null) if above else (hi < null):
        return REPRODUCES
    if paper is not None and np.isfinite(paper) and lo <= paper <= hi:
        return UNCLEAR
    return FAILS


def power(uncertainty: float, effect: float | None, what: str, learned: bool = True, verdict: str | None = None) -> str:
    """"yes" when our 95% half-width (or 2 SE) is below the paper's effect, so an effect of that size would show (the
    design's power). `verdict` adds what the outcome did when it differs from what the design promised: an interval
    too wide for the paper's effect can still lie clear of it, and a narrow one can still hold both ends."""
    if not learned:
        return "no: the searches it rests on were too short for their SuperNets to learn (see the summary)"
    if effect is None or not np.isfinite(uncertainty):
        return "not assessed"
    word = "yes" if uncertainty < abs(effect) else "no"
    text = f"{word}: our 95% half-width {uncertainty:.2f} against the paper's {what} {abs(effect):.2f}"
    if word == "no" and verdict in (REPRODUCES, FAILS):
        clear_of = f"the paper's {effect:+.2f}" if verdict == FAILS else "no effect"
        text += f"; the outcome decided it all the same: our interval lies clear of {clear_of}"
    elif word == "yes" and verdict == UNCLEAR:
        text += "; this outcome did not: our interval holds both no effect and the paper's"
    return text


def _welch_verdict(p: float, diff: float, half_width: float, paper: float | None) -> str:
    """A one-sided Welch test's verdict: significant reproduces; otherwise `directional` on diff +- half_width."""
    return REPRODUCES if p < ALPHA else directional(diff - half_width, diff + half_width, 0.0, paper)


def missing(key, claim, source, test, why) -> Judgement:
    return Judgement(key, claim, source, test, f"needs {why}", MISSING, "no: the runs it needs do not exist")


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


class Evidence:
    """The runs of one (dataset, backbone) study, in the forms the tests need."""

    def __init__(self, frames: dict, dataset: str | None, backbone: str = "resnet20", n_boot: int = 2000,
                 seed: int = 0):
        pick = lambda f: f[(f.dataset == dataset) & (f.backbone == backbone)]  # noqa: E731
        self.gt, self.search, self.evals, self.ranking, self.epochs, self.retrain = (
            pick(frames[k]) for k in ("groundtruth", "search", "search_eval", "ranking", "search_epochs", "retrain"))
        self.n_boot, self.seed = n_boot, seed
        self.runs = {c: g.test_acc.to_numpy(float) for c, g in self.gt.groupby("config")}

    def scores(self, m: int, method: str = "mixture") -> pd.DataFrame:
        """configs x search runs of the M-SuperNet mixture's score (configs with ground truth only)."""
        ev = self.evals[(self.evals.method == method) & (self.evals.models == m) & self.evals.assigned]
        grid = ev.pivot(index="config", columns="seed", values="score")
        return grid.loc[[c for c in grid.index if c in self.runs]].dropna(axis=1)

    def models(self) -> list[int]:
        ev = self.evals[self.evals.method == "mixture"]
        return sorted(int(m) for m in ev.models.dropna().unique())

    def learned(self, m: int) -> bool:
        """Did every M-SuperNet search learn: median assigned accuracy within LEARNED points of the median standalone
        accuracy, and no config assigned to a SuperNet that never trained it (aggregate.search_health)?"""
        s = self.search[(self.search.method == "mixture") & (self.search.models == m)]
        if s.empty or "assigned_acc_median" not in s or s.assigned_acc_median.isna().all() or not self.runs:
            return False
        return long_enough(s, float(np.median([v.mean() for v in self.runs.values()])))

    def retrained(self, m: int) -> np.ndarray:
        r = self.retrain[(self.retrain.method == "mixture") & (self.retrain.models == m)]
        return r.test_acc.dropna().to_numpy(float)


def long_enough(searches: pd.DataFrame, standalone: float) -> bool:
    """Issue 18's bar, on rows of search.csv: every search's median assigned accuracy within LEARNED points of the
    median standalone accuracy `standalone`, and no config assigned to a SuperNet that never trained it."""
    return bool(((standalone - searches.assigned_acc_median) <= LEARNED).all()
                and (searches.assigned_untrained.fillna(0) == 0).all())


def _half_width(a: np.ndarray, b: np.ndarray) -> float:
    """About the 95% half-width of mean(a) - mean(b): 2 standard errors."""
    return float(2 * np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """One-sided Welch t-test of mean(a) > mean(b): (t, p)."""
    res = sp.ttest_ind(a, b, equal_var=False, alternative="greater")
    return float(res.statistic), float(res.pvalue)


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
                           "SD of config means (our half-width: of one config mean)"))


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
    t, p = _welch(others[best], base)
    rank = 1 + sum(v.mean() > base.mean() for v in others.values())
    listed = f": {', '.join(better[:6])}" + (" ..." if len(better) > 6 else "") if better else ""
    return Judgement(key, claim, source, test,
                     f"default {base.mean():.2f} ± {base.std(ddof=1):.2f}, rank {rank} of {len(others) + 1}; "
                     f"{len(better)} configs significantly better by Dunnett{listed}; best {best} "
                     f"{others[best].mean():.2f} (+{others[best].mean() - base.mean():.2f}; Dunnett p = "
                     f"{_fmt_p(p_adj[best])}; Welch t = {t:.2f}, p = {_fmt_p(p)}, not corrected for choosing the "
                     "best from the same runs)", REPRODUCES if better else FAILS,
                     power(_half_width(others[best], base), effect, "best - default gap"))


def late_beats_early(ev: Evidence, early: str = "[1,1,8]", late: str = "[6,2,2]",
                     effect: float | None = None) -> Judgement:
    key, claim, source = "late_vs_early", f"Late pooling {late} beats early pooling {early} standalone", "Fig. 1"
    test = f"one-sided Welch t-test (alpha {ALPHA}){BOTH_ENDS} (difference +- 2 SE)"
    if any(len(ev.runs.get(c, [])) < 2 for c in (early, late)):
        return missing(key, claim, source, test, f"ground truth of {early} and {late}, >= 2 seeds each")
    t, p = _welch(ev.runs[late], ev.runs[early])
    diff, hw = ev.runs[late].mean() - ev.runs[early].mean(), _half_width(ev.runs[late], ev.runs[early])
    verdict = _welch_verdict(p, diff, hw, effect)
    return Judgement(key, claim, source, test, f"{late} {ev.runs[late].mean():.2f} vs {early} "
                     f"{ev.runs[early].mean():.2f} ({diff:+.2f}); t = {t:.2f}, p = {_fmt_p(p)}", verdict,
                     power(hw, effect, "late - early gap", verdict=verdict))


def sharing_hurts_late_more(ev: Evidence, early: str = "[1,1,8]", late: str = "[6,2,2]",
                            effect: float | None = None) -> Judgement:
    key = "sharing_gap"
    claim = f"Trained together in one SuperNet, the late-pooling {late} loses more than the early {early}"
    source, test = "Fig. 1", ("difference of drops (standalone - M=1 SuperNet score), bootstrap over seeds and "
                              f"searches; loses more = CI above 0{BOTH_ENDS}")
    scores = ev.scores(1)
    if any(len(ev.runs.get(c, [])) < 2 for c in (early, late)) or scores.shape[1] < 1 or \
            not {early, late} <= set(scores.index):
        return missing(key, claim, source, test, f"ground truth of {early}, {late} (>= 2 seeds) and an M=1 search")
    rng = np.random.default_rng(ev.seed)

    def drops(resample: bool) -> float:
        pick = (lambda v: v[rng.integers(0, len(v), len(v))]) if resample else (lambda v: v)  # noqa: E731
        cols = scores.to_numpy()
        cols = cols[:, rng.integers(0, cols.shape[1], cols.shape[1])] if resample else cols
        s = pd.Series(cols.mean(axis=1), index=scores.index)
        return (pick(ev.runs[late]).mean() - s[late]) - (pick(ev.runs[early]).mean() - s[early])

    point = drops(False)
    lo, hi = np.quantile([drops(True) for _ in range(ev.n_boot)], [0.025, 0.975])
    d_late, d_early = ev.runs[late].mean() - scores.loc[late].mean(), ev.runs[early].mean() - scores.loc[early].mean()
    note = " (one search: seed noise of the SuperNet score not in the interval)" if scores.shape[1] == 1 else ""
    verdict = directional(lo, hi, 0.0, effect)
    return Judgement(key, claim, source, test, f"drop {late} {d_late:.2f}, {early} {d_early:.2f}; difference "
                     f"{point:+.2f} [95% CI {lo:+.2f}, {hi:+.2f}]{note}", verdict,
                     power((hi - lo) / 2, effect, "difference of drops", ev.learned(1), verdict))


def _tau_ci(ev: Evidence, m: int) -> tuple[float, float, float] | None:
    r = ev.ranking[(ev.ranking.method == "mixture") & (ev.ranking.models == m) & ev.ranking.search_seed.isna()]
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
    """`effect`: how far the paper's M=1 tau lies below BAD_TAU."""
    key, claim, source = "m1_tau", "One shared SuperNet (M=1) ranks configs badly", "Fig. 3 (tau 0.142)"
    test = (f"Kendall tau-b of the mean M=1 score vs ground truth; badly = upper 95% CI bound < {BAD_TAU}; "
            f"inconclusive when the CI holds both {BAD_TAU} and the paper's tau")
    tau = _tau_ci(ev, 1)
    if tau is None or pd.isna(tau[2]):
        return missing(key, claim, source, test, "an M=1 search, ground truth of >= 3 configs and intervals in "
                                                 "ranking.csv (aggregate with --bootstrap > 0)")
    ceiling = gt_self_agreement(ev)
    extra = f"; ground truth seed vs seed: tau {ceiling:.2f} (what one noisy measurement of the truth reaches)" \
        if ceiling is not None else ""
    paper_tau = None if effect is None else BAD_TAU - effect
    verdict = UNCLEAR if tau[2] - tau[1] > WIDE else directional(tau[1], tau[2], BAD_TAU, paper_tau, above=False)
    return Judgement(key, claim, source, test, f"tau = {tau[0]:.3f} [95% CI {tau[1]:.3f}, {tau[2]:.3f}]{extra}",
                     verdict, power((tau[2] - tau[1]) / 2, effect, f"distance below tau {BAD_TAU:g}", ev.learned(1),
                                    verdict))


def paired_tau_difference(ev: Evidence, m: int, base: int = 1,
                          base_method: str = "mixture") -> tuple[float, float, float, int]:
    """tau(M=m) - tau(M=base) and its 95% CI: one bootstrap draw resamples configs (shared by both), ground-truth
    seeds within configs (shared) and search runs of each M (independently)."""
    a, b = ev.scores(m), ev.scores(base, base_method)
    configs = sorted(set(a.index) & set(b.index))
    a, b = a.loc[configs].to_numpy(float), b.loc[configs].to_numpy(float)
    runs = [ev.runs[c] for c in configs]
    gt = np.array([r.mean() for r in runs])
    tau = lambda g, s: sp.kendalltau(g, s).statistic  # noqa: E731
    point = tau(gt, a.mean(1)) - tau(gt, b.mean(1))
    rng, reps = np.random.default_rng(ev.seed), []
    for _ in range(ev.n_boot):
        cfg = rng.integers(0, len(configs), len(configs))
        g = np.array([runs[i][rng.integers(0, len(runs[i]), len(runs[i]))].mean() for i in cfg])
        sa = a[cfg][:, rng.integers(0, a.shape[1], a.shape[1])].mean(1)
        sb = b[cfg][:, rng.integers(0, b.shape[1], b.shape[1])].mean(1)
        reps.append(tau(g, sa) - tau(g, sb))
    lo, hi = np.nanquantile(reps, [0.025, 0.975])
    return float(point), float(lo), float(hi), len(configs)


def mixture_ranks_better(ev: Evidence, m: int, effect: float | None = None) -> Judgement:
    key, claim, source = f"tau_gain_M{m}", f"A mixture of M={m} SuperNets ranks better than one", "Fig. 3"
    test = f"tau(M) - tau(1), paired bootstrap over configs, ground-truth seeds and searches; better = CI above 0" \
        + BOTH_ENDS
    a, b = ev.scores(m), ev.scores(1)
    if a.shape[1] == 0 or b.shape[1] == 0 or len(set(a.index) & set(b.index)) < 3:
        return missing(key, claim, source, test, f"M={m} and M=1 searches and ground truth of >= 3 configs")
    d, lo, hi, n = paired_tau_difference(ev, m)
    verdict = UNCLEAR if hi - lo > WIDE else directional(lo, hi, 0.0, effect)
    return Judgement(key, claim, source, test, f"{n} configs: difference {d:+.3f} [95% CI {lo:+.3f}, {hi:+.3f}]",
                     verdict, power((hi - lo) / 2, effect, "tau gain", ev.learned(m) and ev.learned(1), verdict))


def mixture_beats_equal_budget(ev: Evidence, m: int, effect: float | None = None) -> Judgement:
    """Our control, not in the paper: M=m against one SuperNet trained as long (mixture-budget-M1-B<m>)."""
    key = f"tau_gain_M{m}_equal_budget"
    claim = f"A mixture of M={m} SuperNets ranks better than one SuperNet trained as long (our control)"
    source = "Fig. 3 (the paper has no equal-budget control)"
    test = f"tau(M) - tau(M=1 at M's budget), paired bootstrap{BOTH_ENDS} M={m} gain over M=1"
    control = ev.evals[(ev.evals.method == "mixture-budget") & (ev.evals.models == 1)]
    a = ev.scores(m)
    if control.empty or a.shape[1] == 0:
        return missing(key, claim, source, test, f"M={m} searches and the mixture-budget-M1-B{m} control")
    d, lo, hi, n = paired_tau_difference(ev, m, 1, "mixture-budget")
    verdict = UNCLEAR if hi - lo > WIDE else directional(lo, hi, 0.0, effect)
    s = ev.search[(ev.search.method == "mixture-budget") & (ev.search.models == 1)]
    control_learned = ev.learned(m) and not s.empty
    return Judgement(key, claim, source, test, f"{n} configs: difference {d:+.3f} [95% CI {lo:+.3f}, {hi:+.3f}]",
                     verdict, power((hi - lo) / 2, effect, "tau gain over M=1", control_learned, verdict))


def _regrets(ev: Evidence, m: int) -> np.ndarray:
    r = ev.ranking[(ev.ranking.method == "mixture") & (ev.ranking.models == m) & ev.ranking.search_seed.notna()]
    return r.selected_regret.dropna().to_numpy(float)


def picks_better(ev: Evidence, m: int, rival: str, rival_runs: np.ndarray | None, source: str,
                 effect: float | None = None) -> Judgement:
    key, claim = f"pick_M{m}_vs_{rival.split()[0].lower()}", f"The M={m} mixture's pick beats the {rival}"
    test = (f"retrained accuracy of the picks, one-sided Welch t-test (alpha {ALPHA}){BOTH_ENDS} (difference +- 2 "
            "SE); regret of each search's pick")
    ours = ev.retrained(m)
    if len(ours) < 2 or rival_runs is None or len(rival_runs) < 2:
        return missing(key, claim, source, test, f"retrained picks of M={m} searches and runs of the {rival} "
                                                 "(>= 2 each)")
    t, p = _welch(ours, rival_runs)
    hw = _half_width(ours, rival_runs)
    verdict = _welch_verdict(p, ours.mean() - rival_runs.mean(), hw, effect)
    picks = ev.search[(ev.search.method == "mixture") & (ev.search.models == m)].selected_config
    regret = _regrets(ev, m)
    regret_text = f"; regret of the picks {regret.mean():.2f} (n = {len(regret)})" if len(regret) else ""
    return Judgement(key, claim, source, test, f"picks {', '.join(sorted(set(picks)))}: {ours.mean():.2f} ± "
                     f"{ours.std(ddof=1):.2f} (n = {len(ours)}) vs {rival_runs.mean():.2f} ± "
                     f"{rival_runs.std(ddof=1):.2f} (n = {len(rival_runs)}); t = {t:.2f}, p = {_fmt_p(p)}{regret_text}",
                     verdict, power(hw, effect, "accuracy gain", ev.learned(m), verdict))


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
                     power(0.0, None, "", learned=False))


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
                     "yes: the step counts are exact, no sampling error")
