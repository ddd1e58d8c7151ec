"""Job time of a profile's runs, per rule and per search or backbone, from Snakemake's benchmark files.

Every training and search job writes `results/<profile>/benchmarks/<rule>/<dataset>/<backbone>/<name>/seed<S>.tsv`
(the rules' `benchmark:` directive; column `s` is the job's wall time in seconds). The sum over jobs is the job time
a profile costs on the machine that ran it; the DAG's wall time is shorter when jobs ran side by side, and is not in
these files. Used for the README's per-rule times:

    python -m poolnas.analysis.jobtimes results/mini

A study that has not run yet is priced from one that has (`--predict DATASET --like REFERENCE --image-size N`):
each of its planned jobs takes the reference's measured median for the same job (a config's training, a search
by name), scaled by the forward multiply-adds per image (torch's FLOP counter at the new image size against the
reference records' `macs`) and by the number of training images. Retraining whose seeds are ground-truth seeds
reuses those records and costs nothing. A prediction, printed before the runs; the measured job time afterwards:

    python -m poolnas.analysis.jobtimes results/mini --predict fashion-mnist --like glyphs --image-size 28
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from poolnas import plan, settings
from poolnas.arch.spaces import get_space
from poolnas.errors import UsageError

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


def render(summary: pd.DataFrame, folder: str, title: str | None = None) -> str:
    if summary.empty:
        return f"no benchmark files under {folder}"
    totals = summary.groupby("rule").agg(jobs=("jobs", "sum"), total_min=("total_min", "sum"))
    lines = [title or f"Job time from {folder} (Snakemake benchmark files; a job's wall time, summed over jobs):",
             summary.to_string(index=False, float_format=lambda x: f"{x:.1f}"), ""]
    lines += [f"{rule}: {int(t.jobs)} jobs, {t.total_min:.1f} min of job time" for rule, t in totals.iterrows()]
    lines.append(f"all: {int(totals.jobs.sum())} jobs, {totals.total_min.sum():.1f} min "
                 f"({totals.total_min.sum() / 60:.2f} h) of job time")
    return "\n".join(lines)


def planned_jobs(profile: settings.Settings, dataset: str) -> pd.DataFrame:
    """rule, backbone, name, seed of every training and search job of the profile's study on `dataset` (retraining
    on seeds outside the ground truth's is priced as the default config, one job per search and seed)."""
    studies = [s for s in profile.studies if s["dataset"] == dataset]
    if not studies:
        raise ValueError(f"profile {profile.name} has no study on {dataset}")
    rows = []
    for study in studies:
        backbone = study["backbone"]
        gt_seeds = study["groundtruth"]["seeds"]
        rows += [("train", backbone, c.slug, seed) for c in settings.groundtruth_configs(study) for seed in gt_seeds]
        for name in plan.search_names(study):
            seeds = plan.search_seeds(study, name)
            rows += [("search", backbone, name, seed) for seed in seeds]
            extra = [s for s in study.get("retrain", {}).get("seeds", []) if s not in gt_seeds]
            default = get_space(backbone).default.slug
            rows += [("train", backbone, default, s) for _ in seeds for s in extra]
    return pd.DataFrame(rows, columns=["rule", "backbone", "name", "seed"])


def predict(results: str | Path, dataset: str, like: str, image_size: int,
            profile: str | settings.Settings | None = None) -> pd.DataFrame:
    """Predicted seconds of each planned job on `dataset`, from the measured jobs on `like` (module docstring).
    The profile is the results folder's name (results/<profile>) unless given."""
    from poolnas.arch.cost import count_macs  # torch: only for a prediction

    results = Path(results)
    profile = settings.resolve(profile or results.name)
    jobs = read_benchmarks(results / "benchmarks")
    measured = jobs[jobs.dataset == like].groupby(["rule", "backbone", "name"]).seconds.median()
    images = profile.dataset_params(dataset)["train"] / profile.dataset_params(like)["train"]

    def scale(backbone: str, slug: str) -> float:
        path = plan.TRAIN_RECORD.format(runs=results / "runs", dataset=like, backbone=backbone, config=slug, seed=0)
        macs = json.loads(Path(path).read_text())["macs"]
        return images * count_macs(backbone, get_space(backbone).parse(slug), image_size=image_size) / macs

    planned = planned_jobs(profile, dataset)
    keys = list(planned[["rule", "backbone", "name"]].itertuples(index=False, name=None))
    missing = sorted({k for k in keys if k not in measured})
    if missing:
        raise ValueError(f"{like} has no measured job like {missing[0]} ({len(missing)} kinds of job missing)")
    seconds = [measured[(r, b, n)] * scale(b, n if r == "train" else get_space(b).default.slug) for r, b, n in keys]
    return planned.assign(dataset=dataset, seconds=seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m poolnas.analysis.jobtimes", description=__doc__.split("\n")[0])
    parser.add_argument("results", help="a profile's results folder, results/<profile>")
    parser.add_argument("--predict", metavar="DATASET", help="price this study's planned jobs instead")
    parser.add_argument("--like", metavar="DATASET", help="the measured study to price it from")
    parser.add_argument("--image-size", type=int, help="the predicted study's image side, in pixels")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    folder = Path(args.results) / "benchmarks"
    if not folder.is_dir():
        print(f"error: {folder} does not exist (a profile's results folder has benchmarks/ once a job has run)",
              file=sys.stderr)
        return 2
    if args.predict and (not args.like or not args.image_size or args.image_size < 1):
        print("error: --predict needs --like DATASET and --image-size N (N >= 1)", file=sys.stderr)
        return 2
    try:
        if args.predict:
            jobs = predict(args.results, args.predict, args.like, args.image_size)
            title = f"Predicted from {args.like}'s measured jobs, scaled to {args.predict} at {args.image_size} px"
            print(render(summarise(jobs), str(folder), title=title))
        else:
            print(render(summarise(read_benchmarks(folder)), str(folder)))
    except (ValueError, UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
