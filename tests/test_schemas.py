"""Record schemas (code/poolnas/schemas/*.json): every committed and synthetic record validates; every bad value is
refused on read (aggregate: one line naming file and field, exit 2, no CSV) and on write (nothing written)."""

import json
import re
from pathlib import Path

import pytest

from poolnas import cli, schemas
from poolnas.arch.spaces import SPACES
from poolnas.errors import UsageError
from poolnas.search.methods import METHODS

from helpers import REPO, make_results

COMMITTED = sorted(p for p in (REPO / "results").glob("*/runs/*/**/seed*.json"))
# Two real records of the twoscale mini study (commit f36b8ec), kept as fixtures: a relaxed retraining whose path
# is no corner case, and a relaxed SPOS search.
FIXTURES = REPO / "tests" / "fixtures"


def kind_of(path: Path) -> str:
    return path.parts[path.parts.index("runs") + 1]


def test_the_schemas_are_valid_json_schema_and_name_every_method_and_backbone():
    train, search = (json.loads(schemas.schema_path(k).read_text()) for k in ("train", "search"))
    for kind in schemas.KINDS:
        schemas.validator(kind)  # check_schema inside
    assert set(search["properties"]["method"]["enum"]) == set(METHODS)  # a new method needs its schema entry
    assert set(search["properties"]["backbone"]["enum"]) == set(SPACES)
    assert set(train["properties"]["backbone"]["enum"]) == set(SPACES) | {"resnet20-relaxed"}
    families = {m: spec.family for m, spec in METHODS.items()}
    covered = set()
    for branch in search["allOf"]:
        method = branch["if"]["properties"]["method"]
        covered |= {method["const"]} if "const" in method else set(method["enum"])
    assert covered == set(METHODS), f"methods without their family's fields: {set(METHODS) - covered} ({families})"


def test_every_committed_record_validates():
    assert len(COMMITTED) >= 100  # results/mini: 108 standalone runs, then searches and retrainings
    for path in COMMITTED:
        schemas.read_record(path, kind_of(path))


@pytest.mark.parametrize("darts", [False, True])
def test_every_synthetic_record_validates(tmp_path, darts):
    root = make_results(tmp_path / "r", darts=darts)
    paths = sorted(root.rglob("seed*.json"))
    assert len(paths) == 36 * 3 + 4 * 3 + 3 + (3 if darts else 0)
    for path in paths:
        schemas.read_record(path, kind_of(path))


# --- bad records, read by aggregate --------------------------------------------------------------------------


@pytest.fixture
def results(tmp_path):
    return make_results(tmp_path / "results", configs=[1, 2, 3, 24], gt_seeds=(0,), models=(2,), search_seeds=(0,),
                        random_k=3)


TRAIN = "runs/train/twoscale/resnet20/4-3-3/seed0.json"
MIXTURE = "runs/search/twoscale/resnet20/mixture-M2/seed0.json"
RANDOM = "runs/search/twoscale/resnet20/random-K3/seed0.json"


def edit(path: Path, change) -> None:
    record = json.loads(path.read_text())
    change(record)
    text = json.dumps(record, indent=1)  # NaN/Infinity as Python writes them: what a bad writer would leave
    path.write_text(text)


def setter(*keys, value):
    def change(record):
        target = record
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return change


def drop(*keys):
    def change(record):
        target = record
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]
    return change


BAD = [  # (file, change, field named in the message, words of the message)
    (TRAIN, setter("test_acc", value=float("nan")), "test_acc", "nan is not a finite number"),
    (TRAIN, setter("test_acc", value=float("inf")), "test_acc", "inf is not a finite number"),
    (TRAIN, setter("test_acc", value=None), "test_acc", "None is not of type 'number'"),
    (TRAIN, setter("test_acc", value=-50), "test_acc", "less than the minimum of 0"),
    (TRAIN, setter("test_acc", value=1e9), "test_acc", "greater than the maximum of 100"),
    (TRAIN, setter("test_acc", value="97.1"), "test_acc", "is not of type 'number'"),
    (TRAIN, setter("best_test_acc", value=100.5), "best_test_acc", "maximum of 100"),
    (TRAIN, setter("history", 2, "test_acc", value=float("-inf")), "history[2].test_acc", "not a finite number"),
    (TRAIN, drop("test_acc"), "test_acc", "missing"),
    (TRAIN, drop("hparams", "batch_size"), "hparams.batch_size", "missing"),
    (TRAIN, setter("config", value="[9,9,9]"), "config", "'[9,9,9]' is not a config of resnet20"),
    (TRAIN, setter("index", value=5), "index", "index 5 is not the index of [4,3,3] in resnet20 (24)"),
    (TRAIN, setter("code", value="1111111111"), "code", "is not the code of [4,3,3]"),
    (TRAIN, setter("seed", value=-1), "seed", "minimum of 0"),
    (TRAIN, setter("kind", value=None), "kind", "'train' was expected"),
    (MIXTURE, setter("accuracy", 0, 1, value=float("nan")), "accuracy[0][1]", "not a finite number"),
    (MIXTURE, setter("accuracy", 3, 0, value=250.0), "accuracy[3][0]", "maximum of 100"),
    (MIXTURE, setter("selected", "config", value="[9,9,9]"), "selected.config", "not a config of resnet20"),
    (MIXTURE, setter("selected", "index", value=99), "selected.index", "index 99 is not the index of"),
    (MIXTURE, setter("alternatives", "assigned", "score", value=-3.0), "alternatives.assigned.score", "minimum"),
    (MIXTURE, setter("alternatives", "ema", "score", value=7.0), "alternatives.ema.score", "maximum of 1"),
    (MIXTURE, setter("configs", 0, value="[1,1,9]"), "configs[0]", "not a config of resnet20"),
    (MIXTURE, setter("assignment", 0, value=5), "assignment", "a SuperNet outside 0..1"),
    (MIXTURE, setter("P_final", 0, value=[1.0]), "P_final", "a row without 2 entries"),
    (MIXTURE, setter("epochs", 1, "val_acc", value=float("nan")), "epochs[1].val_acc", "not a finite number"),
    (MIXTURE, drop("assignment"), "assignment", "missing"),
    (MIXTURE, setter("models", value=None), "models", "None is not of type 'integer'"),
    (RANDOM, setter("candidate_runs", 0, "val_acc", value=1e9), "candidate_runs[0].val_acc", "maximum of 100"),
    (RANDOM, setter("candidate_runs", 0, "index", value=36), "candidate_runs[0].index", "is not the index of"),
    (RANDOM, setter("accuracy", value=[50.0]), "accuracy", "1 entries for 3 configs"),
]


