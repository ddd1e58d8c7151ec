"""The decision rules behind every claim's verdict (poolnas.analysis.claims), in one place so that one rule serves
every claim of its kind and a preregistration can cite them.

Verdicts: "reproduces" (our runs show the effect at the stated level), "does not reproduce", "inconclusive" (the runs
cannot tell), "not verifiable" (the runs a test needs do not exist: a missing run never counts as support), "not
comparable" (a number measured on another dataset than the paper's: context, never a failure).

Every interval is two-sided at LEVEL (95 %). Two kinds of claim read it:
- an effect claim ("A beats B": an effect beyond no effect, of a size the paper reports) by `directional`: it
  reproduces when the interval lies clear of no effect on the claimed side (a one-sided test at (1 - LEVEL) / 2 =
  0.025), does not when it excludes the paper's effect (or lies on the other side), and is inconclusive when it
  holds both no effect and the paper's effect;
- a threshold claim ("ranks badly": tau below BAD_TAU) by `threshold`: it reproduces when the interval lies on the
  claimed side of the threshold, does not when it lies on the other side, and is inconclusive while it straddles
  the threshold, wherever the paper's own value falls (the evidence says whether the interval excludes it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sp

ALPHA = 0.05            # significance level of the tests that are no interval (ANOVA, Dunnett)
LEVEL = 0.95            # two-sided level of every interval a verdict reads
BAD_TAU = 0.5           # "ranks badly": Kendall tau below this
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
STRADDLES = "; inconclusive while the 95% interval straddles it"  # `threshold`, in words


@dataclass
class Judgement:
    key: str
    claim: str          # the paper's claim, in our words
    source: str         # where the paper makes it
    test: str           # what we computed
    evidence: str       # the numbers
    verdict: str
    power: str = ""     # could these runs have decided it: our uncertainty against the effect the paper reports
    uses: tuple = ("groundtruth", "search")  # which runs it rests on (what a choice tuned on them touches)
    tuned: str = ""     # the study's choices made after seeing these runs, that this verdict rests on


def directional(lo: float, hi: float, null: float, paper: float | None, above: bool = True) -> str:
    """The verdict of an effect claim from the interval [lo, hi] of its effect (module docstring).

    It reproduces when the interval lies beyond `null` on the claimed side (`above`: greater). Otherwise the runs
    failed to show it, which says something only if they could have: when the interval also holds the paper's effect
    `paper`, no effect and the paper's are both consistent with the runs ("inconclusive"); when it excludes the
    paper's effect (or lies on the other side), the claim as the paper measured it does not reproduce."""
    if (lo > null) if above else (hi < null):
        return REPRODUCES
    if paper is not None and np.isfinite(paper) and lo <= paper <= hi:
        return UNCLEAR
    return FAILS


def threshold(lo: float, hi: float, bar: float, below: bool = True) -> str:
    """The verdict of a threshold claim (the quantity lies below `bar`, or above it when not `below`) from its
    interval [lo, hi]: wholly on the claimed side reproduces, wholly on the other side does not, straddling the bar
    is inconclusive. A measured quantity without sampling error is the interval [value, value]."""
    inside, outside = ((hi < bar), (lo >= bar)) if below else ((lo > bar), (hi <= bar))
    return REPRODUCES if inside else FAILS if outside else UNCLEAR


def excluded(lo: float, hi: float, value: float | None, what: str = "the paper's") -> str:
    """Where the paper's value lies against our interval, in words ("" when the paper reports none)."""
    if value is None or not np.isfinite(value):
        return ""
    where = "inside our interval" if lo <= value <= hi else \
        "excluded (below our interval)" if value < lo else "excluded (above our interval)"
    return f"{what} {value:.3g} is {where}"


def power(uncertainty: float, effect: float | None, what: str, learned: bool = True, verdict: str | None = None) -> str:
    """"yes" when our 95% half-width is below the paper's effect, so an effect of that size would show (the design's
    power). `verdict` adds what the outcome did when it differs from what the design promised: an interval too wide
    for the paper's effect can still lie clear of it, and a narrow one can still hold both ends."""
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


def missing(key, claim, source, test, why, **kw) -> Judgement:
    return Judgement(key, claim, source, test, f"needs {why}", MISSING, "no: the runs it needs do not exist", **kw)


def fmt_p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def welch(a: np.ndarray, b: np.ndarray) -> dict:
    """mean(a) - mean(b) with Welch's t-test (one-sided p for a > b) and its two-sided LEVEL t interval (Welch-
    Satterthwaite df), valid at small n where +- 2 SE is not (at n = 3 + 3, df about 2-4: t quantiles 2.8-4.3).
    Samples without spread (every value equal) give the zero-width interval at the difference."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean())
    se = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
    if not se > 0:
        return {"diff": diff, "t": np.inf * np.sign(diff), "df": np.nan, "p": float(diff <= 0), "lo": diff,
                "hi": diff}
    res = sp.ttest_ind(a, b, equal_var=False, alternative="greater")
    ci = sp.ttest_ind(a, b, equal_var=False).confidence_interval(LEVEL)
    return {"diff": diff, "t": float(res.statistic), "df": float(res.df), "p": float(res.pvalue),
            "lo": float(ci.low), "hi": float(ci.high)}


def long_enough(searches, standalone: float) -> bool:
    """Issue 18's bar, on rows of search.csv: every search's median assigned accuracy within LEARNED points of the
    median standalone accuracy `standalone`, and no config assigned to a SuperNet that never trained it."""
    return bool(((standalone - searches.assigned_acc_median) <= LEARNED).all()
                and (searches.assigned_untrained.fillna(0) == 0).all())
