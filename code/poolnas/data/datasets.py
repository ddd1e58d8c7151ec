"""Datasets: a registry, one-time preparation into a checksummed cache, loading, splits.

Registry (`DATASETS`): cifar10, cifar100, food101 and fashion-mnist are read with torchvision's own dataset classes
(which do the download, the integrity check and the parsing; fashion-mnist also from Debian's package:
poolnas.data.fashion), fashion-mnist as a seeded class-stratified subset, and `fashion-mnist-holdout` with
held-out training images as its test split, for pilots that must not see a test image (poolnas.data.subsets); `twoscale` (poolnas.data.twoscale) and `glyphs`
(poolnas.data.glyphs) are generated, each by a poolnas.data.generated.Generator. `glyphs-crops` is the glyphs
set read as Food101 is (random resized crops, a centre crop in evaluation, hence the ImageNet stem), at the crop
side its profile gives (`crop`): the smoke profile's stand-in for Food101 (Table 4).

Cache (`prepare` writes it, `load` reads it): one directory per dataset (and per parameter set for generated ones):
    {train,test}_images.npy   uint8 (N, H, W, 3), raw .npy so that big sets are read memory-mapped
    {train,test}_labels.npy   int64 (N,)
    meta.json                 classes, counts, image size, mean/std, params, source, provenance, and the
                              sha256 of every .npy file; `load` refuses files that do not match. Its own
                              field `meta_sha256` is the sha256 of the rest of meta.json (`meta_digest`), so an
                              edited mean or a damaged key is refused like a damaged array, with the command
                              that rebuilds the cache. (`files`, which the run keys hash, is unchanged by it.)
It is written into a temporary sibling directory and renamed into place at the end, so a crash never leaves a
partial cache under the target name; the temporary directories of killed prepares are deleted by the next prepare
of the same cache (`remove_abandoned`).

Food101 is stored as the central 256x256 square of each image after resizing its short side to 256 (~20 GB).
torchvision's test view (resize 256, centre crop 224) is then exact; the training random-resized-crop samples from
that square, not the full image (it loses the ends of the long side, a quarter of a 4:3 image): one fixed-size,
memory-mappable array. The release kept the whole image, longer side 256 (standalone.FOOD101_RELEASED_STORAGE).

Normalisation: a CIFAR set's own is the released ResNet20's (pad 4, CIFAR10's mean/std, cifar100 too); the released
ResNet18 and ResNet50/CIFAR100 scripts' is `cifar_recipe` ffcv (CIFAR_RECIPES); generated sets' are measured.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from poolnas.errors import UsageError, WriteFailed
from poolnas.records import hold, provenance, read_json, remove_abandoned, write_json
from poolnas.data import fashion, torchvision_sets
from poolnas.data.generated import Generator
from poolnas.data.glyphs import GLYPHS
from poolnas.data.subsets import Subsetting, search_split  # noqa: F401 (search_split: read from here too)
from poolnas.data.twoscale import TWOSCALE

CACHE_FORMAT = 1
SPLITS = ("train", "test")
CIFAR_MEAN, CIFAR_STD = (0.49139968, 0.48215827, 0.44653124), (0.24703233, 0.24348505, 0.26158768)
# CIFAR pipelines a protocol or search may name (`cifar_recipe`) instead of the dataset's own (pad 4, CIFAR_STD): the
# released ResNet18 and ResNet50/CIFAR100 scripts (cifar/resnet18/utils/data_loader.py, cifar/resnet50/
# train_original_baseline_ffcv100.py) translate by up to 2 pixels with zero fill, flip, and divide by another std.
CIFAR_RECIPES = {"ffcv": {"pad": 2, "mean": CIFAR_MEAN, "std": (0.2023, 0.1994, 0.2010)}}
FOOD_MEAN, FOOD_STD = (0.561, 0.440, 0.312), (0.252, 0.256, 0.259)
MMAP_ABOVE_BYTES = 1 << 30  # `load` memory-maps image files bigger than this (Food101) and reads others in


# --- registry -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is and how it is turned into a cache."""

    name: str
    build: Callable[[DatasetSpec, dict, Path | None, bool, Path], dict]  # writes the arrays, returns meta
    recipe: str  # loader augmentation recipe: "pad-crop-flip" (32x32 sets), "flip" (glyphs), "resized-crop-flip"
    mean: tuple[float, ...] | None = None  # None: measured on the training images
    std: tuple[float, ...] | None = None
    source: str | type | None = None  # a torchvision.datasets class (or its name, imported when needed)
    folder: str | None = None  # what torchvision reads under the data root
    archive: str | None = None  # the downloadable archive that holds `folder`
    generator: Generator | None = None  # generated sets: what draws them and checks their parameters
    subset: Subsetting | None = None  # real sets cached as a seeded subset: its parameters (poolnas.data.subsets)

    @property
    def parameters(self) -> Generator | Subsetting | None:
        """What fills, checks and names by a dataset's parameters: its generator or its subsetting."""
        return self.generator or self.subset

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


