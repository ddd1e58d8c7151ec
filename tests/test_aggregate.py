"""`aggregate`: synthetic run records (and one real smoke training) into tidy, byte-stable CSVs.

`make_results` is the factory the table, figure and verify tests import: it writes records in the formats of
poolnas.train and poolnas.search (see their docstrings) with a planted signal, so answers are known.
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from poolnas.analysis import aggregate
from poolnas import settings
from poolnas.cli import main
from poolnas.arch.spaces import SPACES

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
    return {"kind": "search", "method": "darts", "models": 1, "candidates": None, "dataset": dataset,
            "backbone": "resnet20", "seed": seed, "profile": profile,
            "selected": {"config": None, "index": None, "rule": "argmax_alpha", "path": path},
            "steps": 100, "wall_seconds": 20.0, "hparams": {}, "options": {}, "provenance": {}}


def make_results(root: Path, configs="all", gt_seeds=(0, 1, 2), models=(1, 2, 4, 8), search_seeds=(0, 1, 2),
                 random_k=4, darts=False, dataset="twoscale", noise_seed=0) -> Path:
    """A results/<profile> folder of synthetic records: ground truth for `configs` ("all" or indices), mixture
    searches per M (noise shrinking with M: the mixture ranks better), random search; returns the folder."""
    runs = root / "runs"
    rng = np.random.default_rng(noise_seed)
    chosen = list(SPACE) if configs == "all" else [SPACE.by_index(i) for i in configs]
    gt = {c.name: true_acc(c) for c in SPACE}
    for c in chosen:
        for s in gt_seeds:
            acc = round(gt[c.name] + rng.normal(0, 0.15), 2)
            _write(runs / f"train/{dataset}/resnet20/{c.slug}/seed{s}.json",
                   train_record(dataset, "resnet20", c, s, acc))
    for m in models:
        for s in search_seeds:
            noise = {1: 1.2, 2: 0.6}.get(m, 0.25)
            _write(runs / f"search/{dataset}/resnet20/mixture-M{m}/seed{s}.json",
                   mixture_record(dataset, "resnet20", m, s, gt, noise))
    if random_k:
        for s in search_seeds:
            _write(runs / f"search/{dataset}/resnet20/random-K{random_k}/seed{s}.json",
                   random_record(dataset, "resnet20", random_k, s, gt))
    if darts:
        for s in search_seeds:
            _write(runs / f"search/{dataset}/resnet20/darts-M1/seed{s}.json", darts_record(dataset, s))
    return root


# --- tests --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return make_results(tmp_path_factory.mktemp("results") / "synthetic", gt_seeds=(0, 1), search_seeds=(0, 1))


def _aggregate(results: Path, n_boot=40) -> dict[str, bytes]:
    aggregate.write(results, aggregate.collect(results, n_boot=n_boot))
    return {p.name: p.read_bytes() for p in sorted(results.glob("*.csv"))}


def test_aggregate_is_byte_identical_on_rerun_and_sorted(synthetic):
    first = _aggregate(synthetic)
    assert set(first) == {f"{n}.csv" for n in aggregate.COLUMNS}
    assert _aggregate(synthetic) == first
    gt = pd.read_csv(synthetic / "groundtruth.csv")
    assert list(gt.columns) == aggregate.COLUMNS["groundtruth"]
    assert len(gt) == 36 * 2 and gt.equals(gt.sort_values(["dataset", "backbone", "index", "seed"], ignore_index=True))
    assert (gt.steps == 3 * math.ceil(400 / 64)).all()


def test_search_tables_hold_every_pair_and_the_picks(synthetic):
    frames = aggregate.load(synthetic)
    ev, search, retrain = frames["search_eval"], frames["search"], frames["retrain"]
    mix = ev[ev.method == "mixture"]
    assert len(mix) == 36 * (1 + 2 + 4 + 8) * 2
    assert (mix.groupby(["search", "seed", "config"]).assigned.sum() == 1).all()
    assert set(search.search) == {"mixture-M1", "mixture-M2", "mixture-M4", "mixture-M8", "random-K4"}
    # every search's pick is joined with the training records of that config
    joined = retrain.merge(search, left_on=["search", "search_seed"], right_on=["search", "seed"])
    assert (joined.config == joined.selected_config).all() and retrain.test_acc.notna().all()
    assert len(retrain) == len(search) * 2
    epochs = frames["search_epochs"]
    last = epochs[(epochs.search == "mixture-M4")].groupby("seed").p_max_mean.last()
    assert (last > 0.99).all()


def test_ranking_matches_stats_and_improves_with_models(synthetic):
    ranking = aggregate.load(synthetic)["ranking"]
    pooled = ranking[ranking.search_seed.isna() & (ranking.method == "mixture")].set_index("models")
    assert (pooled.n_configs == 36).all() and (pooled.n_searches == 2).all()
    assert pooled.kendall_tau[4] > pooled.kendall_tau[1]
    assert (pooled.kendall_tau_lo <= pooled.kendall_tau).all() and (pooled.kendall_tau <= pooled.kendall_tau_hi).all()
    assert pooled.kendall_tau_seed_lo.notna().all()
    # the pooled row is the rank command's computation on the per-config means
    from scipy.stats import kendalltau
    frames = aggregate.load(synthetic)
    gt = frames["groundtruth"].groupby("config").test_acc.mean()
    ev = frames["search_eval"]
    score = ev[(ev.search == "mixture-M2") & ev.assigned].groupby("config").score.mean()
    assert pooled.kendall_tau[2] == pytest.approx(kendalltau(gt, score.reindex(gt.index)).statistic, abs=1e-6)


def test_missing_categories_give_header_only_csvs(tmp_path):
    results = tmp_path / "empty"
    (results / "runs").mkdir(parents=True)
    files = _aggregate(results)
    for name, data in files.items():
        lines = data.decode().splitlines()
        assert lines == [",".join(aggregate.COLUMNS[name[:-4]])], name


def test_only_groundtruth_and_a_pick_without_training(tmp_path):
    results = make_results(tmp_path / "partial", configs=[1, 24], gt_seeds=(0,), models=(2,), search_seeds=(0,),
                           random_k=None)
    frames = aggregate.collect(results, n_boot=0)
    assert frames["ranking"].empty  # 2 configs with ground truth: too few to rank
    retrain = frames["retrain"]
    assert len(retrain) == 1 and pd.isna(retrain.seed.iloc[0]) and pd.isna(retrain.test_acc.iloc[0])


def test_real_smoke_training_record_and_cli(tmp_path, capsys):
    """One real `poolnas train` record (smoke profile, ~15 s) goes through the CLI."""
    from poolnas.standalone import train_run

    results = tmp_path / "smoke"
    out = results / "runs/train/twoscale/resnet20/4-3-3/seed0.json"
    train_run(profile="smoke", dataset="twoscale", backbone="resnet20", config="4-3-3", seed=0, out=out,
              data_dir=tmp_path / "data", epochs=1)
    assert main(["aggregate", "--results", str(results), "--bootstrap", "50"]) == 0
    printed = capsys.readouterr().out
    assert "groundtruth.csv: 1 rows" in printed and "search.csv: 0 rows" in printed
    gt = pd.read_csv(results / "groundtruth.csv")
    record = json.loads(out.read_text())
    assert gt.loc[0, "config"] == "[4,3,3]" and gt.loc[0, "test_acc"] == pytest.approx(record["test_acc"])
    images, batch = record["history"][0]["images"], record["hparams"]["batch_size"]
    assert images == settings.load("smoke")["datasets"]["twoscale"]["train"]
    assert gt.loc[0, "steps"] == math.ceil(images / batch)


def test_cli_rejects_a_missing_folder(capsys, tmp_path):
    assert main(["aggregate", "--results", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err
