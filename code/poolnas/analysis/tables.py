"""`tables`: the paper's Tables 1-4, each published row beside what our runs give for it.

Every row of paper/published/table<N>.csv is kept, in the printed order, with our columns added: the architecture
our runs found, our accuracy (mean and sample std over the n retraining runs), n, the difference from the
published mean, and the cost of finding the architecture (SGD steps and hours per run). Where our runs do not
exist a row says "not run"; literature rows of Table 3 say "literature". Numbers are rounded half-up to 2
decimals, as the paper rounds. Each table is written atomically as CSV, LaTeX (booktabs) and Markdown.

Which of our runs stand for a published row (ROWS): the default config's standalone runs; a search method's picks
(by method id and number of SuperNets) retrained; or, for "Best conf.", the best ground-truth config. Which of our
studies stands for which of the paper's is the profile's (`stands_for` of each study, `settings.stand_ins`: a
study without it stands for the paper's study of its own dataset and backbone). Tables 1-2 take the ResNet20 study
standing for cifar10, else the one the results have (cifar10 when present, else the first, e.g. glyphs in mini);
Tables 3-4 take the study standing for each row's dataset and backbone. A row filled from another dataset than the
paper's says so (Table 3: its note; Tables 1-2 and 4: the data column).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from poolnas.analysis.aggregate import load, study_dataset
from poolnas.analysis.checks import NOT_RUN, RETRAIN_MISSING, half_up, tex as _tex
from poolnas import plan, settings
from poolnas.errors import UsageError
from poolnas.records import atomic_write_text
from poolnas.arch.spaces import get_space
from poolnas.analysis import extensions
from poolnas.analysis.verify_released import read_published

# The paper's tables; issue 17's groups_widths is written when asked for (--only), as the workflow does where it runs.
NAMES = tuple(n for n in plan.TABLE_NAMES if n not in plan.EXTENSION_ARTEFACTS)
STANDING_IN = "ours on "  # how a Table 3 note names the dataset standing in for the paper's
# Our search method ids for the published methods. `mixture` and `random` exist (poolnas.search.run); the other ids
# are the names reserved for baselines not implemented yet: their rows say "not run" until such records exist.
ROWS = {
    "Default": ("default",), "Best conf. (Bruteforce)": ("bruteforce",),
    "Balanced Mixtures": ("search", "mixture", 4), "SPOS fully shared": ("search", "mixture", 1),
    "SPOS": ("search", "mixture", 1), "SPOS not shared": ("search", "spos-not-shared", None),
    "SPOS not shared/19683": ("search", "spos-not-shared-relaxed", None),
    "DARTS fully shared": ("search", "darts", None), "DARTS": ("search", "darts", None),
    "DARTS not shared same init": ("search", "darts-not-shared-same", None),
    "DARTS not shared rnd init": ("search", "darts-not-shared-rnd", None),
    "DARTS + GAEA": ("search", "darts-gaea", None), "MCTS UCB": ("search", "mcts", None),
    "MCTS UCB + Unif. Smp.": ("search", "mcts-uniform", None), "SBE": ("search", "sbe", None),
    "SBE + Unif. Smp.": ("search", "sbe-uniform", None),
}
# Our rows that the paper does not have, appended to Table 2 (label, spec).
EXTRA_TABLE2 = [("Balanced Mixtures (M=2)", ("search", "mixture", 2)),
                ("Balanced Mixtures (M=8)", ("search", "mixture", 8)),
                ("Random search (equal budget)", ("search", "random", None))]
COMPUTE = {"Best conf. (Bruteforce)": "Best conf. (Bruteforce)", "Default": "Default", "SPOS": "SPOS",
           "Balanced Mixtures": "Balanced Mixtures", "MCTS": "MCTS", "SBE": "SBE", "DARTS": "DARTS"}
PAPER_STUDY = {"table1": ("cifar10", "resnet20"), "table2": ("cifar10", "resnet20"), "table4": ("food101", "resnet50")}


def _summary(values: pd.Series) -> dict:
    v = values.dropna().astype(float)
    return {"mean": v.mean() if len(v) else np.nan, "std": v.std(ddof=1) if len(v) > 1 else np.nan, "n": len(v)}


def _picks(configs: pd.Series) -> str:
    """"[5,3,2]" when every search picked it, else "[5,3,2] x2, [6,2,2] x1" (most frequent first)."""
    counts = configs.value_counts(sort=False)
    if len(counts) == 1:
        return counts.index[0]
    order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{c} x{n}" for c, n in order)


class Study:
    """Our runs of one (dataset, backbone), answering "what do we have for this kind of row"."""

    def __init__(self, frames: dict, dataset: str | None, backbone: str):
        self.dataset, self.backbone, self.space = dataset, backbone, get_space(backbone)
        sel = {k: f[(f.dataset == dataset) & (f.backbone == backbone)] for k, f in frames.items()}
        self.gt, self.search, self.retrain = sel["groundtruth"], sel["search"], sel["retrain"]

    def default(self) -> dict:
        runs = self.gt[self.gt.config == self.space.default.name]
        if runs.empty:
            return {"status": NOT_RUN}
        return {**self._acc(runs.test_acc), "architecture": self.space.default.name, "status": "ok",
                "cost_steps": runs.steps.mean(), "cost_hours": runs.train_seconds.mean() / 3600}

    def bruteforce(self) -> dict:
        if self.gt.empty:
            return {"status": NOT_RUN}
        per_config = self.gt.groupby("config")
        best = per_config.test_acc.mean().idxmax()
        n_configs, total = per_config.ngroups, len(self.space)
        out = {**self._acc(self.gt[self.gt.config == best].test_acc), "architecture": best,
               "cost_steps": per_config.steps.mean().sum(), "cost_hours": per_config.train_seconds.mean().sum() / 3600,
               "status": "ok" if n_configs == total else "partial"}
        if n_configs < total:
            out["note"] = f"best of the {n_configs} of {total} configs trained"
        return out

    def searched(self, method: str, models: int | None, name: str | None = None) -> dict:
        mask = self.search.method == method
        if models is not None:
            mask &= self.search.models.eq(models).fillna(False)
        if name is not None:
            mask &= self.search.search == name
        runs = self.search[mask.astype(bool)]
        if runs.empty:
            return {"status": NOT_RUN}
        # a relaxed pick (DARTS's argmax can be a path that is no config) is named by its 9 levels, e.g. 000000000
        out = {"architecture": _picks(runs.selected_config.fillna(runs.selected_path)), "n_searches": len(runs),
               "cost_steps": runs.steps.mean(), "cost_hours": runs.wall_seconds.mean() / 3600}
        if runs.search.nunique() > 1:
            out["note"] = "pooled over " + ", ".join(sorted(runs.search.unique()))
        retrained = self.retrain[self.retrain.search.isin(runs.search)]
        if retrained.test_acc.notna().sum() == 0:
            return out | {"status": RETRAIN_MISSING}
        return out | self._acc(retrained.test_acc) | {"status": "ok"}

    @staticmethod
    def _acc(values: pd.Series) -> dict:
        s = _summary(values)
        return {"mean": s["mean"], "std": s["std"], "n": s["n"]}

    def row(self, spec: tuple) -> dict:
        if self.dataset is None:
            return {"status": NOT_RUN}
        kind = spec[0]
        return self.default() if kind == "default" else self.bruteforce() if kind == "bruteforce" \
            else self.searched(*spec[1:])


def _gpu_hours(compute: pd.DataFrame, label: str, dataset: str, backbone: str, models: str = "") -> str:
    key = next((v for k, v in COMPUTE.items() if label.startswith(k)), None)
    rows = compute[(compute.method == key) & (compute.dataset == dataset) & (compute.backbone == backbone)
                   & ((compute.models == models) | (compute.models == ""))]
    rows = rows.sort_values("models", ascending=False)  # an M-specific budget beats a generic one
    return rows.gpu_hours.iloc[0] if len(rows) else ""


def _ours_columns(res: dict, published_mean: str) -> dict:
    status = res.get("status", NOT_RUN)
    has_acc = status in ("ok", "partial")
    return {"ours_architecture": res.get("architecture", NOT_RUN if status == NOT_RUN else ""),
            "ours_acc": half_up(res["mean"]) if has_acc else status,
            "ours_std": half_up(res.get("std")) if has_acc else "",
            "n_runs": res.get("n", 0) if has_acc else 0, "n_searches": res.get("n_searches", ""),
            "difference": half_up(res["mean"] - float(published_mean), sign=True)
            if has_acc and published_mean else "",
            "cost_steps": "" if pd.isna(res.get("cost_steps", np.nan)) else int(round(res["cost_steps"])),
            "cost_hours": half_up(res.get("cost_hours"), 4), "status": status, "note": res.get("note", "")}


def records_profile(frames: dict) -> str | None:
    """The profile the aggregated records name (the ground truth's, else the searches')."""
    return next((p for name in ("groundtruth", "search") if name in frames for p in frames[name].profile.dropna()),
                None)


def stand_ins(frames: dict, profile: str | None = None) -> dict[tuple[str, str], str]:
    """{(paper dataset, backbone): our dataset} of `profile` (a name or .yaml), by default of the profile the
    records name when it is one of the package's; {} otherwise (every row then reads the paper's own dataset)."""
    name = profile or records_profile(frames)
    if name is None or (profile is None and name not in settings.available()):
        return {}
    return settings.resolve(name).stand_ins()


def paper_study(frames: dict, stand_in: dict, paper_data: str, backbone: str, dataset: str | None = None) -> str | None:
    """Our dataset for the paper's (paper_data, backbone) study: `dataset` if given, else the profile's stand-in;
    for ResNet20 (Tables 1-2) else the results' own study of it, for the others else the paper's dataset."""
    if dataset or (paper_data, backbone) in stand_in:
        return dataset or stand_in[paper_data, backbone]
    return study_dataset(frames, backbone, paper_data) if backbone == "resnet20" else paper_data


def build(name: str, frames: dict, pub: dict, dataset: str | None = None,
          stand_in: dict[tuple[str, str], str] | None = None) -> pd.DataFrame:
    """One table as text cells (already rounded); columns documented in results/README.md. `dataset`: ours for
    Tables 1-2; `stand_in`: the profile's {(paper dataset, backbone): our dataset} (`stand_ins`)."""
    compute, stand_in = pub["compute"], stand_in or {}
    if name in ("table1", "table2"):
        paper_data, backbone = PAPER_STUDY[name]
        study = Study(frames, paper_study(frames, stand_in, paper_data, backbone, dataset), backbone)
        rows = []
        for row in pub[name].itertuples(index=False):
            label = row.method + ("/19683" if name == "table1" and row.method == "SPOS not shared"
                                  and row.paths == "19683" else "")
            res = study.row(ROWS[label])
            cells = {"paper_architecture": row.architecture, "paper_mean": row.acc_mean, "paper_std": row.acc_std}
            lead = {"rank": row.rank} if name == "table2" else {"weight_models": row.weight_models, "paths": row.paths}
            rows.append({**lead, "method": row.method, **cells, **_ours_columns(res, row.acc_mean),
                         "paper_gpu_hours": _gpu_hours(compute, row.method, paper_data, backbone),
                         "data": study.dataset or "", "source": "paper"})
        if name == "table2":
            controls = [(f"One SuperNet (M=1) at the M={b} mixture's budget (our control)",
                         ("search", "mixture-budget", 1, plan.search_name("mixture-budget", 1, budget_models=b)))
                        for b in plan.control_budgets(study.search.search)]
            for label, spec in EXTRA_TABLE2 + controls:
                rows.append({"rank": "", "method": label, "paper_architecture": "", "paper_mean": "",
                             "paper_std": "", **_ours_columns(study.row(spec), ""), "paper_gpu_hours": "",
                             "data": study.dataset or "", "source": "ours only"})
            table = pd.DataFrame(rows)
            ranked = table[table.n_runs > 0].ours_acc.astype(float).rank(method="min").astype(int)
            table.insert(table.columns.get_loc("ours_acc"), "ours_rank", ranked.reindex(table.index))
            table["ours_rank"] = table.ours_rank.astype("Int64").astype(str).replace("<NA>", "")
            return table
        return pd.DataFrame(rows)
    if name == "table4":
        dataset_, backbone = PAPER_STUDY[name]
        ours = paper_study(frames, stand_in, dataset_, backbone)
        study, rows = Study(frames, ours, backbone), []
        for row in pub[name].itertuples(index=False):
            spec = ("default",) if row.method == "Default" else ("search", "mixture", int(row.models))
            rows.append({"method": row.method, "models": row.models, "paper_architecture": row.architecture,
                         "paper_mean": row.acc_mean, "paper_std": row.acc_std,
                         **_ours_columns(study.row(spec), row.acc_mean),
                         "paper_gpu_hours": _gpu_hours(compute, row.method, dataset_, backbone, row.models),
                         "data": ours, "source": "paper"})
        return pd.DataFrame(rows)
    if name == "table3":
        rows = []
        for row in pub[name].itertuples(index=False):
            paper = {"method": row.method, "dataset": row.dataset, "backbone": row.backbone,
                     "paper_baseline_mean": row.baseline_mean, "paper_baseline_std": row.baseline_std,
                     "paper_improved_mean": row.improved_mean, "paper_improved_std": row.improved_std,
                     "paper_gap": row.gap, "source": row.source}
            if row.source == "literature":
                rows.append(paper | {"status": "literature"})
                continue
            ours = paper_study(frames, stand_in, row.dataset, row.backbone)
            study = Study(frames, ours, row.backbone)
            base, improved = study.row(("default",)), study.row(ROWS["Balanced Mixtures"])
            where = f"{STANDING_IN}{ours}/{row.backbone}, standing in for {row.dataset}" if ours != row.dataset else ""
            b, i = _ours_columns(base, row.baseline_mean), _ours_columns(improved, row.improved_mean)
            both = base["status"] == improved["status"] == "ok"
            rows.append(paper | {"ours_baseline": b["ours_acc"], "ours_baseline_std": b["ours_std"],
                                 "n_baseline": b["n_runs"], "ours_architecture": i["ours_architecture"],
                                 "ours_improved": i["ours_acc"], "ours_improved_std": i["ours_std"],
                                 "n_improved": i["n_runs"],
                                 "ours_gap": half_up(improved["mean"] - base["mean"], sign=True) if both else "",
                                 "cost_steps": i["cost_steps"], "cost_hours": i["cost_hours"],
                                 "status": "ok" if both else NOT_RUN if NOT_RUN in (base["status"], improved["status"])
                                 else i["status"], "note": "; ".join(filter(None, [where, i["note"]]))})
        return pd.DataFrame(rows, dtype=object).fillna("")  # object: counts stay integers beside literature rows
    raise UsageError(f"unknown table {name!r}; known: {', '.join(NAMES)}")


