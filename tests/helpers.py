"""What several test modules share: paths, record comparison, a tiny profile, and a synthetic results factory.

Import it as `import helpers` (pyproject's pytest `pythonpath` puts tests/ on the path); fixtures live in
conftest.py.
"""

import json
from pathlib import Path

import numpy as np
import yaml

from poolnas.arch.spaces import SPACES
from poolnas.settings import PROFILE_DIR

REPO = Path(__file__).resolve().parents[1]
TIMING = {"train_seconds", "eval_seconds", "wall_seconds", "images_per_s", "provenance"}


class Stop(Exception):
    """Raised from an `after_epoch` hook to interrupt a run, as a crash would."""


def comparable(record: dict) -> dict:
    """A search record without its timings: what a rerun or a resumed run must reproduce exactly."""
    out = {k: v for k, v in record.items() if k not in TIMING}
    for key in ("epochs", "candidate_runs", "trials"):  # trials: CONet
        if key in out:
            out[key] = [{k: v for k, v in h.items() if k not in ("seconds", "eval_seconds")} for h in out[key]]
    return out


def tiny_profile(epochs: int) -> dict:
    """The smoke profile shrunk: 96 training images of 16x16 (48/48 split), batch 16, `epochs` search epochs."""
    profile = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    profile["profile"] = "tiny"
    profile["datasets"]["twoscale"] = {"train": 96, "test": 20, "size": 16, "classes": 4, "seed": 0}
    profile["search"]["resnet20"].update(epochs=epochs, batch_size=16, eval_batch_size=48)
    return profile


# --- synthetic results: records in the formats of poolnas.standalone and poolnas.search.run, with a planted
# signal, so that the analysis tests know the answers -----------------------------------------------------------

SPACE = SPACES["resnet20"]


def true_acc(config) -> float:
    """Planted ground truth: late pooling is better, peaking at [7,1,2]-like configs."""
    a, b, c = config.parts
    return 86.0 + 0.9 * a - 0.08 * a * a + 0.15 * b + (0.6 if (a, b, c) == (7, 1, 2) else 0.0)


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))


def train_record(dataset, backbone, config, seed, acc, epochs=3, batch=64, images=400, profile="synthetic"):
    history = [{"epoch": e, "lr": 0.1, "train_loss": 1.0 / e, "train_acc": 50.0 + e, "test_acc": None,
                "seconds": 2.0, "images": images} for e in range(1, epochs + 1)]
    history[-1]["test_acc"] = acc
    return {"kind": "train", "dataset": dataset, "backbone": backbone, "config": config.name,
            "index": config.index, "code": config.code, "seed": seed, "profile": profile, "test_acc": acc,
            "final_test_acc": acc, "best_test_acc": acc, "history": history, "epochs": epochs,
            "train_seconds": 2.0 * epochs, "images_per_s": images / 2.0, "params": 271802,
            "macs": int(1e6 * (10 + 2 * config.parts[0] ** 2 + config.parts[1])),
            "hparams": {"batch_size": batch, "epochs": epochs}, "options": {}, "provenance": {}}


def mixture_record(dataset, backbone, models, seed, gt: dict, noise: float, epochs=4, profile="synthetic"):
    """A mixture search whose assigned-model accuracy = 0.6 * gt + noise (less noise: better ranking)."""
    rng = np.random.default_rng(1000 * models + seed)
    space = SPACES[backbone]
    configs = list(space)
    score = np.array([0.6 * gt[c.name] + rng.normal(0, noise) for c in configs])
    assign = np.array([i % models for i in range(len(configs))])
    acc = np.array([[s if m == assign[i] else s - 2.0 - m for m in range(models)] for i, s in enumerate(score)])
    history, W = [], np.ones((len(configs), models))
    for e in range(epochs + 1):
        T = 1 + 99 * e / epochs
        W = np.where(np.arange(models)[None, :] == assign[:, None], 0.5 + 0.1 * e, 0.5)
        P = np.exp(T * (W - W.max(1, keepdims=True)))
        P /= P.sum(1, keepdims=True)
        counts = np.zeros((len(configs), models), int)
        counts[np.arange(len(configs)), assign] = 3
        history.append({"epoch": e, "temperature": T, "lr": 0.1, "W": W.tolist(), "counts": counts.tolist(),
                        "P": P.tolist(), "marginals": [], "train_loss": 1.0, "train_acc": 40.0, "val_acc": 35.0,
                        "steps": 10, "images": 640, "seconds": 1.5})
    best = int(np.argmax(score))
    return {"kind": "search", "method": "mixture", "models": models, "candidates": None, "dataset": dataset,
            "backbone": backbone, "seed": seed, "profile": profile,
            "selected": {"config": configs[best].name, "index": configs[best].index, "rule": "assigned"},
            "alternatives": {r: {"config": configs[best].name, "index": configs[best].index, "score": 1.0}
                             for r in ("assigned", "best_model", "ema")},
            "configs": [c.name for c in configs], "accuracy": acc.tolist(), "assignment": assign.tolist(),
            "P_final": history[-1]["P"], "W": W.tolist(), "counts": history[-1]["counts"], "epochs": history,
            "budget": {"total_steps": 10 * (epochs + 1), "steps_per_epoch": 10, "epochs_run": epochs + 1},
            "steps": 10 * (epochs + 1), "train_seconds": 7.5, "eval_seconds": 1.0, "wall_seconds": 8.5,
            "images_per_s": 400.0, "search_train": 200, "search_val": 200, "hparams": {}, "options": {},
            "provenance": {}}


