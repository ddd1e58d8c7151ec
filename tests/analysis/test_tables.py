"""`tables`: the paper's rows, ours beside them, "not run" where runs are missing, half-up rounding."""

import json
from pathlib import Path

import pandas as pd
import pytest

from poolnas.analysis import aggregate
from poolnas.analysis import tables
from poolnas import settings
from poolnas.cli import main
from poolnas.analysis.verify_released import read_published
from helpers import REPO, add_control, add_default_and_picks, darts_record, empty_results, make_results

PUBLISHED = REPO / "paper" / "published"


@pytest.fixture(scope="module")
def pub():
    return read_published(PUBLISHED)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    results = make_results(tmp_path_factory.mktemp("t") / "synthetic", gt_seeds=(0, 1, 2), models=(1, 4),
                           search_seeds=(0, 1), random_k=3)
    aggregate.write(results, aggregate.collect(results, n_boot=0))
    return results


@pytest.fixture(scope="module")
def empty(tmp_path_factory):
    return empty_results(tmp_path_factory.mktemp("e") / "empty")


@pytest.mark.parametrize("value, text", [(90.525, "90.53"), (90.515, "90.52"), (90.5149, "90.51"), (0.005, "0.01"),
                                         (2.675, "2.68"), (-0.004, "0.00"), (-1.005, "-1.01"), (91, "91.00")])
def test_half_up_rounds_like_the_paper(value, text):
    assert tables.half_up(value) == text


def test_half_up_signs_and_missing():
    assert tables.half_up(1.0, sign=True) == "+1.00" and tables.half_up(-0.001, sign=True) == "+0.00"
    assert tables.half_up(None) == "" and tables.half_up(float("nan")) == ""


def test_tables_keep_the_papers_rows_in_order(synthetic, pub):
    frames = aggregate.load(synthetic)
    for name in tables.NAMES:
        table = tables.build(name, frames, pub)
        published = pub[name]
        assert list(table.method[:len(published)]) == list(published.method), name
        if name != "table3":
            assert list(table.paper_mean[:len(published)]) == list(published.acc_mean)
    t2 = tables.build("table2", frames, pub)
    assert list(t2.method[len(pub["table2"]):]) == [label for label, _ in tables.EXTRA_TABLE2]


def test_table2_has_a_row_for_each_equal_budget_control(tmp_path, pub):
    """Issue 18's control, one SuperNet trained as long as the M=8 mixture: its own row beside the mixtures, with its
    picks retrained (here the ground truth), and no such row in a study without controls."""
    results = add_control(make_results(tmp_path / "r", gt_seeds=(0, 1), models=(1, 8), search_seeds=(0, 1),
                                       random_k=None), budget=8)
    aggregate.write(results, aggregate.collect(results, n_boot=0))
    t2 = tables.build("table2", aggregate.load(results), pub).set_index("method")
    row = t2.loc["One SuperNet (M=1) at the M=8 mixture's budget (our control)"]
    picks = aggregate.load(results)["search"].query("search == 'mixture-budget-M1-B8'").selected_config
    assert row.status == "ok" and row.n_searches == 2 and row.source == "ours only"
    assert all(p in row.ours_architecture for p in picks) and row.n_runs == 2 * picks.nunique()
    assert t2.loc["SPOS"].n_searches == 2  # the plain M=1 searches are not pooled with the control
    plain = make_results(tmp_path / "p", gt_seeds=(0, 1), models=(1,), search_seeds=(0,), random_k=None)
    aggregate.write(plain, aggregate.collect(plain, n_boot=0))
    assert not tables.build("table2", aggregate.load(plain), pub).method.str.contains("our control").any()


def test_our_numbers_come_from_the_runs(synthetic, pub):
    frames = aggregate.load(synthetic)
    gt = frames["groundtruth"]
    t1 = tables.build("table1", frames, pub).set_index("method")
    default = gt[gt.config == "[4,3,3]"].test_acc
    row = t1.loc["Default"]
    assert row.ours_acc == tables.half_up(default.mean()) and row.ours_std == tables.half_up(default.std())
    assert row.n_runs == 3 and row.status == "ok"
    assert row.difference == tables.half_up(default.mean() - 90.52, sign=True)
    mix = t1.loc["Balanced Mixtures"]
    picks = frames["search"].query("search == 'mixture-M4'").selected_config
    assert set(mix.ours_architecture.split(", ")) >= {p for p in picks if p in mix.ours_architecture}
    retrain = frames["retrain"].query("search == 'mixture-M4'").test_acc
    assert mix.ours_acc == tables.half_up(retrain.mean()) and mix.n_runs == len(retrain)
    best = tables.build("table2", frames, pub).set_index("method").loc["Best conf. (Bruteforce)"]
    means = gt.groupby("config").test_acc.mean()
    assert best.status == "ok" and best.ours_architecture == means.idxmax()
    assert best.ours_acc == tables.half_up(means.max())


