"""The data layer: the generated set, preparation into a checksummed cache, torchvision readers, splits, CLI.

torchvision's own classes read small fake datasets written in the exact on-disk formats they expect; nothing
of torchvision is mocked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import tarfile

import numpy as np
import helpers
import pytest
import yaml
from PIL import Image

from poolnas import cli
from poolnas.data import datasets
from poolnas.data import twoscale
from poolnas.data.datasets import DATASETS, load, prepare, search_split
from poolnas.errors import UsageError
from poolnas.data.twoscale import make_twoscale
from poolnas.settings import PROFILE_DIR

SMALL = {"seed": 5, "size": 16, "classes": 4, "train": 120, "test": 40}


# --- the generated set --------------------------------------------------------------------------------------


def test_twoscale_is_byte_identical_for_a_seed_and_different_for_another():
    a_images, a_labels = make_twoscale(300, seed=1)
    b_images, b_labels = make_twoscale(300, seed=1)
    c_images, c_labels = make_twoscale(300, seed=2)
    assert a_images.tobytes() == b_images.tobytes() and np.array_equal(a_labels, b_labels)
    assert a_images.dtype == np.uint8 and a_images.shape == (300, 32, 32, 3) and a_labels.dtype == np.int64
    assert (a_images != c_images).mean() > 0.5 and not np.array_equal(a_labels, c_labels)
    test_images, _ = make_twoscale(300, seed=1, split="test")
    assert (a_images != test_images).mean() > 0.5  # train and test come from different streams


def test_twoscale_labels_are_balanced_and_named():
    _, labels = make_twoscale(1203, seed=0, classes=12, size=24)
    counts = np.bincount(labels, minlength=12)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 1203
    assert twoscale.twoscale_classes(4) == ["row-checker", "row-stripes", "column-checker", "column-stripes"]


def test_twoscale_texture_is_pixel_scale_checker_or_stripes(monkeypatch):
    """The class's texture bit is readable from the image's energy at the highest spatial frequencies (without
    the noise, which is as strong as the texture on purpose)."""
    monkeypatch.setattr(twoscale, "NOISE_SD", (0.0, 0.0))
    images, labels = make_twoscale(400, seed=3)
    x = images.astype(np.float64)
    y_sign = (-1.0) ** np.arange(32)[:, None, None]
    x_sign = (-1.0) ** np.arange(32)[None, :, None]
    checker = np.abs((x * y_sign * x_sign).sum(axis=(1, 2))).sum(axis=1)
    stripes = np.maximum(np.abs((x * y_sign).sum(axis=(1, 2))).sum(axis=1),
                         np.abs((x * x_sign).sum(axis=(1, 2))).sum(axis=1))
    predicted_stripes = stripes > checker
    assert np.mean(predicted_stripes == (labels % 2 == 1)) > 0.98


def test_twoscale_pooling_keeps_the_layout_and_erases_the_texture(monkeypatch):
    """Without noise, every aligned 2x2 block is background or texture that averages to the shape colour."""
    monkeypatch.setattr(twoscale, "NOISE_SD", (0.0, 0.0))
    images, _ = make_twoscale(200, seed=4, size=24)
    blocks = images.reshape(200, 12, 2, 12, 2, 3).astype(np.int64)
    for image, block in zip(images, blocks):
        assert len(np.unique(image.reshape(-1, 3), axis=0)) == 3  # background and the two texture colours
        pooled = block.sum(axis=(1, 3)).reshape(-1, 3)  # 4 x the 2x2 average
        assert len(np.unique(pooled, axis=0)) == 2  # background and shape: the pooled image has no texture


@pytest.mark.parametrize("bad", [{"classes": 7}, {"classes": 14}, {"size": 15}, {"size": 6}, {"seed": -1},
                                 {"train": 0}, {"colour": 1}])
def test_twoscale_rejects_bad_parameters(bad, tmp_path):
    with pytest.raises(UsageError):
        prepare("twoscale", None, tmp_path, **bad)


# --- cache: round trip, checksums, atomicity ----------------------------------------------------------------


def test_prepare_then_load_round_trips_the_arrays(tmp_path):
    path = prepare("twoscale", None, tmp_path, **SMALL)
    data = load(path)
    images, labels = make_twoscale(SMALL["train"], seed=5, size=16, classes=4)
    assert np.array_equal(data.train.images, images) and np.array_equal(data.train.labels, labels)
    assert data.test.images.shape == (40, 16, 16, 3) and data.test.labels.dtype == np.int64
    meta = data.meta
    assert meta["params"] == SMALL and meta["counts"] == {"train": 120, "test": 40}
    assert meta["image_size"] == [16, 16] and data.classes == twoscale.twoscale_classes(4)
    assert data.recipe == "pad-crop-flip"
    assert np.allclose(data.mean, images.reshape(-1, 3).mean(0) / 255, atol=1e-5)
    assert np.allclose(data.std, images.reshape(-1, 3).std(0) / 255, atol=1e-5)
    file = meta["files"]["train_images.npy"]
    assert file["sha256"] == hashlib.sha256((path / "train_images.npy").read_bytes()).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary directory left
    umask = os.umask(0)
    os.umask(umask)  # the cache is as readable as any new file, although built in an owner-only temp directory
    assert path.stat().st_mode & 0o777 == 0o777 & ~umask
    assert (path / "meta.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_prepare_reuses_a_cache_and_rebuilds_on_force(tmp_path):
    path = prepare("twoscale", None, tmp_path, **SMALL)
    stamp = (path / "meta.json").stat().st_mtime_ns
    assert prepare("twoscale", None, tmp_path, **SMALL) == path
    assert (path / "meta.json").stat().st_mtime_ns == stamp
    assert prepare("twoscale", None, tmp_path, force=True, **SMALL) == path
    assert (path / "meta.json").stat().st_mtime_ns != stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    other = prepare("twoscale", None, tmp_path, **{**SMALL, "seed": 6})
    expected = f"twoscale-v{twoscale.TWOSCALE_VERSION}-seed6-size16-classes4-train120-test40"
    assert other != path and other.name == expected


def test_load_refuses_a_cache_whose_checksum_does_not_match(tmp_path):
    path = prepare("twoscale", None, tmp_path, **SMALL)
    with open(path / "test_labels.npy", "r+b") as f:  # flip one byte of the label data, keep the header
        f.seek(-3, 2)
        byte = f.read(1)
        f.seek(-3, 2)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(UsageError, match=r"test_labels\.npy does not match its sha256.*rebuild it with: "
                                         r"python -m poolnas data prepare --dataset twoscale .*--force"):
        load(path)
    assert load(path, verify=False).test.labels.shape == (40,)  # the check is what refused it


def _edit_meta(path, change):
    meta = json.loads((path / "meta.json").read_text())
    change(meta)
    (path / "meta.json").write_text(json.dumps(meta, indent=1))


@pytest.mark.parametrize("change", [
    lambda m: m.update(mean=[0.9, 0.9, 0.9]),  # the silent wrong number: a different normalisation
    lambda m: m.update(std=[m["std"][0] * 1.001, *m["std"][1:]]),
    lambda m: m.update(classes=m.pop("classes")[::-1]),
    lambda m: m.update(clases=m.pop("classes")),  # a damaged key (was a KeyError after the whole training)
    lambda m: m["counts"].update(train=7),
    lambda m: m.update(meta_sha256="0" * 64),
], ids=["mean", "std", "classes-order", "damaged-key", "counts", "checksum"])
def test_load_refuses_edited_metadata_with_the_rebuild_command(tmp_path, change):
    path = prepare("twoscale", None, tmp_path, **SMALL)
    original = load(path).meta
    _edit_meta(path, change)
    with pytest.raises(UsageError, match=r"meta\.json does not match its meta_sha256 .*rebuild it with: "
                                         r"python -m poolnas data prepare --dataset twoscale") as err:
        load(path)
    assert "\n" not in str(err.value)
    for option in ("--force", *(f"--{k} {v}" for k, v in SMALL.items())):
        assert option in str(err.value)
    # the command it names repairs the cache, and the arrays (hence every run key) are the same as before
    assert prepare("twoscale", None, tmp_path, force=True, **SMALL) == path
    assert load(path).meta["files"] == original["files"] and load(path).mean == tuple(original["mean"])


def test_metadata_is_checked_even_without_verifying_the_arrays(tmp_path):
    path = prepare("twoscale", None, tmp_path, **SMALL)
    _edit_meta(path, lambda m: m.update(mean=[0.5, 0.5, 0.5]))
    with pytest.raises(UsageError, match="does not match its meta_sha256"):
        load(path, verify=False)


def test_a_cache_without_a_metadata_checksum_is_refused_with_the_rebuild_command(tmp_path):
    """Caches made before meta_sha256 existed: nothing vouches for their mean and std, so they are rebuilt
    (same arrays, so the same run keys)."""
    path = prepare("twoscale", None, tmp_path, **SMALL)
    _edit_meta(path, lambda m: m.pop("meta_sha256"))
    with pytest.raises(UsageError, match=r"has no checksum of its own .*rebuild it with: python -m poolnas data "
                                         r"prepare --dataset twoscale --cache-dir .* --force"):
        load(path)


@pytest.mark.parametrize("text", ["[1, 2]", "{\"format\": 1", ""])
def test_a_meta_json_that_is_no_object_is_refused(tmp_path, text):
    path = prepare("twoscale", None, tmp_path, **SMALL)
    (path / "meta.json").write_text(text)
    with pytest.raises(UsageError, match=f"delete {path} and prepare it again"):
        load(path)


def test_a_consistent_but_incomplete_meta_json_is_refused(tmp_path):
    path = prepare("twoscale", None, tmp_path, **SMALL)

    def drop(m):
        m.pop("recipe")
        m["meta_sha256"] = datasets.meta_digest(m)  # re-signed by hand: the checksum alone would pass

    _edit_meta(path, drop)
    with pytest.raises(UsageError, match="lacks recipe; rebuild it with"):
        load(path)


def test_train_on_an_edited_cache_exits_2_with_one_line_and_writes_nothing(tmp_path, run_cli):
    profile = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    params = profile["datasets"]["twoscale"]
    path = prepare("twoscale", None, tmp_path / "data" / "cache", **params)
    _edit_meta(path, lambda m: m.update(mean=[0.1, 0.1, 0.1]))
    out = tmp_path / "out" / "r.json"
    proc = run_cli("train", "--profile", "smoke", "--dataset", "twoscale", "--backbone", "resnet20", "--config",
                   "4-3-3", "--seed", "0", "--out", out, "--data-dir", tmp_path / "data", "--threads", "1")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "meta_sha256" in proc.stderr and "--force" in proc.stderr
    assert not (tmp_path / "out").exists()


class Crash(Exception):
    pass


@pytest.mark.parametrize("error", [Crash, KeyboardInterrupt])
def test_interrupted_prepare_leaves_no_partial_cache(tmp_path, monkeypatch, error):
    real_write = datasets._write_array
    calls = []

    def write_then_crash(path, array):
        calls.append(path.name)
        if len(calls) == 3:  # train images and labels are written, test images are not
            raise error("killed mid-way")
        real_write(path, array)

    monkeypatch.setattr(datasets, "_write_array", write_then_crash)
    with pytest.raises(error):
        prepare("twoscale", None, tmp_path, **SMALL)
    assert calls == ["train_images.npy", "train_labels.npy", "test_images.npy"]
    assert list(tmp_path.iterdir()) == []  # neither the target nor its temporary directory
    monkeypatch.setattr(datasets, "_write_array", real_write)
    assert load(prepare("twoscale", None, tmp_path, **SMALL)).train.images.shape == (120, 16, 16, 3)


@pytest.mark.parametrize("fail_at", [1, 4], ids=["first-array", "last-array"])
def test_a_full_disk_in_prepare_is_one_line_naming_the_file_and_leaves_nothing(tmp_path, monkeypatch, capsys,
                                                                                 fail_at):
    """Issue 32, item 7: ENOSPC while the cache is written is one line (which file, that the partial cache is
    gone, what to do), exit 1; nothing is left behind, and the same command then prepares the cache."""
    full = helpers.disk_full_at(datasets.os.fsync, fail_at)
    argv = ["data", "prepare", "--dataset", "twoscale", "--cache-dir", str(tmp_path)]
    argv += [f"--{k}={v}" for k, v in SMALL.items()]
    with monkeypatch.context() as m:
        m.setattr(datasets.os, "fsync", full)
        assert cli.main(argv) == 1
    err = capsys.readouterr().err
    name = ["train_images", "train_labels", "test_images", "test_labels"][fail_at - 1]
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{name}.npy (No space left on device); the partial cache was removed: free space and give" in err, err
    assert list(tmp_path.iterdir()) == []
    assert cli.main(argv) == 0 and load(capsys.readouterr().out.strip()).train.images.shape == (120, 16, 16, 3)


def test_a_memory_mapped_cache_reserves_its_file_so_a_full_disk_is_an_error_not_a_crash(tmp_path, monkeypatch):
    """Food101's images are written through a memory map; on a full disk the first page the disk cannot hold
    would kill the process with SIGBUS. The file is allocated first, so the disk's refusal is a named error."""
    import errno

    write_fake_food101(tmp_path / "raw", [(90, 60), (60, 90), (300, 200), (64, 64)])
    reserved = []

    def full(fd, offset, length):
        reserved.append(length)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(datasets.os, "posix_fallocate", full)
    with pytest.raises(datasets.WriteFailed, match=r"train_images\.npy \(No space left on device\)"):
        prepare("food101", tmp_path / "raw", tmp_path / "cache")
    assert reserved and reserved[0] >= 2 * 256 * 256 * 3  # the whole array, not its header
    assert list((tmp_path / "cache").glob("*")) == []


