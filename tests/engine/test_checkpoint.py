"""Checkpoints are untrusted input: a crafted file runs no code, an unreadable one is set aside and the run
starts again (the record is exact), and leftovers of interrupted writes are removed when the job runs again."""

import builtins
import json
import pickle

import pytest
import torch
import yaml

from poolnas.engine import checkpoint as checkpoint_module
from poolnas.engine.checkpoint import FORMAT, Checkpoint
from poolnas.search.run import search_run
from poolnas.standalone import train_run

from helpers import Stop, comparable, tiny_profile


class Planted:
    """Unpickling this creates `marker`: what a crafted checkpoint would do with a shell command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    profile = root / "tiny.yaml"
    profile.write_text(yaml.safe_dump(tiny_profile(epochs=2)))
    return {"root": root, "profile": str(profile), "data": root / "data"}


def search(tiny, out, **kw):
    return search_run(method="mixture", models=2, profile=tiny["profile"], dataset="twoscale", backbone="resnet20",
                      seed=0, out=out, data_dir=tiny["data"], threads=1, device="cpu", **kw)


@pytest.fixture(scope="module")
def reference(tiny):
    """The uninterrupted search every recovered run must reproduce."""
    return comparable(search(tiny, tiny["root"] / "reference.json"))


@pytest.fixture(scope="module")
def real_checkpoint(tiny):
    """The bytes of a real checkpoint, written after epoch 0 of the search."""
    path = tiny["root"] / "real.pt"

    def stop(epoch):
        raise Stop(epoch)

    with pytest.raises(Stop):
        search(tiny, tiny["root"] / "real.json", checkpoint=path, after_epoch=stop)
    return path.read_bytes()


def comparable_train(record: dict) -> dict:
    """A standalone record without what depends on the clock or the machine."""
    out = {k: v for k, v in record.items() if k not in ("train_seconds", "images_per_s", "provenance")}
    return out | {"history": [{k: v for k, v in h.items() if k != "seconds"} for h in record["history"]]}


def set_aside(path):
    return sorted(p.name for p in path.parent.glob(f"{path.name}.unreadable-*"))


def crafted_torch_file(path, marker, key):
    """A valid torch zip file with this run's format and key whose state unpickles to code."""
    torch.save({"format": FORMAT, "key": key, "state": Planted(marker)}, path)


def crafted_plain_pickle(path, marker, key):
    """The legacy (non-zip) format torch.load also reads: a bare pickle."""
    path.write_bytes(pickle.dumps({"format": FORMAT, "key": key, "state": Planted(marker)}))


@pytest.mark.parametrize("craft", [crafted_torch_file, crafted_plain_pickle])
def test_the_crafted_file_can_run_code_when_loaded_without_weights_only(tmp_path, craft):
    """The planted files are real attacks: an unsafe load creates the marker (so the test below can fail)."""
    marker, path = tmp_path / "marker", tmp_path / "evil.pt"
    craft(path, marker, "k")
    try:
        torch.load(path, weights_only=False)
    except RuntimeError:  # the bare pickle is no valid legacy file: torch fails, but only after unpickling it
        pass
    assert marker.exists()


@pytest.mark.parametrize("craft", [crafted_torch_file, crafted_plain_pickle])
def test_a_crafted_checkpoint_runs_no_code_and_the_run_is_exact(tiny, reference, tmp_path, craft, capsys):
    marker, ckpt = tmp_path / "marker", tmp_path / "ck" / "run.pt"
    ckpt.parent.mkdir()
    out = tmp_path / "run.json"
    from poolnas.search.run import prepare

    key = prepare(method="mixture", models=2, profile=tiny["profile"], dataset="twoscale", backbone="resnet20",
                  seed=0, out=out, data_dir=tiny["data"], threads=1, device="cpu").key
    craft(ckpt, marker, key)
    record = search(tiny, out, checkpoint=ckpt)
    assert not marker.exists()
    assert comparable(record) == reference
    assert comparable(json.loads(out.read_text())) == reference
    aside = set_aside(ckpt)
    assert len(aside) == 1 and not ckpt.exists()
    warning = [line for line in capsys.readouterr().err.splitlines() if "cannot be read" in line]
    assert len(warning) == 1 and str(ckpt) in warning[0] and aside[0] in warning[0]


