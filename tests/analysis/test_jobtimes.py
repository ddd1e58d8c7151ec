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


def test_a_study_not_yet_run_is_priced_from_a_measured_one_by_multiply_adds_and_images(tmp_path, capsys):
    """mini's Fashion-MNIST study from its glyphs jobs: each planned job at the glyphs job's measured median, times
    the ratio of multiply-adds per image (28 against 16 pixels) and of training images (equal here)."""
    import json

    from poolnas import settings
    from poolnas.arch.cost import count_macs
    from poolnas.arch.spaces import get_space

    profile = settings.resolve("mini")
    study = profile.study("fashion-mnist", "resnet20")
    space = get_space("resnet20")
    results = tmp_path / "mini"
    for config in space:
        bench(results, f"train/glyphs/resnet20/{config.slug}/seed0.tsv", 100)
        bench(results, f"train/glyphs/resnet20/{config.slug}/seed1.tsv", 300)
        record = results / f"runs/train/glyphs/resnet20/{config.slug}/seed0.json"
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"macs": count_macs("resnet20", config, image_size=16)}))
    for name in ["mixture-M1", "mixture-M2", "mixture-M4", "mixture-M8", "mixture-budget-M1-B2",
                 "mixture-budget-M1-B4", "mixture-budget-M1-B8", "mixture-pair-M1", "random-K4"]:
        bench(results, f"search/glyphs/resnet20/{name}/seed0.tsv", 1000)
    jobs = jobtimes.predict(results, "fashion-mnist", "glyphs", 28)
    ratio = count_macs("resnet20", space.default, image_size=28) / count_macs("resnet20", space.default, image_size=16)
    assert 2.9 < ratio < 3.2  # (28 / 16)^2 = 3.06, up to the strides' rounding
    train = jobs[jobs.rule == "train"]
    assert len(train) == 36 * len(study["groundtruth"]["seeds"])  # retraining on ground-truth seeds is free
    assert train[train.name == "4-3-3"].seconds.tolist() == pytest.approx([200 * ratio] * 3)
    search = jobs[jobs.rule == "search"]
    assert len(search) == 9 * len(study["search"]["seeds"])
    assert search.seconds.tolist() == pytest.approx([1000 * ratio] * len(search))
    assert jobtimes.main([str(results), "--predict", "fashion-mnist", "--like", "glyphs", "--image-size", "28"]) == 0
    assert "Predicted from glyphs" in capsys.readouterr().out
    (results / "benchmarks/search/glyphs/resnet20/random-K4/seed0.tsv").unlink()
    assert jobtimes.main([str(results), "--predict", "fashion-mnist", "--like", "glyphs", "--image-size", "28"]) == 2
    assert "no measured job like ('search', 'resnet20', 'random-K4')" in capsys.readouterr().err
