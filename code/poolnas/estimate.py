"""Job counts and estimated GPU-hours of a profile, from forward FLOPs (arch.cost) and effective GPU rates.

`snakemake -n all --config profile=gpu1` prints this for the profile it runs (and the paper profile's total
beside it); `python -m poolnas.estimate gpu1 paper` prints it alone.

Cost of a job, in FLOPs (a multiply-add is 2 FLOPs; a training step costs 3 forward passes: forward, backward
of activations and of weights):
    train    epochs x train images x 3 x 2 x MACs(config), plus each test evaluation (eval_every, the last epoch)
    search   epochs run x search-train images x (3 + 1) x 2 x mean MACs over the space (one training step and one
             validation minibatch per step: mixture, SPOS, MCTS, SBE), DARTS x 3 (the three resolutions of every
             block) + an alpha step; random search 3 instead of 3 + 1; plus the final evaluation of every
             (config, model) pair on the search-validation half (mixture: configs x M; samplers: configs)
    retrain  every search's pick x the retrain seeds (an upper bound: picks shared by searches are retrained
             once), priced as the default config (the picks are not known before the searches run)
    groups/widths  the searches beyond the pooling (issue 17) as standalone training of the default config on the
             search-train half: dgconv its epochs, conet trials x trial epochs, plus a search-validation pass at the
             end (conet: per trial); their retraining: what each found and its comparison x the retrain seeds
Rates (effective FLOP/s of one V100-class GPU, calibrated on the authors' released compute, paper.md section 6):
    ResNet20 standalone: the released default [4,3,3], 200 epochs of 50,000 CIFAR10 images, took 1.5 GPU-hours;
    ResNet20 search: the released balanced mixture (M = 4, 101 epochs) took 6 GPU-hours (the search loop
    uses the GPU less well: small batches, a host sync per step, configs switching);
    ResNet18/50: assumed 10x ResNet20's rates (wider layers keep a GPU busy; not calibrated: the released
    Food101 figures, e.g. 2 GPU-hours for the default, are not consistent with 90 epochs at 224 pixels on a V100).
These are estimates for planning (a newer GPU is faster; `gpu_slots` > 1 runs several small jobs at once), not
measurements; `make gpu-check` measures the rates of one GPU.
"""

from __future__ import annotations

import csv
import sys
from functools import lru_cache
from pathlib import Path

from poolnas import plan, settings
from poolnas.search import methods
from poolnas.arch.spaces import RELAXED, get_space

HOUR = 3600.0
SIZES = {"cifar10": (50_000, 10_000, 32), "cifar100": (50_000, 10_000, 32), "food101": (75_750, 25_250, 224)}
RELEASED_TRAIN_HOURS, RELEASED_SEARCH_HOURS = 1.5, 6.0  # ResNet20 default 200 epochs; mixture M = 4, 101 epochs
BIG_BACKBONE_SPEEDUP = 10.0
PUBLISHED_COMPUTE = Path(__file__).resolve().parents[2] / plan.PUBLISHED / "compute.csv"
# The authors' M = 8 Food101 search log (experiments/Pooling Experiments/Food101/output_mm_62686939.txt): 601 epochs
# trained in 15:04:06, then 100 (config, SuperNet) pairs evaluated on the search-validation half in 0:51:03 (the 50
# configs with the highest max_m W and 50 random ones, each with its assigned SuperNet).
RELEASED_FOOD101_LOG = {"models": 8, "epochs_run": 601, "train_hours": 15.068, "eval_hours": 0.851, "pairs": 100}


def dataset_size(prof: settings.Settings, dataset: str) -> tuple[int, int, int]:
    """(train images, test images, image size) of a dataset."""
    if dataset in SIZES:
        return SIZES[dataset]
    p = prof.dataset_params(dataset)
    return p["train"], p["test"], p["size"]


@lru_cache(maxsize=None)
def macs(backbone: str, slug: str | None, image_size: int) -> float:
    """Forward MACs of one image: a config (slug), or the mean over the space (None)."""
    from poolnas.arch.cost import count_macs

    space = get_space(backbone)
    stem = "imagenet" if image_size >= 128 else "cifar"
    configs = list(space) if slug is None else [space.parse(slug)]
    return sum(count_macs(backbone, c, image_size, 10, stem) for c in configs) / len(configs)


def train_flops(epochs: int, n_train: int, n_test: int, evals: int, m: float) -> float:
    return 2 * m * (3 * epochs * n_train + evals * n_test)


def search_epochs_run(prof, backbone: str, dataset: str, name: str) -> int:
    """Epochs a search runs, with the profile's budget option resolved as the search itself resolves it."""
    method, models, candidates, budget_models = plan.parse_search_name(name)
    hp = methods.settings(prof.baselines(), method, prof.search(backbone, dataset))
    hp, _ = methods.scaled_budget(hp, methods.METHODS[method], models, candidates, budget_models)
    return hp["epochs"] + (1 if hp["extra_epoch"] else 0)


