"""Standalone training: determinism, kill -9 and resume, NaN guard, atomic records, bad arguments."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from poolnas.arch.cost import count_macs
from poolnas.settings import PROFILE_DIR
from poolnas.arch.spaces import get_space
from poolnas.standalone import train_run

TIMING = {"seconds", "train_seconds", "images_per_s", "provenance"}


def comparable(record: dict) -> dict:
    """A record without what depends on the clock or the machine."""
    out = {k: v for k, v in record.items() if k not in TIMING}
    out["history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in record["history"]]
    return out


@pytest.fixture
def tiny_profile(tmp_path):
    """The smoke profile shrunk further: 4 epochs on 256 images, so a run takes a few seconds."""
    profile = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    profile["profile"] = "tiny"
    profile["datasets"]["twoscale"].update(train=256, test=100)
    profile["protocols"]["resnet20"].update(epochs=4, batch_size=64, milestones=[3], eval_every=2)

    def write(**protocol):
        profile["protocols"]["resnet20"].update(protocol)
        path = tmp_path / "tiny.yaml"
        path.write_text(yaml.safe_dump(profile))
        return str(path)

    return write


def run(profile, out, data_dir, **kw):
    return train_run(profile=profile, dataset="twoscale", backbone=kw.pop("backbone", "resnet20"),
                     config=kw.pop("config", "4-3-3"),
                     seed=kw.pop("seed", 0), out=out, data_dir=data_dir, threads=1, **kw)


def test_record_has_every_field_and_is_deterministic(tiny_profile, tmp_path):
    profile = tiny_profile()
    first = run(profile, tmp_path / "a.json", tmp_path / "data")
    second = run(profile, tmp_path / "b.json", tmp_path / "data")
    assert comparable(first) == comparable(second)
    on_disk = json.loads((tmp_path / "a.json").read_text())
    assert comparable(on_disk) == comparable(first)
    for field in ["test_acc", "history", "train_seconds", "images_per_s", "params", "macs", "hparams", "options",
                  "provenance", "seed", "config", "index", "code", "dataset", "backbone", "profile"]:
        assert field in on_disk, field
    size = yaml.safe_load(open(profile))["datasets"]["twoscale"]["size"]
    macs = count_macs("resnet20", get_space("resnet20").default, image_size=size)  # torch's FLOP counter
    assert on_disk["config"] == "[4,3,3]" and on_disk["index"] == 24 and on_disk["macs"] == macs
    assert [h["epoch"] for h in on_disk["history"]] == [1, 2, 3, 4]
    assert [h["test_acc"] is not None for h in on_disk["history"]] == [False, True, False, True]
    assert on_disk["test_acc"] == on_disk["history"][-1]["test_acc"] and on_disk["test_images"] == 100
    # the dataset as prepared, defaults filled in: what a changed profile is compared with (issue 32, item 4)
    assert on_disk["data_params"] == {"seed": 0, "size": size, "classes": 10, "train": 256, "test": 100}
    assert on_disk["options"]["bn"] == "released" and on_disk["hparams"]["lr"] == 0.1
    assert on_disk["options"]["warmup_epochs"] == on_disk["hparams"]["warmup_epochs"]  # a departure, so named
    # the options that differ from the release, at the smoke profile's values (README "Options and the release")
    assert {k: on_disk["options"][k] for k in ("conv_init", "zero_init_residual", "stem_bn_affine", "cosine_t_max",
                                                "eval_order")} == {
        "conv_init": "kaiming_fan_out", "zero_init_residual": False, "stem_bn_affine": True, "cosine_t_max": "epochs",
        "eval_order": "index"}
    assert {"git_commit", "torch_version", "device", "threads", "cpu_model", "git_dirty"} <= set(on_disk["provenance"])
    # the milestone at epoch 3 divides the learning rate by 10
    assert [h["lr"] for h in on_disk["history"]] == pytest.approx([0.1, 0.1, 0.1, 0.01])
    # another seed is another run
    other = run(profile, tmp_path / "c.json", tmp_path / "data", seed=1)
    assert other["history"][0]["train_loss"] != first["history"][0]["train_loss"]
    assert not (tmp_path / ".checkpoints" / "a.pt").exists()  # removed once the record is written


@pytest.mark.slow
def test_kill_9_then_restart_gives_the_uninterrupted_record(tiny_profile, tmp_path):
    profile = tiny_profile(epochs=6, milestones=[4])
    reference = run(profile, tmp_path / "ref.json", tmp_path / "data")
    out, ckpt = tmp_path / "killed.json", tmp_path / "killed.pt"
    cmd = [sys.executable, "-m", "poolnas", "train", "--profile", profile, "--dataset", "twoscale",
           "--backbone", "resnet20", "--config", "4-3-3", "--seed", "0", "--out", str(out), "--threads", "1",
           "--data-dir", str(tmp_path / "data"), "--checkpoint", str(ckpt)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # no partial record
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch" in resumed.stderr
    assert comparable(json.loads(out.read_text())) == comparable(reference)


def test_nan_loss_stops_with_a_clear_error_and_no_record(tiny_profile, tmp_path, run_cli):
    profile = tiny_profile(lr=1e30)
    out = tmp_path / "nan.json"
    proc = run_cli("train", "--profile", profile, "--dataset", "twoscale", "--backbone", "resnet20", "--config",
                   "[1,1,8]", "--seed", "3", "--out", out, "--data-dir", tmp_path / "data")
    assert proc.returncode == 1
    message = proc.stderr.lower()
    assert "[1,1,8] seed 3" in proc.stderr and "epoch 1" in proc.stderr and ("nan" in message or "inf" in message)
    assert not out.exists()


def test_record_write_is_atomic(tiny_profile, tmp_path, monkeypatch):
    """A crash while the record is being written leaves no file at all (and the old one, if any, intact)."""
    import poolnas.records as records

    out = tmp_path / "r.json"
    out.write_text('{"old": true}\n')

    def crash(*args, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(records.os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        run(tiny_profile(epochs=1), out, tmp_path / "data")
    assert json.loads(out.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


@pytest.mark.parametrize("change,fragment", [
    (["--dataset", "imagenet"], "dataset 'imagenet' is not in profile"),
    (["--backbone", "resnet34"], "unknown backbone 'resnet34'"),
    (["--config", "[4,3,4]"], "sums to 11"),
    (["--epochs", "-3"], "--epochs must be >= 1"),
    (["--profile", "huge"], "unknown profile 'huge'"),
    (["--seed", "-1"], "--seed must be >= 0"),
])
def test_bad_arguments_get_one_line_and_exit_2(run_cli, tmp_path, change, fragment):
    args = {"--profile": "smoke", "--dataset": "twoscale", "--backbone": "resnet20", "--config": "4-3-3",
            "--seed": "0", "--out": str(tmp_path / "x.json"), "--data-dir": str(tmp_path / "data")}
    args.update(dict(zip(change[::2], change[1::2])))
    proc = run_cli("train", *[x for kv in args.items() for x in kv])
    assert proc.returncode == 2, proc.stderr
    assert fragment in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "data").exists()


def test_relaxed_path_trains_standalone_and_a_monotone_path_equals_its_config(tiny_profile, tmp_path):
    profile = tiny_profile(epochs=1)
    wavy = run(profile, tmp_path / "wavy.json", tmp_path / "data", config="010212021", backbone="resnet20-relaxed")
    assert wavy["config"] == "010212021" and wavy["backbone"] == "resnet20-relaxed"
    assert all(h["train_loss"] > 0 for h in wavy["history"]) and 0 <= wavy["test_acc"] <= 100
    as_path = run(profile, tmp_path / "p.json", tmp_path / "data", config="000111222", backbone="resnet20-relaxed")
    as_config = run(profile, tmp_path / "c.json", tmp_path / "data", config="4-3-3")
    assert as_path["macs"] == as_config["macs"] and as_path["params"] == as_config["params"]
    assert as_path["history"][0]["train_loss"] == pytest.approx(as_config["history"][0]["train_loss"], rel=1e-5)


def test_provenance_says_what_was_dirty_and_hashes_the_diff(tmp_path):
    """A '+dirty' record names the changed paths and the sha256 of `git diff HEAD --binary` (issue 30, item 7), so a
    reader can check a saved patch against it; a clean checkout gives None."""
    import hashlib

    from poolnas.records import git_dirty

    git = lambda *a: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=tmp_path,  # noqa: E731
                                    check=True, capture_output=True).stdout
    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    git("add", "."), git("commit", "-qm", "start")
    assert git_dirty(tmp_path) is None
    (tmp_path / "b.py").write_text("y = 3\n")
    (tmp_path / "untracked.py").write_text("z = 0\n")  # not code of the checkout: not listed
    dirty = git_dirty(tmp_path)
    assert dirty == {"paths": ["b.py"], "diff_sha256": hashlib.sha256(git("diff", "HEAD", "--binary")).hexdigest()}
    (tmp_path / "b.py").write_text("y = 4\n")
    assert git_dirty(tmp_path)["diff_sha256"] != dirty["diff_sha256"]


def test_provenance_names_the_cpu_from_cpuinfo(tmp_path, monkeypatch):
    """Records are exact on one CPU model and may differ on another: the record says which one made it."""
    import platform

    from poolnas.records import cpu_model

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz\n"
                    "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz\n")
    assert cpu_model(str(info)) == "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz"
    monkeypatch.setattr(platform, "processor", lambda: "")  # no cpuinfo and nothing from platform: unknown, not ''
    assert cpu_model(str(tmp_path / "absent")) is None


def test_test_batch_changes_the_number_with_released_bn_only(tiny_profile, tmp_path):
    """'released' BN normalises the first BN of each block with the test batch's statistics, so the protocol's
    test_batch_size (the release tests at its training batch) changes test_acc; 'standard' BN uses running
    statistics, so it cannot. The same seed trains the same network in each pair: only the evaluation differs."""
    accs = {}
    for bn in ("released", "standard"):
        for batch in (2, 100):
            profile = yaml.safe_load(open(tiny_profile(bn=bn, test_batch_size=batch, eval_every=0)))  # a dict:
            profile["datasets"]["twoscale"].update(classes=2)
            rec = run(profile, tmp_path / f"{bn}{batch}.json", tmp_path / "data")  # profile files are cached by path
            assert rec["options"]["test_batch_size"] == batch and rec["hparams"]["test_batch_size"] == batch
            accs[bn, batch] = rec["test_acc"]
    assert abs(accs["released", 2] - accs["released", 100]) >= 5.0  # 14 points here (63 % against 49 %)
    assert accs["standard", 2] == accs["standard", 100]


def test_test_batch_absent_keeps_the_old_evaluation(tiny_profile, tmp_path):
    """Without test_batch_size the records keep what smoke and mini were made with (max(batch, 500)) and gain no
    key, so an old record still equals its profile's settings."""
    from poolnas.standalone import test_batch_size

    rec = run(tiny_profile(epochs=1, eval_every=0), tmp_path / "a.json", tmp_path / "data")
    assert "test_batch_size" not in rec["options"] and "test_batch_size" not in rec["hparams"]
    assert test_batch_size(rec["hparams"]) == 500