def resolve_params(name: str, params: dict) -> dict:
    """The parameters `prepare` makes a dataset with: the given ones with defaults filled in ({} for a dataset
    that takes none); what every record names as its `data_params`."""
    spec = get_dataset(name)
    return spec.parameters.params(params) if spec.parameters else {}


def cache_path(name: str, cache_dir: str | os.PathLike, **params) -> Path:
    """Where `prepare` puts a dataset: the name, plus every parameter for generated sets."""
    spec = get_dataset(name)
    if spec.parameters is None:
        if any(v is not None for v in params.values()):
            takes = ", ".join(n for n, d in DATASETS.items() if d.parameters)
            raise UsageError(f"parameters {sorted(params)} apply to {takes} only, not {name}")
        return Path(cache_dir) / name
    return Path(cache_dir) / spec.parameters.cache_name(params)


# --- preparation --------------------------------------------------------------------------------------------


def _write_array(path: Path, array: np.ndarray) -> None:
    try:
        with open(path, "wb") as f:
            np.save(f, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:  # a full disk, a quota: which file, not a traceback (`prepare` removes the rest)
        raise WriteFailed(path, err) from err


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()


def _build_generated(spec: DatasetSpec, params: dict, data_root: Path | None, download: bool, out: Path) -> dict:
    for split in SPLITS:
        images, labels = spec.generator.make(params[split], seed=params["seed"], size=params["size"],
                                             classes=params["classes"], split=split)
        _write_array(out / f"{split}_images.npy", images)
        _write_array(out / f"{split}_labels.npy", labels)
        if split == "train":  # per-channel statistics of the training pixels, for normalisation
            pixels = images.reshape(-1, 3)
            mean, std = pixels.mean(axis=0) / 255.0, pixels.std(axis=0) / 255.0
    return {"source": spec.generator.source, "classes": spec.generator.class_names(params["classes"]),
            "mean": [round(float(v), 6) for v in mean], "std": [round(float(v), 6) for v in std]}


def _build_cifar(spec: DatasetSpec, params: dict, data_root: Path | None, download: bool, out: Path) -> dict:
    return torchvision_sets.build_cifar(spec, data_root, download, out, _write_array)


def _build_food101(spec: DatasetSpec, params: dict, data_root: Path | None, download: bool, out: Path) -> dict:
    return torchvision_sets.build_food101(spec, data_root, download, out, _write_array)


def _build_fashion(spec: DatasetSpec, params: dict, data_root: Path | None, download: bool, out: Path) -> dict:
    return fashion.build(spec, params, data_root, download, out, _write_array)


DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec("cifar10", _build_cifar, "pad-crop-flip", CIFAR_MEAN, CIFAR_STD, "CIFAR10",
                           "cifar-10-batches-py", "cifar-10-python.tar.gz"),
    "cifar100": DatasetSpec("cifar100", _build_cifar, "pad-crop-flip", CIFAR_MEAN, CIFAR_STD, "CIFAR100",
                            "cifar-100-python", "cifar-100-python.tar.gz"),
    "food101": DatasetSpec("food101", _build_food101, "resized-crop-flip", FOOD_MEAN, FOOD_STD, "Food101",
                           "food-101", "food-101.tar.gz"),
    # 28x28 grayscale replicated to 3 channels; the glyphs' recipe (flips, no crops): the mini protocol's start
    "fashion-mnist": DatasetSpec("fashion-mnist", _build_fashion, "flip", source="FashionMNIST",
                                 folder=fashion.FOLDER, subset=fashion.FASHION),
    "fashion-mnist-holdout": DatasetSpec("fashion-mnist-holdout", _build_fashion, "flip", source="FashionMNIST",
                                         folder=fashion.FOLDER, subset=fashion.FASHION_HOLDOUT),
    "twoscale": DatasetSpec("twoscale", _build_generated, "pad-crop-flip", generator=TWOSCALE),
    "glyphs": DatasetSpec("glyphs", _build_generated, "flip", generator=GLYPHS),
    # the glyphs, cached under their own name (meta.json's recipe differs from glyphs')
    "glyphs-crops": DatasetSpec("glyphs-crops", _build_generated, "resized-crop-flip",
                                generator=replace(GLYPHS, name="glyphs-crops")),
}


