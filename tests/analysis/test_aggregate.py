"""`aggregate`: synthetic run records (and one real smoke training) into tidy, byte-stable CSVs.

The records come from `helpers.make_results` (a planted signal, so the answers are known).
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from poolnas.analysis import aggregate
from poolnas import plan, settings
from poolnas.cli import main
from poolnas.arch.spaces import SPACES
from helpers import SPACE, make_results, true_acc

@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return make_results(tmp_path_factory.mktemp("results") / "synthetic", gt_seeds=(0, 1), search_seeds=(0, 1))


def _aggregate(results: Path, n_boot=40) -> dict[str, bytes]:
    aggregate.write(results, aggregate.collect(results, n_boot=n_boot))
    return {p.name: p.read_bytes() for p in sorted(results.glob("*.csv"))}


def test_aggregate_is_byte_identical_on_rerun_and_sorted(synthetic):
    first = _aggregate(synthetic)
    assert set(first) == {f"{n}.csv" for n in plan.CSVS}  # extensions.csv: only with issue 17's records
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
    one_epoch = settings.load("smoke")  # what the record ran: smoke with --epochs 1 (issue 32: checked)
    one_epoch["protocols"]["resnet20"]["epochs"] = 1
    (tmp_path / "smoke-1.yaml").write_text(yaml.safe_dump(one_epoch))
    assert main(["aggregate", "--results", str(results), "--bootstrap", "50", "--profile",
                 str(tmp_path / "smoke-1.yaml")]) == 0
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


def test_search_health_tells_a_visit_counter_from_a_learned_assignment():
    """W that tracks -visits and assigns each config to its least-trained SuperNet (a search too short) against
    W that tracks accuracy (a search that learned)."""
    counts = np.array([[5, 0], [1, 4], [3, 2]])
    acc = np.array([[80.0, 10.0], [15.0, 70.0], [60.0, 40.0]])
    short = {"W": (1.0 - counts / 10).tolist(), "counts": counts.tolist(), "accuracy": acc.tolist(),
             "assignment": [1, 0, 1]}
    learned = {"W": (acc / 100).tolist(), "counts": counts.tolist(), "accuracy": acc.tolist(), "assignment": [0, 1, 0]}
    bad, good = aggregate.search_health(short), aggregate.search_health(learned)
    assert bad["w_visits_corr"] == pytest.approx(-1.0) and bad["argmax_least_visited"] == 1.0
    assert bad["assigned_untrained"] == 1 and bad["untrained_pairs"] == pytest.approx(1 / 6)
    assert bad["assigned_acc_median"] == 15.0 and good["assigned_acc_median"] == 70.0
    assert good["w_acc_corr"] == pytest.approx(1.0) and good["argmax_most_visited"] == 1.0
    assert aggregate.search_health({"method": "random", "accuracy": [1.0]}) == {}


def test_a_write_that_fails_mid_way_leaves_every_old_csv_unchanged(tmp_path, monkeypatch):
    """An aggregate killed after writing some CSVs must not leave tables a mix of new and stale ones: the new
    CSVs are all written before any old one is replaced (here the 3rd write fails, as a kill or a full disk)."""
    from poolnas import records

    results = make_results(tmp_path / "synthetic", configs=range(1, 7), gt_seeds=(0,), models=(1, 2), search_seeds=(0,))
    old = _aggregate(results, n_boot=0)
    (results / "runs/train/twoscale/resnet20" / SPACE.by_index(1).slug / "seed0.json").unlink()  # new CSVs differ
    real, calls = records.os.fsync, []

    def fail_third(fd):
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(fd)

    monkeypatch.setattr(records.os, "fsync", fail_third)
    with pytest.raises(OSError, match="cannot write .*csv"):
        aggregate.write(results, aggregate.collect(results, n_boot=0))
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in sorted(results.glob("*.csv"))} == old
    assert list(results.glob(".*.tmp")) == []  # the two written temporaries are gone too
    assert _aggregate(results, n_boot=0) != old
