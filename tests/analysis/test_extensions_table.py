"""Issue 17's table and figure from synthetic records with planted accuracies: every row's mean, std, n, cost and
status; "not run" where nothing ran; extensions.csv only where such records exist."""

import json

import numpy as np
import pytest

from poolnas.analysis import aggregate, extensions
from poolnas.analysis.figures import make_figures
from poolnas.arch import variants
from poolnas.arch.spaces import SPACES

from helpers import make_results, train_record

R20 = SPACES["resnet20"]
SEEDS = (0, 1, 2)


def search_record(method, config, found, compare, seed=0, rho=None, requested=None):
    c = R20.parse(config)
    return {"kind": "search", "method": method, "models": None, "candidates": None, "dataset": "twoscale",
            "backbone": "resnet20", "seed": seed, "profile": "synthetic",
            "selected": {"config": c.name, "index": c.index, "rule": method, "variant": found.slug},
            "configs": None, "accuracy": None,
            "pooling": {"requested": requested or c.name, "config": c.name, "index": c.index, "rule": "given"},
            **({"budget_rho": rho, "target_connections": 1.0, "dense": {"connections": 2, "params": 3, "macs": 4}}
               if method == "dgconv" else {"trials": [{"trial": 0, "variant": found.slug, "params": 5, "macs": 6,
                                                        "val_acc": 50.0, **{k: {} for k in ("rank", "mc", "ras",
                                                                                            "mc_last", "next")}}],
                                           "states": {}, "default": {}}),
            "found": {"variant": found.describe(), "params": variants.cost(found, c.name)[0],
                      "macs": variants.cost(found, c.name)[1], **({"connection_fraction": rho / 100 + 0.01}
                                                                  if rho else {})},
            "compare": {name: {"variant": v.slug, "params": variants.cost(v, c.name)[0],
                               "macs": variants.cost(v, c.name)[1], **extra} for name, (v, extra) in compare.items()},
            "val_acc": 61.5, "epochs": [], "budget": {"total_steps": 10, "steps_per_epoch": 5, "epochs_run": 2},
            "steps": 10, "wall_seconds": 360.0, "hparams": {}, "options": {}, "provenance": {}}


def variant_runs(root, config, variant, accs):
    c = R20.parse(config)
    for seed, acc in zip(SEEDS, accs):
        record = train_record("twoscale", "resnet20", c, seed, acc) | {"variant": variant.describe()}
        record["params"], record["macs"] = variants.cost(variant, c.name)
        path = root / "runs" / "train" / "twoscale" / "resnet20" / c.slug / variant.slug / f"seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))


def write_search(root, name, record):
    path = root / "runs" / "search" / "twoscale" / "resnet20" / name / f"seed{record['seed']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


ARCHS = {"g25": variants.groups("resnet20", [[0, 0, 1, 0]] * 6 + [[0, 1, 0, 1, 0]] * 5 + [[1, 0, 0, 1, 0, 0]] * 5),
         "g50": variants.groups("resnet20", [[1, 0, 1, 0]] * 6 + [[1, 1, 0, 1, 0]] * 5 + [[1, 1, 0, 1, 0, 1]] * 5),
         "G8": variants.uniform_groups("resnet20", 8), "G2": variants.uniform_groups("resnet20", 2),
         "conet": variants.widths("resnet20", [20, 36, 60], [12, 14, 16, 30, 32, 34, 50, 60, 70]),
         "uniform": variants.scaled_widths("resnet20", 0.9)}
PLANTED = {"g25": (80.0, 81.0, 82.0), "G8": (78.0, 78.5, 79.0), "g50": (84.0, 84.0, 85.0), "G2": (83.0, 85.0, 84.0),
           "conet": (90.0, 91.0, 89.0), "uniform": (88.0, 88.5, 89.5)}


@pytest.fixture(scope="module")
def best(results):
    gt = aggregate.load(results)["groundtruth"]
    return gt.groupby("config").test_acc.mean().idxmax()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = make_results(tmp_path_factory.mktemp("ext") / "synthetic", models=(), random_k=0)
    gt = aggregate.collect(root, n_boot=0)["groundtruth"]
    top = gt.groupby("config").test_acc.mean().idxmax()  # the best ground truth (planted signal plus noise)
    write_search(root, "dgconv-R25-default", search_record("dgconv", "[4,3,3]", ARCHS["g25"], {
        "fixed_groups": (ARCHS["G8"], {"groups": 8})}, rho=25, requested="default"))
    write_search(root, "dgconv-R50-default", search_record("dgconv", "[4,3,3]", ARCHS["g50"], {
        "fixed_groups": (ARCHS["G2"], {"groups": 2})}, rho=50, requested="default"))
    write_search(root, "conet-best", search_record("conet", top, ARCHS["conet"], {
        "uniform_widths": (ARCHS["uniform"], {"scale": 0.9})}, requested="best"))
    for key, config in (("g25", "[4,3,3]"), ("G8", "[4,3,3]"), ("g50", "[4,3,3]"), ("G2", "[4,3,3]"),
                        ("conet", top), ("uniform", top)):
        variant_runs(root, config, ARCHS[key], PLANTED[key])
    aggregate.write(root, aggregate.collect(root, n_boot=0))
    return root


