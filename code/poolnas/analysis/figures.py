"""`figures`: the paper's data figures (1, 3, 4, 5) and five of our own, from the aggregated CSVs.

Every figure is drawn from results/<profile>/*.csv (Figure 5 also reads the P(m|c) history of one search record),
in one style (seaborn "whitegrid", colour-blind-safe colours paired with distinct markers so that a grey-scale
print stays readable), and saved atomically as PDF and PNG without dates or software versions in the metadata,
so the same results give the same bytes. A figure whose data do not exist is not drawn: `<name>.txt` says why.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from poolnas.analysis.aggregate import load  # noqa: E402
from poolnas.analysis.tables import paper_study, stand_ins  # noqa: E402
from poolnas import plan
from poolnas.errors import UsageError  # noqa: E402
from poolnas.records import atomic_write_bytes, atomic_write_text  # noqa: E402
from poolnas.arch.spaces import RELAXED, SPACES  # noqa: E402
from poolnas.schemas import read_record  # noqa: E402
from poolnas.analysis.stats import seed_spread, trend_line  # noqa: E402

SPACE = SPACES["resnet20"]
NAMES = tuple(n for n in plan.FIGURE_NAMES if n not in plan.EXTENSION_ARTEFACTS)  # issue 17's figure: with --only
# Okabe-Ito colours and a marker per number of SuperNets M.
M_STYLE = {1: ("#D55E00", "o"), 2: ("#E69F00", "s"), 4: ("#0072B2", "^"), 8: ("#009E73", "D"),
           16: ("#CC79A7", "v")}
LEVELS = ("#0072B2", "#56B4E9", "#BFE3F7")  # full, half, quarter resolution
RC = {**sns.axes_style("whitegrid"), "font.size": 8, "axes.titlesize": 8.5, "axes.labelsize": 8,
      "legend.fontsize": 7, "xtick.labelsize": 7, "ytick.labelsize": 7, "axes.spines.top": False,
      "axes.spines.right": False, "grid.color": "#E5E5E5", "axes.edgecolor": "#555555", "savefig.dpi": 200,
      "savefig.bbox": "tight", "pdf.fonttype": 42, "font.family": "DejaVu Sans"}
ACC = "accuracy (%)"
MIN_TREND = 6  # fewer configs: no 2nd-order trend line (it would only trace the points)


class Skip(Exception):
    """The figure's data do not exist; the message says which."""


def _levels(config) -> list[int]:
    """Resolution level (0 full, 1 half, 2 quarter) of each of the 10 units (stem first)."""
    return [0, *RELAXED.from_config(config)]


class Data:
    """The aggregated CSVs of one results folder, restricted to its ResNet20 study."""

    def __init__(self, results: Path, published: Path | None, dataset: str | None, profile: str | None = None):
        frames = load(results)  # the study standing for the paper's CIFAR10/ResNet20 one (analysis.tables)
        self.results, self.dataset = results, paper_study(frames, stand_ins(frames, profile), "cifar10", "resnet20",
                                                          dataset)
        keep = lambda f: f[(f.dataset == self.dataset) & (f.backbone == "resnet20")]  # noqa: E731
        self.gt, self.search, self.evals, self.ranking = (keep(frames[k]) for k in
                                                          ("groundtruth", "search", "search_eval", "ranking"))
        per = self.gt.groupby("config").test_acc
        self.gt_stats = pd.DataFrame({"mean": per.mean(), "std": per.std(ddof=1), "n": per.size()})
        self.gt_stats["index"] = [SPACE.parse(c).index for c in self.gt_stats.index]
        self.gt_stats["macs"] = self.gt.groupby("config").macs.first()
        self.published = None
        if published and (Path(published) / "figure3.csv").is_file():
            self.published = {n: pd.read_csv(Path(published) / f"{n}.csv", dtype=str) for n in ("figure1", "figure3")}

    def scores(self, m: int, method: str = "mixture") -> pd.DataFrame:
        """Per config: mean and std over search seeds of the M-SuperNet mixture's (or `method`'s) score."""
        ev = self.evals[(self.evals.method == method) & (self.evals.models == m) & self.evals.assigned]
        per = ev.groupby("config").score
        return pd.DataFrame({"mean": per.mean(), "std": per.std(ddof=1), "n": per.size()})

    def mixture_models(self) -> list[int]:
        return sorted(int(m) for m in self.evals.loc[self.evals.method == "mixture", "models"].dropna().unique())

    def note(self) -> str:
        profile = next(iter(self.gt.profile.dropna()), self.results.name) if len(self.gt) else self.results.name
        return f"{self.dataset}, profile {profile}"