def prepare(name: str, data_root: str | os.PathLike | None, cache_dir: str | os.PathLike, *,
            download: bool = False, force: bool = False, **params) -> Path:
    """Convert a dataset once into its cache directory (see the module docstring) and return that directory.

    An existing cache is returned as is unless `force`. Generated sets take `seed`, `size`, `classes`, `train`,
    `test`.
    """
    spec = get_dataset(name)
    target = cache_path(name, cache_dir, **params)
    remove_abandoned(target)
    if (target / "meta.json").is_file() and not force:
        return target
    params = resolve_params(name, params)
    created = _missing_ancestors(target.parent)  # removed again if nothing is prepared (a missing dataset)
    root = Path(data_root).expanduser().resolve() if data_root is not None and spec.source else None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as err:  # a read-only data directory without this cache
        raise UsageError(f"cannot create the cache of {name} in {target.parent} ({err.strerror or err})") from None
    claim = hold(tmp)  # until the end: a concurrent prepare's remove_abandoned leaves this directory alone
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
        meta["meta_sha256"] = meta_digest(meta)
        write_json(tmp / "meta.json", meta)
        _share_like_normal_files(tmp)
        _move_into_place(tmp, target, replace=force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for directory in created:  # deepest first; only if still empty (a concurrent prepare may use it)
            try:
                directory.rmdir()
            except OSError:
                break
        raise
    finally:
        if claim is not None:
            os.close(claim)
    return target


def _missing_ancestors(directory: Path) -> list[Path]:
    """`directory` and its ancestors that do not exist yet, deepest first."""
    missing = []
    for d in [directory, *directory.parents]:
        if d.exists():
            break
        missing.append(d)
    return missing


def meta_digest(meta: dict) -> str:
    """The sha256 of a cache's metadata without its own `meta_sha256` field (canonical JSON: sorted keys)."""
    rest = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


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


META_FIELDS = ("format", "dataset", "params", "recipe", "counts", "image_size", "mean", "std", "classes", "files")


def rebuild_command(meta: dict, path: Path) -> str:
    """The `data prepare --force` line that rebuilds a cache (from its metadata, which may be damaged: the
    dataset name, root and parameters are shown as they are; a damaged name shows as ?)."""
    name = meta.get("dataset") if meta.get("dataset") in DATASETS else "?"
    cmd = f"python -m poolnas data prepare --dataset {name} --cache-dir {path.parent} --force"
    if isinstance(meta.get("data_root"), str):
        cmd += f" --data-root {meta['data_root']}"
    params = meta.get("params") if isinstance(meta.get("params"), dict) else {}
    return cmd + "".join(f" --{k} {v}" for k, v in params.items())


def read_meta(path: str | os.PathLike) -> dict:
    """The metadata of the cache at `path`, checked (format, its own checksum, every field): a UsageError with the
    command that rebuilds it otherwise."""
    path = Path(path)
    if not (path / "meta.json").is_file():
        raise UsageError(f"{path} is not a prepared dataset (no meta.json); make it with: "
                         f"python -m poolnas data prepare --dataset NAME --cache-dir {path.parent}")
    try:
        meta = read_json(path / "meta.json")
    except (ValueError, OSError) as err:  # an unreadable meta.json cannot say how to rebuild itself
        raise UsageError(f"{path / 'meta.json'} cannot be read ({type(err).__name__}); delete {path} and prepare "
                         "it again") from None
    if not isinstance(meta, dict):
        raise UsageError(f"{path / 'meta.json'} is not a cache's metadata (a JSON object); delete {path} and "
                         "prepare it again")
    if meta.get("format") != CACHE_FORMAT:
        raise UsageError(f"{path} has cache format {meta.get('format')}, this code reads {CACHE_FORMAT}; "
                         f"rebuild it with: {rebuild_command(meta, path)}")
    if "meta_sha256" not in meta:  # made before the metadata had a checksum: nothing vouches for mean, std, ...
        raise UsageError(f"{path / 'meta.json'} has no checksum of its own (made by an older poolnas); "
                         f"rebuild it with: {rebuild_command(meta, path)}")
    if meta["meta_sha256"] != meta_digest(meta):
        raise UsageError(f"{path / 'meta.json'} does not match its meta_sha256 (edited or corrupt metadata); "
                         f"rebuild it with: {rebuild_command(meta, path)}")
    missing = [k for k in META_FIELDS if k not in meta]
    if missing:  # a consistent but incomplete file: written by hand, not by prepare
        raise UsageError(f"{path / 'meta.json'} lacks {', '.join(missing)}; rebuild it with: "
                         f"{rebuild_command(meta, path)}")
    return meta


def prepared_caches(name: str, cache_dir: str | os.PathLike) -> list[dict]:
    """The checked metadata of every cache of dataset `name` in `cache_dir` (one per parameter set prepared); a
    damaged one is left out (`load` names what is wrong with it when a run reads it)."""
    out = []
    for path in sorted(Path(cache_dir).glob(f"{name}*/meta.json")):
        try:
            meta = read_meta(path.parent)
        except UsageError:
            continue
        out += [meta] if meta["dataset"] == name else []
    return out


def load(path: str | os.PathLike, *, verify: bool = True, mmap: bool | None = None) -> Prepared:
    """Open a cache made by `prepare`; with `verify`, refuse files whose sha256 differs from meta.json.

    Image arrays bigger than 1 GiB are memory-mapped unless `mmap` says otherwise.
    """
    path = Path(path)
    meta = read_meta(path)
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