@pytest.mark.parametrize("size", [1 << 20, 100, 0])
def test_a_truncated_checkpoint_is_set_aside_and_the_run_is_exact(tiny, reference, real_checkpoint, tmp_path, size):
    assert len(real_checkpoint) > size  # a real truncation, not the whole file
    ckpt = tmp_path / "run.pt"
    ckpt.write_bytes(real_checkpoint[:size])
    record = search(tiny, tmp_path / "run.json", checkpoint=ckpt)
    assert comparable(record) == reference
    assert len(set_aside(ckpt)) == 1 and not ckpt.exists()
    assert (tmp_path / f"{set_aside(ckpt)[0]}").stat().st_size == size  # kept for inspection, not deleted


def test_the_real_checkpoint_resumes(tiny, reference, real_checkpoint, tmp_path, capsys):
    """The untruncated bytes are a good checkpoint: the run resumes from it (no set-aside)."""
    ckpt = tmp_path / "run.pt"
    ckpt.write_bytes(real_checkpoint)
    assert comparable(search(tiny, tmp_path / "run.json", checkpoint=ckpt)) == reference
    assert "resuming" in capsys.readouterr().err and set_aside(ckpt) == []


def test_a_truncated_standalone_checkpoint_recovers_to_the_exact_record(tiny, tmp_path, monkeypatch):
    def train(out, ckpt):
        return train_run(profile=tiny["profile"], dataset="twoscale", backbone="resnet20", config="4-3-3", seed=0,
                         out=out, data_dir=tiny["data"], checkpoint=ckpt, threads=1, device="cpu", epochs=2)

    ckpt = tmp_path / "train.pt"
    with monkeypatch.context() as m:  # keep the final checkpoint: real bytes to truncate
        m.setattr(Checkpoint, "remove", lambda self: None)
        reference = train(tmp_path / "ref.json", ckpt)
    data = ckpt.read_bytes()
    for size in (len(data) // 2, 100, 0):
        ckpt.write_bytes(data[:size])
        again = train(tmp_path / f"again{size}.json", ckpt)
        assert comparable_train(again) == comparable_train(reference), size
        assert not ckpt.exists()
    assert len(set_aside(ckpt)) == 3  # each kept under its own name, none overwritten


def test_other_formats_keys_and_shapes_are_ignored_not_misread(tmp_path):
    path = tmp_path / "c.pt"
    for saved in ({"format": FORMAT - 1, "key": "k", "state": {"x": 1}}, {"format": FORMAT, "key": "other",
                                                                           "state": {"x": 1}}, [1, 2, 3]):
        torch.save(saved, path)
        assert Checkpoint(path, "k").load() is None and path.exists()  # readable: kept, just not this run's
    Checkpoint(path, "k").save({"x": torch.ones(2)})
    assert torch.equal(Checkpoint(path, "k").load()["x"], torch.ones(2))


def test_stale_temporaries_are_gone_after_a_rerun(tiny, reference, tmp_path):
    out, ckpt = tmp_path / "seed0.json", tmp_path / ".checkpoints" / "seed0.pt"
    ckpt.parent.mkdir()
    stale = [tmp_path / ".seed0.json.k2j3h4.tmp", ckpt.parent / ".seed0.pt.x9y8z7.tmp"]
    for path in stale:  # what a kill -9 inside atomic_write_bytes leaves
        path.write_bytes(b"\0" * 4096)
    others = [tmp_path / ".seed1.json.abc.tmp", tmp_path / "seed0.json.notes"]  # another job's, and not a temporary
    for path in others:
        path.write_text("keep")
    assert comparable(search(tiny, out)) == reference
    assert [p for p in stale if p.exists()] == []
    assert all(p.read_text() == "keep" for p in others)
    assert sorted(p.name for p in ckpt.parent.iterdir()) == []  # checkpoint removed once the record exists


def test_stale_temporaries_of_a_standalone_run_are_removed(tiny, tmp_path):
    out = tmp_path / "seed0.json"
    stale = [tmp_path / ".seed0.json.abc.tmp", tmp_path / ".checkpoints" / ".seed0.pt.def.tmp"]
    stale[1].parent.mkdir()
    for path in stale:
        path.write_bytes(b"partial")
    train_run(profile=tiny["profile"], dataset="twoscale", backbone="resnet20", config="4-3-3", seed=0, out=out,
              data_dir=tiny["data"], threads=1, device="cpu", epochs=1)
    assert [p for p in stale if p.exists()] == [] and out.is_file()


def test_remove_stale_temporaries_matches_only_this_file(tmp_path):
    from poolnas.records import remove_stale_temporaries

    target = tmp_path / "a[1].json"
    mine = [tmp_path / ".a[1].json.x.tmp"]
    theirs = [tmp_path / ".a1.json.x.tmp", tmp_path / ".a[1].json.x.tmp.keep", tmp_path / ".b.json.x.tmp"]
    for p in mine + theirs:
        p.write_text("")
    assert remove_stale_temporaries(target) == mine
    assert all(p.exists() for p in theirs) and not mine[0].exists()
    assert remove_stale_temporaries(tmp_path / "missing" / "x.json") == []


def test_checkpoint_module_loads_with_weights_only(monkeypatch, tmp_path):
    """The load itself asks torch for weights_only=True (the guarantee the tests above rely on)."""
    seen = {}
    real = torch.load

    def spy(*args, **kw):
        seen.update(kw)
        return real(*args, **kw)

    monkeypatch.setattr(checkpoint_module.torch, "load", spy)
    Checkpoint(tmp_path / "c.pt", "k").save({"x": torch.zeros(1)})
    Checkpoint(tmp_path / "c.pt", "k").load()
    assert seen.get("weights_only") is True


def flip_a_tensor_byte(data: bytes) -> bytes:
    """`data` (a torch zip file) with the sign-and-exponent byte of one float in its largest tensor flipped: the
    file still loads (torch does not check the zip's CRCs), the tensor is another."""
    import io
    import struct
    import zipfile

    info = max((i for i in zipfile.ZipFile(io.BytesIO(data)).infolist() if "/data/" in i.filename),
               key=lambda i: i.file_size)
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len  # the entry's bytes (stored, not compressed)
    at = start + 4 * (info.file_size // 8) + 3
    return data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1:]


def test_a_flipped_byte_inside_a_tensor_is_caught_and_the_run_is_exact(tiny, reference, real_checkpoint, tmp_path,
                                                                         capsys):
    ckpt = tmp_path / "run.pt"
    ckpt.write_bytes(flip_a_tensor_byte(real_checkpoint))
    torch.load(ckpt, weights_only=True)  # the damage is invisible to torch: only a checksum finds it
    assert comparable(search(tiny, tmp_path / "run.json", checkpoint=ckpt)) == reference
    assert len(set_aside(ckpt)) == 1 and not ckpt.exists()
    warning = [line for line in capsys.readouterr().err.splitlines() if "set aside" in line]
    assert len(warning) == 1 and "checksum" in warning[0]


def test_a_checkpoint_whose_tensors_do_not_fit_is_set_aside_and_the_run_is_exact(tiny, tmp_path, monkeypatch,
                                                                                   capsys):
    """Shapes changed with the code (or settings the key missed): no traceback on every rerun, a fresh start."""
    def train(out, ckpt):
        return train_run(profile=tiny["profile"], dataset="twoscale", backbone="resnet20", config="4-3-3", seed=0,
                         out=out, data_dir=tiny["data"], checkpoint=ckpt, threads=1, device="cpu", epochs=2)

    ckpt, made = tmp_path / "train.pt", {}
    with monkeypatch.context() as m:  # keep the final checkpoint, and the Checkpoint that wrote it
        m.setattr(Checkpoint, "remove", lambda self: made.setdefault("it", self))
        reference = train(tmp_path / "ref.json", ckpt)
    state = made["it"].load()
    name = next(k for k, v in state["model"].items() if v.dim() == 4)
    state["model"][name] = torch.zeros(3, *state["model"][name].shape[1:])  # another width, same key and checksum
    made["it"].save(state)
    capsys.readouterr()
    again = train(tmp_path / "again.json", ckpt)
    assert comparable_train(again) == comparable_train(reference)
    assert len(set_aside(ckpt)) == 1 and not ckpt.exists()
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if "set aside" in line]
    assert len(warning) == 1 and "does not fit this run" in warning[0] and "resuming" not in err


def test_a_checkpoint_of_other_code_or_settings_is_not_resumed(tmp_path, capsys):
    path = tmp_path / "c.pt"
    Checkpoint(path, "k", {"lr": 0.1}).save({"x": torch.ones(2)})
    assert torch.equal(Checkpoint(path, "k", {"lr": 0.1}).load()["x"], torch.ones(2))
    assert Checkpoint(path, "k", {"lr": 0.2}).load() is None
    other_code = Checkpoint(path, "k", {"lr": 0.1})
    other_code.made_by["code"] = "0" * 16
    assert other_code.load() is None and path.exists()  # kept: replaced after the first epoch
    err = capsys.readouterr().err
    assert "made by other settings" in err and "made by other code" in err