def _need_gt(d: Data, at_least: int = 2) -> None:
    if len(d.gt_stats) < at_least:  # a figure about configs needs that many with a ground truth
        raise Skip(f"needs ground-truth runs of at least {at_least} configs on {d.dataset or 'any dataset'}; "
                   f"found {len(d.gt_stats)}")


# --- the figures --------------------------------------------------------------------------------------------


def figure1(d: Data):
    """Early vs late pooling: layer diagrams, and accuracy standalone vs trained together in one SuperNet."""
    _need_gt(d)
    have = d.gt_stats.sort_values("index")
    early = "[1,1,8]" if "[1,1,8]" in have.index else have.index[0]
    lates = [c for c in have.index if c != early]
    late = "[6,2,2]" if "[6,2,2]" in lates else max(lates, key=lambda c: (SPACE.parse(c).parts, SPACE.parse(c).index))
    # the paper's protocol: the two configs trained together in one SuperNet (mixture-pair); else our M=1 over all
    pair = d.scores(1, "mixture-pair")
    together = len(pair) and {early, late} <= set(pair.index)
    shared = pair if together else d.scores(1)
    fig = plt.figure(figsize=(7.0, 3.0))
    grid = fig.add_gridspec(2, 2, width_ratios=[1.45, 1], wspace=0.3, hspace=0.55)
    colours = {early: "#D55E00", late: "#0072B2"}
    for row, config in enumerate((early, late)):
        ax, cfg = fig.add_subplot(grid[row, 0]), SPACE.parse(config)
        for unit, level in enumerate(_levels(cfg)):
            h = 32 / 2 ** level
            ax.add_patch(Rectangle((unit * 1.15, -h / 2), 0.95, h, facecolor=LEVELS[level], edgecolor="#333333",
                                   lw=0.6))
            if unit in cfg.positions:
                ax.annotate("", (unit * 1.15 - 0.1, -19), (unit * 1.15 - 0.1, 19),
                            arrowprops=dict(arrowstyle="-", color=colours[config], lw=1.2, ls="--"))
            ax.text(unit * 1.15 + 0.475, -21, "stem" if unit == 0 else str(unit), ha="center", va="top", fontsize=6)
        sizes = ", ".join(f"{n} at {32 // 2 ** i}×{32 // 2 ** i}" for i, n in enumerate(cfg.parts))
        macs = d.gt_stats.at[config, "macs"] / 1e6
        kind = "early pooling" if config == early else "late pooling"
        ax.set_title(f"{config} (#{cfg.index}), {kind}\nlayers: {sizes}; {macs:.1f} M MACs", loc="left",
                     color=colours[config], fontsize=7.5)
        ax.set(xlim=(-0.3, 11.5), ylim=(-26, 18))
        ax.axis("off")
    ax = fig.add_subplot(grid[:, 1])
    for config in (early, late):
        g = d.gt_stats.loc[config]
        ys = [(g["mean"], g["std"])] + ([(shared.at[config, "mean"], shared.at[config, "std"])]
                                         if config in shared.index else [])
        xs = np.arange(len(ys))
        ax.errorbar(xs, [y for y, _ in ys], yerr=[0 if pd.isna(s) else s for _, s in ys], color=colours[config],
                    marker="o", ms=4, capsize=2, lw=1.2, label=config)
        for x, (y, _) in zip(xs, ys):
            ax.annotate(f"{y:.2f}", (x, y), xytext=(6 if x else -6, 0), textcoords="offset points",
                        ha="left" if x else "right", va="center", fontsize=7, color=colours[config])
    ax.set_xticks([0, 1], ["standalone\n(ground truth)", "in one SuperNet\n" + ("(the two together)" if together
                                                                                else "(M=1, every config)")])
    ax.set(xlim=(-0.6, 1.6), ylabel=f"test / validation {ACC}")
    ax.legend(loc="center", frameon=False)
    n_gt, n_s = int(d.gt_stats.loc[[early, late], "n"].min()), int(shared["n"].min()) if len(shared) else 0
    foot = (f"Blocks: stem and residual blocks 1-9, height = feature-map side; dashed line = 2×2 max pool. Right: "
            f"standalone test accuracy vs search-validation accuracy of the config inside one shared SuperNet "
            + ("trained on these two configs only (mixture-pair-M1); " if together else "trained on every config; ")
            + f"mean ± std over ≥{n_gt} seeds / {n_s} searches; {d.note()}.")
    if not len(shared):
        foot += " No M=1 search: SuperNet values missing."
    if d.published is not None:
        p = d.published["figure1"].set_index(["config", "setting"]).acc
        pairs = [f"{c} {p.get((c, 'standalone'), '?')} → {p.get((c, 'combination'), '?')}"
                 for c in ("[1,1,8]", "[6,2,2]")]
        foot += " Paper (CIFAR10): " + "; ".join(pairs) + "."
    fig.text(0.02, -0.02, foot, fontsize=6, color="#555555", wrap=True, va="top")
    return fig