# --- splits -------------------------------------------------------------------------------------------------


def test_search_split_is_stratified_disjoint_complete_and_seeded():
    labels = np.repeat(np.arange(5), [10, 11, 7, 2, 1])
    np.random.default_rng(0).shuffle(labels)
    train, val = search_split(labels, seed=0)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    assert np.array_equal(np.bincount(labels[train], minlength=5), [5, 6, 4, 1, 1])
    assert np.array_equal(np.bincount(labels[val], minlength=5), [5, 5, 3, 1, 0])
    again = search_split(labels, seed=0)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], val)
    other = search_split(labels, seed=1)
    assert not np.array_equal(other[0], train)
    assert np.array_equal(np.bincount(labels[other[0]], minlength=5), [5, 6, 4, 1, 1])


# --- torchvision datasets, from fake files in their exact on-disk formats -----------------------------------

CIFAR_LAYOUT = {  # folder, train files, test file, meta file, label key, class-name key
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch", "batches.meta",
                "labels", "label_names"),
    "cifar100": ("cifar-100-python", ["train"], "test", "meta", "fine_labels", "fine_label_names"),
}


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_fake_cifar(root, name, per_file=4, classes=3):
    """CIFAR python pickles as the originals: rows of 3072 bytes (red, green, blue planes), labels, names."""
    folder, train_files, test_file, meta_file, label_key, names_key = CIFAR_LAYOUT[name]
    rng = np.random.default_rng(7)
    (root / folder).mkdir(parents=True)
    expected = {"train": ([], []), "test": ([], [])}
    for split, file in [("train", f) for f in train_files] + [("test", test_file)]:
        images = rng.integers(0, 256, (per_file, 32, 32, 3), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, classes, per_file)]
        entry = {"batch_label": f"fake {file}", label_key: labels,
                 "data": images.transpose(0, 3, 1, 2).reshape(per_file, 3072), "filenames": [f"{i}.png" for i in
                                                                                            range(per_file)]}
        if name == "cifar100":
            entry["coarse_labels"] = [0] * per_file
        (root / folder / file).write_bytes(pickle.dumps(entry))
        expected[split][0].append(images)
        expected[split][1].extend(labels)
    names = [f"class{i}" for i in range(classes)]
    (root / folder / meta_file).write_bytes(pickle.dumps({names_key: names, "num_vis": 3072}))
    return {s: (np.concatenate(x), np.array(y)) for s, (x, y) in expected.items()}, names