def test_a_partial_ground_truth_and_an_untrained_pick_are_labelled(tmp_path, pub):
    results = make_results(tmp_path / "p", configs=[1, 24, 36], gt_seeds=(0, 1), models=(4,), search_seeds=(0,),
                           random_k=None)
    aggregate.write(results, aggregate.collect(results, n_boot=0))
    t2 = tables.build("table2", aggregate.load(results), pub).set_index("method")
    best = t2.loc["Best conf. (Bruteforce)"]
    assert best.status == "partial" and "3 of 36" in best.note
    mix = t2.loc["Balanced Mixtures"]  # the M=4 pick is not among the 3 trained configs
    assert mix.status == "retraining not run" and mix.ours_acc == "retraining not run" and mix.n_runs == 0
    assert mix.ours_architecture.startswith("[") and mix.cost_steps > 0


def test_a_relaxed_pick_is_named_by_its_path(tmp_path, pub):
    """DARTS's pick on glyphs was 000000000, no config: Tables 1-2 name it by its levels, not by an empty cell."""
    results = make_results(tmp_path / "d", configs=[1, 24, 36], gt_seeds=(0,), models=(4,), search_seeds=(0,),
                           random_k=None, darts=True)
    record = results / "runs/search/twoscale/resnet20/darts/seed0.json"
    record.write_text(json.dumps(darts_record("twoscale", 0, path="000000000")))
    aggregate.write(results, aggregate.collect(results, n_boot=0))
    for name, method in (("table1", "DARTS fully shared"), ("table2", "DARTS")):
        row = tables.build(name, aggregate.load(results), pub).set_index("method").loc[[method]].iloc[0]
        assert row.ours_architecture == "000000000", name


def test_missing_runs_say_not_run_never_a_number(synthetic, empty, pub):
    frames = aggregate.load(synthetic)
    t1 = tables.build("table1", frames, pub).set_index("method")
    for method in ("DARTS fully shared", "DARTS not shared same init", "SPOS not shared"):
        row = t1.loc[[method]].iloc[0]
        assert row.ours_acc == "not run" and row.status == "not run" and row.difference == ""
    for name in ("table1", "table2", "table4"):
        table = tables.build(name, aggregate.load(empty), pub)
        assert (table.ours_acc == "not run").all() and (table.n_runs == 0).all(), name
        assert (table.difference == "").all() and (table.ours_std == "").all()
    t3 = tables.build("table3", aggregate.load(empty), pub)
    assert set(t3[t3.source == "literature"].status) == {"literature"}
    assert set(t3[t3.source == "paper"].status) == {"not run"}
    assert (t3[t3.source == "literature"].method.tolist() == ["DiffStride", "DynOPool", "ShapeAdaptor"])


