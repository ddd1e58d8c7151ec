"""Datasets: a registry, the generated `twoscale` set, one-time preparation into a checksummed cache, splits.

Registry (`DATASETS`): cifar10, cifar100 and food101 are read with torchvision's own dataset classes (which do
the download, the integrity check and the parsing); `twoscale` is generated here.

Cache (`prepare` writes it, `load` reads it): one directory per dataset (and per parameter set for twoscale):
    {train,test}_images.npy   uint8 (N, H, W, 3), raw .npy so that big sets are read memory-mapped
    {train,test}_labels.npy   int64 (N,)
    meta.json                 classes, counts, image size, mean/std, params, source, provenance, and the
                              sha256 of every .npy file; `load` refuses files that do not match.
It is written into a temporary sibling directory and renamed into place at the end, so a crash never leaves a
partial cache under the target name.

Food101 is stored as the central 256x256 square of each image after resizing its short side to 256 (~20 GB).
Its test pipeline (resize 256, centre crop 224) is then reproduced exactly; the training random-resized-crop
samples from that central square instead of the full image (it loses the outer ends of the long side, about a
quarter of a 4:3 image), which we accept to keep one fixed-size, memory-mappable array.

Normalisation: CIFAR10's released mean/std are used for cifar100 as well (the released ResNet50/CIFAR100
pipeline is unknown); twoscale's mean/std are measured on its training images at preparation.

The `twoscale` generator (`make_twoscale`) makes classes that need both image scales:
    class c = (layout c // 2, texture c % 2): an even number of classes, 2..12; chance = 1 / classes.
    Coarse layout: shapes are drawn on a grid of 2x2-pixel cells (G = size / 2 cells a side): one to four
        shapes, all discs or all squares (probability 1/2 each, same area), placed by the layout: row (2 side by
        side), column (2 stacked), diagonal (2 along either diagonal), single (1 of double area), triangle (3,
        apex up or down), square (4 at the corners of a square). The total shape area is the same for every
        layout (up to the cell grid), so only the arrangement tells them apart. Shape radius r ~ U(0.11, 0.16) * G
        cells (times sqrt(2), sqrt(2/3), sqrt(1/2) for single, triangle, square), centre spacing
        d ~ U(2.2, 2.6) * r, and the layout's centre is uniform over the positions that keep every shape at least
        G / 8 cells (size / 8 pixels, the loader's default crop shift) from the border. So the training
        augmentation never changes the class: a random crop never cuts a shape, and each layout is its own
        mirror image (as a distribution).
    Fine texture: inside the shapes two colours m + a*w and m - a*w alternate pixel by pixel, as a 1-pixel
        checkerboard (texture 0) or 1-pixel stripes (texture 1; horizontal or vertical, probability 1/2), with a
        random phase. Every aligned 2x2 block of a shape averages to exactly m, so 2x2 average pooling erases the
        texture and keeps the layout: a network must look at full resolution for the texture and far for the
        layout. m ~ U(0.3, 0.8) per channel; a ~ U(0.07, 0.14); w ~ U(0.5, 1) per channel.
    Background: flat m - delta (clipped at 0), with delta >= 0 per channel in a random direction and
        |delta| ~ U(0.3, 0.5): always clearly darker than the shapes, which therefore stay visible after pooling.
    Noise: Gaussian, sd ~ U(0.10, 0.16) per image, on every pixel and channel; then clip to [0, 1], round to
        uint8. The noise is about as strong as the texture, so reading the texture takes averaging over many
        full-resolution pixels: how long a network stays at full resolution then shows in its accuracy.
    Labels are a seeded permutation of a balanced list; train and test come from independent streams of
    numpy's SeedSequence(seed) (spawn keys 0 and 1), so neither depends on the other's size. All draws are
    vectorised; 20,000 32x32 images take about 2 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from poolnas.errors import UsageError
from poolnas.records import provenance, read_json, write_json

CACHE_FORMAT = 1
SPLITS = ("train", "test")
CIFAR_MEAN, CIFAR_STD = (0.49139968, 0.48215827, 0.44653124), (0.24703233, 0.24348505, 0.26158768)
FOOD_MEAN, FOOD_STD = (0.561, 0.440, 0.312), (0.252, 0.256, 0.259)
FOOD_SIDE = 256
MMAP_ABOVE_BYTES = 1 << 30  # `load` memory-maps image files bigger than this (Food101) and reads others in

# twoscale layouts: shape centres in units of the spacing d (x, y), and the radius factor that keeps the total
# shape area equal across layouts.
LAYOUTS: dict[str, tuple[tuple[tuple[float, float], ...], float]] = {
    "row": (((-0.5, 0.0), (0.5, 0.0)), 1.0),
    "column": (((0.0, -0.5), (0.0, 0.5)), 1.0),
    "diagonal": (((-0.5 ** 1.5, -0.5 ** 1.5), (0.5 ** 1.5, 0.5 ** 1.5)), 1.0),
    "single": (((0.0, 0.0),), 2 ** 0.5),
    "triangle": (((-0.5, 3 ** 0.5 / 6), (0.5, 3 ** 0.5 / 6), (0.0, -(3 ** 0.5) / 3)), (2 / 3) ** 0.5),
    "square": (((-0.5, -0.5), (0.5, -0.5), (-0.5, 0.5), (0.5, 0.5)), 0.5 ** 0.5),
}
TEXTURES = ("checker", "stripes")
# twoscale's uniform ranges (the module docstring explains each). With them every layout fits inside the image
# less its margins: the widest extent, 0.58 * 2.6 r + 0.82 r = 2.32 r (triangle), is below 3/8 G for r <= 0.16 G.
RADIUS = (0.11, 0.16)  # shape radius r, as a fraction of the side G in cells
SPACING = (2.2, 2.6)  # centre spacing d, in radii
SHAPE_COLOUR = (0.3, 0.8)  # m, per channel
AMPLITUDE = (0.07, 0.14)  # a
CHANNEL_WEIGHT = (0.5, 1.0)  # w, per channel
BACKGROUND_DROP = (0.3, 0.5)  # |delta|
NOISE_SD = (0.10, 0.16)
MARGIN = 1 / 8  # of the side kept free of shapes: the loader's default crop shift, so a crop never cuts a shape
TWOSCALE_VERSION = 3  # bump whenever make_twoscale's output changes: it names the cache, so old ones are not reused
TWOSCALE_DEFAULTS = {"seed": 0, "size": 32, "classes": 10, "train": 10000, "test": 2000}


# --- the generated dataset ----------------------------------------------------------------------------------


def twoscale_classes(classes: int) -> list[str]:
    return [f"{layout}-{texture}" for layout in list(LAYOUTS)[: classes // 2] for texture in TEXTURES]


def make_twoscale(n: int, *, seed: int, size: int = 32, classes: int = 10, split: str = "train",
                  chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """`n` images (uint8, NHWC) and labels (int64) of the twoscale set; the module docstring defines it."""
    _check_twoscale({"seed": seed, "size": size, "classes": classes, "train": max(n, 1), "test": 1})
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLITS.index(split),)))
    labels = rng.permutation(np.arange(n) % classes).astype(np.int64)
    layout, texture = labels // 2, labels % 2

    # Coarse geometry, on the grid of 2x2-pixel cells.
    cells = size // 2
    unit_offsets = np.zeros((len(LAYOUTS), 4, 2))
    present = np.zeros((len(LAYOUTS), 4), bool)
    radius_factor = np.array([factor for _, factor in LAYOUTS.values()])
    for k, (centres, _) in enumerate(LAYOUTS.values()):
        unit_offsets[k, : len(centres)], present[k, : len(centres)] = centres, True
    r = rng.uniform(*RADIUS, n) * cells
    offsets = unit_offsets[layout] * (r * rng.uniform(*SPACING, n))[:, None, None]
    offsets[..., 1] *= rng.choice([-1.0, 1.0], n)[:, None]  # the other diagonal; the triangle upside down
    shape_radius = r * radius_factor[layout]
    present = present[layout]
    extent = np.abs(np.where(present[..., None], offsets, 0.0)).max(axis=1) + shape_radius[:, None]  # (n, 2)
    margin = MARGIN * cells
    centre = margin + extent + rng.random((n, 2)) * (cells - 2 * (extent + margin))
    squares = rng.random(n) < 0.5

    # Colours, texture draws and noise level. The texture is a (tinted) luminance pattern and the background is
    # clearly darker than the shapes in every channel: with colour-opponent textures, backgrounds of either
    # polarity or half this contrast, CNNs (ResNet20 included) sat at chance for many epochs before finding a cue.
    mean = rng.uniform(*SHAPE_COLOUR, (n, 3))
    amplitude = rng.uniform(*AMPLITUDE, (n, 1)) * rng.uniform(*CHANNEL_WEIGHT, (n, 3))
    drop = np.abs(rng.normal(size=(n, 3)))
    drop *= rng.uniform(*BACKGROUND_DROP, (n, 1)) / np.linalg.norm(drop, axis=1, keepdims=True)
    phase = rng.integers(0, 2, n)
    horizontal = rng.random(n) < 0.5
    noise_sd = rng.uniform(*NOISE_SD, n)

    images = np.empty((n, size, size, 3), np.uint8)
    cell_centres = np.arange(cells) + 0.5
    y, x = np.arange(size)[:, None], np.arange(size)[None, :]
    for lo in range(0, n, chunk):
        s = slice(lo, min(lo + chunk, n))
        dx = cell_centres[None, None, None, :] - (centre[s, None, 0] + offsets[s, :, 0])[..., None, None]
        dy = cell_centres[None, None, :, None] - (centre[s, None, 1] + offsets[s, :, 1])[..., None, None]
        rad = shape_radius[s, None, None, None]
        # A square of half side sqrt(pi)/2 * r has the area of the disc of radius r.
        inside = np.where(squares[s, None, None, None], np.maximum(abs(dx), abs(dy)) <= 0.886 * rad,
                          dx ** 2 + dy ** 2 <= rad ** 2)
        mask = (inside & present[s, :, None, None]).any(axis=1).repeat(2, axis=1).repeat(2, axis=2)
        stripes = np.where(horizontal[s, None, None], y, x)
        parity = (np.where(texture[s, None, None] == 0, x + y, stripes) + phase[s, None, None]) % 2
        sign = (2 * parity - 1).astype(np.float32)[..., None]
        shape_colour = mean[s, None, None].astype(np.float32) + amplitude[s, None, None].astype(np.float32) * sign
        background = (mean[s] - drop[s]).astype(np.float32)[:, None, None]
        img = np.where(mask[..., None], shape_colour, background)
        img += rng.standard_normal(img.shape, dtype=np.float32) * noise_sd[s, None, None, None].astype(np.float32)
        images[s] = np.rint(np.clip(img, 0.0, 1.0) * 255.0)
    return images, labels


def _check_twoscale(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - set(TWOSCALE_DEFAULTS)
    if unknown:
        raise UsageError(f"unknown twoscale parameter(s) {sorted(unknown)}; known: {', '.join(TWOSCALE_DEFAULTS)}")
    p = {**TWOSCALE_DEFAULTS, **{k: v for k, v in params.items() if v is not None}}
    if not all(isinstance(v, (int, np.integer)) for v in p.values()):
        raise UsageError(f"twoscale parameters must be integers, got {p}")
    p = {k: int(v) for k, v in p.items()}
    if p["seed"] < 0:
        raise UsageError(f"--seed must be >= 0, got {p['seed']}")
    if p["size"] < 8 or p["size"] % 2:
        raise UsageError(f"--size must be an even number >= 8 (shapes sit on 2x2-pixel cells), got {p['size']}")
    if p["classes"] % 2 or not 2 <= p["classes"] <= 2 * len(LAYOUTS):
        raise UsageError(f"--classes must be even, 2..{2 * len(LAYOUTS)} (layouts x 2 textures), "
                         f"got {p['classes']}")
    if p["train"] < 1 or p["test"] < 1:
        raise UsageError(f"--train and --test must be >= 1, got {p['train']} and {p['test']}")
    return p


# --- registry -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is and how it is turned into a cache."""

    name: str
    build: Callable[[DatasetSpec, dict, Path | None, bool, Path], dict]  # writes the arrays, returns meta
    recipe: str  # loader augmentation recipe: "pad-crop-flip" (32x32 sets) or "resized-crop-flip" (Food101)
    mean: tuple[float, ...] | None = None  # None: measured on the training images
    std: tuple[float, ...] | None = None
    source: str | type | None = None  # a torchvision.datasets class (or its name, imported when needed)
    folder: str | None = None  # what torchvision reads under the data root
    archive: str | None = None  # the downloadable archive that holds `folder`

    def source_class(self) -> type:
        if isinstance(self.source, str):
            import torchvision.datasets  # slow to import: only when a real dataset is read

            return getattr(torchvision.datasets, self.source)
        return self.source


