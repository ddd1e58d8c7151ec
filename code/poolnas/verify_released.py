"""`verify-released`: the paper's published numbers, claim by claim, against the authors' released data.

Recomputed numbers come from the released per-configuration file (or, for consistency checks, from other
published numbers); the published ones from paper/published/*.csv, read as text so that their printed precision
sets the tolerance: a recomputed value agrees when it rounds half-up to the printed value, unless a check says
otherwise.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pandas as pd

from poolnas.checks import Check, decimals, rounds_to
from poolnas.errors import UsageError
from poolnas.records import atomic_write_text
from poolnas.released import RELEASED_CSV, SPACE, rank_released, read_released
from poolnas.spaces import RELAXED, SPACES
from poolnas.stats import kendall_tau

PUBLISHED_FILES = ("table1", "table2", "table3", "table4", "figure1", "figure3", "compute")
# Rows of Table 1 and Table 2 that name the same method (our reading of the two tables' labels).
SAME_METHOD = {"Default": "Default", "DARTS fully shared": "DARTS", "SPOS fully shared": "SPOS",
               "Balanced Mixtures": "Balanced Mixtures"}
# Published ResNet20 picks of a search with M SuperNets (M = 1 is SPOS fully shared): (M, table, method).
PUBLISHED_PICKS = [(4, "table1", "Balanced Mixtures"), (4, "table2", "Balanced Mixtures"),
                   (1, "table1", "SPOS fully shared"), (1, "table2", "SPOS")]
SECTION_NOTES = {
    "Figure 3": "Kendall tau-b of the (ground-truth mean, mean SuperNet score) pairs of all configs, per M. The "
                "intervals resample configs; the file has no per-seed values, so seed noise is not in them.",
    "Table 2": "Each named architecture's printed mean and std against the released ground truth of that config.",
    "SuperNet picks": "The file has one score per config and M. The paper's selection rule, and whether its pick "
                      "came from a single search run, are unknown (decisions.md), so a different argmax is a "
                      "discrepancy to explain, not proof of an error.",
}
VERDICTS = {"agrees": "agrees", "mismatch": "**does not match**", "note": "note", "unchecked": "not checkable"}


def read_published(directory: str | Path) -> dict[str, pd.DataFrame]:
    """Every published CSV as text (empty string for an empty cell), so printed digits survive."""
    directory = Path(directory)
    missing = [f"{name}.csv" for name in PUBLISHED_FILES if not (directory / f"{name}.csv").is_file()]
    if missing:
        raise UsageError(f"{directory} lacks {', '.join(missing)}; expected the published-numbers folder")
    return {name: pd.read_csv(directory / f"{name}.csv", dtype=str, keep_default_na=False)
            for name in PUBLISHED_FILES}


def _compare(key, section, claim, printed: str, ours: float, digits: int, tol: float | None = None,
             context: str = "") -> Check:
    """A numeric claim. Agrees when ours rounds (half-up) to the printed value, or, given `tol`, when
    |ours - printed| <= tol."""
    diff = ours - float(printed)
    if tol is None:
        ok, tolerance = rounds_to(ours, printed), f"rounding to {decimals(printed)} dp"
    else:
        ok, tolerance = abs(diff) <= tol, f"within ±{tol:g}"
    shown = round(diff, digits) or 0.0  # `or 0.0`: float noise like -5e-15 prints +0.00, not -0.00
    return Check(key, section, claim, printed, f"{ours:.{digits}f}{context}", f"{shown:+.{digits}f}", tolerance,
                 "agrees" if ok else "mismatch")


def _gt(tidy: pd.DataFrame) -> pd.DataFrame:
    """Ground truth per config: index, config, gt_mean, gt_std (one row per config)."""
    return tidy.drop_duplicates("index").set_index("config")[["index", "gt_mean", "gt_std"]]


def figure3_checks(tidy, pub, n_boot: int, seed: int) -> list[Check]:
    """Published Kendall tau per M vs the one recomputed from the released columns."""
    ranks = rank_released(tidy, n_boot=n_boot, seed=seed).set_index("M")
    columns = {"gt": tidy.drop_duplicates("index").set_index("index")["gt_mean"]}
    columns |= {f"M{m} score": g.set_index("index")["supernet_mean"] for m, g in tidy.groupby("models")}
    pair_tau = {(a, b): kendall_tau(columns[a], columns[b]) for a, b in itertools.combinations(columns, 2)}
    checks, truncated = [], []
    for row in pub["figure3"].itertuples():
        if (m := int(row.models)) not in ranks.index:
            checks.append(Check(f"figure3.tau.M{m}", "Figure 3", f"Kendall tau, M={m}", row.kendall_tau,
                                verdict="unchecked"))
            continue
        tau = ranks.at[m, "kendall_tau"]
        ci = f" (95% CI {ranks.at[m, 'kendall_tau_lo']:.2f}..{ranks.at[m, 'kendall_tau_hi']:.2f})" if n_boot else ""
        check = _compare(f"figure3.tau.M{m}", "Figure 3", f"Kendall tau-b of M={m} score vs ground truth",
                         row.kendall_tau, tau, 3, tol=0.01, context=ci)
        checks.append(check)
        if float(row.kendall_tau) == int(tau * 1000) / 1000 != round(tau, 3):
            truncated.append(f"M={m}")
        if check.verdict == "mismatch":  # which released pair of columns has a tau closest to the printed one?
            (a, b), near = min(pair_tau.items(), key=lambda kv: abs(kv[1] - float(row.kendall_tau)))
            checks.append(Check(f"figure3.nearest.M{m}", "Figure 3", f"released column pair whose tau is closest "
                                f"to the published M={m} value (a coincidence is possible)", row.kendall_tau,
                                f"tau({a}, {b}) = {near:.3f}"))
    if truncated:
        checks.append(Check("figure3.digits", "Figure 3", "printed digits", "3 decimals",
                            f"{', '.join(truncated)} print the recomputed tau truncated, not rounded"))
    return checks


def figure1_checks(tidy, pub) -> list[Check]:
    """Standalone accuracies of early and late pooling vs the released ground truth."""
    gt, checks = _gt(tidy), []
    for row in pub["figure1"].itertuples():
        key, claim = f"figure1.{row.setting}.{row.config}", f"{row.config} {row.setting} accuracy"
        if row.setting == "standalone" and row.config in gt.index:
            checks.append(_compare(key, "Figure 1", claim + " vs released gt mean", row.acc,
                                   gt.at[row.config, "gt_mean"], 4))
        else:
            checks.append(Check(key, "Figure 1", claim + " (protocol unknown; not in the released file)",
                                row.acc, verdict="unchecked"))
    return checks


def _row(pub, table: str, method: str) -> pd.Series:
    rows = pub[table][pub[table].method == method]
    if rows.empty:
        raise UsageError(f"published {table}.csv has no row for method {method!r}")
    return rows.iloc[0]


def architecture_checks(tidy, pub, table: str) -> list[Check]:
    """Each named ResNet20 architecture's published mean and std vs the released gt of that config."""
    gt, checks, section = _gt(tidy), [], table.replace("table", "Table ")
    for row in pub[table].itertuples():
        paths = f" ({row.paths} paths)" if getattr(row, "paths", "1") != "1" else ""
        name, key = f"{row.method} {row.architecture}".strip() + paths, f"{table}.{row.method}{paths}"
        if row.architecture not in gt.index:
            checks.append(Check(key, section, f"{name}: architecture not among the 36 configs",
                                f"{row.acc_mean} ± {row.acc_std}", verdict="unchecked"))
            continue
        name += f" (#{gt.at[row.architecture, 'index']})"
        for stat in ("mean", "std"):
            checks.append(_compare(f"{key}.{stat}", section, f"{name}: {stat} vs released gt {stat}",
                                   getattr(row, f"acc_{stat}"), gt.at[row.architecture, f"gt_{stat}"], 4))
    if table == "table2":
        best = gt["gt_mean"].idxmax()
        brute = _row(pub, "table2", "Best conf. (Bruteforce)").architecture
        checks.append(Check("table2.bruteforce", section, "Best conf. (Bruteforce) is the argmax of the ground truth",
                            brute, f"{best} (#{gt.at[best, 'index']}, {gt.at[best, 'gt_mean']:.4f})",
                            tolerance="same config", verdict="agrees" if best == brute else "mismatch"))
        named = pub[table][pub[table].architecture.isin(gt.index)]
        ratio = named.acc_std.astype(float).to_numpy() / gt.loc[named.architecture, "gt_std"].to_numpy()
        checks.append(Check("table2.std_ratio", section, "published std / released gt std over the named configs "
                            "(one std convention, e.g. n vs n-1 divisor, would give a single constant ratio)",
                            ", ".join(named.acc_std), f"{ratio.min():.2f} .. {ratio.max():.2f}"))
    return checks