def test_cli_writes_three_formats_and_only_what_is_asked(synthetic, tmp_path, capsys):
    out = tmp_path / "tables"
    assert main(["tables", "--results", str(synthetic), "--published", str(PUBLISHED), "--out", str(out),
                 "--only", "table1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["table1.csv", "table1.md", "table1.tex"]
    tex, md = (out / "table1.tex").read_text(), (out / "table1.md").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"$\pm$" in tex and "±" not in tex
    assert "| Default | 1 | 1 | [4,3,3] | 90.52 ± 0.1 |" in md and "not run" in md
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["tables", "--results", str(synthetic), "--published", str(PUBLISHED), "--out", str(out)]) == 0
    assert len(list(out.iterdir())) == 12
    assert all((out / name).read_bytes() == data for name, data in first.items())
    csv = pd.read_csv(out / "table3.csv", dtype=str, keep_default_na=False)
    assert list(csv.method) == list(read_published(PUBLISHED)["table3"].method)


def test_cli_needs_aggregated_results(tmp_path, capsys):
    (tmp_path / "r").mkdir()
    assert main(["tables", "--results", str(tmp_path / "r"), "--published", str(PUBLISHED), "--out",
                 str(tmp_path / "o")]) == 2
    assert "run `python -m poolnas aggregate" in capsys.readouterr().err


@pytest.fixture(scope="module")
def stand_in_results(tmp_path_factory):
    """ResNet20 on twoscale, ResNet18 on glyphs (M = 4) and ResNet50 on glyphs-crops (M = 1, 4): smoke's layout."""
    results = make_results(tmp_path_factory.mktemp("s") / "stand-ins", gt_seeds=(0,), models=(4,),
                           search_seeds=(0,), random_k=None)
    add_default_and_picks(results, "glyphs", "resnet18", models=(4,))
    add_default_and_picks(results, "glyphs-crops", "resnet50", models=(1, 4), default_acc=50.0)
    aggregate.write(results, aggregate.collect(results, n_boot=0))
    return results


STAND_IN = {("cifar10", "resnet18"): "glyphs", ("food101", "resnet50"): "glyphs-crops"}


def test_tables_3_and_4_read_the_study_standing_for_each_row(stand_in_results, pub):
    frames = aggregate.load(stand_in_results)
    t3 = tables.build("table3", frames, pub, stand_in=STAND_IN)
    row = t3[(t3.source == "paper") & (t3.dataset == "cifar10")].iloc[0]
    retrain = frames["retrain"].query("dataset == 'glyphs' and backbone == 'resnet18'").test_acc
    assert row.status == "ok" and row.ours_baseline == "70.00" and row.ours_improved == tables.half_up(retrain.mean())
    assert row.ours_gap == tables.half_up(retrain.mean() - 70.0, sign=True) and len(retrain) == 1
    assert row.note.startswith("ours on glyphs/resnet18, standing in for cifar10")
    other = t3[(t3.source == "paper") & (t3.dataset == "cifar100")].iloc[0]  # no stand-in, no cifar100 runs
    assert other.status == "not run" and other.note == ""
    md = tables.to_markdown("table3", t3, "x")
    assert "standing in for the paper's" in md and "| 70.00 (n=1) |" in md and row.n_baseline == 1  # not 1.0
    t4 = tables.build("table4", frames, pub, stand_in=STAND_IN).set_index("method")
    assert set(t4.data) == {"glyphs-crops"} and t4.loc["Default", "ours_acc"] == "50.00"
    by_m = t4[t4.models != ""].set_index("models")
    assert by_m.loc["1", "status"] == by_m.loc["4", "status"] == "ok"
    assert by_m.loc["2", "status"] == by_m.loc["8", "status"] == "not run"
    for name in ("table3", "table4"):  # without the stand-ins, only the paper's own datasets count
        table = tables.build(name, frames, pub)
        assert set(table[table.source == "paper"].status) == {"not run"}, name


def test_the_profile_names_the_stand_ins_and_the_records_profile_is_the_default(stand_in_results):
    frames = aggregate.load(stand_in_results)
    assert tables.stand_ins(frames) == {}  # the records' profile, "synthetic", is none of the package's
    assert tables.stand_ins(frames, "smoke") == settings.resolve("smoke").stand_ins()
    assert tables.stand_ins(frames, "paper")["food101", "resnet50"] == "food101"


def test_cli_takes_the_stand_ins_from_profile(stand_in_results, tmp_path):
    out = tmp_path / "tables"
    assert main(["tables", "--results", str(stand_in_results), "--published", str(PUBLISHED), "--out", str(out),
                 "--only", "table4", "--profile", "smoke"]) == 0
    assert "| Default |  | [3,4,6,3] | 84.00 ± 0.10 | [3,4,6,3] | 50.00 (n=1) |" in (out / "table4.md").read_text()
    assert main(["tables", "--results", str(stand_in_results), "--out", str(out), "--profile", "nope"]) == 2


def test_a_second_resnet20_study_never_takes_the_papers_rows_from_the_one_named_for_them():
    """mini has glyphs and fashion-mnist: unnamed, the alphabetically first dataset with records would fill Tables 1-2
    and the report's main column, so the first Fashion-MNIST record would silently move them."""
    import pandas as pd

    from poolnas import settings

    frames = {"groundtruth": pd.DataFrame({"dataset": ["fashion-mnist", "glyphs"], "backbone": ["resnet20"] * 2}),
              "search": pd.DataFrame({"dataset": [], "backbone": []})}
    assert tables.paper_study(frames, {}, "cifar10", "resnet20") == "fashion-mnist"  # what naming prevents
    stand_in = settings.resolve("mini").stand_ins()
    assert tables.paper_study(frames, stand_in, "cifar10", "resnet20") == "glyphs"