def cap_at_100(ax, axis: str):
    """End an accuracy axis at 100 %: a mean + SD bar may pass it; accuracy cannot."""
    low, high = getattr(ax, f"get_{axis}lim")()
    getattr(ax, f"set_{axis}lim")(low, min(high, 100.5))


def figure3(d: Data):
    """SuperNet evaluation accuracy vs ground truth per M, with 2nd-order trends and Kendall tau (95% CI)."""
    _need_gt(d, 3)
    models = d.mixture_models()
    if not models:
        raise Skip("needs mixture searches (search_eval.csv has none)")
    pooled = d.ranking[(d.ranking.method == "mixture") & d.ranking.search_seed.isna()].set_index("models")
    paper = d.published["figure3"].set_index("models").kendall_tau if d.published is not None else {}
    fig, ax = plt.subplots(figsize=(4.8, 3.8))
    for m in models:
        s = d.scores(m).add_suffix("_s").join(d.gt_stats, how="inner")
        colour, marker = M_STYLE.get(int(m), ("#666666", "X"))
        label = f"M={m}"
        if m in pooled.index:
            r = pooled.loc[m]
            lo, hi = (r.kendall_tau_seed_lo, r.kendall_tau_seed_hi) if pd.notna(r.kendall_tau_seed_lo) \
                else (r.kendall_tau_lo, r.kendall_tau_hi)
            label += f": τ = {r.kendall_tau:.2f}" + (f" [{lo:.2f}, {hi:.2f}]" if pd.notna(lo) else "")
        label += f" (paper {paper[str(m)]})" if str(m) in paper else ""
        ax.errorbar(s["mean"], s["mean_s"], xerr=s["std"].fillna(0), yerr=s["std_s"].fillna(0), fmt="none",
                    ecolor=colour, alpha=0.18, lw=0.5)
        ax.scatter(s["mean"], s["mean_s"], color=colour, marker=marker, s=14, label=label, edgecolor="white",
                   lw=0.3, zorder=3)
        if len(s) >= MIN_TREND:
            t = trend_line(s["mean"], s["mean_s"])
            ax.plot(t["x"], t["y"], color=colour, lw=1.1)
    ax.set(xlabel=f"ground truth: standalone test {ACC}", ylabel=f"SuperNet evaluation {ACC}")
    cap_at_100(ax, "x")
    cap_at_100(ax, "y")
    ax.legend(title="Kendall τ-b of the mean score vs ground truth [95% CI]", loc="upper center",
              bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False, title_fontsize=7)
    n = int(pooled.n_searches.max()) if len(pooled) else 0
    ax.set_title(f"{len(d.gt_stats)} configs; means over seeds (bars: ±1 std); {n} search{'es' if n != 1 else ''} "
                 "per M;\n"
                 f"CI: bootstrap over configs and seeds; {d.note()}", fontsize=6.5, color="#555555")
    return fig