def get_dataset(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise UsageError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def cache_path(name: str, cache_dir: str | os.PathLike, **params) -> Path:
    """Where `prepare` puts a dataset: the name, plus every parameter for generated sets."""
    spec = get_dataset(name)
    if spec.name != "twoscale":
        if any(v is not None for v in params.values()):
            raise UsageError(f"parameters {sorted(params)} apply to twoscale only, not {name}")
        return Path(cache_dir) / name
    p = _check_twoscale(params)
    return Path(cache_dir) / (f"twoscale-v{TWOSCALE_VERSION}-" + "-".join(f"{k}{v}" for k, v in p.items()))


# --- preparation --------------------------------------------------------------------------------------------


def _write_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()


def _build_twoscale(spec: DatasetSpec, params: dict, data_root: Path | None, download: bool, out: Path) -> dict:
    for split in SPLITS:
        images, labels = make_twoscale(params[split], seed=params["seed"], size=params["size"],
                                       classes=params["classes"], split=split)
        _write_array(out / f"{split}_images.npy", images)
        _write_array(out / f"{split}_labels.npy", labels)
        if split == "train":  # per-channel statistics of the training pixels, for normalisation
            pixels = images.reshape(-1, 3)
            mean, std = pixels.mean(axis=0) / 255.0, pixels.std(axis=0) / 255.0
    return {"source": f"generated by poolnas.datasets.make_twoscale (version {TWOSCALE_VERSION})",
            "classes": twoscale_classes(params["classes"]),
            "mean": [round(float(v), 6) for v in mean], "std": [round(float(v), 6) for v in std]}


def _open_torchvision(spec: DatasetSpec, data_root: Path | None, download: bool, **split_kwargs):
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


def _build_cifar(spec: DatasetSpec, params: dict, data_root: Path | None, download: bool, out: Path) -> dict:
    for split in SPLITS:
        dataset = _open_torchvision(spec, data_root, download, train=split == "train")
        _write_array(out / f"{split}_images.npy", np.ascontiguousarray(dataset.data, dtype=np.uint8))
        _write_array(out / f"{split}_labels.npy", np.asarray(dataset.targets, dtype=np.int64))
    return {"source": f"torchvision.datasets.{spec.source_class().__name__}", "classes": list(dataset.classes)}


def _build_food101(spec: DatasetSpec, params: dict, data_root: Path | None, download: bool, out: Path) -> dict:
    import torch
    from torchvision import transforms

    # Resize the short side to 256 and keep the central square: the paper's test view is its centre 224 crop.
    square = transforms.Compose([transforms.Resize(FOOD_SIDE, antialias=True), transforms.CenterCrop(FOOD_SIDE),
                                 transforms.PILToTensor()])
    for split in SPLITS:
        dataset = _open_torchvision(spec, data_root, download, split=split, transform=square)
        workers = min(8, os.cpu_count() or 1) if len(dataset) >= 1024 else 0
        batches = torch.utils.data.DataLoader(dataset, batch_size=64, num_workers=workers)
        images = np.lib.format.open_memmap(out / f"{split}_images.npy", mode="w+", dtype=np.uint8,
                                           shape=(len(dataset), FOOD_SIDE, FOOD_SIDE, 3))
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
        _write_array(out / f"{split}_labels.npy", labels)
    return {"source": "torchvision.datasets.Food101", "classes": list(dataset.classes),
            "storage": f"short side resized to {FOOD_SIDE}, central {FOOD_SIDE}x{FOOD_SIDE} square"}


DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec("cifar10", _build_cifar, "pad-crop-flip", CIFAR_MEAN, CIFAR_STD, "CIFAR10",
                           "cifar-10-batches-py", "cifar-10-python.tar.gz"),
    "cifar100": DatasetSpec("cifar100", _build_cifar, "pad-crop-flip", CIFAR_MEAN, CIFAR_STD, "CIFAR100",
                            "cifar-100-python", "cifar-100-python.tar.gz"),
    "food101": DatasetSpec("food101", _build_food101, "resized-crop-flip", FOOD_MEAN, FOOD_STD, "Food101",
                           "food-101", "food-101.tar.gz"),
    "twoscale": DatasetSpec("twoscale", _build_twoscale, "pad-crop-flip"),
}


