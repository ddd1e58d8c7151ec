"""Issue 32, item 4: a record made under other settings than its profile's is named, not mixed in silently.

`aggregate` refuses it (one line naming the file and the differing keys, exit 2, nothing written), and the
workflow's `stale_records` lists it for a warning before any job (rules/common.smk)."""

import copy
import json

import pytest

from poolnas import settings
from poolnas.analysis.consistency import differences, stale_records
from poolnas.arch.spaces import SPACES
from poolnas.data.datasets import resolve_params
from poolnas.cli import main
from helpers import REPO, train_record

CONFIG = SPACES["resnet20"].parse("[4,3,3]")
TRAIN = "runs/train/twoscale/resnet20/4-3-3/seed0.json"


@pytest.fixture
def results(tmp_path):
    """A smoke results folder with one training record made under smoke's current protocol."""
    root = tmp_path / "smoke"
    smoke = settings.resolve("smoke")
    record = train_record("twoscale", "resnet20", CONFIG, 0, 80.0, images=256, profile="smoke")  # smoke: train 256
    record["hparams"] = smoke.protocol("resnet20", "twoscale")
    record["options"] = {"precision": "fp32"}
    record["test_images"] = 128
    record["data_params"] = resolve_params("twoscale", smoke.dataset_params("twoscale"))
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


def _with_data(**change) -> settings.Settings:
    """smoke with its twoscale dataset prepared otherwise."""
    edited = copy.deepcopy(settings.resolve("smoke").as_dict())
    edited["datasets"]["twoscale"].update(change)
    return settings.resolve(edited)


@pytest.mark.parametrize("change, words", [
    ({"size": 32}, "data.size: 16 in the record, 32 in the profile"),
    ({"seed": 3}, "data.seed: 0 in the record, 3 in the profile"),
    ({"train": 512}, "data.train: 256 in the record, 512 in the profile"),
], ids=["size", "seed", "train"])
def test_a_record_of_other_data_parameters_is_stale(results, change, words):
    """A changed dataset (image size, subset, its seed) keeps the cached records, as a changed lr does."""
    [(path, found)] = stale_records(results, _with_data(**change))
    assert path == results / TRAIN and found == [words]


@pytest.mark.parametrize("change, words", [
    ({"train": 512}, ["data.train: 256 in the record, 512 in the profile"]),
    ({"test": 64}, ["data.test: 128 in the record, 64 in the profile"]),
    ({"size": 32}, []),  # not visible in such a record: the README says so
], ids=["train", "test", "size-unseen"])
def test_a_record_without_data_parameters_is_judged_on_the_images_it_counted(results, change, words):
    _edit(results, lambda r: r.pop("data_params"))
    found = stale_records(results, _with_data(**change))
    assert [d for _, d in found] == ([words] if words else [])


def test_a_dropped_last_batch_is_allowed_for_in_an_old_records_image_count(results):
    edited = _with_data(train=300)
    edited_raw = edited.as_dict()
    edited_raw["protocols"]["resnet20"].update(drop_last=True, batch_size=64)
    prof = settings.resolve(edited_raw)

    def old(r):
        r.pop("data_params")
        r["hparams"] = prof.protocol("resnet20", "twoscale")
        for h in r["history"]:
            h["images"] = 256  # 300 images at batch 64, the last 44 dropped
    _edit(results, old)
    assert stale_records(results, prof) == []


def test_a_search_record_without_data_parameters_is_judged_on_its_two_halves():
    path = next((REPO / "results/mini/runs/search/glyphs/resnet20/mixture-M4").glob("seed*.json"))
    record = json.loads(path.read_text())
    assert "data_params" not in record and record["search_train"] + record["search_val"] == 12500
    edited = copy.deepcopy(settings.resolve("mini").as_dict())
    edited["datasets"]["glyphs"]["train"] = 10000
    assert differences(record, settings.resolve(edited)) == ["data.train: 12500 in the record, 10000 in the profile"]


def test_a_food101_record_is_compared_on_its_crop():
    record = {"kind": "train", "dataset": "food101", "backbone": "resnet50", "options": {"crop": 224}}
    prof = settings.resolve("paper")
    record["hparams"] = prof.protocol("resnet50", "food101")
    record["history"] = [{"images": 1}]
    assert differences(record, prof) == []
    record["options"]["crop"] = 192
    assert differences(record, prof) == ["options.crop: 192 in the record, 224 in the profile"]


# --- records that do not name their data: the cache whose arrays give back their run key ------------------------

def _keyed_record(results, data_dir):
    """The fixture's record without data_params, keyed as a run on the smoke twoscale cache in `data_dir`."""
    from poolnas.data.datasets import prepare, read_meta
    from poolnas.records import train_key

    smoke = settings.resolve("smoke")
    files = read_meta(prepare("twoscale", None, data_dir / "cache", **smoke.dataset_params("twoscale")))["files"]

    def keyed(r):
        r.pop("data_params")
        r["run_key"] = train_key(files, r["backbone"], r["config"], r["seed"], r["hparams"], r["options"])
    _edit(results, keyed)


def test_an_old_record_takes_its_data_parameters_from_the_cache_its_run_key_points_to(results, tmp_path):
    _keyed_record(results, tmp_path / "data")
    assert stale_records(results, settings.resolve("smoke"), tmp_path / "data") == []
    # the size a record cannot show is seen through its cache; without the caches it is not
    [(path, found)] = stale_records(results, _with_data(size=24), tmp_path / "data")
    assert found == ["data.size: 16 in the record, 24 in the profile"]
    assert stale_records(results, _with_data(size=24)) == []
    # aggregate too (it looks in --data-dir, default data/): one line, nothing written
    assert main(["aggregate", "--results", str(results), "--bootstrap", "0", "--data-dir", str(tmp_path / "data"),
                 "--profile", str(_write_profile(tmp_path, _with_data(size=24)))]) == 2
    assert list(results.glob("*.csv")) == []


def _write_profile(tmp_path, prof) -> "Path":
    import yaml

    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(prof.as_dict()))
    return path


def _debian_fashion() -> bool:
    from poolnas.data import fashion

    return (fashion.DEBIAN / "train-images-idx3-ubyte.gz").is_file()


@pytest.mark.parametrize("dataset, at_least", [
    ("glyphs", 150),
    pytest.param("fashion-mnist", 60, marks=pytest.mark.skipif(not _debian_fashion(), reason=(
        "needs Fashion-MNIST: apt-get install dataset-fashion-mnist"))),
])
def test_every_committed_record_gives_back_its_run_key_from_the_data_mini_prepares(tmp_path, dataset, at_least):
    """The committed mini records name no data_params; their run keys tie each to the arrays it was trained on.
    Preparing the dataset as mini says now must give back every key: an edit of mini's entry for it (its size,
    seed, subset) without rerunning the records fails here."""
    from poolnas.analysis.consistency import PreparedData, run_hparams
    from poolnas.data.datasets import prepare

    mini = settings.resolve("mini")
    prepare(dataset, None, tmp_path / "cache", **mini.dataset_params(dataset))
    data = PreparedData(tmp_path)
    paths = sorted((REPO / "results/mini/runs").rglob(f"{dataset}/**/seed*.json"))
    assert len(paths) > at_least
    lost = [p for p in paths if data.params_of(r := json.loads(p.read_text()), run_hparams(r, mini)) is None]
    assert lost == [], lost[:3]