def figure4(d: Data):
    """Per-layer resolution of the architectures DARTS-style searches found, as stacked bars of that width."""
    found = d.search[d.search.method.str.startswith("darts") & d.search.selected_path.notna()]
    if found.empty:
        raise Skip("no DARTS search records (methods darts*) with a selected path in results; nothing to draw")
    found = found.sort_values(["method", "seed"])
    fig, ax = plt.subplots(figsize=(max(3.0, 0.75 * len(found) + 1), 3.2))
    for x, row in enumerate(found.itertuples()):
        levels = [0, *RELAXED.parse(row.selected_path)]
        for unit, level in enumerate(levels):
            w = 0.7 / 2 ** level
            ax.add_patch(Rectangle((x - w / 2, unit), w, 0.9, facecolor=LEVELS[level], edgecolor="#333333", lw=0.5))
    names = [RELAXED.to_config(RELAXED.parse(r.selected_path)) for r in found.itertuples()]
    ax.set_xticks(range(len(found)), [f"{r.method}\nseed {r.seed}\n{r.selected_path}\n"
                                      + (f"= {c.name}" if c else "(not one of the 36)")
                                      for r, c in zip(found.itertuples(), names)], fontsize=6)
    ax.set_yticks(np.arange(10) + 0.45, ["stem", *map(str, range(1, 10))])
    ax.set(xlim=(-0.6, len(found) - 0.4), ylim=(0, 10), ylabel="layer")
    ax.grid(False)
    handles = [Rectangle((0, 0), 1, 1, facecolor=c, edgecolor="#333333") for c in LEVELS]
    ax.legend(handles, ["32×32", "16×16", "8×8"], title="resolution (bar width)", loc="upper left",
              bbox_to_anchor=(1, 1), frameon=False)
    ax.set_title(f"architectures found ({d.note()})", fontsize=7)
    return fig