def md5_table_for(name, root):
    """torchvision checks every CIFAR file against the md5 of the real file; our files are fakes, so we
    subclass the torchvision class changing only that md5 table. Reading, checking and parsing stay torchvision's.
    """
    base = DATASETS[name].source_class()
    folder = root / CIFAR_LAYOUT[name][0]
    table = {
        "train_list": [[f, _md5(folder / f)] for f, _ in base.train_list],
        "test_list": [[f, _md5(folder / f)] for f, _ in base.test_list],
        "meta": {**base.meta, "md5": _md5(folder / base.meta["filename"])},
    }
    return type(f"FakeMd5{base.__name__}", (base,), table)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_is_read_by_torchvision_and_cached_exactly(tmp_path, monkeypatch, name):
    expected, names = write_fake_cifar(tmp_path / "raw", name)
    monkeypatch.setitem(DATASETS, name, dataclasses.replace(DATASETS[name],
                                                            source=md5_table_for(name, tmp_path / "raw")))
    data = load(prepare(name, tmp_path / "raw", tmp_path / "cache"))
    for split in ("train", "test"):
        assert np.array_equal(data.split(split).images, expected[split][0])  # planes -> HWC done right
        assert np.array_equal(data.split(split).labels, expected[split][1])
    assert data.classes == names and data.mean == datasets.CIFAR_MEAN and data.path.name == name
    assert data.meta["counts"] == {"train": len(expected["train"][1]), "test": len(expected["test"][1])}