def random_record(dataset, backbone, k, seed, gt: dict, profile="synthetic"):
    rng = np.random.default_rng(77 + seed)
    picks = [SPACES[backbone].configs[i] for i in rng.choice(len(SPACES[backbone]), k, replace=False)]
    accs = [0.5 * gt[c.name] + rng.normal(0, 0.3) for c in picks]
    best = picks[int(np.argmax(accs))]
    return {"kind": "search", "method": "random", "models": None, "candidates": k, "dataset": dataset,
            "backbone": backbone, "seed": seed, "profile": profile,
            "selected": {"config": best.name, "index": best.index, "rule": "best_val"},
            "configs": [c.name for c in picks], "accuracy": accs,
            "candidate_runs": [{"config": c.name, "index": c.index, "val_acc": a, "steps": 5} for c, a in
                               zip(picks, accs)],
            "budget": {"total_steps": 5 * k, "steps_per_epoch": 10, "epochs_run": 5},
            "steps": 5 * k, "train_seconds": 6.0, "eval_seconds": 1.0, "wall_seconds": 7.0, "images_per_s": 300.0,
            "search_train": 200, "search_val": 200, "hparams": {}, "options": {}, "provenance": {}}


def darts_record(dataset, seed, path="000111222", profile="synthetic"):
    """A DARTS search in search.darts's format: models null, the argmax path selected (no config when it is none)."""
    return {"kind": "search", "method": "darts", "models": None, "candidates": None, "dataset": dataset,
            "backbone": "resnet20", "seed": seed, "profile": profile,
            "selected": {"config": None, "index": None, "rule": "argmax_alpha", "path": path},
            "steps": 100, "wall_seconds": 20.0, "hparams": {}, "options": {}, "provenance": {}}


def make_results(root: Path, configs="all", gt_seeds=(0, 1, 2), models=(1, 2, 4, 8), search_seeds=(0, 1, 2),
                 random_k=4, darts=False, dataset="twoscale", noise_seed=0) -> Path:
    """A results/<profile> folder of synthetic records (their profile: the folder's name, as aggregate asks): ground truth for `configs` ("all" or indices), mixture
    searches per M (noise shrinking with M: the mixture ranks better), random search; returns the folder."""
    runs = root / "runs"
    rng = np.random.default_rng(noise_seed)
    chosen = list(SPACE) if configs == "all" else [SPACE.by_index(i) for i in configs]
    gt = {c.name: true_acc(c) for c in SPACE}
    for c in chosen:
        for s in gt_seeds:
            acc = round(gt[c.name] + rng.normal(0, 0.15), 2)
            _write(runs / f"train/{dataset}/resnet20/{c.slug}/seed{s}.json",
                   train_record(dataset, "resnet20", c, s, acc, profile=root.name))
    for m in models:
        for s in search_seeds:
            noise = {1: 1.2, 2: 0.6}.get(m, 0.25)
            _write(runs / f"search/{dataset}/resnet20/mixture-M{m}/seed{s}.json",
                   mixture_record(dataset, "resnet20", m, s, gt, noise, profile=root.name))
    if random_k:
        for s in search_seeds:
            _write(runs / f"search/{dataset}/resnet20/random-K{random_k}/seed{s}.json",
                   random_record(dataset, "resnet20", random_k, s, gt, profile=root.name))
    if darts:
        for s in search_seeds:
            _write(runs / f"search/{dataset}/resnet20/darts/seed{s}.json", darts_record(dataset, s, profile=root.name))
    return root


def add_control(root: Path, budget: int, seeds=(0, 1), dataset: str = "twoscale") -> Path:
    """Issue 18's equal-budget control beside make_results' M=1 searches: each seed's M=1 record as a
    mixture-budget-M1-B<budget> search (one SuperNet trained as long as the M=budget mixture); returns the folder."""
    for seed in seeds:
        record = json.loads((root / f"runs/search/{dataset}/resnet20/mixture-M1/seed{seed}.json").read_text())
        _write(root / f"runs/search/{dataset}/resnet20/mixture-budget-M1-B{budget}/seed{seed}.json",
               record | {"method": "mixture-budget", "budget_models": budget})
    return root