def search_flops_parts(name: str, epochs_run: int, n_train: int, configs: int, m: float) -> tuple[float, float]:
    """(training, final evaluation) FLOPs of one search."""
    method, models, candidates, _ = plan.parse_search_name(name)
    half = n_train // 2
    per_step = {"random": 3, "darts": 3 * 3 + 3}.get(method.split("-")[0], 3 + 1)
    return 2 * m * epochs_run * half * per_step, 2 * m * final_pairs(name, configs) * half


def final_pairs(name: str, configs: int) -> int:
    """(config, model) pairs a search evaluates on the whole search-validation half at its end (every one: the
    shortlist rule ranks the full evaluation, poolnas.search.balancing)."""
    method, models, candidates, _ = plan.parse_search_name(name)
    return configs * (models or 1) if method != "random" else (candidates or 1)


def search_flops(name: str, epochs_run: int, n_train: int, configs: int, m: float) -> float:
    return sum(search_flops_parts(name, epochs_run, n_train, configs, m))


@lru_cache(maxsize=None)
def rates() -> tuple[float, float]:
    """(train, search) effective FLOP/s of ResNet20 on one V100-class GPU, from the released compute."""
    default = macs("resnet20", get_space("resnet20").default.slug, 32)
    train = train_flops(200, 50_000, 10_000, 20, default) / (RELEASED_TRAIN_HOURS * HOUR)
    search = search_flops("mixture-M4", 101, 50_000, 36, macs("resnet20", None, 32)) / (RELEASED_SEARCH_HOURS * HOUR)
    return train, search


def rate(backbone: str, kind: str) -> float:
    train, search = rates()
    r = search if kind == "search" else train
    return r if backbone == "resnet20" else r * BIG_BACKBONE_SPEEDUP


