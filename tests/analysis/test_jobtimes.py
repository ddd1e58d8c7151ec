"""Job times per rule from Snakemake benchmark files (poolnas.analysis.jobtimes)."""

from pathlib import Path

import pytest

from poolnas.analysis import jobtimes

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench(root: Path, rel: str, seconds: float) -> None:
    path = root / "benchmarks" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:00\t1\t1\t1\t1\t0\t0\t50\t{seconds / 2}\n")


@pytest.fixture
def results(tmp_path):
    bench(tmp_path, "train/glyphs/resnet20/4-3-3/seed0.tsv", 60)
    bench(tmp_path, "train/glyphs/resnet20/4-3-3/seed1.tsv", 120)
    bench(tmp_path, "train/glyphs/resnet20/8-1-1/seed0.tsv", 300)
    bench(tmp_path, "train/glyphs/resnet20-relaxed/001122001/seed0.tsv", 90)
    bench(tmp_path, "train/glyphs/resnet20/4-3-3/g0f/seed0.tsv", 30)
    bench(tmp_path, "search/glyphs/resnet20/mixture-M8/seed0.tsv", 600)
    bench(tmp_path, "search/glyphs/resnet20/mixture-M8/seed1.tsv", 660)
    bench(tmp_path, "search/glyphs/resnet20/darts/seed0.tsv", 1200)
    return tmp_path


def test_job_times_are_summed_per_search_and_per_training_backbone(results):
    s = jobtimes.summarise(jobtimes.read_benchmarks(results / "benchmarks")).set_index(["rule", "group"])
    assert s.loc[("search", "mixture-M8"), "jobs"] == 2
    assert s.loc[("search", "mixture-M8"), "total_min"] == pytest.approx(21.0)
    assert s.loc[("search", "darts"), "max_s"] == 1200
    ground = s.loc[("train", "resnet20")]
    assert (ground.jobs, ground.median_s, ground.min_s, ground.max_s) == (3, 120, 60, 300)
    assert s.loc[("train", "resnet20-relaxed"), "total_min"] == pytest.approx(1.5)
    assert s.loc[("train", "resnet20/variant"), "jobs"] == 1  # issue 17's retrainings are counted apart


def test_the_command_prints_each_rule_and_the_total(results, capsys):
    assert jobtimes.main([str(results)]) == 0
    out = capsys.readouterr().out
    assert "search: 3 jobs, 41.0 min of job time" in out
    assert "train: 5 jobs, 10.0 min of job time" in out
    assert "all: 8 jobs, 51.0 min (0.85 h) of job time" in out


def test_a_missing_folder_or_a_damaged_file_gets_one_line_and_exit_2(results, tmp_path, capsys):
    assert jobtimes.main([str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (results / "benchmarks/search/glyphs/resnet20/darts/seed0.tsv").write_text("garbage\n")
    assert jobtimes.main([str(results)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "darts/seed0.tsv: not a Snakemake benchmark file" in err[0]
