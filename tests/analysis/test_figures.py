"""`figures`: every figure as non-empty PDF and PNG, byte-stable, and no drawing without data."""

from pathlib import Path

import pytest

from poolnas.analysis import aggregate
from poolnas.analysis import figures
from poolnas.cli import main
from helpers import REPO, add_control, add_pair, make_results

PUBLISHED = REPO / "paper" / "published"


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    root = tmp_path_factory.mktemp("f")
    results = make_results(root / "synthetic", configs=[1, 9, 13, 24, 29, 32, 34, 36], gt_seeds=(0, 1, 2),
                           models=(1, 2, 4), search_seeds=(0, 1), random_k=3, darts=True)
    aggregate.write(results, aggregate.collect(results, n_boot=50))
    done = figures.make_figures(results, root / "figs", published=PUBLISHED)
    return results, root / "figs", done


def test_every_figure_is_a_nonempty_pdf_and_png(drawn):
    _, out, done = drawn
    assert set(done) == set(figures.NAMES)
    for name in figures.NAMES:
        assert isinstance(done[name], list), f"{name} skipped: {done[name]}"
        pdf, png = (out / f"{name}.pdf").read_bytes(), (out / f"{name}.png").read_bytes()
        assert pdf.startswith(b"%PDF") and len(pdf) > 2000, name
        assert png.startswith(b"\x89PNG") and len(png) > 5000, name
        assert b"CreationDate" not in pdf and b"Software" not in png[:200]
        assert not (out / f"{name}.txt").exists()


def test_redrawing_gives_the_same_bytes(drawn, tmp_path):
    results, out, _ = drawn
    figures.make_figures(results, tmp_path, only=["figure3", "groundtruth_spread"], published=PUBLISHED)
    for name in ("figure3.pdf", "figure3.png", "groundtruth_spread.pdf", "groundtruth_spread.png"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_the_ranking_figure_shows_the_equal_budget_control_only_when_it_ran(tmp_path):
    results = make_results(tmp_path / "r", configs=[1, 9, 13, 24, 29, 36], gt_seeds=(0, 1), models=(1, 4),
                           search_seeds=(0, 1), random_k=None)
    labels = []
    for control in (False, True):
        if control:
            add_control(results, budget=4)
        aggregate.write(results, aggregate.collect(results, n_boot=20))
        fig = figures.ranking_vs_models(figures.Data(results, PUBLISHED, None))
        labels.append([t.get_text() for t in fig.axes[0].get_legend().get_texts()])
    assert not any("control" in t for t in labels[0])
    assert "M=1 at this M's budget (control)" in labels[1]


def test_figure_1_shows_the_two_config_supernet_when_it_ran(tmp_path):
    """The paper trains [1,1,8] and [6,2,2] together in one SuperNet: with mixture-pair records, Figure 1's SuperNet
    points are theirs; without, our M=1 SuperNet over every config's, each labelled as what it is."""
    results = make_results(tmp_path / "synthetic", configs=[1, 9, 13, 32, 36], gt_seeds=(0, 1), models=(1,),
                           search_seeds=(0, 1), random_k=None)
    texts = []
    for pair in (False, True):
        if pair:
            add_pair(results, drop=3.0)
        aggregate.write(results, aggregate.collect(results, n_boot=0))
        fig = figures.figure1(figures.Data(results, PUBLISHED, None))
        texts.append([t.get_text() for ax in fig.axes for t in ax.get_xticklabels() + ax.texts])
    d = figures.Data(results, PUBLISHED, None)
    pair, full = d.scores(1, "mixture-pair"), d.scores(1)
    assert sorted(pair.index) == ["[1,1,8]", "[6,2,2]"]
    assert "in one SuperNet\n(M=1, every config)" in texts[0] and "in one SuperNet\n(the two together)" in texts[1]
    assert f"{pair.at['[6,2,2]', 'mean']:.2f}" in texts[1] and f"{full.at['[6,2,2]', 'mean']:.2f}" not in texts[1]


def test_missing_data_skips_with_a_note_and_never_draws(tmp_path, capsys):
    results = make_results(tmp_path / "partial", configs=[1, 24, 36], gt_seeds=(0, 1), models=(1,),
                           search_seeds=(0,), random_k=None)
    aggregate.write(results, aggregate.collect(results, n_boot=0))
    out = tmp_path / "figs"
    (out).mkdir()
    (out / "figure4.pdf").write_bytes(b"stale")
    assert main(["figures", "--results", str(results), "--out", str(out), "--only", "figure4", "--only", "figure5",
                 "--only", "figure1"]) == 0
    printed = capsys.readouterr().out
    assert "figure4: skipped (no DARTS search records" in printed and "figure5: skipped" in printed
    assert not (out / "figure4.pdf").exists() and not (out / "figure5.png").exists()
    assert "not drawn" in (out / "figure4.txt").read_text()
    assert (out / "figure1.pdf").stat().st_size > 2000  # [8,1,1] stands in for the missing [6,2,2]


def test_empty_results_draw_nothing(tmp_path):
    results = tmp_path / "empty"
    (results / "runs").mkdir(parents=True)
    aggregate.write(results, aggregate.collect(results, n_boot=0))
    done = figures.make_figures(results, tmp_path / "figs")
    assert all(isinstance(v, str) for v in done.values())
    assert not list((tmp_path / "figs").glob("*.p*"))


@pytest.mark.parametrize("axis", ["x", "y"])
def test_accuracy_axes_end_at_100_only_when_the_bars_pass_it(axis):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.errorbar([97.0], [97.0], xerr=[6.0], yerr=[6.0])  # a mean + SD bar at 103 %
    figures.cap_at_100(ax, axis)
    assert getattr(ax, f"get_{axis}lim")()[1] == 100.5
    ax.cla()
    ax.plot([40.0, 60.0], [40.0, 60.0])
    before = getattr(ax, f"get_{axis}lim")()
    figures.cap_at_100(ax, axis)
    assert getattr(ax, f"get_{axis}lim")() == before
    plt.close(fig)