def prepare(name: str, data_root: str | os.PathLike | None, cache_dir: str | os.PathLike, *,
            download: bool = False, force: bool = False, **params) -> Path:
    """Convert a dataset once into its cache directory (see the module docstring) and return that directory.

    An existing cache is returned as is unless `force`. Twoscale takes `seed`, `size`, `classes`, `train`, `test`.
    """
    spec = get_dataset(name)
    target = cache_path(name, cache_dir, **params)
    if (target / "meta.json").is_file() and not force:
        return target
    params = _check_twoscale(params) if spec.name == "twoscale" else {}
    target.parent.mkdir(parents=True, exist_ok=True)
    root = Path(data_root).expanduser().resolve() if data_root is not None and spec.source else None
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        built = spec.build(spec, params, root, download, tmp)
        files = {}
        for split in SPLITS:
            for kind in ("images", "labels"):
                file = f"{split}_{kind}.npy"
                array = np.load(tmp / file, mmap_mode="r")
                files[file] = {"shape": list(array.shape), "dtype": str(array.dtype), "sha256": _sha256(tmp / file)}
        train_shape = files["train_images.npy"]["shape"]
        meta = {"format": CACHE_FORMAT, "dataset": spec.name, "params": params,
                "data_root": str(root) if root else None, "recipe": spec.recipe,
                "counts": {s: files[f"{s}_labels.npy"]["shape"][0] for s in SPLITS},
                "image_size": train_shape[1:3], "mean": list(spec.mean or ()), "std": list(spec.std or ()),
                **built, "files": files, "provenance": provenance()}
        write_json(tmp / "meta.json", meta)
        _share_like_normal_files(tmp)
        _move_into_place(tmp, target, replace=force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _share_like_normal_files(directory: Path) -> None:
    """mkdtemp/mkstemp create owner-only entries; give the cache the permissions the umask gives new files."""
    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
    for file in directory.iterdir():
        file.chmod(0o666 & ~umask)


def _move_into_place(new: Path, target: Path, replace: bool) -> None:
    """Rename a finished cache to its name. With `replace`, an existing one is moved aside first, then deleted;
    without, a cache that a concurrent `prepare` finished first wins (both hold the same data) and ours goes."""
    old = None
    if replace and target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old / "cache")
    try:
        os.rename(new, target)
    except OSError:
        shutil.rmtree(new, ignore_errors=True)
        if not (target / "meta.json").is_file():
            raise UsageError(f"{target} exists but is not a prepared dataset; remove it or pass --force") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --- loading ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 (N, H, W, 3), in memory or memory-mapped
    labels: np.ndarray  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Prepared:
    """A loaded cache: both splits plus what the loader needs to know (mean, std, augmentation recipe)."""

    path: Path
    meta: dict  # meta.json; the fields below repeat the parts every user needs
    train: Split
    test: Split
    name: str
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    recipe: str  # the loader's augmentation recipe

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise UsageError(f"unknown split {name!r}; known: {', '.join(SPLITS)}")
        return getattr(self, name)


