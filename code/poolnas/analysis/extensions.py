"""Beyond the pooling (issue 17; ours, not the paper's): the groups-and-widths table and its figure.

For the default config and the best ground-truth config (and any other config a search beyond the pooling ran on),
one section of rows, each with mean ± sample std of the standalone test accuracy over its runs (seeds; pooled over
search seeds when several searches found different architectures), parameters and MACs (of the trained networks,
as their records count them), and the search's own numbers (connections kept, search-validation accuracy, hours):

    dense                    the config itself: default groups and widths (its ground-truth runs)
    DGConv, rho = R %        the groups dgconv learned at budget R, retrained (`search.dgconv`)
    fixed groups             one group count G in every square conv, the MACs nearest DGConv's at R
    CONet widths             the widths conet found, retrained (`search.conet`)
    uniform widths           every default width x one factor, the parameters nearest CONet's

A row whose runs do not exist says "not run" (a search without retraining: "retraining not run"). The figure plots
accuracy against MACs and against parameters, the rows beside the ground truth of every pooling config. The two
source papers' numbers (ImageNet ResNeXt; CIFAR-100 ResNet34) are not comparable with these and are not shown.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from poolnas import plan
from poolnas.analysis.aggregate import COLUMNS, load, study_dataset
from poolnas.analysis.checks import NOT_RUN, RETRAIN_MISSING, cell, half_up, tex
from poolnas.arch.spaces import get_space
from poolnas.records import atomic_write_text

TABLE, FIGURE = plan.EXTENSION_ARTEFACTS
BACKBONE = "resnet20"
TITLE = "Groups and widths beyond the pooling (ours; not in the paper)"
# (method, role) of each kind of row, its label, and its figure style (Okabe-Ito colour, marker size)
KINDS = {"dense": ("dense (default groups and widths)", "#000000"),
         "dgconv": ("DGConv groups, rho = {rho} %", "#0072B2"),
         "fixed_groups": ("fixed groups, MACs of DGConv at rho = {rho} %", "#56B4E9"),
         "conet": ("CONet widths", "#D55E00"),
         "uniform_widths": ("uniform widths, parameters of CONet", "#E69F00")}
SECTION_MARKERS = ("o", "s", "^", "D")


def frames(results: str | Path, dataset: str | None) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """(ground truth, extensions rows) of the ResNet20 study; extensions.csv exists only when such records do."""
    gt = load(results, ("groundtruth",))["groundtruth"]
    path = Path(results) / f"{plan.EXTENSION_CSV}.csv"
    ext = load(results, (plan.EXTENSION_CSV,))[plan.EXTENSION_CSV] if path.is_file() else \
        pd.DataFrame(columns=COLUMNS[plan.EXTENSION_CSV])
    # the study that ran these searches (mini's glyphs), not the alphabetically first with any ResNet20 run
    # (fashion-mnist runs none): by the extension rows first, the ground truth only where there are none
    dataset = dataset or study_dataset({"groundtruth": ext, "search": ext}, BACKBONE, "cifar10") or \
        study_dataset({"groundtruth": gt, "search": ext}, BACKBONE, "cifar10")
    keep = lambda f: f[(f.dataset == dataset) & (f.backbone == BACKBONE)]  # noqa: E731
    return keep(gt), keep(ext), dataset


def sections(gt: pd.DataFrame, ext: pd.DataFrame) -> list[tuple[str, str]]:
    """(label, config) per section: the default, the best ground truth, then every other searched config. The best
    is the config the `best` searches ran on (they picked it from the study's ground truth); without such a search,
    the best mean of the standalone runs (as Table 1's "Best conf." takes it)."""
    space = get_space(BACKBONE)
    default = space.default.name
    picked = ext[ext.pooling == "best"].config.value_counts()
    best = max(picked.index, key=lambda c: (picked[c], -space.parse(c).index)) if len(picked) else None
    if best is None and len(gt):
        means = gt.groupby("config").test_acc.mean()
        best = max(means.index, key=lambda c: (means[c], -space.parse(c).index))
    out = [("default, also the best ground truth" if best == default else "default", default)]
    if best and best != default:
        out.append(("best ground truth", best))
    others = sorted(set(ext.config) - {default, best}, key=lambda c: space.parse(c).index)
    return out + [("searched", c) for c in others]


def _runs(rows: pd.DataFrame) -> dict:
    """Accuracy over the distinct standalone runs, their cost, and the searches' own numbers."""
    runs = rows[rows.seed.notna()].drop_duplicates(["variant", "seed"]) if "variant" in rows else rows
    acc = runs.test_acc.astype(float)
    out = {"n_runs": len(acc), "acc": acc.mean() if len(acc) else np.nan,
           "std": acc.std(ddof=1) if len(acc) > 1 else np.nan,
           "params": runs.params.astype(float).mean() if len(runs) else np.nan,
           "macs": runs.macs.astype(float).mean() if len(runs) else np.nan}
    if "search_seed" in rows:
        per_search = rows.drop_duplicates(["search", "search_seed"])
        archs = per_search.architecture.unique()
        out |= {"architecture": archs[0] if len(archs) == 1 else f"{len(archs)} architectures (one per search)"
                if len(archs) else "",
                "n_searches": len(per_search), "search_hours": per_search.search_wall_seconds.mean() / 3600,
                "connection_fraction": per_search.connection_fraction.astype(float).mean(),
                "search_val_acc": per_search.search_val_acc.astype(float).mean()}
        if not len(runs):
            out |= {"params": per_search.search_params.astype(float).mean(),
                    "macs": per_search.search_macs.astype(float).mean()}
    out["status"] = "ok" if len(acc) else RETRAIN_MISSING if "search_seed" in rows and len(rows) else NOT_RUN
    return out


def build_table(results: str | Path, dataset: str | None = None) -> pd.DataFrame:
    """One row per architecture of every section (module docstring), as numbers and text."""
    gt, ext, dataset = frames(results, dataset)
    rows = []
    for label, config in sections(gt, ext):
        base = {"section": label, "config": config, "data": dataset or ""}
        dense = gt[gt.config == config]
        rows.append(base | {"kind": "dense", "rho": None, "row": KINDS["dense"][0],
                            "architecture": "the config as it is"} | _runs(dense))
        mine = ext[ext.config == config]
        dg = mine[mine.method == "dgconv"]
        for rho in sorted(dg.rho.dropna().astype(int).unique()) or [None]:
            at = dg[dg.rho == rho]
            for kind, role in (("dgconv", "found"), ("fixed_groups", "fixed_groups")):
                text = KINDS[kind][0].format(rho=rho) if rho is not None else KINDS[kind][0].split(",")[0]
                rows.append(base | {"kind": kind, "rho": rho, "row": text} | _runs(at[at.role == role]))
        co = mine[mine.method == "conet"]
        for kind, role in (("conet", "found"), ("uniform_widths", "uniform_widths")):
            rows.append(base | {"kind": kind, "rho": None, "row": KINDS[kind][0]} | _runs(co[co.role == role]))
    columns = ["section", "config", "row", "kind", "rho", "architecture", "params", "macs", "connection_fraction",
               "acc", "std", "n_runs", "search_val_acc", "n_searches", "search_hours", "status", "data"]
    return pd.DataFrame(rows).reindex(columns=columns)


def display(table: pd.DataFrame) -> pd.DataFrame:
    """The human-facing cells: rounded half-up to 2 decimals, "not run" where nothing ran."""
    def acc(r):
        if r.status != "ok":
            return r.status
        mean = f"{half_up(r.acc)} ± {half_up(r['std'])}" if pd.notna(r["std"]) else half_up(r.acc)
        return f"{mean} (n={r.n_runs})"

    def count(v, scale=1.0, places=0):
        return "" if pd.isna(v) else f"{v / scale:,.{places}f}"

    return pd.DataFrame({
        "Pooling": [f"{s} {c}" for s, c in zip(table.section, table.config)], "Architecture": table.row,
        "Found": [a if isinstance(a, str) else "" for a in table.architecture],
        "Params": [count(v) for v in table.params], "MACs (M)": [count(v, 1e6, 2) for v in table.macs],
        "Conn.": ["" if pd.isna(v) else f"{100 * v:.0f} %" for v in table.connection_fraction],
        "Acc. (ours)": [acc(r) for _, r in table.iterrows()],
        "Search val.": [half_up(v) for v in table.search_val_acc],
        "Search h": [half_up(v, 4) for v in table.search_hours]})


def caption(table: pd.DataFrame, profile: str) -> str:
    data = sorted({d for d in table.data if d})
    return (f"{TITLE}; profile {profile}" + (f", dataset {', '.join(data)}" if data else "") + ". Acc.: standalone "
            "test accuracy, mean ± sample std over n runs (seeds), rounded half-up to 2 decimals; Params and MACs "
            "(forward multiply-adds of one image) of the trained networks. Conn.: the square convs' connections "
            "kept by DGConv (its budget rho is the target). Fixed groups: the one group count G in every square "
            "conv whose MACs are nearest DGConv's; uniform widths: every default width times one factor, the "
            "parameters nearest CONet's. Search val.: the search network's own search-validation accuracy; Search "
            "h: hours per search on our hardware. \"not run\": no such runs in our results. The DGConv and CONet "
            "papers' own numbers (ImageNet; CIFAR-100 ResNet34) are not comparable with these.")


def to_markdown(table: pd.DataFrame, profile: str) -> str:
    shown = display(table)
    lines = [f"### {TITLE}", "", "| " + " | ".join(shown.columns) + " |", "|" + "|".join("---" for _ in shown) + "|"]
    lines += ["| " + " | ".join(cell(v) if v != "" else "" for v in row) + " |"
              for row in shown.itertuples(index=False)]
    return "\n".join(lines + ["", caption(table, profile)]) + "\n"


def to_latex(table: pd.DataFrame, profile: str) -> str:
    shown = display(table)
    lines = [r"\begin{table}[t]", r"\centering", r"\scriptsize", r"\setlength{\tabcolsep}{3pt}",
             rf"\caption{{{tex(caption(table, profile))}}}", rf"\label{{tab:{TABLE}}}",
             r"\begin{tabular}{" + "l" * len(shown.columns) + "}", r"\toprule",
             " & ".join(tex(c) for c in shown.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(tex(v) for v in row) + r" \\" for row in shown.itertuples(index=False)]
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}", r"\end{table}"]) + "\n"


def write_table(results: str | Path, out: str | Path, profile: str, dataset: str | None = None) -> list[Path]:
    table = build_table(results, dataset)
    written = []
    for suffix, text in (("csv", table.to_csv(index=False, lineterminator="\n", float_format="%.6g")),
                         ("tex", to_latex(table, profile)), ("md", to_markdown(table, profile))):
        path = Path(out) / f"{TABLE}.{suffix}"
        atomic_write_text(path, text)
        written.append(path)
    return written


def figure(results: str | Path, dataset: str | None, note: str):
    """Accuracy against MACs and parameters: every row of the table beside the ground truth of each pooling config;
    the reason (a string) when there is nothing to draw."""
    import matplotlib.pyplot as plt
    import matplotlib.ticker as mticker

    gt, _, dataset = frames(results, dataset)
    if gt.empty:
        return f"needs ground-truth runs on {dataset or 'any dataset'}"
    table = build_table(results, dataset)
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 3.3), sharey=True)
    per = gt.groupby("config").agg(acc=("test_acc", "mean"), macs=("macs", "first"), params=("params", "first"))
    for ax, x, label in ((axes[0], "macs", "forward multiply-adds (millions, log scale)"),
                         (axes[1], "params", "parameters (thousands, log scale)")):
        scale = 1e6 if x == "macs" else 1e3
        ax.scatter(per[x] / scale, per.acc, s=9, color="#BBBBBB", label="pooling configs (ground truth)", zorder=2)
        for (section, config), marker in zip(dict.fromkeys(zip(table.section, table.config)), SECTION_MARKERS):
            rows = table[(table.section == section) & (table.config == config) & (table.status == "ok")]
            for r in rows.itertuples():
                ax.errorbar(r.params / scale if x == "params" else r.macs / scale, r.acc,
                            yerr=0 if pd.isna(r.std) else r.std, fmt=marker, ms=5, color=KINDS[r.kind][1],
                            capsize=2, lw=0.8, zorder=3, markeredgecolor="white", markeredgewidth=0.4)
        ax.set_xscale("log")
        # plain numbers at 1-2-5 steps: the default log labels (2x10^0, 3x10^0, ...) overlap on a short range
        ax.xaxis.set_major_locator(mticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(mticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(mticker.NullFormatter())
        ax.set_xlabel(label)
    axes[0].set_ylabel("standalone test accuracy (%)")
    handles = [plt.Line2D([], [], ls="", marker="o", color="#BBBBBB", label="pooling configs (ground truth)")]
    handles += [plt.Line2D([], [], ls="", marker="o", color=colour, label=text.split(",")[0])
                for text, colour in KINDS.values()]
    handles += [plt.Line2D([], [], ls="", marker=m, color="#555555", label=f"{s} {c}")
                for (s, c), m in zip(dict.fromkeys(zip(table.section, table.config)), SECTION_MARKERS)]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, bbox_to_anchor=(0.5, -0.16))
    fig.suptitle(f"groups and widths beyond the pooling: mean ± std over seeds ({note})", fontsize=7.5)
    return fig
