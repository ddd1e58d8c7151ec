"""The released-format reader, the `rank` and `verify-released` commands, and the published-number files."""

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from poolnas.cli import main
from poolnas import plan
from poolnas.analysis.released import TIDY_COLUMNS, read_released
from poolnas.arch.spaces import SPACES
from poolnas.analysis.verify_released import read_published, verify
from helpers import REPO

RELEASED_CSV = plan.RELEASED
RELEASED = REPO / RELEASED_CSV
PUBLISHED = REPO / "paper" / "published"


@pytest.fixture(scope="module")
def released() -> Path:
    return RELEASED  # committed: a clone has it (paper/released/README.md)


def test_released_file_is_the_one_its_readme_names():
    """The committed bytes are the released ones: the sha256 recorded with the provenance, and the default path
    of rank, verify-released and verify."""
    readme = (RELEASED.parent / "README.md").read_text()
    digest = hashlib.sha256(RELEASED.read_bytes()).hexdigest()
    assert f"| sha256 | `{digest}` |" in readme
    assert (REPO / RELEASED_CSV).resolve() == RELEASED.resolve()


def test_rank_reads_the_committed_file_by_default(released, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert run(capsys, "rank", "--bootstrap", "0") == run(capsys, "rank", str(released), "--bootstrap", "0")
    monkeypatch.chdir(released.parent.parent)  # paper/: the default path does not resolve from here
    code, out, err = run(capsys, "rank", "--bootstrap", "0")
    assert code == 2 and out == "" and err.count("\n") == 1 and "no such file" in err


def run(capsys, *argv) -> tuple[int, str, str]:
    """Run the CLI in-process; argparse errors raise SystemExit, handled errors return the code."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def write_released_format(path: Path, gt: np.ndarray, scores: dict[int, np.ndarray], indices=None) -> Path:
    """A file in the released layout, trailing comma included."""
    indices = range(1, len(gt) + 1) if indices is None else indices
    header = "architecture,baseline_avg,baseline_stdev," + "".join(f"M{m}_avg,M{m}_stdev," for m in scores)
    rows = [f"{i},{g},0.1," + "".join(f"{s[k]},0.2," for s in scores.values())
            for k, (i, g) in enumerate(zip(indices, gt))]
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


# --- reading ------------------------------------------------------------------------------------------------


def test_read_released_is_tidy_and_named_by_the_space(released):
    raw = pd.read_csv(released)
    tidy = read_released(released)
    assert list(tidy.columns) == TIDY_COLUMNS
    models = sorted(int(c[1:-4]) for c in raw.columns if c.startswith("M") and c.endswith("_avg"))
    assert sorted(tidy.models.unique()) == models and len(tidy) == len(raw) * len(models)
    space = SPACES["resnet20"]
    assert all(space.by_index(i).name == c for i, c in zip(tidy["index"], tidy.config))
    m = models[-1]
    one = tidy[tidy.models == m].set_index("index")
    raw = raw.set_index("architecture")
    assert np.allclose(one.gt_mean, raw.baseline_avg) and np.allclose(one.supernet_std, raw[f"M{m}_stdev"])


def test_reader_and_rank_on_constructed_data(tmp_path, capsys):
    gt = np.linspace(88.0, 92.0, 36)
    path = write_released_format(tmp_path / "r.csv", gt, {1: -gt, 4: gt + 0.5})
    tidy = read_released(path)
    assert tidy.loc[tidy["index"] == 24, "config"].iloc[0] == "[4,3,3]"
    code, out, err = run(capsys, "rank", str(path), "--bootstrap", "100")
    assert code == 0 and err == ""
    table = pd.read_csv(io.StringIO(out)).set_index("M")
    assert table.loc[1, "kendall_tau"] == pytest.approx(-1) and table.loc[4, "kendall_tau"] == pytest.approx(1)
    assert table.loc[4, "pick_index"] == 36 and table.loc[4, "regret"] == pytest.approx(0)
    assert table.loc[1, "pick_index"] == 1 and table.loc[1, "regret"] == pytest.approx(gt.max() - gt.min())


# --- rank on the released file ------------------------------------------------------------------------------


def test_rank_prints_the_metrics_per_m(released, capsys):
    code, out, err = run(capsys, "rank", str(released), "--bootstrap", "300", "--seed", "5")
    assert code == 0 and err == ""
    table = pd.read_csv(io.StringIO(out))
    for column in ("M", "kendall_tau", "spearman", "top1", "top3", "top5", "regret", "pick", "pick_index",
                   "kendall_tau_lo", "kendall_tau_hi", "regret_lo", "regret_hi"):
        assert column in table.columns
    for _, row in table.iterrows():
        assert row.kendall_tau_lo <= row.kendall_tau <= row.kendall_tau_hi
        assert row.spearman_lo <= row.spearman <= row.spearman_hi
        assert SPACES["resnet20"].by_index(int(row.pick_index)).name == row.pick
        assert row.regret == pytest.approx(row.best_gt - row.pick_gt, abs=1e-4)
    # Sanity only: the printed tau is the one scipy gives on the raw columns.
    raw = pd.read_csv(released)
    for _, row in table.iterrows():
        direct = scipy.stats.kendalltau(raw.baseline_avg, raw[f"M{row.M}_avg"]).statistic
        assert row.kendall_tau == pytest.approx(direct, abs=1e-5)
    # Same seed, same output.
    assert run(capsys, "rank", str(released), "--bootstrap", "300", "--seed", "5")[1] == out


def test_rank_reproduces_figure3_where_the_paper_agrees(released, capsys):
    published = pd.read_csv(PUBLISHED / "figure3.csv").set_index("models").kendall_tau
    out = run(capsys, "rank", str(released), "--bootstrap", "0")[1]
    ours = pd.read_csv(io.StringIO(out)).set_index("M").kendall_tau
    agreeing = sorted(m for m in published.index if abs(ours[m] - published[m]) <= 0.01)
    assert agreeing == [1, 2, 8]  # M=4 is the known disagreement, reported by verify-released


def test_rank_table_format_and_no_bootstrap(released, capsys):
    code, out, _ = run(capsys, "rank", str(released), "--format", "table", "--bootstrap", "0")
    assert code == 0 and "kendall_tau" in out and "_lo" not in out
    assert "percentile" not in out  # no interval note without a bootstrap


HEADER = "architecture,baseline_avg,baseline_stdev,M1_avg,M1_stdev,\n"
BAD_FILES = {
    "no-model-columns": "architecture,baseline_avg,baseline_stdev\n1,90,0.1\n",
    "no-stdev": "architecture,baseline_avg,M1_avg\n1,90,80\n2,91,81\n",
    "not-a-number": HEADER + "1,90,0.1,80,0.2,\n2,n/a,0.1,81,0.2,\n",
    "index-37": HEADER + "1,90,0.1,80,0.2,\n37,91,0.1,81,0.2,\n",
    "index-0": HEADER + "0,90,0.1,80,0.2,\n1,91,0.1,81,0.2,\n",
    "fractional-index": HEADER + "1,90,0.1,80,0.2,\n2.5,91,0.1,81,0.2,\n",
    "duplicate": HEADER + "1,90,0.1,80,0.2,\n1,91,0.1,81,0.2,\n",
    "header-only": HEADER,
    "empty": "",
}


@pytest.mark.parametrize("kind", ["missing", *BAD_FILES])
def test_rank_bad_input_is_one_line_and_exit_2(tmp_path, capsys, kind):
    path = tmp_path / "bad.csv"
    if kind != "missing":
        path.write_text(BAD_FILES[kind])
    code, out, err = run(capsys, "rank", str(path), "--bootstrap", "0")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("poolnas rank: error:"), err


def test_rank_missing_file_through_the_real_entry_point(tmp_path, run_cli):
    proc = run_cli("rank", tmp_path / "nope.csv")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "no such file" in proc.stderr


# --- the published numbers ----------------------------------------------------------------------------------

ARCHITECTURE_SPACES = {"table1": "resnet20", "table2": "resnet20", "table4": "resnet50", "figure1": "resnet20"}


def test_published_files_parse_and_are_documented():
    tables = read_published(PUBLISHED)
    readme = (PUBLISHED / "README.md").read_text()
    for name, table in tables.items():
        assert len(table) > 0 and f"`{name}.csv`" in readme
        for column in table.columns:
            assert f"{column}" in readme, f"{name}.csv column {column} is not documented"
    numeric = {"table1": ["weight_models", "paths", "acc_mean", "acc_std"], "table2": ["rank", "acc_mean", "acc_std"],
               "table3": ["baseline_mean", "baseline_std", "improved_mean", "improved_std", "gap"],
               "table4": ["models", "acc_mean", "acc_std"], "figure1": ["acc"], "figure3": ["models", "kendall_tau"],
               "compute": ["models", "gpu_hours"]}
    for name, columns in numeric.items():
        for column in columns:
            cells = tables[name][column]
            pd.to_numeric(cells[cells != ""], errors="raise")  # every printed cell is a number
    assert set(tables["table3"].source) == {"paper", "literature"}
    assert set(tables["figure1"].setting) == {"standalone", "combination"}


@pytest.mark.parametrize("name, space", ARCHITECTURE_SPACES.items())
def test_every_published_architecture_is_a_canonical_config(name, space):
    column = "config" if name == "figure1" else "architecture"
    names = [a for a in read_published(PUBLISHED)[name][column] if a]
    assert names
    for text in names:
        assert SPACES[space].parse(text).name == text  # valid in its space, and written canonically


# --- verification report ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checks(released):
    return {c.key: c for c in verify(read_released(released), read_published(PUBLISHED), n_boot=100, seed=0)}


KNOWN_MISMATCHES = [
    "figure3.tau.M4",  # published 0.533
    "t1t2.DARTS.acc_std",  # 0.13 in Table 1, 0.08 in Table 2
    "table1.paths.19638",  # printed 19,638 for 3^9 = 19,683 paths
    "t1t2.SPOS.architecture",  # [3,3,4] in Table 1, [4,2,4] in Table 2
    "pick.table1.Balanced Mixtures",  # [5,3,2] vs the argmax of the M=4 scores
    "table2.Best conf. (Bruteforce).std",  # [7,1,2] printed 0.12
    "table2.Default.std",  # [4,3,3] printed 0.10
    "table1.Default.std",  # printed 0.1
]
KNOWN_AGREEMENTS = ["figure3.tau.M1", "figure3.tau.M2", "figure3.tau.M8", "table2.bruteforce",
                    "table2.Default.mean", "table2.Best conf. (Bruteforce).mean", "table1.SPOS fully shared (36 paths).std", "figure1.standalone.[1,1,8]", "figure1.standalone.[6,2,2]",
                    "table1.paths.19683", "table1.paths.36"]


def test_verification_flags_the_known_disagreements(checks):
    assert {k: checks[k].verdict for k in KNOWN_MISMATCHES} == dict.fromkeys(KNOWN_MISMATCHES, "mismatch")
    assert {k: checks[k].verdict for k in KNOWN_AGREEMENTS} == dict.fromkeys(KNOWN_AGREEMENTS, "agrees")
    assert checks["figure1.combination.[1,1,8]"].verdict == "unchecked"


def test_verify_released_writes_the_report(released, tmp_path, capsys):
    out = tmp_path / "verification.md"
    code, _, err = run(capsys, "verify-released", str(released), "--published", str(PUBLISHED),
                       "--out", str(out), "--bootstrap", "100")
    assert code == 0 and err == ""
    text = out.read_text()
    mismatches = text.split("### What does not match")[1].split("\n### ")[0]
    for needle in ("Kendall tau-b of M=4", "paths of DARTS fully shared", "DARTS fully shared (T1) vs DARTS (T2)",
                   "Best conf. (Bruteforce) [7,1,2] (#34): std"):
        assert needle in mismatches
    assert "Kendall tau-b of M=8" not in mismatches


def test_committed_report_is_current(released, capsys):
    committed = REPO / "paper" / "verification_released.md"
    code, out, _ = run(capsys, "verify-released", str(released), "--published", str(PUBLISHED))
    assert code == 0
    assert committed.read_text() == out, "regenerate paper/verification_released.md with verify-released"


def test_verify_released_bad_published_folder(released, tmp_path, capsys):
    code, out, err = run(capsys, "verify-released", str(released), "--published", str(tmp_path))
    assert code == 2 and out == "" and err.count("\n") == 1 and "lacks" in err