def consistency_checks(tidy, pub) -> list[Check]:
    """The published numbers against each other: Table 1 vs Table 2, path counts, identical rows, Table 3 gaps."""
    gt, t1, t2, checks = _gt(tidy), pub["table1"], pub["table2"], []
    means = t2.sort_values("rank", key=lambda r: r.astype(int)).acc_mean.astype(float)
    checks.append(Check("table2.order", "Table 2", "rows are in order of accuracy", "rank 1..10",
                        "non-decreasing" if means.is_monotonic_increasing else "out of order",
                        verdict="agrees" if means.is_monotonic_increasing else "mismatch"))
    for m1, m2 in SAME_METHOD.items():
        a, b = _row(pub, "table1", m1), _row(pub, "table2", m2)
        for col in ("architecture", "acc_mean", "acc_std"):
            if a[col] or b[col]:
                same = a[col] == b[col] if col == "architecture" else float(a[col]) == float(b[col])
                checks.append(Check(f"t1t2.{m2}.{col}", "Table 1 vs Table 2", f"{m1} (T1) vs {m2} (T2): {col}",
                                    f"{a[col] or '-'} (T1) / {b[col] or '-'} (T2)", tolerance="equal as printed",
                                    verdict="agrees" if same else "mismatch"))
    for printed, rows in t1.groupby("paths"):
        space_size = min((1, len(SPACE), len(RELAXED)), key=lambda n: abs(n - int(printed)))
        if space_size > 1:  # a single config (Default) has nothing to count
            checks.append(Check(f"table1.paths.{printed}", "Table 1", f"paths of {', '.join(rows.method)}",
                                printed, f"{space_size} (spaces: {len(SPACE)} configs, 3^9 = {len(RELAXED)} paths)",
                                f"{int(printed) - space_size:+d}", "equal",
                                "agrees" if int(printed) == space_size else "mismatch"))
    for name, table in (("Table 1", t1), ("Table 2", t2)):
        named = table[table.architecture != ""]
        for (arch, mean, std), rows in named.groupby(["architecture", "acc_mean", "acc_std"]):
            if len(rows) > 1:
                labels = "; ".join(r.method + (f" ({r.paths} paths)" if "paths" in r else "")
                                   for _, r in rows.iterrows())
                checks.append(Check(f"identical.{name}.{arch}", name, f"identical rows: {labels}",
                                    f"{arch} {mean} ± {std}", f"released gt of {arch}: {gt.at[arch, 'gt_mean']:.4f} "
                                    f"± {gt.at[arch, 'gt_std']:.2f}; identical numbers are expected if each row "
                                    "reports the ground truth of the config it found"))
    for row in pub["table3"].itertuples():
        checks.append(_compare(f"table3.gap.{row.Index}", "Table 3", f"gap = improved - baseline, {row.method} "
                               f"{row.dataset}/{row.backbone}", row.gap,
                               float(row.improved_mean) - float(row.baseline_mean), 2))
    return checks