def test_cifar_archive_is_extracted_and_corrupt_files_are_refused(tmp_path, monkeypatch):
    write_fake_cifar(tmp_path / "staging", "cifar10")
    fake = md5_table_for("cifar10", tmp_path / "staging")
    monkeypatch.setitem(DATASETS, "cifar10", dataclasses.replace(DATASETS["cifar10"], source=fake))
    (tmp_path / "raw").mkdir()
    with tarfile.open(tmp_path / "raw" / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "staging" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    path = prepare("cifar10", tmp_path / "raw", tmp_path / "cache")  # only the archive is there
    assert load(path).train.images.shape == (20, 32, 32, 3)

    with open(tmp_path / "raw" / "cifar-10-batches-py" / "data_batch_3", "r+b") as f:
        f.seek(100)
        f.write(b"\0\1\2")
    with pytest.raises(UsageError, match=r"cifar10 in .*cifar-10-batches-py failed torchvision's check"):
        prepare("cifar10", tmp_path / "raw", tmp_path / "cache", force=True)
    assert load(path).train.images.shape == (20, 32, 32, 3)  # the old cache survives a failed rebuild


def write_fake_food101(root, size_by_id):
    """food-101/images/<class>/<id>.jpg, meta/{train,test}.json and classes.txt, as in the archive."""
    colours = {"apple_pie": (200, 40, 40), "bibimbap": (40, 200, 40)}
    meta = {"train": {c: [] for c in colours}, "test": {c: [] for c in colours}}
    for i, (w, h) in enumerate(size_by_id):
        cls = list(colours)[i % 2]
        split = "test" if i >= len(size_by_id) - 2 else "train"
        # The central square has the class colour; the ends of the long side (cut by the centre crop) are blue.
        image = np.full((h, w, 3), (30, 30, 220), np.uint8)
        side = min(w, h)
        image[(h - side) // 2: (h + side) // 2, (w - side) // 2: (w + side) // 2] = colours[cls]
        (root / "food-101" / "images" / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / "food-101" / "images" / cls / f"{i}.jpg", quality=95)
        meta[split][cls].append(f"{cls}/{i}")
    (root / "food-101" / "meta").mkdir(parents=True)
    for split in ("train", "test"):
        (root / "food-101" / "meta" / f"{split}.json").write_text(json.dumps(meta[split]))
    (root / "food-101" / "meta" / "classes.txt").write_text("\n".join(colours) + "\n")
    return colours


def test_food101_is_read_by_torchvision_resized_and_memory_mapped(tmp_path):
    sizes = [(90, 60), (60, 90), (300, 200), (64, 64), (80, 120), (512, 384)]
    colours = write_fake_food101(tmp_path / "raw", sizes)
    path = prepare("food101", tmp_path / "raw", tmp_path / "cache")
    data = load(path, mmap=True)
    assert isinstance(data.train.images, np.memmap) and data.train.images.shape == (4, 256, 256, 3)
    assert data.test.images.shape == (2, 256, 256, 3) and data.classes == list(colours)
    assert data.recipe == "resized-crop-flip" and data.std == datasets.FOOD_STD
    for split in ("train", "test"):
        part = data.split(split)
        for image, label in zip(part.images, part.labels):
            target = np.array(colours[data.classes[label]], np.float64)
            # the whole stored square is the class colour: the blue ends of the long side were cropped away
            assert np.abs(image[4:-4, 4:-4].reshape(-1, 3).mean(0) - target).max() < 8
    assert sorted(data.train.labels.tolist()) == [0, 0, 1, 1]


def test_food101_records_name_how_the_release_stored_it_otherwise(tmp_path):
    """Food101 is stored as the central square of the short side at 256, where the release kept the whole image with
    the longer side at 256: every Food101 record's options say both; a stand-in read the same way gains no key."""
    from poolnas.standalone import storage_option

    write_fake_food101(tmp_path / "raw", [(90, 60), (60, 90), (300, 200), (512, 384)])
    data = load(prepare("food101", tmp_path / "raw", tmp_path / "cache"))
    note = storage_option(data)["storage"]
    assert note.startswith("short side resized to 256, central 256x256 square")
    assert "longer side resized to 256" in note and "Food101/write_imagenet.sh" in note
    crops = load(prepare("glyphs-crops", None, tmp_path / "cache", train=8, test=4, size=12))
    assert crops.recipe == data.recipe and storage_option(crops) == {}


# --- missing data and the command line ----------------------------------------------------------------------


@pytest.mark.parametrize("name, archive, folder", [("cifar10", "cifar-10-python.tar.gz", "cifar-10-batches-py"),
                                                   ("cifar100", "cifar-100-python.tar.gz", "cifar-100-python"),
                                                   ("food101", "food-101.tar.gz", "food-101")])
def test_missing_data_is_one_line_and_exit_status_2(tmp_path, capsys, name, archive, folder):
    raw = tmp_path / "nothing here"
    status = cli.main(["data", "prepare", "--dataset", name, "--data-root", str(raw),
                       "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert f"{name} not found in {raw}" in err and f"put {archive} or the extracted {folder}/ in {raw}" in err
    assert not (tmp_path / "cache").exists()  # not even an empty cache directory


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'; known: cifar10, cifar100, food101, fashion-mnist,"),
    (["--dataset", "cifar10", "--seed", "1"], "apply to fashion-mnist, fashion-mnist-holdout, twoscale, glyphs"),
    (["--dataset", "twoscale", "--classes", "9"], "--classes must be even"),
    (["--dataset", "cifar10"], "cifar10 needs --data-root"),
])
def test_cli_prepare_rejects_bad_input_with_status_2(tmp_path, capsys, argv, message):
    assert cli.main(["data", "prepare", "--cache-dir", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_prepare_and_info(tmp_path, capsys):
    argv = ["data", "prepare", "--dataset", "twoscale", "--cache-dir", str(tmp_path)]
    argv += [f"--{k}={v}" for k, v in SMALL.items()]
    assert cli.main(argv) == 0
    path = capsys.readouterr().out.strip()
    assert load(path).meta["params"] == SMALL
    assert cli.main(["data", "info", path, "--verify"]) == 0
    out = capsys.readouterr().out
    assert "twoscale" in out and "train 120, test 40" in out and "verified" in out and "row-checker" in out
    assert cli.main(["data", "info", str(tmp_path / "missing")]) == 2
    assert "is not a prepared dataset" in capsys.readouterr().err


# --- the point of twoscale: both scales are needed ----------------------------------------------------------


@pytest.mark.slow
def test_twoscale_is_learnable_and_needs_the_fine_scale(tmp_path):
    full, coarse_only = helpers.fine_and_coarse_accuracy("twoscale", tmp_path)
    # Chance is 0.1. Without the texture only the layout can be read, which caps accuracy at 0.5 (each layout is
    # two classes); twoscale v3 (noise as strong as the texture) gave about 0.88 against 0.44.
    assert full > 0.75, (full, coarse_only)
    assert coarse_only < full - 0.25, (full, coarse_only)


def test_a_killed_prepare_leaves_its_temporary_directory_only_until_the_next_prepare(tmp_path):
    """A kill -9 skips prepare's cleanup; the next prepare of the same cache deletes what it left, but never the
    directory of a prepare still at work (it holds a lock on it), one just made, or another cache's."""
    import fcntl
    import time

    from poolnas.records import ABANDONED_AFTER

    target = datasets.cache_path("twoscale", tmp_path, **SMALL)
    old = time.time() - 2 * ABANDONED_AFTER

    def leftover(name, age=old):
        path = tmp_path / name
        (path / "cache").mkdir(parents=True)
        (path / "cache" / "train_images.npy").write_bytes(b"\0" * 1000)
        os.utime(path, None if age is None else (age, age))
        return path

    killed = [leftover(f".{target.name}.k1ll3d.tmp"), leftover(f".{target.name}.r3pl4c.old")]
    working, young = leftover(f".{target.name}.w0rk1n.tmp"), leftover(f".{target.name}.n3wb0n.tmp", age=None)
    other = leftover(".twoscale-other-cache.x1y2z3.tmp")
    busy = os.open(working, os.O_RDONLY)
    fcntl.flock(busy, fcntl.LOCK_EX)  # as a concurrent prepare holds it
    try:
        assert cli.main(["data", "prepare", "--dataset", "twoscale", "--cache-dir", str(tmp_path),
                         *[x for k, v in SMALL.items() for x in (f"--{k}", str(v))]]) == 0
    finally:
        os.close(busy)
    assert [p for p in killed if p.exists()] == []
    assert working.is_dir() and young.is_dir() and other.is_dir()
    assert (target / "meta.json").is_file()
