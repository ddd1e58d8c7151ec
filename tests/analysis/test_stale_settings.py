"""Issue 32, item 4: a record made under other settings than its profile's is named, not mixed in silently.

`aggregate` refuses it (one line naming the file and the differing keys, exit 2, nothing written), and the
workflow's `stale_records` lists it for a warning before any job (rules/common.smk)."""

import copy
import json

import pytest

from poolnas import settings
from poolnas.analysis.consistency import differences, stale_records
from poolnas.arch.spaces import SPACES
from poolnas.cli import main
from helpers import REPO, train_record

CONFIG = SPACES["resnet20"].parse("[4,3,3]")
TRAIN = "runs/train/twoscale/resnet20/4-3-3/seed0.json"


@pytest.fixture
def results(tmp_path):
    """A smoke results folder with one training record made under smoke's current protocol."""
    root = tmp_path / "smoke"
    record = train_record("twoscale", "resnet20", CONFIG, 0, 80.0, profile="smoke")
    record["hparams"] = settings.resolve("smoke").protocol("resnet20", "twoscale")
    record["options"] = {"precision": "fp32"}
    (root / TRAIN).parent.mkdir(parents=True)
    (root / TRAIN).write_text(json.dumps(record))
    return root


def _edit(results, change) -> None:
    record = json.loads((results / TRAIN).read_text())
    change(record)
    (results / TRAIN).write_text(json.dumps(record))


def test_a_record_of_the_current_settings_aggregates(results, capsys):
    assert main(["aggregate", "--results", str(results), "--bootstrap", "0"]) == 0
    assert "groundtruth.csv: 1 rows" in capsys.readouterr().out


def test_a_key_an_old_record_lacks_counts_as_its_schema_default(results, capsys):
    _edit(results, lambda r: [r["hparams"].pop(k) for k in ("nesterov", "conv_init", "warmup_factor")])
    assert main(["aggregate", "--results", str(results), "--bootstrap", "0"]) == 0


@pytest.mark.parametrize("change, words", [
    (lambda r: r["hparams"].update(lr=0.2), "lr: 0.2 in the record, 0.1 in the profile"),
    (lambda r: r["hparams"].update(epochs=7, momentum=0.8), "epochs: 7 in the record"),
    (lambda r: r["hparams"].update(conv_init="pytorch_default"), "conv_init: 'pytorch_default' in the record"),
    (lambda r: r["options"].update(precision="bf16"), "options.precision: 'bf16' in the record, 'fp32'"),
], ids=["lr", "two-keys", "a-default", "precision"])
def test_a_record_of_other_settings_is_refused_with_one_line(results, capsys, change, words):
    _edit(results, change)
    assert main(["aggregate", "--results", str(results), "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"record {results / TRAIN}: made under other settings than profile smoke's" in err
    assert words in err, err
    assert list(results.glob("*.csv")) == []  # nothing aggregated


def test_the_workflow_lists_the_records_a_profile_edit_made_stale(results):
    assert stale_records(results, settings.resolve("smoke")) == []
    edited = copy.deepcopy(settings.resolve("smoke").as_dict())
    edited["protocols"]["resnet20"]["lr"] = 0.3
    [(path, found)] = stale_records(results, settings.resolve(edited))
    assert path == results / TRAIN and found == ["lr: 0.1 in the record, 0.3 in the profile"]


@pytest.mark.parametrize("folder, profile", [
    ("mini", "mini"), ("pilot-fashion-mnist", str(settings.PROFILE_DIR / "pilots" / "fashion-mnist.yaml"))])
def test_every_committed_record_was_made_under_its_profiles_settings(folder, profile):
    # search records' settings come from the method, M, K and budget of the record (as the plan runs them)
    assert stale_records(REPO / "results" / folder, settings.resolve(profile)) == []


def test_a_search_record_is_compared_with_what_its_method_runs():
    path = next((REPO / "results/mini/runs/search/glyphs/resnet20/mixture-budget-M1-B4").glob("seed*.json"))
    record = json.loads(path.read_text())
    assert differences(record, settings.resolve("mini")) == []
    record["budget_models"] = 8  # the same settings at another budget: its epochs are another run's
    assert any(d.startswith("epochs: ") for d in differences(record, settings.resolve("mini"))) or \
        settings.resolve("mini").search("resnet20", "glyphs")["budget"] == "total"