def pick_checks(tidy, pub) -> list[Check]:
    """What each M's mean SuperNet score picks, and the paper's ResNet20 picks against it."""
    ranks, checks = rank_released(tidy, n_boot=0).set_index("M"), []
    for m, r in ranks.iterrows():
        checks.append(Check(f"pick.M{m}", "SuperNet picks", f"argmax of the mean M={m} SuperNet score", "",
                            f"{r.pick} (#{r.pick_index}): gt {r.pick_gt:.2f}, regret {r.regret:.2f} "
                            f"vs best {r.best} {r.best_gt:.2f}"))
    for m, table, method in PUBLISHED_PICKS:
        if m in ranks.index:
            arch = _row(pub, table, method).architecture
            scores = tidy[tidy.models == m].set_index("config")["supernet_mean"].sort_values(ascending=False)
            place = scores.index.get_loc(arch) + 1
            checks.append(Check(f"pick.{table}.{method}", "SuperNet picks", f"{method} "
                                f"({table.replace('table', 'Table ')}) pick vs argmax of the M={m} score", arch,
                                f"{ranks.at[m, 'pick']}; {arch} is #{place} of {len(scores)} by that score "
                                f"({scores[arch]:.2f} vs top {scores.iloc[0]:.2f})", tolerance="same config",
                                verdict="agrees" if ranks.at[m, "pick"] == arch else "mismatch"))
    return checks