# --- rendering ----------------------------------------------------------------------------------------------

TITLES = {
    "table1": "Table 1: weight sharing and search-space size (ResNet20)",
    "table2": "Table 2: methods in order of accuracy (ResNet20)",
    "table3": "Table 3: default vs searched configuration on larger backbones",
    "table4": "Table 4: ResNet50 on Food101, best architecture per number of SuperNets",
}


def _pm(mean: str, std: str) -> str:
    return f"{mean} ± {std}" if mean and std else mean


def _ours(mean: str, std: str, n) -> str:
    if not mean or mean in (NOT_RUN, RETRAIN_MISSING):
        return mean
    return f"{mean} ± {std} (n={n})" if std else f"{mean} (n={n})"


def display(name: str, table: pd.DataFrame) -> pd.DataFrame:
    """The human-facing columns (Markdown and LaTeX): published and ours side by side."""
    t = table.fillna("")
    cost = {"Steps": t.get("cost_steps", ""), "Hours": t.get("cost_hours", "")}
    if name == "table3":
        return pd.DataFrame({"Method": t.method, "Data": t.dataset + "/" + t.backbone,
                             "Baseline (paper)": list(map(_pm, t.paper_baseline_mean, t.paper_baseline_std)),
                             "Improved (paper)": list(map(_pm, t.paper_improved_mean, t.paper_improved_std)),
                             "Gap (paper)": t.paper_gap,
                             "Baseline (ours)": [_ours(a, b, n) if s != "literature" else "literature"
                                                 for a, b, n, s in zip(t.ours_baseline, t.ours_baseline_std,
                                                                       t.n_baseline, t.status)],
                             "Arch. (ours)": t.ours_architecture,
                             "Improved (ours)": [_ours(a, b, n) if s != "literature" else "literature"
                                                 for a, b, n, s in zip(t.ours_improved, t.ours_improved_std,
                                                                       t.n_improved, t.status)],
                             "Gap (ours)": t.ours_gap, **cost})
    first = {"table1": {"Method": t.method, "M": t.get("weight_models", ""), "Paths": t.get("paths", "")},
             "table2": {"#": t.get("rank", ""), "Method": t.method},
             "table4": {"Method": t.method, "M": t.get("models", "")}}[name]
    out = {**first, "Arch. (paper)": t.paper_architecture, "Acc. (paper)": [_pm(a, b) for a, b in
                                                                            zip(t.paper_mean, t.paper_std)],
           "Arch. (ours)": t.ours_architecture, "Acc. (ours)": [_ours(a, b, n) for a, b, n in
                                                                 zip(t.ours_acc, t.ours_std, t.n_runs)],
           "Diff.": t.difference}
    if name == "table2":
        out["Rank (ours)"] = t.ours_rank
    return pd.DataFrame({**out, **cost, "GPU-h (paper)": t.get("paper_gpu_hours", "")})