def test_training_drop_last_is_an_option(tiny_profile, tmp_path):
    """The released ResNet20 script drops the last partial training batch (the paper profile's drop_last: true):
    256 images at batch 96 train 192 per epoch, not 256; the record names it."""
    profile = yaml.safe_load(open(tiny_profile(epochs=1, batch_size=96, eval_every=0, drop_last=True)))
    rec = run(profile, tmp_path / "d.json", tmp_path / "data")
    assert rec["history"][0]["images"] == 192 and rec["options"]["drop_last"] is True


def test_cifar_recipe_ffcv_gives_the_released_pad_and_std():
    """The released ResNet18 and ResNet50/CIFAR100 pipeline (translate 2, std 0.2023/0.1994/0.2010) by name."""
    from types import SimpleNamespace

    from poolnas.errors import UsageError
    from poolnas.standalone import cifar_recipe

    data = SimpleNamespace(recipe="pad-crop-flip", name="cifar10")
    assert cifar_recipe({}, data) == {}
    assert cifar_recipe({"cifar_recipe": "ffcv"}, data)["pad"] == 2
    assert cifar_recipe({"cifar_recipe": "ffcv"}, data)["std"] == (0.2023, 0.1994, 0.2010)
    with pytest.raises(UsageError):
        cifar_recipe({"cifar_recipe": "ffcv"}, SimpleNamespace(recipe="flip", name="glyphs"))