def figure5(d: Data):
    """P(m | c) of one M=4 mixture search at five epochs (the lowest seed; the largest M > 1 without M=4)."""
    runs = d.search[(d.search.method == "mixture") & (d.search.models > 1)]
    if runs.empty:
        raise Skip("needs a mixture search with M > 1")
    m = 4 if (runs.models == 4).any() else int(runs.models.max())
    seed = int(runs[runs.models == m].seed.min())
    path = d.results / "runs" / "search" / d.dataset / "resnet20" / f"mixture-M{m}" / f"seed{seed}.json"
    if not path.is_file():
        raise Skip(f"the record {path} (P(m|c) per epoch) is not in the results")
    epochs = read_record(path, "search")["epochs"]
    picks = sorted(set(np.linspace(0, len(epochs) - 1, min(5, len(epochs))).round().astype(int)))
    configs = [c.name for c in SPACE]
    fig, axes = plt.subplots(1, len(picks), figsize=(7.0, 5.2), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, i in zip(axes, picks):
        e = epochs[i]
        image = ax.imshow(np.asarray(e["P"]), cmap="viridis", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        ax.set_title(f"epoch {e['epoch']}\nT = {e['temperature']:.3g}")
        ax.set_xticks(range(m), [str(k + 1) for k in range(m)])
        ax.set_xlabel("SuperNet m")
        ax.grid(False)
    axes[0].set_yticks(range(len(configs)), [f"{c} #{i + 1}" for i, c in enumerate(configs)], fontsize=5)
    axes[0].set_ylabel("configuration c")
    bar = fig.colorbar(image, ax=axes, fraction=0.03, pad=0.02)
    bar.set_label("P(m | c), balanced, at the epoch's start")
    fig.suptitle(f"M = {m}, search seed {seed} ({d.note()})", fontsize=7.5, y=0.995)
    return fig


def accuracy_vs_macs(d: Data):
    """Ground truth of every config against its forward multiply-adds."""
    _need_gt(d)
    g = d.gt_stats.assign(a=[SPACE.parse(c).parts[0] for c in d.gt_stats.index])
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    cmap = plt.get_cmap("viridis", 8)
    ax.errorbar(g.macs / 1e6, g["mean"], yerr=g["std"].fillna(0), fmt="none", ecolor="#999999", lw=0.7, capsize=1.5)
    points = ax.scatter(g.macs / 1e6, g["mean"], c=g.a, cmap=cmap, vmin=0.5, vmax=8.5, s=18, edgecolor="black",
                        lw=0.3, zorder=3)
    best = g["mean"].idxmax()
    # Labels go below the accuracy-cost curve, where configs are rare; the best above it.
    labels = {"[1,1,8]": [], "[8,1,1]": [], SPACE.default.name: ["default"]}
    labels.setdefault(best, []).append("best")
    for config, notes in labels.items():
        if config in g.index:
            left = config == "[8,1,1]" or ("best" in notes and config != "[1,1,8]")
            dy = -3 if config == "[1,1,8]" else 8 if "best" in notes else -16
            ax.annotate(config + (f" ({', '.join(notes)})" if notes else ""),
                        (g.at[config, "macs"] / 1e6, g.at[config, "mean"]), xytext=(-8 if left else 10, dy),
                        textcoords="offset points", ha="right" if left else "left", fontsize=6.5, zorder=5,
                        bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.7),
                        arrowprops=dict(arrowstyle="-", color="#555555", lw=0.5))
    ax.set_xscale("log")
    low, high = g.macs.min() / 1.1e6, g.macs.max() * 1.1e-6
    ticks = [t for t in (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 40, 60, 80, 100, 150, 200) if low <= t <= high]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # no "6 x 10^0" beside the plain labels
    ax.set(xlabel="forward multiply-adds (millions, log scale)", ylabel=f"standalone test {ACC}")
    cap_at_100(ax, "y")
    fig.colorbar(points, ax=ax, ticks=range(1, 9)).set_label("layers at full resolution (a of [a,b,c])")
    ax.set_title(f"{len(g)} configs, mean ± std over ≥{int(g.n.min())} seeds; {d.note()}", fontsize=7)
    return fig


def ranking_vs_models(d: Data):
    """Kendall tau, Spearman, top-k overlap and regret of the pick against M, with 95% bootstrap CIs."""
    r = d.ranking[d.ranking.method == "mixture"]
    if r.empty:
        raise Skip("needs mixture searches and ground truth of at least 3 configs (ranking.csv has no rows)")
    pooled, seeds = r[r.search_seed.isna()].sort_values("models"), r[r.search_seed.notna()]
    controls = d.ranking[(d.ranking.method == "mixture-budget") & d.ranking.search_seed.isna()]
    fig, axes = plt.subplots(2, 2, figsize=(6.4, 4.6), sharex=True)
    jitter = lambda v: v * 2 ** np.random.default_rng(0).uniform(-0.07, 0.07, len(v))  # noqa: E731

    def band(ax, metric, colour="#0072B2", marker="o", label=None, dx=1.0, alpha=1.0):
        seed_ci = f"{metric}_seed_lo" in pooled and pooled[f"{metric}_seed_lo"].notna().all()
        lo, hi = (pooled[f"{metric}_seed_lo"], pooled[f"{metric}_seed_hi"]) if seed_ci else \
            (pooled[f"{metric}_lo"], pooled[f"{metric}_hi"])
        bars = ax.errorbar(pooled.models * dx, pooled[metric], yerr=[pooled[metric] - lo, hi - pooled[metric]],
                           color=colour, marker=marker, ms=4, capsize=2.5, lw=1.2, label=label)
        for line in bars[2]:
            line.set_alpha(alpha)

    for ax, metric, title in ((axes[0, 0], "kendall_tau", "Kendall τ-b"), (axes[0, 1], "spearman", "Spearman ρ")):
        ax.scatter(jitter(seeds.models.to_numpy(float)), seeds[metric], s=9, color="#999999", label="one search")
        band(ax, metric, label="seeds pooled (95% CI)")
        for row in controls.itertuples():  # issue 18's control: one SuperNet trained as long as the M=B mixture
            v, lo, hi = (getattr(row, metric + k) for k in ("", "_lo", "_hi"))
            ax.errorbar([plan.parse_search_name(row.search)[3] * 1.1], [v], yerr=[[v - lo], [hi - v]], fmt="D",
                        color="#CC79A7", ms=4, capsize=2.5, label="M=1 at this M's budget (control)")
        if metric == "kendall_tau" and d.published is not None:
            p = d.published["figure3"].astype(float)
            ax.scatter(p.models, p.kendall_tau, marker="x", color="#D55E00", s=18, label="paper (CIFAR10)", zorder=4)
        ax.axhline(0, color="#555555", lw=0.6)
        ax.set(title=title, ylim=(min(-0.2, ax.get_ylim()[0]), 1.02))
    axes[0, 0].legend(loc="lower right", frameon=True, framealpha=0.9)
    for k, (colour, marker), dx in zip((1, 3, 5), (("#D55E00", "o"), ("#E69F00", "s"), ("#009E73", "^")),
                                       (0.88, 1.0, 1.13)):
        if pooled[f"top{k}"].notna().any():
            band(axes[1, 0], f"top{k}", colour, marker, label=f"top-{k}", dx=dx, alpha=0.45)
    axes[1, 0].set(title="top-k overlap with the true top-k", ylim=(-0.05, 1.3), yticks=np.linspace(0, 1, 6))
    axes[1, 0].legend(frameon=False, ncol=3, loc="upper left")
    ax = axes[1, 1]
    band(ax, "regret", label="argmax of the mean score (95% CI)")
    ax.scatter(jitter(seeds.models.to_numpy(float)), seeds.selected_regret, s=9, color="#999999",
               label="each search's own pick")
    rand = d.ranking[(d.ranking.method == "random") & d.ranking.search_seed.notna()].selected_regret.dropna()
    if len(rand):
        ax.axhline(rand.mean(), color="#CC79A7", ls="--", lw=1, label=f"random search pick (mean of {len(rand)})")
    top = np.nanmax(np.r_[pooled.regret_hi.to_numpy(float), seeds.selected_regret.to_numpy(float), rand, 0.1])
    ax.set(title="regret of the pick (accuracy points)", ylim=(-0.04 * top, 1.08 * top))
    ax.legend(frameon=True, framealpha=0.9, loc="best")
    ticks = sorted(set(pooled.models.astype(int)) | (set(d.published["figure3"].models.astype(int))
                                                     if d.published is not None else set()))
    for ax in axes[1]:
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(m) for m in ticks])
        ax.set_xlabel("number of SuperNets M")
    n = int(pooled.n_searches.max())
    fig.suptitle(f"{int(pooled.n_configs.max())} configs, {n} search{'es' if n != 1 else ''} per M; CI: "
                 f"bootstrap over configs and seeds; {d.note()}", fontsize=7)
    fig.tight_layout()
    return fig