def rebuild_command(meta: dict, path: Path) -> str:
    cmd = f"python -m poolnas data prepare --dataset {meta.get('dataset', '?')} --cache-dir {path.parent} --force"
    if meta.get("data_root"):
        cmd += f" --data-root {meta['data_root']}"
    return cmd + "".join(f" --{k} {v}" for k, v in (meta.get("params") or {}).items())


def load(path: str | os.PathLike, *, verify: bool = True, mmap: bool | None = None) -> Prepared:
    """Open a cache made by `prepare`; with `verify`, refuse files whose sha256 differs from meta.json.

    Image arrays bigger than 1 GiB are memory-mapped unless `mmap` says otherwise.
    """
    path = Path(path)
    if not (path / "meta.json").is_file():
        raise UsageError(f"{path} is not a prepared dataset (no meta.json); make it with: "
                         f"python -m poolnas data prepare --dataset NAME --cache-dir {path.parent}")
    try:
        meta = read_json(path / "meta.json")
    except ValueError:  # an unreadable meta.json cannot say how to rebuild itself
        raise UsageError(f"{path / 'meta.json'} is not valid JSON; delete {path} and prepare it again") from None
    if meta.get("format") != CACHE_FORMAT:
        raise UsageError(f"{path} has cache format {meta.get('format')}, this code reads {CACHE_FORMAT}; "
                         f"rebuild it with: {rebuild_command(meta, path)}")
    arrays = {}
    for file, info in meta["files"].items():
        if verify and (not (path / file).is_file() or _sha256(path / file) != info["sha256"]):
            raise UsageError(f"{path / file} does not match its sha256 in meta.json (corrupt or changed cache); "
                             f"rebuild it with: {rebuild_command(meta, path)}")
        big = (path / file).stat().st_size > MMAP_ABOVE_BYTES
        arrays[file] = np.load(path / file, mmap_mode="r" if (big if mmap is None else mmap) else None)
    splits = {s: Split(arrays[f"{s}_images.npy"], arrays[f"{s}_labels.npy"]) for s in SPLITS}
    return Prepared(path, meta, **splits, name=meta["dataset"], classes=meta["classes"], mean=tuple(meta["mean"]),
                    std=tuple(meta["std"]), recipe=meta["recipe"])


