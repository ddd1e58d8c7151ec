"""Issue 32, item 6: a bad number in a profile stops every command and the workflow before any work, with one line.

NaN and infinities (YAML `.nan`, `.inf`) passed every bound of the schema, so training started on them; values
out of any sane range (`threads: 100000`, which segfaults inside torch; momentum 1) did too; a profile file that is
not UTF-8 ended in a traceback.
"""

import copy

import pytest
import yaml

from poolnas import argcheck, cli, settings
from poolnas.errors import UsageError

SMOKE = yaml.safe_load((settings.PROFILE_DIR / "smoke.yaml").read_text())
NAN, INF = float("nan"), float("inf")


def changed(section: str, key: str, field: str, value) -> dict:
    profile = copy.deepcopy(SMOKE)
    (profile[section][key] if key else profile.setdefault(section, {}))[field] = value
    return profile


@pytest.mark.parametrize("section, key, field, value, words", [
    ("protocols", "resnet20", "lr", NAN, "protocols/resnet20/lr: nan is not a finite number"),
    ("protocols", "resnet20", "lr", INF, "protocols/resnet20/lr: inf is not a finite number"),
    ("protocols", "resnet20", "momentum", NAN, "protocols/resnet20/momentum: nan is not a finite number"),
    ("protocols", "resnet20", "weight_decay", INF, "weight_decay: inf is not a finite number"),
    ("search", "resnet20", "ema", NAN, "search/resnet20/ema: nan is not a finite number"),
    ("search", "resnet20", "t0", NAN, "search/resnet20/t0: nan is not a finite number"),
    ("search", "resnet20", "tmax", -INF, "search/resnet20/tmax: -inf is not a finite number"),
    ("search", "resnet20", "kl_threshold", NAN, "kl_threshold: nan is not a finite number"),
    ("baselines", None, "ucb_c", INF, "baselines/ucb_c: inf is not a finite number"),
    ("protocols", "resnet20", "lr", 0.0, "lr: 0.0 is less than or equal to the minimum of 0"),
    ("protocols", "resnet20", "momentum", 1.0, "momentum: 1.0 is greater than or equal to the maximum of 1"),
    ("protocols", "resnet20", "momentum", -0.1, "momentum: -0.1 is less than the minimum of 0"),
    ("protocols", "resnet20", "weight_decay", -1e-4, "weight_decay: -0.0001 is less than the minimum of 0"),
    ("protocols", "resnet20", "epochs", 10**6, "epochs: 1000000 is greater than the maximum of 10000"),
    ("search", "resnet20", "ema", 1.0, "search/resnet20/ema: 1.0 is greater than or equal to the maximum of 1"),
    ("search", "resnet20", "batch_size", 10**7, "batch_size: 10000000 is greater than the maximum of 65536"),
    ("datasets", "twoscale", "seed", 2**32, "datasets/twoscale/seed: 4294967296 is greater than the maximum"),
], ids=lambda v: v if isinstance(v, str) and " " not in v else None)
def test_a_non_finite_or_out_of_range_number_is_one_line(section, key, field, value, words):
    with pytest.raises(UsageError) as err:
        settings.resolve(changed(section, key, field, value))
    assert words in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_a_thread_count_that_would_crash_torch_is_refused_at_the_commands_bound():
    with pytest.raises(UsageError, match="threads: 100000 is greater than the maximum of 1024"):
        settings.resolve(SMOKE | {"threads": 100000})
    schema = yaml.safe_load(settings.SCHEMA_PATH.read_text())
    assert schema["properties"]["threads"]["maximum"] == argcheck.THREADS_MAX  # one bound, profile and --threads


def test_more_random_candidates_than_configs_is_refused():
    profile = copy.deepcopy(SMOKE)
    next(s for s in profile["studies"] if s["backbone"] == "resnet20")["search"]["random"] = 50
    with pytest.raises(UsageError, match="search/random: 50 candidates exceed the 36 configs of resnet20"):
        settings.resolve(profile)


def test_every_committed_profile_is_within_the_bounds():
    for name in [*settings.available(), str(settings.PROFILE_DIR / "pilots" / "fashion-mnist.yaml")]:
        settings.resolve(name)


@pytest.mark.parametrize("text, words", [
    ((settings.PROFILE_DIR / "smoke.yaml").read_text().replace("lr: 0.1", "lr: .nan", 1),
     "protocols/resnet20/lr: nan is not a finite number"),
    ((settings.PROFILE_DIR / "smoke.yaml").read_text().replace("threads: 1 ", "threads: 100000 ", 1),
     "threads: 100000 is greater than the maximum of 1024"),
    ("profile: caf\xe9\n", "is not UTF-8 text (byte 0xe9 at offset 12); save it as UTF-8"),
], ids=["nan", "threads", "latin-1"])
def test_a_bad_profile_file_stops_the_command_with_one_line_and_exit_2(tmp_path, capsys, text, words):
    path = tmp_path / "bad.yaml"
    path.write_bytes(text.encode("latin-1" if "\xe9" in text else "utf-8"))
    out = tmp_path / "out" / "seed0.json"
    code = cli.main(["train", "--profile", str(path), "--dataset", "twoscale", "--backbone", "resnet20", "--config",
                     "4-3-3", "--seed", "0", "--out", str(out), "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and words in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # no data, no record: no work began