def groundtruth_spread(d: Data):
    """The configs' mean accuracy with per-seed runs: how far apart configs are against seed noise."""
    _need_gt(d)
    g = d.gt_stats.sort_values("mean")
    fig, ax = plt.subplots(figsize=(7.0, 3.0))
    x = {c: i for i, c in enumerate(g.index)}
    ax.scatter(d.gt.config.map(x), d.gt.test_acc, s=7, color="#999999", label="one seed", zorder=2)
    ax.errorbar(range(len(g)), g["mean"], yerr=g["std"].fillna(0), fmt="o", ms=3.5, color="black", capsize=2,
                lw=0.9, label="mean ± std over seeds", zorder=3)
    for config, colour, text in ((SPACE.default.name, "#D55E00", "default"), (g.index[-1], "#0072B2", "best")):
        if config in x:
            ax.scatter([x[config]], [g.at[config, "mean"]], s=60, facecolor="none", edgecolor=colour, lw=1.4,
                       zorder=4, label=f"{text} {config}")
    many = len(g) > 12
    ax.set_xticks(range(len(g)), g.index, rotation=90 if many else 0, fontsize=5.5 if many else 7)
    ax.set(xlim=(-0.7, len(g) - 0.3), xlabel="configuration (sorted by mean)", ylabel=f"standalone test {ACC}")
    ax.grid(axis="x", visible=False)
    s = seed_spread(g["mean"], g["std"])
    text = (f"spread of means: max − min {s['spread']:.2f}, SD {s['sd']:.2f}\n"
            f"median per-config SD over seeds: {s['median_sd']:.2f} (≥{int(g.n.min())} seeds)")
    # Sorted by mean, the lower right stays empty: the numbers go there, clear of the noisy configs' bars.
    ax.text(0.99, 0.04, text, transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
            bbox=dict(boxstyle="round", facecolor="white", edgecolor="#CCCCCC"))
    cap_at_100(ax, "y")
    ax.legend(loc="center right", frameon=True, framealpha=0.9)
    ax.set_title(f"ground truth of {len(g)} configs ({d.note()})", fontsize=7.5)
    return fig