def _caption(name: str, table: pd.DataFrame, profile: str) -> str:
    data = sorted({d for d in table.get("data", pd.Series(dtype=str)) if d})
    where = f"our runs: profile {profile}" + (f", dataset {', '.join(data)}" if data else "")
    ours = ("Ours: mean ± sample std over n retraining runs (a config picked by several searches counts once per "
            "search), rounded half-up to 2 decimals")
    if name == "table3":
        stand_in = any(str(n).startswith(STANDING_IN) for n in table.get("note", []))
        data = ("on the datasets the notes name, standing in for the paper's" if stand_in
                else "on the paper's dataset and backbone only")
        return (f"{TITLES[name]}. Published values as printed beside ours ({where}, {data}). {ours}. "
                "Baseline = the default config; Improved = the pick of the M=4 mixture, retrained; Gap = Improved - "
                "Baseline. Literature rows are quoted by the paper from other work and run neither by the paper nor "
                "by us. Steps/Hours: search cost per run on our hardware. \"not run\": no such runs in our results.")
    return (f"{TITLES[name]}. Published values as printed beside ours ({where}). {ours}; Diff. = ours - "
            "published. Steps/Hours: cost of finding the architecture, per run (search; one standalone training "
            "for Default; one per config for Best conf.), on our hardware; GPU-h (paper): the released V100 "
            "budget. \"not run\": no such runs in our results"
            + ("; \"retraining not run\": a search ran but its pick has no standalone run yet" if name != "table4"
               else "") + ".")


