"""`aggregate`: every per-run JSON record under results/<profile>/runs/ into tidy CSVs beside it.

    results/<profile>/runs/train/<dataset>/<backbone>/<config slug>/seed<S>.json    (poolnas.standalone)
    results/<profile>/runs/search/<dataset>/<backbone>/<search>/seed<S>.json        (poolnas.search.run)

become groundtruth.csv, search.csv, search_eval.csv, search_epochs.csv, retrain.csv and ranking.csv in
results/<profile>/ (columns: results/README.md), and, only when the results hold searches beyond the pooling (issue
17: dgconv, conet) or runs of their variants (`<config slug>/<variant>/seed<S>.json`), extensions.csv: every
architecture such a search names (what it found, its comparison) joined with its standalone runs. Those records
stay out of the other CSVs (they search no pooling; a variant is no ground truth of its config). The CSVs depend only on the records: rows are sorted, floats are
printed with `FLOAT_FORMAT`, the bootstrap is seeded, and files are written atomically, so aggregating the same
records twice gives byte-identical files. A category without records gives a header-only CSV.

Ranking (ranking.csv) uses poolnas.analysis.stats, the code behind the `rank` command: per search (dataset, backbone,
method, size), each config's score is the value its search's selection rule ranks by (default `assigned`: the
full-validation accuracy of the config under its assigned SuperNet), the ground truth is the mean standalone test
accuracy over seeds, and only configs that have both are ranked.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import ConstantInputWarning

from poolnas import plan
from poolnas.analysis import consistency
from poolnas.errors import UsageError
from poolnas.records import write_together
from poolnas.schemas import read_record
from poolnas.arch.spaces import RELAXED, get_space
from poolnas.analysis.stats import DEFAULT_KS, ranking_table, seed_bootstrap_ci

FLOAT_FORMAT = "%.6g"
RULES = ("assigned", "best_model", "ema")
MIN_RANKED = 3  # fewer configs with both a score and a ground truth: no ranking row
METRICS = ["kendall_tau", "spearman", *(f"top{k}" for k in DEFAULT_KS), "regret"]

KEYS = ["dataset", "backbone"]
# Was a mixture search long enough? (`search_health`; results/README.md)
HEALTH = ["assigned_acc_median", "untrained_pairs", "assigned_untrained", "w_visits_corr", "w_acc_corr",
          "argmax_most_visited", "argmax_least_visited"]
SEARCH_KEYS = KEYS + ["search", "method", "models", "candidates"]
COLUMNS = {
    "groundtruth": KEYS + ["config", "index", "code", "seed", "test_acc", "final_test_acc", "best_test_acc",
                           "epochs", "steps", "params", "macs", "train_seconds", "images_per_s", "profile"],
    "search": SEARCH_KEYS + ["seed", "selected_config", "selected_index", "selected_path", "rule"]
              + [f"{r}_{f}" for r in RULES for f in ("config", "index", "score")]
              + ["steps", "epochs_run", "train_seconds", "eval_seconds", "wall_seconds", "images_per_s",
                 "search_train", "search_val", "profile"] + HEALTH,
    "search_eval": SEARCH_KEYS + ["seed", "config", "index", "model", "supernet_acc", "assigned", "p_final",
                                  "w_final", "count", "score"],
    "search_epochs": SEARCH_KEYS + ["seed", "epoch", "temperature", "lr", "train_loss", "train_acc", "val_acc",
                                    "steps", "seconds", "balance_iterations", "p_max_mean", "p_entropy_mean",
                                    "share_min", "share_max"],
    "retrain": SEARCH_KEYS + ["search_seed", "config", "index", "seed", "test_acc", "epochs", "steps",
                              "train_seconds"],
    "extensions": SEARCH_KEYS[:3] + ["method", "search_seed", "pooling", "config", "rho", "role", "variant",
                                     "architecture", "groups", "scale", "search_params", "search_macs", "connection_fraction", "search_val_acc",
                                     "search_wall_seconds", "seed", "test_acc", "params", "macs", "epochs",
                                     "train_seconds"],
    "ranking": SEARCH_KEYS + ["search_seed", "n_configs", "n_searches"]
               + [c for m in METRICS for c in (m, f"{m}_lo", f"{m}_hi", f"{m}_seed_lo", f"{m}_seed_hi")]
               + ["pick", "pick_index", "pick_gt", "best", "best_index", "best_gt", "selected", "selected_gt",
                  "selected_regret"],
}
INT_COLUMNS = {"index", "seed", "epochs", "steps", "params", "macs", "models", "candidates", "selected_index",
               "rho", "groups", "search_params", "search_macs",
               "epochs_run", "search_train", "search_val", "model", "count", "epoch", "balance_iterations",
               "search_seed", "n_configs", "n_searches", "pick_index", "best_index",
               *(f"{r}_index" for r in RULES)}


# --- reading records ----------------------------------------------------------------------------------------


search_name = plan.record_search_name  # the directory name of a search's record (the naming contract)


def records(results: str | Path, kind: str, profile=None, data_dir=None) -> list[dict]:
    """Every record of a kind ("train" or "search") under results/runs, in path order (hidden files skipped), each
    checked against its schema (`poolnas.schemas`), its place and the settings of `profile` (`consistency`;
    default: the folder's profile), its data too where `data_dir` holds the caches: a bad one stops the command
    with one line naming file and field."""
    root, prof, out = Path(results) / "runs" / kind, consistency.profile_for(results, profile), []
    data = None if data_dir is None else consistency.PreparedData(data_dir)
    for path in consistency.record_paths(root):
        record = read_record(path, kind)
        consistency.check_place(record, path, root, Path(results).resolve().name)
        consistency.check_settings(record, path, prof, data)
        out.append(record | {"_path": str(path)})
    return out


def _steps(record: dict) -> int:
    batch = record["hparams"]["batch_size"]
    return sum(math.ceil(h.get("images", 0) / batch) for h in record["history"])


def groundtruth_rows(train: list[dict]) -> list[dict]:
    return [{**{k: r[k] for k in KEYS + ["config", "index", "code", "seed", "test_acc", "final_test_acc",
                                         "best_test_acc", "epochs", "params", "macs", "train_seconds",
                                         "images_per_s", "profile"]}, "steps": _steps(r)} for r in train]


def _search_keys(r: dict) -> dict:
    return {"dataset": r["dataset"], "backbone": r["backbone"], "search": search_name(r), "method": r["method"],
            "models": r.get("models"), "candidates": r.get("candidates")}


def _pick(r: dict) -> tuple[str | None, int | None, str | None]:
    """(config, index, path) a search selected. Searches of the relaxed ResNet20 space (DARTS-style) select a
    path of 9 levels (`selected.path`); a monotone path that uses every level is also a config."""
    sel = r["selected"]
    path = sel.get("path")
    if sel.get("config") is None and path is not None and r["backbone"] == RELAXED.base:
        config = RELAXED.to_config(RELAXED.parse(str(path)))
        return (config.name, config.index, str(path)) if config else (None, None, str(path))
    return sel.get("config"), sel.get("index"), None if path is None else str(path)


def search_rows(searches: list[dict]) -> list[dict]:
    rows = []
    for r in searches:
        config, index, path = _pick(r)
        row = {**_search_keys(r), "seed": r["seed"], "selected_config": config, "selected_index": index,
               "selected_path": path, "rule": r["selected"].get("rule"),
               "epochs_run": r.get("budget", {}).get("epochs_run")}
        for rule, alt in (r.get("alternatives") or {}).items():
            if rule in RULES:
                row |= {f"{rule}_config": alt["config"], f"{rule}_index": alt["index"], f"{rule}_score": alt["score"]}
        row |= {k: r.get(k) for k in ("steps", "train_seconds", "eval_seconds", "wall_seconds", "images_per_s",
                                      "search_train", "search_val", "profile")}
        rows.append(row | search_health(r))
    return rows


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if len(a) > 1 and a.std() > 0 and b.std() > 0 else math.nan


def search_health(r: dict) -> dict:
    """Whether a mixture search was long enough for its SuperNets to learn, from its record.

    assigned_acc_median: median over configs of the accuracy (percent) of each config with its assigned
    SuperNet; untrained_pairs: share of (config, SuperNet) pairs never trained; assigned_untrained: configs
    assigned to a SuperNet that never trained them; w_visits_corr, w_acc_corr: Pearson correlation over the
    pairs of the final W with the visit counts and with the final accuracy (with the optimistic W = 1 start, a
    search too short for W to learn shows W tracking -visits rather than accuracy); argmax_most_visited,
    argmax_least_visited (M > 1): share of configs whose assigned SuperNet is the one that trained them most or
    least. Empty for methods without W (random search, baselines)."""
    if r.get("W") is None or r.get("counts") is None or r.get("accuracy") is None or r.get("assignment") is None:
        return {}
    W, counts, acc = (np.asarray(r[k], dtype=float) for k in ("W", "counts", "accuracy"))
    assigned = np.asarray(r["assignment"], dtype=int)
    rows = np.arange(len(assigned))
    out = {"assigned_acc_median": float(np.median(acc[rows, assigned])), "untrained_pairs": float((counts == 0).mean()),
           "assigned_untrained": int((counts[rows, assigned] == 0).sum()),
           "w_visits_corr": _corr(W.ravel(), counts.ravel()), "w_acc_corr": _corr(W.ravel(), acc.ravel())}
    if W.shape[1] > 1:
        own = counts[rows, assigned]
        out["argmax_most_visited"] = float((own == counts.max(axis=1)).mean())
        out["argmax_least_visited"] = float((own == counts.min(axis=1)).mean())
    return out


def _config_scores(r: dict) -> list[dict]:
    """One row per (config, model) a search evaluated; `score` (on the assigned pair) is what its rule ranks by."""
    space = get_space(r["backbone"])
    keys, rows = _search_keys(r) | {"seed": r["seed"]}, []
    acc = r.get("accuracy")
    if acc is None or r.get("configs") is None:  # e.g. a DARTS search: no per-config evaluation
        return rows
    if r.get("assignment") is None:  # random search: one standalone accuracy per candidate
        for name, a in zip(r["configs"], acc):
            rows.append(keys | {"config": name, "index": space.parse(name).index, "model": 0, "supernet_acc": a,
                                "assigned": True, "score": a})
        return rows
    rule = r["selected"].get("rule", "assigned")
    P, W, counts = r.get("P_final"), r.get("W"), r.get("counts")
    for c, (name, row_acc, assigned) in enumerate(zip(r["configs"], acc, r["assignment"])):
        score = {"assigned": row_acc[assigned], "best_model": max(row_acc),
                 "ema": 100.0 * W[c][assigned] if W else math.nan}.get(rule, row_acc[assigned])
        for m, a in enumerate(row_acc):
            rows.append(keys | {"config": name, "index": space.parse(name).index, "model": m, "supernet_acc": a,
                                "assigned": m == assigned, "p_final": P[c][m] if P else None,
                                "w_final": W[c][m] if W else None, "count": counts[c][m] if counts else None,
                                "score": score if m == assigned else None})
    return rows


def epoch_rows(r: dict) -> list[dict]:
    rows = []
    for e in r.get("epochs") or []:
        P = np.asarray(e["P"], dtype=float)
        counts = np.asarray(e["counts"], dtype=float).sum(axis=0)
        share = counts / counts.sum() if counts.sum() else np.full(len(counts), np.nan)
        entropy = -(P * np.log(np.where(P > 0, P, 1.0))).sum(axis=1)
        norm = np.log(P.shape[1]) if P.shape[1] > 1 else 1.0
        rows.append(_search_keys(r) | {
            "seed": r["seed"], **{k: e.get(k) for k in ("epoch", "temperature", "lr", "train_loss", "train_acc",
                                                         "val_acc", "steps", "seconds")},
            "balance_iterations": len(e.get("marginals") or []), "p_max_mean": float(P.max(axis=1).mean()),
            "p_entropy_mean": float(entropy.mean() / norm), "share_min": float(share.min()),
            "share_max": float(share.max())})
    return rows


def _architecture(role: str, arch: dict, found: dict) -> str:
    """A short description of an architecture a search beyond the pooling names (found groups or widths, or the
    comparison: one group count, or one width factor)."""
    if role == "fixed_groups":
        return f"G = {arch['groups']} in every square conv"
    if role == "uniform_widths":
        return f"every width x {arch['scale']:.3g}"
    if found["kind"] == "groups":
        counts = pd.Series(found["groups"]).value_counts().sort_index()
        return "G " + ", ".join(f"{g}x{n}" for g, n in counts.items()) + " (G x layers)"
    return "stream " + "/".join(map(str, found["stream"])) + "; inner " + "/".join(map(str, found["inner"]))


def extension_rows(searches: list[dict], runs: list[dict]) -> list[dict]:
    """Per search beyond the pooling: what it found (role `found`) and its comparison architectures (roles named as
    its `compare` entries), each joined with every standalone run of that variant of the config (one row with an
    empty seed when none exists)."""
    by_variant: dict[tuple, list[dict]] = {}
    for t in runs:
        by_variant.setdefault((t["dataset"], t["backbone"], t["config"], t["variant"]["slug"]), []).append(t)
    rows = []
    for s in searches:
        base = {**{k: s[k] for k in KEYS}, "search": search_name(s), "method": s["method"], "search_seed": s["seed"],
                "pooling": s["pooling"]["requested"], "config": s["selected"]["config"], "rho": s.get("budget_rho"),
                "search_wall_seconds": s.get("wall_seconds")}
        found = {"variant": s["found"]["variant"]["slug"], "params": s["found"]["params"], "macs": s["found"]["macs"],
                 "connection_fraction": s["found"].get("connection_fraction"), "search_val_acc": s["val_acc"]}
        for role, arch in [("found", found), *s["compare"].items()]:
            row = base | {"role": role, "variant": arch["variant"],
                          "architecture": _architecture(role, arch, s["found"]["variant"]),
                          "groups": arch.get("groups"),
                          "scale": arch.get("scale"), "search_params": arch["params"], "search_macs": arch["macs"],
                          "connection_fraction": arch.get("connection_fraction"),
                          "search_val_acc": arch.get("search_val_acc")}
            trained = by_variant.get((s["dataset"], s["backbone"], base["config"], arch["variant"]), [])
            rows += [row | {"seed": t["seed"], "test_acc": t["test_acc"], "params": t["params"], "macs": t["macs"],
                            "epochs": t["epochs"], "train_seconds": t["train_seconds"]} for t in trained] or [row]
    return rows


def retrain_rows(searches: list[dict], train: list[dict]) -> list[dict]:
    """Each search's pick joined with every training record of that config (an empty seed when none exists)."""
    by_config: dict[tuple, list[dict]] = {}
    for t in train:
        by_config.setdefault((t["dataset"], t["backbone"], t["config"]), []).append(t)
    rows = []
    for s in searches:
        config, index, path = _pick(s)
        base = _search_keys(s) | {"search_seed": s["seed"], "config": config or path, "index": index}
        # a path that is no config was retrained as a relaxed-space architecture (poolnas train resnet20-relaxed)
        key = (s["dataset"], s["backbone"], config) if config else (s["dataset"], RELAXED.name, path)
        runs = by_config.get(key, []) if (config or path) else []
        rows += [base | {"seed": t["seed"], "test_acc": t["test_acc"], "epochs": t["epochs"], "steps": _steps(t),
                         "train_seconds": t["train_seconds"]} for t in runs] or [base]
    return rows


# --- ranking ------------------------------------------------------------------------------------------------


def _ranking_row(keys: dict, gt_runs: pd.DataFrame, scores: pd.DataFrame, n_boot: int, seed: int,
                 selected: pd.DataFrame) -> dict | None:
    """Metrics of the per-config mean score against the per-config mean ground truth (configs with both)."""
    gt = gt_runs.groupby("config")["value"].mean()
    mean_score = scores.groupby("config")["value"].mean()
    common = sorted(set(gt.index) & set(mean_score.index), key=lambda c: get_space(keys["backbone"]).parse(c).index)
    if len(common) < MIN_RANKED:
        return None
    frame = pd.DataFrame({"group": 0, "config": common, "gt": gt[common].to_numpy(),
                          "score": mean_score[common].to_numpy()})
    table = ranking_table(frame, by="group", gt="gt", score="score", n_boot=n_boot, seed=seed).iloc[0]
    space = get_space(keys["backbone"])
    row = keys | {m: table[m] for m in METRICS} | {
        "n_configs": len(common), "n_searches": scores["run"].nunique(), "pick": table["pick"],
        "pick_index": space.parse(table["pick"]).index, "pick_gt": table["pick_gt"], "best": table["best"],
        "best_index": space.parse(table["best"]).index, "best_gt": table["best_gt"]}
    if n_boot:
        row |= {f"{m}_{end}": table[f"{m}_{end}"] for m in METRICS for end in ("lo", "hi")}
        runs = scores[scores.config.isin(common)]
        if runs.groupby("run")["config"].nunique().eq(len(common)).all():  # every run scores every config
            ci = seed_bootstrap_ci(gt_runs[gt_runs.config.isin(common)], runs, n_boot=n_boot, seed=seed)
            row |= {f"{m}_seed_{end}": ci.at[m, end] for m in METRICS for end in ("lo", "hi")}
    truth = selected.selected_config.map(gt).astype(float)
    if len(selected) == 1:
        row["selected"] = selected.selected_config.iloc[0]
    if len(truth) and truth.notna().all():
        row |= {"selected_gt": truth.mean(), "selected_regret": gt[common].max() - truth.mean()}
    return row


def ranking_rows(gt: pd.DataFrame, evals: pd.DataFrame, search: pd.DataFrame, n_boot: int, seed: int) -> list[dict]:
    """Per search (dataset, backbone, search): one row (search_seed empty) for the scores averaged over seeds,
    with intervals over configs and, when every run scored every config, over configs and seeds; then one row
    per search seed, without intervals."""
    rows = []
    if evals.empty or gt.empty:
        return rows
    scored = evals[evals.score.notna()]
    for (dataset, backbone, name), group in scored.groupby(["dataset", "backbone", "search"], sort=True):
        gt_runs = gt[(gt.dataset == dataset) & (gt.backbone == backbone)].rename(columns={"test_acc": "value"})
        if gt_runs.empty:
            continue
        first = group.iloc[0]
        keys = {k: first[k] for k in SEARCH_KEYS}
        runs = group.rename(columns={"score": "value", "seed": "run"})[["config", "run", "value"]]
        picks = search[(search.dataset == dataset) & (search.backbone == backbone) & (search.search == name)]
        row = _ranking_row(keys | {"search_seed": None}, gt_runs[["config", "value"]], runs, n_boot, seed, picks)
        rows += [row] if row else []
        for run, one in runs.groupby("run", sort=True):
            row = _ranking_row(keys | {"search_seed": run}, gt_runs[["config", "value"]], one, 0, seed,
                               picks[picks.seed == run])
            rows += [row] if row else []
    return rows


# --- writing ------------------------------------------------------------------------------------------------


def _frame(rows: list[dict], name: str, sort: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS[name])
    for column in frame.columns:
        if column in INT_COLUMNS:
            frame[column] = pd.to_numeric(frame[column]).astype("Int64")
        elif column in ("assigned",):
            frame[column] = frame[column].astype("boolean")
    return frame.sort_values(sort, na_position="first", kind="stable", ignore_index=True) if len(frame) else frame


def collect(results: str | Path, n_boot: int = 2000, seed: int = 0, profile=None, data_dir=None
            ) -> dict[str, pd.DataFrame]:
    """All tidy tables of one results folder (records checked against `profile` and the caches in `data_dir`, see
    `records`), by file stem."""
    train, searches = records(results, "train", profile, data_dir), records(results, "search", profile, data_dir)
    variant_runs, train = [t for t in train if t.get("variant")], [t for t in train if not t.get("variant")]
    beyond, searches = [s for s in searches if s.get("pooling")], [s for s in searches if not s.get("pooling")]
    out = {"groundtruth": _frame(groundtruth_rows(train), "groundtruth", KEYS + ["index", "seed"])}
    order = SEARCH_KEYS[:4]
    out["search"] = _frame(search_rows(searches), "search", KEYS + ["method", "models", "candidates", "seed"])
    out["search_eval"] = _frame([row for r in searches for row in _config_scores(r)], "search_eval",
                                order + ["seed", "index", "model"])
    out["search_epochs"] = _frame([row for r in searches for row in epoch_rows(r)], "search_epochs",
                                  order + ["seed", "epoch"])
    out["retrain"] = _frame(retrain_rows(searches, train), "retrain", order + ["search_seed", "seed"])
    with warnings.catch_warnings():  # a resample of tied configs has no correlation: stats drops it (NaN)
        warnings.simplefilter("ignore", ConstantInputWarning)
        ranking = ranking_rows(out["groundtruth"], out["search_eval"], out["search"], n_boot, seed)
    out["ranking"] = _frame(ranking, "ranking", order + ["search_seed"])
    if beyond or variant_runs:
        out[plan.EXTENSION_CSV] = _frame(extension_rows(beyond, variant_runs), plan.EXTENSION_CSV,
                                         KEYS + ["config", "search", "search_seed", "role", "seed"])
    return out


def to_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n", float_format=FLOAT_FORMAT)


def write(results: str | Path, frames: dict[str, pd.DataFrame]) -> list[Path]:
    paths = [Path(results) / f"{name}.csv" for name in frames]
    # all written, then all renamed: a kill mid-way never leaves tables a mix of new and stale CSVs
    write_together({path: to_csv(frame).encode("utf-8") for path, frame in zip(paths, frames.values())})
    if plan.EXTENSION_CSV not in frames:  # no such records (any more): no extensions.csv, not even a stale one
        (Path(results) / f"{plan.EXTENSION_CSV}.csv").unlink(missing_ok=True)
    return paths


def load(results: str | Path, names=plan.CSVS) -> dict[str, pd.DataFrame]:
    """Read the aggregated CSVs back (what tables, figures and verify consume)."""
    out = {}
    for name in names:
        path = Path(results) / f"{name}.csv"
        if not path.is_file():
            raise UsageError(f"{path} does not exist; run `python -m poolnas aggregate --results {results}` first")
        dtypes = {c: "Int64" for c in INT_COLUMNS if c in COLUMNS[name]} | {"selected_path": str, "code": str}
        frame = pd.read_csv(path, dtype={c: t for c, t in dtypes.items() if c in COLUMNS[name]})
        if list(frame.columns) != COLUMNS[name]:
            raise UsageError(f"{path} has other columns than this version writes; re-run "
                             f"`python -m poolnas aggregate --results {results}`")
        if "assigned" in frame:
            frame["assigned"] = frame["assigned"].astype("boolean")
        out[name] = frame
    return out


def study_dataset(frames: dict[str, pd.DataFrame], backbone: str, preferred: str | None = None) -> str | None:
    """The dataset whose results stand in for the paper's on a backbone: `preferred` when it has records, else
    the alphabetically first dataset with any record for that backbone; None when there is none."""
    found = sorted({d for name in ("groundtruth", "search") if name in frames
                    for d in frames[name].loc[frames[name].backbone == backbone, "dataset"]})
    return preferred if preferred in found else (found[0] if found else None)