def other_checks(pub) -> list[Check]:
    """Published claims this file cannot test, with what can be said from the published numbers alone."""
    searched = pub["table4"][pub["table4"].models != ""]
    one_block = [a for a in searched.architecture if SPACES["resnet50"].parse(a).parts[-1] == 1]
    return [Check("table4.last_stage", "Not in the released file", "Table 4 (Food101) searched picks with a "
                  "1-block last stage (two downsamplings under the released ResNet50 indexing bug)",
                  ", ".join(searched.architecture), f"{len(one_block)} of {len(searched)}: {', '.join(one_block)}"),
            Check("table3.values", "Not in the released file", "Table 3 and Table 4 accuracies, GPU-hours",
                  "see paper/published", verdict="unchecked")]


def verify(tidy: pd.DataFrame, pub: dict[str, pd.DataFrame], n_boot: int = 2000, seed: int = 0) -> list[Check]:
    """All checks, in report order."""
    return (figure3_checks(tidy, pub, n_boot, seed) + figure1_checks(tidy, pub)
            + architecture_checks(tidy, pub, "table2") + architecture_checks(tidy, pub, "table1")
            + consistency_checks(tidy, pub) + pick_checks(tidy, pub) + other_checks(pub))


def render_markdown(checks: list[Check], source: Path, n_boot: int, seed: int) -> str:
    """The report: a summary of what does not match, then one table per section."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    counts = pd.Series([c.verdict for c in checks]).value_counts()
    lines = ["## Published numbers vs the authors' released per-configuration data", "",
             f"Generated by `python -m poolnas verify-released {source.name} --bootstrap {n_boot} --seed {seed}` "
             f"(input sha256 {digest}...; published numbers from `paper/published/`). \"Recomputed\" values come "
             "from that file (ground truth = `baseline_avg`/`baseline_stdev`, SuperNet score = `M<m>_avg`) or, in "
             "consistency checks, from other published numbers. A value agrees when, rounded half-up to the printed "
             "decimals, it equals the printed one; a Kendall tau agrees within ±0.01. Intervals: 95% percentile "
             "bootstrap over configs.", "", "### Summary", "",
             f"- Checks: {counts.get('agrees', 0)} agree, {counts.get('mismatch', 0)} do not match, "
             f"{counts.get('unchecked', 0)} not checkable with this file, {counts.get('note', 0)} notes."]
    for stat in ("mean", "std"):
        named = [c for c in checks if c.section in ("Table 1", "Table 2") and c.key.endswith(f".{stat}")]
        lines.append(f"- Named ResNet20 architectures of Tables 1-2: {sum(c.verdict == 'agrees' for c in named)} of "
                     f"{len(named)} printed {stat}s agree with the released ground truth of that config.")
    lines += ["", "### What does not match", ""]
    lines += [f"- {c.section}: {c.claim}: published {c.published}" + (f", recomputed {c.ours}" if c.ours else "")
              + (f" (difference {c.difference}; agrees if {c.tolerance})" if c.difference else "")
              for c in checks if c.verdict == "mismatch"] or ["- nothing"]
    for section in dict.fromkeys(c.section for c in checks):
        lines += ["", f"### {section}", ""] + ([SECTION_NOTES[section], ""] if section in SECTION_NOTES else [])
        lines += ["| Claim | Published | Recomputed | Difference | Agrees if | Verdict |",
                  "|---|---|---|---|---|---|"]
        lines += [c.markdown_row(VERDICTS[c.verdict]) for c in checks if c.section == section]
    return "\n".join(lines) + "\n"


# --- command line -------------------------------------------------------------------------------------------


def register(sub) -> None:
    p = sub.add_parser("verify-released", help="check the published numbers against the released per-config data",
                       description="Compare, claim by claim, the paper's published numbers with what the authors' "
                                   "released per-configuration ResNet20 table implies; write a Markdown section.")
    p.add_argument("path", nargs="?", default=RELEASED_CSV,
                   help=f"the released per-configuration CSV (default {RELEASED_CSV})")
    p.add_argument("--published", default="paper/published", help="folder of published-number CSVs")
    p.add_argument("--out", default=None, help="Markdown file to write (atomically); stdout when omitted")
    p.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(func=_cli_verify)


def _cli_verify(args) -> int:
    if args.bootstrap < 0:
        raise UsageError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    tidy, pub = read_released(args.path), read_published(args.published)
    text = render_markdown(verify(tidy, pub, args.bootstrap, args.seed), Path(args.path), args.bootstrap, args.seed)
    if args.out:
        atomic_write_text(args.out, text)
    else:
        print(text, end="")
    return 0
