"""Fashion-MNIST through torchvision's own FashionMNIST class, from small fake idx files in the real format.

The fakes are written as idx3/idx1 files (big-endian magic and dimensions, then uint8 bytes), gzip-compressed as
the published files and Debian's package ship them; their content md5 replaces the published one for the test.
One test reads the real files when Debian's dataset-fashion-mnist is installed, and is skipped otherwise.
"""

from __future__ import annotations

import gzip
import hashlib
import struct

import numpy as np
import pytest

from poolnas import cli, settings
from poolnas.data import fashion, subsets
from poolnas.data.datasets import load, prepare
from poolnas.errors import UsageError

COUNTS = {"train": 300, "t10k": 100}


def _idx(array: np.ndarray) -> bytes:
    magic = 0x0803 if array.ndim == 3 else 0x0801
    return struct.pack(">" + "i" * (1 + array.ndim), magic, *array.shape) + array.astype(np.uint8).tobytes()


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A folder of the four .gz files (labels 0..9 in turn; each image's pixels say its index), with their md5."""
    folder, sums, rng = tmp_path / "raw", {}, np.random.default_rng(0)
    folder.mkdir()
    for split, n in COUNTS.items():
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        images[:, 0, 0], images[:, 0, 1] = np.arange(n) % 256, np.arange(n) // 256  # the row, readable back
        for kind, array in (("images-idx3", images), ("labels-idx1", np.arange(n) % 10)):
            name = f"{split}-{kind}-ubyte"
            data = _idx(array)
            (folder / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
            sums[name] = hashlib.md5(data).hexdigest()
    monkeypatch.setattr(fashion, "UNPACKED_MD5", sums)
    monkeypatch.setattr(fashion, "DEBIAN", tmp_path / "no-debian")
    return folder


def _row(images: np.ndarray) -> np.ndarray:
    return images[:, 0, 0, 0].astype(int) + 256 * images[:, 0, 1, 0].astype(int)


def test_fashion_is_read_by_torchvision_as_three_equal_channels(fake, tmp_path):
    cache = load(prepare("fashion-mnist", fake, tmp_path / "cache", train=100, seed=3))
    assert cache.train.images.shape == (100, 28, 28, 3) and len(cache.test) == COUNTS["t10k"]
    assert (cache.train.images[..., 0] == cache.train.images[..., 2]).all()
    assert np.bincount(cache.train.labels, minlength=10).tolist() == [10] * 10  # stratified
    assert (cache.train.labels == _row(cache.train.images) % 10).all()  # each image kept its own label
    assert cache.meta["unpacked_md5"] == fashion.UNPACKED_MD5 and cache.meta["params"] == {"seed": 3, "train": 100}
    assert cache.path.name == "fashion-mnist-seed3-train100" and len(cache.mean) == 3


def test_the_holdout_variant_never_reads_the_test_files_and_keeps_its_holdout_fixed(fake, tmp_path, monkeypatch):
    read = []
    original = fashion._read
    monkeypatch.setattr(fashion, "_read", lambda root, train: read.append(train) or original(root, train))
    small = load(prepare("fashion-mnist-holdout", fake, tmp_path / "c", train=50, holdout=60))
    big = load(prepare("fashion-mnist-holdout", fake, tmp_path / "c", train=200, holdout=60))
    assert read == [True, True]  # only the training files were parsed
    held, train = set(_row(small.test.images)), set(_row(small.train.images))
    assert len(held) == 60 and not held & train and not held & set(_row(big.train.images))
    assert held == set(_row(big.test.images)) and train <= set(_row(big.train.images))
    assert small.meta["test_split"].startswith("60 held-out training images")


def test_a_changed_file_and_missing_files_are_one_line_each(fake, tmp_path):
    (fake / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01" + b"\0" * 8))
    with pytest.raises(UsageError, match="md5 .* the published file's is"):
        prepare("fashion-mnist", fake, tmp_path / "cache")
    assert not (tmp_path / "cache" / "fashion-mnist-seed0-train0").exists()
    with pytest.raises(UsageError, match="apt-get install dataset-fashion-mnist"):
        prepare("fashion-mnist", tmp_path / "empty", tmp_path / "cache")


def test_the_torchvision_layout_is_read_as_it_is(fake, tmp_path):
    raw = tmp_path / "root" / fashion.FOLDER
    raw.mkdir(parents=True)
    for gz in fake.iterdir():
        (raw / gz.name.removesuffix(".gz")).write_bytes(gzip.decompress(gz.read_bytes()))
    cache = load(prepare("fashion-mnist", tmp_path / "root", tmp_path / "cache"))
    assert len(cache.train) == COUNTS["train"] and "(torchvision)" in cache.meta["source"]


@pytest.mark.parametrize("params, message", [
    ({"holdout": 5}, "takes the parameters seed, train, not holdout"),
    ({"train": 70_000}, "train 0..60000"),
    ({"size": 16}, "not size")])
def test_bad_parameters_are_refused_before_any_file_is_read(tmp_path, params, message):
    with pytest.raises(UsageError, match=message):
        prepare("fashion-mnist", tmp_path / "nothing", tmp_path / "cache", **params)


def test_a_profile_with_a_subset_larger_than_the_set_is_refused_at_validation():
    profile = settings.load("mini")
    profile["datasets"]["fashion-mnist-holdout"] = {"train": 58_000, "holdout": 5000}
    with pytest.raises(UsageError, match="datasets/fashion-mnist-holdout: .*train 0..55000"):
        settings.validate(profile)


def test_every_prefix_of_the_stratified_order_is_balanced():
    labels = np.repeat(np.arange(4), [40, 20, 20, 20])
    order = subsets.stratified_order(labels, seed=1)
    assert sorted(order) == list(range(100))
    for n in (10, 25, 50):
        counts = np.bincount(labels[order[:n]], minlength=4) / n
        assert np.abs(counts - [0.4, 0.2, 0.2, 0.2]).max() <= 1 / n + 1e-9


@pytest.mark.skipif(not (fashion.DEBIAN / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
def test_the_real_files_match_the_published_content(tmp_path, capsys):
    assert cli.main(["data", "prepare", "--dataset", "fashion-mnist-holdout", "--train", "1000", "--holdout", "500",
                     "--cache-dir", str(tmp_path)]) == 0
    cache = load(capsys.readouterr().out.strip())
    assert (len(cache.train), len(cache.test)) == (1000, 500) and cache.classes[0] == "T-shirt/top"
    assert abs(cache.mean[0] - 0.286) < 0.01  # Fashion-MNIST's well-known pixel mean