def groups_widths_cost(d: Data):
    """Accuracy against MACs and parameters: learned groups (DGConv) and widths (CONet) beside the pooling configs."""
    from poolnas.analysis.extensions import figure  # issue 17: the table's module draws its figure

    drawn = figure(d.results, d.dataset, d.note())
    if isinstance(drawn, str):
        raise Skip(drawn)
    return drawn


# --- writing ------------------------------------------------------------------------------------------------


def save(fig, out: Path, name: str) -> list[Path]:
    """PDF and PNG without dates or versions in the metadata, written atomically."""
    for suffix, metadata in (("pdf", {"CreationDate": None, "Producer": None, "Creator": None}),
                             ("png", {"Software": None})):
        fig.savefig(buffer := io.BytesIO(), format=suffix, metadata=metadata)
        atomic_write_bytes(out / f"{name}.{suffix}", buffer.getvalue())
    plt.close(fig)
    return [out / f"{name}.pdf", out / f"{name}.png"]


def make_figures(results, out, only=None, published=None, dataset=None, profile=None) -> dict[str, list[Path] | str]:
    """Draw each figure; returns name -> written paths, or the reason it was skipped."""
    out, results, done = Path(out), Path(results), {}
    d = Data(results, Path(published) if published else None, dataset, profile)
    for name in only or NAMES:
        with plt.rc_context(RC):
            try:
                done[name] = save(globals()[name](d), out, name)
                (out / f"{name}.txt").unlink(missing_ok=True)
            except Skip as why:
                for suffix in ("pdf", "png"):  # never leave an older drawing that the data no longer support
                    (out / f"{name}.{suffix}").unlink(missing_ok=True)
                atomic_write_text(out / f"{name}.txt", f"{name} not drawn: {why}\n")
                done[name] = str(why)
    return done