def evaluations(hp: dict) -> int:
    every = hp.get("eval_every") or 0
    return (hp["epochs"] // every if every else 0) + 1


def estimate(profile) -> list[dict]:
    """One row per (study, kind): jobs and GPU-hours."""
    prof = settings.resolve(profile)
    rows = []
    for s in prof.studies:
        d, b = s["dataset"], s["backbone"]
        n_train, n_test, size = dataset_size(prof, d)
        hp = prof.protocol(b, d)
        configs = settings.groundtruth_configs(s)
        gt_seeds = len(s["groundtruth"]["seeds"])
        gt = sum(train_flops(hp["epochs"], n_train, n_test, evaluations(hp), macs(b, c.slug, size)) for c in configs)
        rows.append({"study": f"{d}/{b}", "kind": "groundtruth", "jobs": len(configs) * gt_seeds,
                     "hours": gt * gt_seeds / rate(b, "train") / HOUR})
        names = plan.search_names(s)
        jobs = sum(len(plan.search_seeds(s, n)) for n in names)
        flops = sum(search_flops(n, search_epochs_run(prof, b, d, n), n_train, len(get_space(b)), macs(b, None, size))
                    * len(plan.search_seeds(s, n)) for n in names)
        rows.append({"study": f"{d}/{b}", "kind": "search", "jobs": jobs, "hours": flops / rate(b, "search") / HOUR})
        retrain = jobs * len(s["retrain"]["seeds"])
        one = train_flops(hp["epochs"], n_train, n_test, evaluations(hp), macs(b, get_space(b).default.slug, size))
        rows.append({"study": f"{d}/{b}", "kind": "retrain (at most)", "jobs": retrain,
                     "hours": retrain * one / rate(b, "train") / HOUR})
        names = plan.extension_names(s)
        if names:  # beyond the pooling (issue 17): standalone-like trainings of the default config's cost
            ext, settings_ = s["extensions"], prof.extensions()
            half, m = n_train // 2, macs(b, get_space(b).default.slug, size)
            conet = settings_["conet"]
            cost = {"dgconv": train_flops(settings_["dgconv"]["epochs"] or hp["epochs"], half, half, 1, m),
                    "conet": train_flops(conet["trials"] * conet["trial_epochs"], half, half, conet["trials"], m)}
            seeds = len(ext["seeds"])
            rows.append({"study": f"{d}/{b}", "kind": "groups/widths", "jobs": len(names) * seeds,
                         "hours": seeds * sum(cost[plan.parse_extension_name(n)[0]] for n in names) / rate(b, "train")
                         / HOUR})
            runs = len(names) * seeds * 2 * len(ext.get("retrain_seeds", s["retrain"]["seeds"]))  # found, compared
            rows.append({"study": f"{d}/{b}", "kind": "their retrain (max)", "jobs": runs,
                         "hours": runs * one / rate(b, "train") / HOUR})
    return rows


def published_searches(path: Path = PUBLISHED_COMPUTE) -> dict[tuple[str, str, int], float]:
    """{(dataset, backbone, M): published GPU-hours} of the mixture searches the paper prices per M (Food101)."""
    if not path.is_file():
        return {}
    with path.open() as f:
        return {(r["dataset"], r["backbone"], int(r["models"])): float(r["gpu_hours"]) for r in csv.DictReader(f)
                if r["method"] == "Balanced Mixtures" and r["models"]}


def against_published(profile) -> list[dict]:
    """Each mixture search with a published GPU-hour figure: our estimate split into its training and its final
    evaluation, that evaluation at the pairs the release evaluated (RELEASED_FOOD101_LOG), and the published."""
    prof, published, rows = settings.resolve(profile), published_searches(), []
    for s in prof.studies:
        d, b = s["dataset"], s["backbone"]
        n_train, _, size = dataset_size(prof, d)
        for name in plan.search_names(s):
            method, models, _, _ = plan.parse_search_name(name)
            if method != "mixture" or (d, b, models) not in published:
                continue
            epochs = search_epochs_run(prof, b, d, name)
            train, evaluation = (f / rate(b, "search") / HOUR for f in
                                 search_flops_parts(name, epochs, n_train, len(get_space(b)), macs(b, None, size)))
            pairs = final_pairs(name, len(get_space(b)))
            rows.append({"study": f"{d}/{b}", "search": name, "epochs_run": epochs, "train": train, "eval": evaluation,
                         "pairs": pairs, "eval_at_released_pairs": evaluation * RELEASED_FOOD101_LOG["pairs"] / pairs,
                         "published": published[d, b, models]})
    return rows


def released_log_rate() -> float:
    """The ResNet50/Food101 search rate the authors' M = 8 log implies (its training FLOPs over its training
    hours), as a multiple of the ResNet20 search rate: a check on BIG_BACKBONE_SPEEDUP, never used to set it."""
    log_ = RELEASED_FOOD101_LOG
    train, _ = search_flops_parts(f"mixture-M{log_['models']}", log_["epochs_run"], SIZES["food101"][0], 1,
                                  macs("resnet50", None, SIZES["food101"][2]))
    return train / (log_["train_hours"] * HOUR) / rates()[1]


def report_against_published(profile) -> list[str]:
    rows = against_published(profile)
    if not rows:
        return []
    log_ = RELEASED_FOOD101_LOG
    lines = ["  against the published GPU-hours (paper/published/compute.csv): training + final evaluation of every "
             "(config, SuperNet) pair; in brackets that evaluation at the release's "
             f"{log_['pairs']} pairs (50 shortlisted + 50 random configs)"]
    at_log = BIG_BACKBONE_SPEEDUP / released_log_rate()  # hours at the log's rate per hour at the assumed one
    lines += [f"  {r['study']:<18} {r['search']:<12} {r['epochs_run']:>4} epochs: {r['train']:>7,.1f} + "
              f"{r['eval']:>7,.1f} ({r['pairs']:,} pairs) = {r['train'] + r['eval']:>7,.1f} GPU-h "
              f"[{r['eval_at_released_pairs']:.1f}]; at the log's rate {r['train'] * at_log:.1f} + "
              f"{r['eval'] * at_log:.1f} [{r['eval_at_released_pairs'] * at_log:.2f}]; published {r['published']:g}"
              for r in rows]
    lines.append(f"  the released M = {log_['models']} log trained {log_['epochs_run']} epochs in "
                 f"{log_['train_hours']:.1f} h and evaluated {log_['pairs']} pairs in {log_['eval_hours']:.2f} h (fp16): "
                 f"a ResNet50 search rate {released_log_rate():.0f}x ResNet20's, where this estimate assumes "
                 f"{BIG_BACKBONE_SPEEDUP:g}x")
    return lines


def report(profile) -> str:
    prof = settings.resolve(profile)
    rows = estimate(prof)
    total_jobs, total_hours = sum(r["jobs"] for r in rows), sum(r["hours"] for r in rows)
    lines = [f"profile {prof.name}: {total_jobs} training/search jobs (retraining at most), estimated "
             f"{total_hours:,.1f} GPU-hours on one V100-class GPU (poolnas.estimate: FLOPs at rates calibrated on "
             f"the released compute; not measured)"]
    lines += [f"  {r['study']:<18} {r['kind']:<18} {r['jobs']:>5} jobs {r['hours']:>10,.1f} GPU-h" for r in rows]
    return "\n".join(lines + report_against_published(prof))


def main(names: list[str]) -> None:
    for name in names or ["paper"]:
        print(report(name))


if __name__ == "__main__":
    main(sys.argv[1:])