def open_dataset(name: str, cache_dir: str | os.PathLike, data_root: str | os.PathLike | None = None, *,
                 download: bool = False, verify: bool = True, **params) -> Prepared:
    """`prepare` (once) then `load`: what a training command calls."""
    return load(prepare(name, data_root, cache_dir, download=download, **params), verify=verify)


# --- splits -------------------------------------------------------------------------------------------------


def search_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, class-stratified 50/50 split of a training set: (search-train, search-validation) row indices.

    Within each class the rows are shuffled and the first ceil(n/2) go to search-train. Both outputs are
    sorted; the same labels and seed always give the same split.
    """
    labels = np.asarray(labels)
    order = np.random.default_rng(np.random.SeedSequence(seed)).permutation(len(labels))
    order = order[np.argsort(labels[order], kind="stable")]  # grouped by class, shuffled within each class
    _, first, counts = np.unique(labels[order], return_index=True, return_counts=True)
    rank = np.arange(len(order)) - np.repeat(first, counts)  # position of each row within its class
    to_train = rank < np.repeat(counts - counts // 2, counts)
    return np.sort(order[to_train]), np.sort(order[~to_train])


# --- command line -------------------------------------------------------------------------------------------


def register(sub) -> None:
    p = sub.add_parser("data", help="prepare and inspect cached datasets",
                       description="Convert a dataset once into a checksummed cache of uint8 arrays.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    actions.required = True
    prep = actions.add_parser("prepare", help="build the cache of one dataset (no-op when it exists)")
    prep.add_argument("--dataset", required=True, help=f"one of: {', '.join(DATASETS)}")
    prep.add_argument("--data-root", default=None, help="where the raw files are (or go, with --download)")
    prep.add_argument("--cache-dir", required=True, help="the cache goes in a subdirectory of this")
    prep.add_argument("--download", action="store_true", help="let torchvision download missing files")
    prep.add_argument("--force", action="store_true", help="rebuild even when the cache exists")
    prep.add_argument("--profile", default=None,
                      help="take the dataset's parameters from this profile (smoke, mini, paper or a .yaml)")
    for key in TWOSCALE_DEFAULTS:
        prep.add_argument(f"--{key}", type=int, default=None,
                          help=f"twoscale only (default {TWOSCALE_DEFAULTS[key]})")
    prep.set_defaults(func=_cli_prepare)
    info = actions.add_parser("info", help="print the metadata of a prepared dataset")
    info.add_argument("path", help="a cache directory written by `data prepare`")
    info.add_argument("--verify", action="store_true", help="also check every file's sha256")
    info.set_defaults(func=_cli_info)


def _cli_prepare(args) -> int:
    params = {}
    if args.profile:  # the workflow's way: one source of truth for the generated set's parameters
        from poolnas import profiles

        params = profiles.dataset_params(profiles.load(args.profile), args.dataset)
    params |= {k: getattr(args, k) for k in TWOSCALE_DEFAULTS if getattr(args, k) is not None}
    path = prepare(args.dataset, args.data_root, args.cache_dir, download=args.download, force=args.force, **params)
    print(path)
    return 0


def _cli_info(args) -> int:
    data = load(args.path, verify=args.verify)
    meta = data.meta
    print(f"dataset     {meta['dataset']}  ({meta['source']})")
    print(f"path        {data.path}")
    print(f"params      {json.dumps(meta['params'])}")
    print(f"counts      train {meta['counts']['train']}, test {meta['counts']['test']}; "
          f"images {meta['image_size'][0]}x{meta['image_size'][1]} RGB uint8")
    print(f"classes     {len(meta['classes'])}: {', '.join(meta['classes'][:12])}"
          + (", ..." if len(meta["classes"]) > 12 else ""))
    print(f"normalise   mean {meta['mean']} std {meta['std']}; augmentation {meta['recipe']}")
    for file, info in meta["files"].items():
        print(f"file        {file} {info['dtype']} {tuple(info['shape'])} sha256 {info['sha256'][:16]}...")
    print("checksums   " + ("verified" if args.verify else "not checked (use --verify)"))
    return 0