@pytest.mark.parametrize("section, backbone, dataset", [
    ("protocol", "resnet18", "cifar10"), ("search", "resnet18", "cifar10"),
    ("protocol", "resnet50", "cifar100"), ("search", "resnet50", "cifar100")])
def test_paper_profile_reads_table3_cifar_as_the_release(section, backbone, dataset):
    """Table 3's CIFAR loaders as the paper profile resolves them: translate by up to 2 pixels and the released
    std (0.2023, 0.1994, 0.2010), where the dataset's own pipeline pads 4 and divides by 0.247 / 0.243 / 0.262."""
    from types import SimpleNamespace

    import numpy as np
    import torch

    from poolnas import settings
    from poolnas.data.datasets import CIFAR_MEAN, get_dataset
    from poolnas.data.loader import Loader
    from poolnas.standalone import cifar_recipe

    spec = get_dataset(dataset)
    hp = getattr(settings.resolve("paper"), section)(backbone, dataset)
    kw = {"mean": spec.mean, "std": spec.std, **cifar_recipe(hp, SimpleNamespace(recipe=spec.recipe, name=dataset))}
    loader = Loader(np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4, np.int64), batch_size=2, recipe=spec.recipe,
                    augment=True, **kw)
    assert loader.pad == 2 and tuple(kw["mean"]) == CIFAR_MEAN
    assert torch.allclose(loader.scale.flatten(), 1 / (255 * torch.tensor([0.2023, 0.1994, 0.2010])))


@pytest.mark.parametrize("backbone, dataset", [("resnet20", "cifar10"), ("resnet50", "food101")])
def test_paper_profile_keeps_the_own_pipeline_where_the_release_did(backbone, dataset):
    """The released ResNet20 scripts pad 4 with CIFAR10's std; Food101 has its own resized-crop recipe."""
    from poolnas import settings

    prof = settings.resolve("paper")
    assert "cifar_recipe" not in prof.protocol(backbone, dataset) | prof.search(backbone, dataset)


def test_paper_profile_drops_the_last_training_batch_everywhere():
    """Every released training loader drops the last partial batch: ResNet20's base_data_loader.py and the ffcv
    loaders of the ResNet18, ResNet50/CIFAR100 and ResNet50/Food101 scripts, standalone and search."""
    from poolnas import settings

    prof = settings.resolve("paper")
    for study in prof.studies:
        backbone, dataset = study["backbone"], study["dataset"]
        assert prof.protocol(backbone, dataset).get("drop_last") is True, (backbone, dataset)
        assert prof.search(backbone, dataset).get("drop_last") is True, (backbone, dataset)
