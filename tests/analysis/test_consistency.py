"""Issue 32, items 1-2: `aggregate` keeps every row of a results folder wherever it lies, and refuses (one line,
exit 2, nothing written) a record that is not the record of its place."""

import json
import os
import shutil

import pytest

from poolnas.cli import main
from poolnas.arch.spaces import SPACES
from helpers import make_results

R18 = SPACES["resnet18"].default
TRAIN = "runs/train/twoscale/resnet20/4-3-3/seed0.json"
SEARCH = "runs/search/twoscale/resnet20/mixture-M2/seed0.json"


@pytest.fixture
def results(tmp_path):
    return make_results(tmp_path / "results" / "synthetic", configs=[1, 24], gt_seeds=(0, 1), models=(2,),
                        search_seeds=(0,), random_k=None)


def _rows(capsys) -> dict[str, str]:
    out = capsys.readouterr().out
    return {line.split(": ")[0].rsplit("/", 1)[-1]: line.split(": ")[1] for line in out.splitlines()}


def test_a_results_folder_under_a_hidden_directory_keeps_every_row(results, tmp_path, capsys, monkeypatch):
    hidden = tmp_path / "home" / ".cache" / "x" / "results" / "synthetic"
    shutil.copytree(results, hidden)
    assert main(["aggregate", "--results", str(hidden), "--bootstrap", "0"]) == 0
    absolute = _rows(capsys)
    monkeypatch.chdir(hidden.parent)
    assert main(["aggregate", "--results", "synthetic", "--bootstrap", "0"]) == 0
    assert _rows(capsys) == absolute and absolute["groundtruth.csv"] == "4 rows" and absolute["search.csv"] == "1 rows"


def _copy(results, src: str, dst: str, **changes) -> None:
    record = json.loads((results / src).read_text()) | changes
    (results / dst).parent.mkdir(parents=True, exist_ok=True)
    (results / dst).write_text(json.dumps(record))


def _refused(results, capsys, file: str, *words: str) -> None:
    assert main(["aggregate", "--results", str(results), "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"record {results / file}: " in err and all(w in err for w in words), err
    assert list(results.glob("*.csv")) == []  # nothing aggregated


@pytest.mark.parametrize("dst, changes, words", [
    (TRAIN, {"seed": 1}, ("field seed", "'seed1.json'", "'seed0.json'")),
    (TRAIN.replace("seed0", "seed7"), {}, ("field seed", "'seed0.json'", "'seed7.json'")),
    (TRAIN, {"dataset": "glyphs"}, ("field dataset", "'glyphs'", "'twoscale'")),
    (TRAIN, {"backbone": "resnet18", "config": R18.name, "index": R18.index, "code": R18.code},
     ("field backbone", "'resnet18'", "'resnet20'")),
    (TRAIN, {"config": "[1,1,8]", "index": 1, "code": "0110000000"}, ("field config", "'1-1-8'", "'4-3-3'")),
    (TRAIN, {"profile": "mini"}, ("field profile", "'mini'", "profile 'synthetic'")),
    (SEARCH, {"models": 4}, ("field search", "'mixture-M4'", "'mixture-M2'")),
], ids=["seed-inside", "copy-as-seed7", "dataset", "backbone", "config", "profile", "search"])
def test_a_record_that_disagrees_with_its_place_is_refused(results, capsys, dst, changes, words):
    src = SEARCH if dst == SEARCH else TRAIN
    if changes.get("models"):  # a consistent M = 4 record, in the M = 2 folder
        record = json.loads((results / src).read_text())
        record["models"] = 4
        for field in ("accuracy", "P_final", "W", "counts"):
            record[field] = [row * 2 for row in record[field]]
        (results / dst).write_text(json.dumps(record))
    else:
        _copy(results, src, dst, **changes)
    _refused(results, capsys, dst, *words)


def test_a_symlink_to_another_record_is_refused(results, capsys):
    link = results / TRAIN.replace("seed0", "seed5")
    os.symlink(results / TRAIN, link)
    _refused(results, capsys, TRAIN.replace("seed0", "seed5"), "symbolic link")


def test_a_field_given_twice_is_refused(results, capsys):
    text = (results / TRAIN).read_text()
    (results / TRAIN).write_text(text.replace('"seed": 0,', '"seed": 0, "seed": 1,', 1))
    _refused(results, capsys, TRAIN, "field seed", "given twice")
