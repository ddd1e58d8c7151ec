import io

import pandas as pd
import pytest

from poolnas.cli import main
from poolnas.errors import UsageError
from poolnas.arch.spaces import RELAXED, SPACES, get_space

R20 = SPACES["resnet20"]


@pytest.mark.parametrize("index,name,code", [
    (1, "[1,1,8]", "0110000000"), (2, "[1,2,7]", "0101000000"), (8, "[1,8,1]", "0100000001"),
    (9, "[2,1,7]", "0011000000"), (24, "[4,3,3]", "0000100100"), (29, "[5,3,2]", "0000010010"),
    (32, "[6,2,2]", "0000001010"), (34, "[7,1,2]", "0000000110"), (36, "[8,1,1]", "0000000011"),
])
def test_resnet20_numbering_matches_paper(index, name, code):
    config = R20.by_index(index)
    assert (config.name, config.code) == (name, code)


@pytest.mark.parametrize("space,count,default,default_index", [
    ("resnet20", 36, "[4,3,3]", 24), ("resnet18", 56, "[3,2,2,2]", None), ("resnet50", 455, "[3,4,6,3]", None)])
def test_space_sizes_and_defaults(space, count, default, default_index):
    s = SPACES[space]
    assert len(s) == count
    assert s.default.name == default
    if default_index:
        assert s.default.index == default_index
    # numbering is 1..N in lexicographic order of the downsampling positions, codes unique
    assert [c.index for c in s] == list(range(1, count + 1))
    assert [c.positions for c in s] == sorted(c.positions for c in s)
    assert len({c.code for c in s}) == count
    assert all(sum(c.parts) == s.n_units and min(c.parts) >= 1 for c in s)


@pytest.mark.parametrize("text", ["[4,3,3]", "4,3,3", "4-3-3", " 4 3 3 ", "[4, 3, 3]", "24", "0000100100", 24])
def test_parse_accepts_every_documented_form(text):
    assert R20.parse(text).index == 24


@pytest.mark.parametrize("space", list(SPACES))
def test_every_config_round_trips_through_every_form(space):
    s = SPACES[space]
    for c in s:
        assert s.parse(c.name) == s.parse(c.slug) == s.parse(c.code) == s.parse(str(c.index)) == c


@pytest.mark.parametrize("text,fragment", [
    ("[4,3,4]", "sums to 11"), ("[0,5,5]", "part below 1"), ("[4,6]", "has 2 parts"), ("37", "out of range"),
    ("0", "out of range"), ("0000100101", "sets bits"), ("1000100000", "never bit 0"), ("abc", "cannot read"),
    ("4.5,3,3", "cannot read"), ("", "cannot read")])
def test_parse_rejects_invalid_input_with_a_clear_message(text, fragment):
    with pytest.raises(UsageError, match=fragment) as err:
        R20.parse(text)
    assert "\n" not in str(err.value)


def test_unknown_backbone_names_the_known_ones():
    with pytest.raises(UsageError, match="known: resnet20, resnet18, resnet50"):
        get_space("resnet34")


def test_relaxed_space_contains_the_36_configs_as_monotone_paths():
    assert len(RELAXED) == 3 ** 9
    monotone = [RELAXED.to_config(RELAXED.from_index(i)) for i in range(len(RELAXED))]
    found = [c for c in monotone if c is not None]
    assert sorted(c.index for c in found) == list(range(1, 37))
    assert RELAXED.from_config(R20.default) == (0, 0, 0, 1, 1, 1, 2, 2, 2)
    assert RELAXED.parse("000111222") == RELAXED.parse("[4,3,3]")
    assert RELAXED.to_config(RELAXED.parse("010111222")) is None  # goes back up: not a ResNet20 config
    assert RELAXED.index(RELAXED.from_index(12345)) == 12345
    with pytest.raises(UsageError, match="9 levels"):
        RELAXED.parse("0123")


def test_space_command_csv_lists_36_rows_with_paper_costs(capsys):
    assert main(["space", "resnet20", "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype={"code": str})
    assert list(table.columns[:5]) == ["index", "name", "code", "params", "macs"]
    assert len(table) == 36
    row = table.set_index("name")
    assert row.loc["[4,3,3]", "index"] == 24 and row.loc["[4,3,3]", "code"] == "0000100100"
    assert table.params.nunique() == 1 and abs(table.params[0] / 0.27e6 - 1) < 0.02
    for name, paper_macs in [("[1,1,8]", 18.6e6), ("[4,3,3]", 40.8e6), ("[8,1,1]", 149e6)]:
        assert abs(row.loc[name, "macs"] / paper_macs - 1) < 0.02, name


def test_space_command_readable_table(capsys):
    assert main(["space", "resnet18", "--config", "3-2-2-2"]) == 0
    out = capsys.readouterr().out
    assert "[3,2,2,2]" in out and "M" in out


@pytest.mark.parametrize("argv,fragment", [
    (["space", "resnet34"], "unknown backbone"), (["space", "resnet20", "--config", "[4,3,4]"], "sums to 11"),
    (["space", "resnet20", "--classes", "0"], "--classes"),
    (["space", "resnet20", "--image-size", "0"], "--image-size must be >= 8 pixels, got 0"),
    (["space", "resnet20", "--image-size", "-4"], "--image-size must be >= 8 pixels, got -4")])
def test_space_command_bad_input_exits_2_with_one_line(run_cli, argv, fragment):
    proc = run_cli(*argv)
    assert proc.returncode == 2
    assert fragment in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