def row(table, config, kind, rho=None):
    rows = table[(table.config == config) & (table.kind == kind)]
    return rows[rows.rho == rho].iloc[0] if rho is not None else rows.iloc[0]


def test_extensions_csv_joins_each_found_and_compared_architecture_with_its_runs(results):
    ext = aggregate.load(results, ("extensions",))["extensions"]
    assert len(ext) == 6 * 3 and set(ext.role) == {"found", "fixed_groups", "uniform_widths"}
    gt = aggregate.load(results)["groundtruth"]
    assert len(gt) == 36 * 3  # the variants are no ground truth of their config


def test_every_row_has_its_planted_mean_std_and_cost(results, best):
    table = extensions.build_table(results)
    assert list(dict.fromkeys(zip(table.section, table.config))) == [("default", "[4,3,3]"),
                                                                      ("best ground truth", best)]
    for kind, rho, key, config in (("dgconv", 25, "g25", "[4,3,3]"), ("fixed_groups", 25, "G8", "[4,3,3]"),
                                   ("dgconv", 50, "g50", "[4,3,3]"), ("fixed_groups", 50, "G2", "[4,3,3]"),
                                   ("conet", None, "conet", best), ("uniform_widths", None, "uniform", best)):
        r = row(table, config, kind, rho)
        assert r.status == "ok" and r.n_runs == 3
        assert r.acc == pytest.approx(np.mean(PLANTED[key])) and r["std"] == pytest.approx(np.std(PLANTED[key], ddof=1))
        assert (r.params, r.macs) == variants.cost(ARCHS[key], config)
    assert row(table, "[4,3,3]", "dgconv", 25).connection_fraction == pytest.approx(0.26)
    assert row(table, "[4,3,3]", "dgconv", 25).search_hours == pytest.approx(0.1)
    assert row(table, "[4,3,3]", "fixed_groups", 25).architecture == "G = 8 in every square conv"
    dense = row(table, best, "dense")
    gt = aggregate.load(results)["groundtruth"]
    assert dense.acc == pytest.approx(gt[gt.config == best].test_acc.mean()) and dense.n_runs == 3


def test_rows_without_runs_say_not_run(results, best):
    table = extensions.build_table(results)
    assert row(table, "[4,3,3]", "conet").status == row(table, "[4,3,3]", "uniform_widths").status == "not run"
    assert row(table, best, "dgconv").status == "not run"
    text = extensions.to_markdown(table, "synthetic")
    assert "| not run |" in text and "not comparable" in text and text.count("\n| default [4,3,3]") == 7


def test_a_search_without_retraining_says_so(tmp_path):
    root = make_results(tmp_path / "synthetic", configs=[24, 36], gt_seeds=(0,), models=(), random_k=0)
    write_search(root, "conet-default", search_record("conet", "[4,3,3]", ARCHS["conet"], {
        "uniform_widths": (ARCHS["uniform"], {"scale": 0.9})}, requested="default"))
    aggregate.write(root, aggregate.collect(root, n_boot=0))
    table = extensions.build_table(root)
    r = row(table, "[4,3,3]", "conet")
    assert r.status == "retraining not run" and (r.params, r.macs) == variants.cost(ARCHS["conet"], "[4,3,3]")


def test_the_best_section_is_the_config_the_best_searches_ran_on(tmp_path):
    """They picked it from the study's ground truth; groundtruth.csv also holds retrainings of other configs."""
    root = make_results(tmp_path / "synthetic", configs=[1, 24], gt_seeds=(0,), models=(), random_k=0)
    write_search(root, "conet-best", search_record("conet", "[1,1,8]", ARCHS["conet"], {
        "uniform_widths": (ARCHS["uniform"], {"scale": 0.9})}, requested="best"))
    aggregate.write(root, aggregate.collect(root, n_boot=0))
    gt, ext, _ = extensions.frames(root, None)
    assert gt.groupby("config").test_acc.mean().idxmax() == "[4,3,3]"
    assert extensions.sections(gt, ext) == [("default", "[4,3,3]"), ("best ground truth", "[1,1,8]")]
    ext = ext[ext.pooling != "best"]  # without a best search: the best mean of the standalone runs
    assert extensions.sections(gt, ext) == [("default, also the best ground truth", "[4,3,3]")]


def test_without_such_records_there_is_no_extensions_csv_and_every_search_row_is_not_run(tmp_path):
    root = make_results(tmp_path / "synthetic", configs=[24, 36], gt_seeds=(0, 1), models=(), random_k=0)
    (root / "extensions.csv").write_text("stale\n")
    aggregate.write(root, aggregate.collect(root, n_boot=0))
    assert not (root / "extensions.csv").exists()
    table = extensions.build_table(root)
    assert set(table[table.kind != "dense"].status) == {"not run"}
    assert set(table[table.kind == "dense"].status) == {"ok"}


def test_the_figure_is_drawn(results, tmp_path):
    done = make_figures(results, tmp_path, only=["groups_widths_cost"])
    assert [p.name for p in done["groups_widths_cost"]] == ["groups_widths_cost.pdf", "groups_widths_cost.png"]
    assert (tmp_path / "groups_widths_cost.png").stat().st_size > 5000
