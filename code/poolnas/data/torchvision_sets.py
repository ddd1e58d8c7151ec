"""The torchvision readers of CIFAR10/100 and Food101, called by `datasets.prepare` to fill a cache directory.

torchvision's own classes read the files as its users' `--download` leaves them (or the archives, extracted here);
nothing is reimplemented. Food101 is too big to hold in memory: its images go through a memory map.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import numpy as np

from poolnas.errors import UsageError, WriteFailed

FOOD_SIDE = 256
SPLITS = ("train", "test")


def open_torchvision(spec, data_root: Path | None, download: bool, **split_kwargs):
    """The torchvision dataset object, or a one-line UsageError saying where to put the files."""
    by_hand = f"put {spec.archive} or the extracted {spec.folder}/ in {data_root}"
    if data_root is None:
        raise UsageError(f"{spec.name} needs --data-root: the directory that holds {spec.archive} or {spec.folder}/")
    if not (data_root / spec.folder).is_dir() and not download:
        if not (data_root / spec.archive).is_file():
            raise UsageError(f"{spec.name} not found in {data_root}: {by_hand} (or pass --download when online)")
        from torchvision.datasets.utils import extract_archive

        extract_archive(str(data_root / spec.archive), str(data_root))
    try:
        return spec.source_class()(str(data_root), download=download, **split_kwargs)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
        raise UsageError(f"{spec.name} in {data_root / spec.folder} failed torchvision's check ({err}); "
                         f"{by_hand}") from None
    except OSError as err:  # includes urllib's URLError when offline
        raise UsageError(f"could not download {spec.name} into {data_root} ({err}); {by_hand}") from None


def build_cifar(spec, data_root: Path | None, download: bool, out: Path, write) -> dict:
    """Write CIFAR10/100's four arrays into `out` with `write(path, array)`; return the metadata it adds."""
    for split in SPLITS:
        dataset = open_torchvision(spec, data_root, download, train=split == "train")
        write(out / f"{split}_images.npy", np.ascontiguousarray(dataset.data, dtype=np.uint8))
        write(out / f"{split}_labels.npy", np.asarray(dataset.targets, dtype=np.int64))
    return {"source": f"torchvision.datasets.{spec.source_class().__name__}", "classes": list(dataset.classes)}


def build_food101(spec, data_root: Path | None, download: bool, out: Path, write) -> dict:
    """Write Food101's arrays into `out` (the images through a memory map, reserved first; the labels with
    `write`); return the metadata it adds."""
    import torch
    from torchvision import transforms

    # Resize the short side to 256 and keep the central square: the paper's test view is its centre 224 crop.
    square = transforms.Compose([transforms.Resize(FOOD_SIDE, antialias=True), transforms.CenterCrop(FOOD_SIDE),
                                 transforms.PILToTensor()])
    for split in SPLITS:
        dataset = open_torchvision(spec, data_root, download, split=split, transform=square)
        workers = min(8, os.cpu_count() or 1) if len(dataset) >= 1024 else 0
        batches = torch.utils.data.DataLoader(dataset, batch_size=64, num_workers=workers)
        images = np.lib.format.open_memmap(out / f"{split}_images.npy", mode="w+", dtype=np.uint8,
                                           shape=(len(dataset), FOOD_SIDE, FOOD_SIDE, 3))
        reserve(out / f"{split}_images.npy")
        labels, done = np.empty(len(dataset), np.int64), 0
        try:
            for x, y in batches:
                images[done: done + len(x)] = x.permute(0, 2, 3, 1).numpy()
                labels[done: done + len(x)] = y.numpy()
                done += len(x)
                if done % 6400 < len(x):  # the full set takes a while: say how far it is
                    print(f"food101 {split}: {done}/{len(dataset)} images", file=sys.stderr, flush=True)
        except FileNotFoundError as err:  # a json lists an image that is not there
            raise UsageError(f"food101 in {data_root / spec.folder} is incomplete ({err}); put "
                             f"{spec.archive} or the complete extracted {spec.folder}/ in {data_root}") from None
        images.flush()
        del images
        write(out / f"{split}_labels.npy", labels)
    return {"source": "torchvision.datasets.Food101", "classes": list(dataset.classes),
            "storage": f"short side resized to {FOOD_SIDE}, central {FOOD_SIDE}x{FOOD_SIDE} square"}


def reserve(path: Path) -> None:
    """Allocate a memory-mapped array's whole file now: a full disk is then an error here, where it can be named,
    rather than a SIGBUS on the first page the disk cannot hold (open_memmap makes a sparse file)."""
    try:
        with open(path, "r+b") as f:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a filesystem that cannot reserve: write as before
            raise WriteFailed(path, err) from err
