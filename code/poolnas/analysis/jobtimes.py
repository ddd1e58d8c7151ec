"""Job time of a profile's runs, per rule and per search or backbone, from Snakemake's benchmark files.

Every training and search job writes `results/<profile>/benchmarks/<rule>/<dataset>/<backbone>/<name>/seed<S>.tsv`
(the rules' `benchmark:` directive; column `s` is the job's wall time in seconds). The sum over jobs is the job time
a profile costs on the machine that ran it; the DAG's wall time is shorter when jobs ran side by side, and is not in
these files. Used for the README's per-rule times:

    python -m poolnas.analysis.jobtimes results/mini
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

COLUMNS = ["rule", "dataset", "group", "jobs", "total_min", "median_s", "min_s", "max_s"]


def read_benchmarks(folder: str | Path) -> pd.DataFrame:
    """One row per benchmark file: rule, dataset, backbone, name (config slug[/variant] or search), seed, seconds."""
    folder = Path(folder)
    rows = []
    for path in sorted(folder.glob("*/*/*/**/seed*.tsv")):
        rule, dataset, backbone, *name = path.relative_to(folder).parent.parts
        table = pd.read_csv(path, sep="\t")
        if "s" not in table or table.empty:
            raise ValueError(f"{path}: not a Snakemake benchmark file (needs a column `s` and one row per repeat)")
        rows.append({"rule": rule, "dataset": dataset, "backbone": backbone, "name": "/".join(name),
                     "seed": int(path.stem.removeprefix("seed")), "seconds": float(table["s"].iloc[0])})
    return pd.DataFrame(rows, columns=["rule", "dataset", "backbone", "name", "seed", "seconds"])


def summarise(jobs: pd.DataFrame) -> pd.DataFrame:
    """Job time per rule and group: a search's name (its seeds together), or a training job's backbone, with a
    `/variant` suffix for issue 17's retrainings of learned groups and widths (a name with a variant level)."""
    if jobs.empty:
        return pd.DataFrame(columns=COLUMNS)
    train = jobs.rule == "train"
    variant = jobs.name.str.contains("/")
    group = jobs.name.where(~train, jobs.backbone + variant.map({True: "/variant", False: ""}))
    g = jobs.assign(group=group).groupby(["rule", "dataset", "group"], sort=True).seconds
    out = pd.DataFrame({"jobs": g.size(), "total_min": g.sum() / 60, "median_s": g.median(), "min_s": g.min(),
                        "max_s": g.max()}).reset_index()
    return out[COLUMNS]


def render(summary: pd.DataFrame, folder: str) -> str:
    if summary.empty:
        return f"no benchmark files under {folder}"
    totals = summary.groupby("rule").agg(jobs=("jobs", "sum"), total_min=("total_min", "sum"))
    lines = [f"Job time from {folder} (Snakemake benchmark files; a job's wall time, summed over jobs):",
             summary.to_string(index=False, float_format=lambda x: f"{x:.1f}"), ""]
    lines += [f"{rule}: {int(t.jobs)} jobs, {t.total_min:.1f} min of job time" for rule, t in totals.iterrows()]
    lines.append(f"all: {int(totals.jobs.sum())} jobs, {totals.total_min.sum():.1f} min "
                 f"({totals.total_min.sum() / 60:.2f} h) of job time")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m poolnas.analysis.jobtimes results/<profile>", file=sys.stderr)
        return 2
    folder = Path(argv[0]) / "benchmarks"
    if not folder.is_dir():
        print(f"error: {folder} does not exist (a profile's results folder has benchmarks/ once a job has run)",
              file=sys.stderr)
        return 2
    try:
        print(render(summarise(read_benchmarks(folder)), str(folder)))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
