"""Fashion-MNIST (Xiao et al. 2017) into the cache, read by torchvision's own `FashionMNIST` class.

Where the four idx files come from, first found wins: the data root as torchvision lays it out
(`<root>/FashionMNIST/raw/`, which is also where `--download` puts them), the data root holding the four .gz
files themselves, or Debian's package `dataset-fashion-mnist` (`/usr/share/datasets/fashion-mnist`). Loose .gz
files are unpacked into a temporary torchvision root, so the images are always parsed by the class a `--download`
user gets. Every unpacked file is checked against the md5 of the published files' content (`UNPACKED_MD5`), not
of their .gz wrapping: Debian recompressed the files (their .gz md5 differs from the one torchvision lists), while
their content is byte for byte the published one.

Grayscale is replicated into three equal channels: the cache holds (N, 28, 28, 3) uint8 like every other set, and
the backbones keep their 3-channel stem (the first convolution then sees the sum of its three kernels). Mean and
std are measured on the cache's training images, as for the generated sets.

`fashion-mnist-holdout` is the pilot variant (poolnas.data.subsets): its test split is held-out training images and
the real test images are never parsed.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from pathlib import Path

import numpy as np

from poolnas.data import subsets
from poolnas.errors import UsageError

DEBIAN = Path("/usr/share/datasets/fashion-mnist")  # apt-get install dataset-fashion-mnist
FOLDER = "FashionMNIST/raw"  # what torchvision reads under its root
FULL_TRAIN = 60_000
FASHION = subsets.Subsetting("fashion-mnist", FULL_TRAIN, holdout_only=False)
FASHION_HOLDOUT = subsets.Subsetting("fashion-mnist-holdout", FULL_TRAIN, holdout_only=True)
# md5 of the unpacked idx files of zalandoresearch/fashion-mnist, as independent loaders list them (and as Debian's
# dataset-fashion-mnist 0.0~git20200523 unpacks, checked 2026-12-07)
UNPACKED_MD5 = {"train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
                "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
                "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965"}


def _find(data_root: Path | None) -> tuple[Path, str]:
    """(directory, layout): "torchvision" (a root with FashionMNIST/raw/) or "gz" (a folder of the four .gz)."""
    unpacked = list(UNPACKED_MD5)
    names = [f"{n}.gz" for n in unpacked]
    for root in ([data_root] if data_root is not None else []):
        if all((root / FOLDER / n).is_file() for n in unpacked):
            return root, "torchvision"
    for folder in ([data_root] if data_root is not None else []) + [DEBIAN]:
        if all((folder / n).is_file() for n in names):
            return folder, "gz"
    where = f"{data_root} (as .gz or in {FOLDER}/) nor in {DEBIAN}" if data_root else f"{DEBIAN}"
    raise UsageError(f"fashion-mnist: its four idx files ({', '.join(names)}) are not in {where}: "
                     "apt-get install dataset-fashion-mnist, copy them there, or pass --download when online")


def _unpack(folder: Path, into: Path) -> Path:
    """Unpack the four .gz of `folder` under `into`/FashionMNIST/raw; returns `into`, a torchvision root."""
    raw = into / FOLDER
    raw.mkdir(parents=True)
    for name in UNPACKED_MD5:
        try:
            with gzip.open(folder / f"{name}.gz", "rb") as src, open(raw / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
            raise UsageError(f"fashion-mnist: {folder / name}.gz cannot be unpacked ({err}); reinstall "
                             "dataset-fashion-mnist or replace the file") from None
    return into


def _checked(root: Path, where: Path) -> dict:
    """{file: md5} of the unpacked files under `root`, each equal to the published content's (`UNPACKED_MD5`)."""
    from torchvision.datasets.utils import calculate_md5

    sums = {}
    for name, md5 in UNPACKED_MD5.items():
        sums[name] = calculate_md5(str(root / FOLDER / name))
        if sums[name] != md5:
            raise UsageError(f"fashion-mnist: {where / name} holds content of md5 {sums[name]}, the published file's "
                             f"is {md5} (a damaged or different file); reinstall dataset-fashion-mnist or replace it")
    return sums


def _read(root: Path, train: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from torchvision.datasets import FashionMNIST

    try:
        ds = FashionMNIST(str(root), train=train, download=False)
    except RuntimeError as err:  # torchvision: "Dataset not found"
        raise UsageError(f"fashion-mnist in {root / FOLDER} failed torchvision's check ({err})") from None
    return ds.data.numpy(), ds.targets.numpy().astype(np.int64), list(ds.classes)


def build(spec, params: dict, data_root: Path | None, download: bool, out: Path, write) -> dict:
    """Write the cache's four arrays into `out` with `write(path, array)`; return the metadata it adds."""
    holdout_only = spec.subset.holdout_only
    with tempfile.TemporaryDirectory(prefix=".fashion-mnist.", dir=out.parent) as staging:
        if download:
            from torchvision.datasets import FashionMNIST

            root = data_root or Path(staging)
            try:
                FashionMNIST(str(root), train=True, download=True)
            except OSError as err:  # includes urllib's URLError when offline
                raise UsageError(f"could not download fashion-mnist into {root} ({err}); apt-get install "
                                 "dataset-fashion-mnist or copy its four .gz files there") from None
            found, layout = root, "torchvision"
        else:
            found, layout = _find(data_root)
        root = _unpack(found, Path(staging)) if layout == "gz" else found
        sums = _checked(root, found if layout == "gz" else found / FOLDER)
        images, labels, classes = _read(root, train=True)
        train_rows, held = subsets.select(labels, params)
        test = (images[held], labels[held]) if holdout_only else _read(root, train=False)[:2]
    splits = {"train": (images[train_rows], labels[train_rows]), "test": test}
    for split, (x, y) in splits.items():
        write(out / f"{split}_images.npy", np.ascontiguousarray(np.repeat(x[..., None], 3, axis=-1)))
        write(out / f"{split}_labels.npy", y)
    x = splits["train"][0]
    mean, std = round(float(x.mean(dtype=np.float64)) / 255, 6), round(float(x.std(dtype=np.float64)) / 255, 6)
    return {"source": f"torchvision.datasets.FashionMNIST, from {found} ({layout})", "classes": classes,
            "mean": [mean] * 3, "std": [std] * 3, "unpacked_md5": sums,
            "storage": "28x28 grayscale replicated into 3 equal channels",
            "test_split": (f"{params['holdout']} held-out training images (the test files are not parsed)"
                           if holdout_only else "the 10,000 test images")}