def to_markdown(name: str, table: pd.DataFrame, profile: str) -> str:
    shown = display(name, table)
    esc = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    lines = [f"### {TITLES[name]}", "", "| " + " | ".join(shown.columns) + " |",
             "|" + "|".join("---" for _ in shown.columns) + "|"]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    notes = [f"- {m}: {n}" for m, n in zip(table.method, table.get("note", [""] * len(table))) if n]
    return "\n".join(lines + ["", _caption(name, table, profile)] + (["", *notes] if notes else [])) + "\n"


def to_latex(name: str, table: pd.DataFrame, profile: str) -> str:
    shown = display(name, table)
    lines = [r"\begin{table}[t]", r"\centering", r"\scriptsize", r"\setlength{\tabcolsep}{3pt}",
             rf"\caption{{{_tex(_caption(name, table, profile))}}}", rf"\label{{tab:{name}}}",
             r"\begin{tabular}{" + "l" * len(shown.columns) + "}", r"\toprule",
             " & ".join(_tex(c) for c in shown.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_tex(v) for v in row) + r" \\" for row in shown.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_tables(results: str | Path, published: str | Path, out: str | Path, only=None,
                 dataset: str | None = None, profile: str | None = None) -> list[Path]:
    """`profile`: whose `stands_for` keys say which study fills which row (default: the records' profile)."""
    frames = load(results, ("groundtruth", "search", "retrain"))
    pub = read_published(published)
    stand_in, shown = stand_ins(frames, profile), records_profile(frames) or Path(results).name
    written = []
    for name in only or NAMES:
        if name in plan.EXTENSION_ARTEFACTS:  # issue 17's table, ours only: its own module
            written += extensions.write_table(results, out, profile, dataset)
            continue
        table = build(name, frames, pub, dataset, stand_in)
        for suffix, text in (("csv", table.to_csv(index=False, lineterminator="\n")),
                             ("tex", to_latex(name, table, shown)), ("md", to_markdown(name, table, shown))):
            path = Path(out) / f"{name}.{suffix}"
            atomic_write_text(path, text)
            written.append(path)
    return written