def add_pair(root: Path, seeds=(0, 1), dataset: str = "twoscale", drop: float = 3.0) -> Path:
    """Figure 1's two-config SuperNet beside make_results' M=1 searches: each seed's M=1 record cut to [1,1,8] and
    [6,2,2] (their scores lowered by `drop` points) as a mixture-pair-M1 search; returns the folder."""
    for seed in seeds:
        r = json.loads((root / f"runs/search/{dataset}/resnet20/mixture-M1/seed{seed}.json").read_text())
        keep = [i for i, c in enumerate(r["configs"]) if c in ("[1,1,8]", "[6,2,2]")]
        cut = {k: [r[k][i] for i in keep] for k in ("configs", "accuracy", "assignment", "P_final", "W", "counts")}
        cut["accuracy"] = [[a - drop for a in row] for row in cut["accuracy"]]
        pick = {"config": "[6,2,2]", "index": SPACES["resnet20"].parse("[6,2,2]").index}
        _write(root / f"runs/search/{dataset}/resnet20/mixture-pair-M1/seed{seed}.json",
               r | cut | {"method": "mixture-pair", "selected": pick | {"rule": "assigned"},
                          "alternatives": {rule: pick | {"score": 1.0} for rule in ("assigned", "best_model", "ema")},
                          "epochs": [e | {"W": cut["W"], "counts": cut["counts"], "P": cut["P_final"]}
                                                        for e in r["epochs"]]})
    return root


def add_default_and_picks(root: Path, dataset: str, backbone: str, models=(4,), default_acc=70.0) -> Path:
    """A Table 3/4-style study beside make_results': the default config (seed 0), a mixture search per M (seed 0)
    and the standalone run of each pick (seed 0, default_acc + 1 + M); returns the results folder."""
    runs, space = root / "runs", SPACES[backbone]
    gt = {c.name: 60.0 + (c.index % 7) for c in space}
    _write(runs / f"train/{dataset}/{backbone}/{space.default.slug}/seed0.json",
           train_record(dataset, backbone, space.default, 0, default_acc, profile=root.name))
    for m in models:
        search = mixture_record(dataset, backbone, m, 0, gt, 0.25, profile=root.name)
        _write(runs / f"search/{dataset}/{backbone}/mixture-M{m}/seed0.json", search)
        pick = space.parse(search["selected"]["config"])
        if pick != space.default:
            _write(runs / f"train/{dataset}/{backbone}/{pick.slug}/seed0.json",
                   train_record(dataset, backbone, pick, 0, default_acc + 1 + m, profile=root.name))
    return root


# --- tests --------------------------------------------------------------------------------------------------



def empty_results(root: Path) -> Path:
    """A results folder without a single record, aggregated (header-only CSVs)."""
    from poolnas.analysis import aggregate

    (root / "runs").mkdir(parents=True)
    aggregate.write(root, aggregate.collect(root, n_boot=0))
    return root


def train_small_cnn(data, fine_detail: bool = True, epochs: int = 5) -> float:
    """Test accuracy of a small CNN trained briefly (Adam, one cycle) on a prepared set; without `fine_detail`
    it sees every image through 2x2 average pooling (then nearest upsampling): the layout, no pixel-scale detail."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from poolnas.data.loader import Loader

    torch.manual_seed(0)

    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

    model = nn.Sequential(*block(3, 16), *block(16, 16), nn.MaxPool2d(2), *block(16, 32), nn.MaxPool2d(2),
                          *block(32, 48), nn.MaxPool2d(2), *block(48, 48), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                          nn.Linear(48, data.num_classes))

    def view(x):
        return x if fine_detail else F.interpolate(F.avg_pool2d(x, 2), scale_factor=2.0, mode="nearest")

    train = Loader.from_prepared(data, "train", 64, drop_last=True, seed=0)
    steps = epochs * len(train)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-3, total_steps=steps, pct_start=0.2)
    for _ in range(epochs):
        for x, y in train:
            loss = F.cross_entropy(model(view(x)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in Loader.from_prepared(data, "test", 500):
            correct += int((model(view(x)).argmax(1) == y).sum())
            total += len(y)
    return correct / total


def fine_and_coarse_accuracy(dataset: str, cache_dir) -> tuple[float, float]:
    """train_small_cnn's accuracy on a prepared 16x16, 10-class generated set (3,000 / 1,000 images) with and
    without pixel-scale detail, on 2 threads."""
    import torch

    from poolnas.data.datasets import load, prepare

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        data = load(prepare(dataset, None, cache_dir, seed=0, size=16, classes=10, train=3000, test=1000))
        return train_small_cnn(data, fine_detail=True), train_small_cnn(data, fine_detail=False)
    finally:
        torch.set_num_threads(threads)


def disk_full_at(real, n: int):
    """`real` (os.fsync, say) that fails its n-th call as a full disk does: ENOSPC, nothing written."""
    import errno

    calls = []

    def full(*args):
        calls.append(args)
        if len(calls) == n:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args)
    return full