@pytest.mark.parametrize("file, change, field, words", BAD, ids=[f"{f.split('/')[3]}:{field}:{words[:20]}"
                                                                  for f, _, field, words in BAD])
def test_aggregate_refuses_a_bad_record_naming_file_and_field(results, capsys, file, change, field, words):
    edit(results / file, change)
    assert cli.main(["aggregate", "--results", str(results), "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"record {results / file}: field {field}: " in err and words in err, err
    assert list(results.glob("*.csv")) == []  # nothing aggregated from a bad record


@pytest.mark.parametrize("text, words", [
    ("[1, 2, 3]", "field (the record itself): [1, 2, 3] is not of type 'object'"),
    ('{"kind": "train", "test_acc": NaN', "cannot read record"),
    ("", "cannot read record"),
    ('"a string"', "is not of type 'object'"),
])
def test_aggregate_refuses_a_record_that_is_no_object(results, capsys, text, words):
    (results / TRAIN).write_text(text)
    assert cli.main(["aggregate", "--results", str(results), "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(results / TRAIN) in err and words in err, err


def test_the_untouched_results_aggregate(results, capsys):
    """The fixture itself is good: the refusals above come from the edits."""
    assert cli.main(["aggregate", "--results", str(results), "--bootstrap", "0"]) == 0
    assert len(list(results.glob("*.csv"))) == 6


def test_a_relaxed_training_record_must_name_a_path(results):
    record = json.loads((FIXTURES / "relaxed_train_record.json").read_text())
    schemas.check(record, "train", "x.json")
    for field, value, words in [("config", "011111113", "not a path"), ("index", 1, "is not the index of path"),
                                ("code", "0000000000", "is not the path")]:
        with pytest.raises(UsageError, match=re.escape(f"record x.json: field {field}: ") + ".*" + words):
            schemas.check(record | {field: value}, "train", "x.json")


def test_the_relaxed_path_without_pooling_has_index_0_and_configs_start_at_1(results):
    """DARTS on glyphs picked 000000000 (every block at full resolution): its retraining record has index 0, the
    path read as a base-3 number; a config of a pooling space is still numbered from 1."""
    relaxed = json.loads((FIXTURES / "relaxed_train_record.json").read_text())
    schemas.check(relaxed | {"config": "000000000", "index": 0, "code": "000000000"}, "train", "x.json")
    config = json.loads((results / TRAIN).read_text())
    with pytest.raises(UsageError, match=r"field index: index 0 is not the index of"):
        schemas.check(config | {"index": 0}, "train", "x.json")


def test_a_search_path_and_its_config_must_agree():
    path = FIXTURES / "spos_relaxed_search_record.json"
    record = json.loads(path.read_text())
    schemas.check(record, "search", path)
    bad = record | {"selected": record["selected"] | {"path": "000111222"}}  # that path is [4,3,3]
    with pytest.raises(UsageError, match=r"field selected\.path: path 000111222 is config \[4,3,3\]"):
        schemas.check(bad, "search", path)


# --- on write ------------------------------------------------------------------------------------------------


def test_a_bad_record_is_never_written(results, tmp_path):
    record = json.loads((results / TRAIN).read_text())
    out = tmp_path / "out" / "seed0.json"
    schemas.write_record(out, record)
    assert json.loads(out.read_text()) == record
    with pytest.raises(UsageError, match=re.escape(f"record {tmp_path / 'out' / 'bad.json'} (not written): field "
                                                   "test_acc: nan is not a finite number")):
        schemas.write_record(tmp_path / "out" / "bad.json", record | {"test_acc": float("nan")})
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["seed0.json"]  # no file, no temporary
