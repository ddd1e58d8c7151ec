"""One batched loader for every dataset, in the spirit of airbench / hlb-CIFAR10.

Images stay uint8 (NHWC) until a batch reaches the device: in-memory sets are copied to the device once, a
memory-mapped set (Food101) is gathered batch by batch on the host, one batch ahead in a thread. Augmentation
and normalisation then run on whole batches on the device; no per-image PIL or transform object is involved.
Batches come out as float32 NCHW tensors in channels_last memory format (bf16 is the trainer's business).

Recipes (per dataset, from its cache metadata):
    pad-crop-flip      train: zero-pad `pad` pixels (black, as torchvision pads the uint8 image before
                       ToTensor), random crop back to the original size, horizontal flip with p = 1/2.
                       Eval: unchanged. `pad` defaults to side / 8: the paper's 4 pixels at 32x32, and the same
                       relative shift for smaller generated images (2 at 16x16).
    flip               train: horizontal flip with p = 1/2 only; eval: unchanged. For generated sets that
                       already draw every object's position (glyphs): there, zero-padded crops made the black
                       border a cue seen only in training; at 16x16 the test accuracy of two seeds of one config
                       then differed by 4 points (86.1 vs 90.0), against 0.1 without the crop (issue 18 pilot).
    resized-crop-flip  train: torchvision's RandomResizedCrop(crop, scale (0.08, 1), ratio (3/4, 4/3)) boxes,
                       resampled bilinearly (no antialiasing: the crops are at most 256/224 larger than the
                       output; along the box's outer half pixel the true neighbours are read, where a crop-then-
                       resize would repeat the edge), and a horizontal flip. Eval: centre crop. `crop` is 224
                       (Food101, the paper) unless a profile's dataset entry sets another (a small generated set
                       read this way, e.g. 32 of 36 pixels in the smoke profile).

Randomness: every epoch draws its order and augmentation parameters from its own CPU torch.Generator seeded
by (seed, epoch), all at the start of the epoch; so `loader.epoch(e)` gives the same batches whether or not
epochs 0..e-1 ran before (a resumed run sees what an uninterrupted one would), and iterating needs no host
synchronisation on CUDA.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from poolnas.errors import UsageError

RECIPES = ("pad-crop-flip", "flip", "resized-crop-flip")
PADDED = ("pad-crop-flip", "flip")  # the recipes pad_crop_flip serves ("flip" with pad 0)
CROP = 224


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator for one (seed, epoch) pair; SeedSequence mixes the pair so nearby pairs don't collide."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def resized_crop_boxes(n: int, height: int, width: int, generator: torch.Generator, scale=(0.08, 1.0),
                       ratio=(3 / 4, 4 / 3), tries: int = 10) -> torch.Tensor:
    """RandomResizedCrop's boxes for n images at once: (n, 4) int64 rows (left, top, width, height).

    As torchvision: up to `tries` draws of area and log-uniform aspect ratio, the first that fits wins; if none
    fits, the whole image clipped to the ratio range, centred.
    """
    area = torch.empty(n, tries).uniform_(*scale, generator=generator) * (height * width)
    aspect = torch.empty(n, tries).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator).exp()
    w, h = (area * aspect).sqrt().round().long(), (area / aspect).sqrt().round().long()
    fits = (w >= 1) & (w <= width) & (h >= 1) & (h <= height)
    first = fits.long().argmax(dim=1, keepdim=True)  # index of the first fitting try (0 if none fits)
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
    fallback_w = min(width, round(height * ratio[1]))
    fallback_h = min(height, round(width / ratio[0]))
    found = fits.any(dim=1)
    w, h = torch.where(found, w, fallback_w), torch.where(found, h, fallback_h)
    u = torch.rand(n, 2, generator=generator)
    # Uniform over the integer positions that keep the box inside; fallback boxes are centred.
    left = torch.where(found, (u[:, 0] * (width - w + 1)).long(), (width - w) // 2)
    top = torch.where(found, (u[:, 1] * (height - h + 1)).long(), (height - h) // 2)
    return torch.stack([left, top, w, h], dim=1)


def resize_crops(x: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resampling of one box per image (float NCHW) to size x size, mirrored where `flip`.

    One affine grid per image, so the whole batch is one grid_sample; same values as cropping then
    F.interpolate(bilinear, align_corners=False).
    """
    n, _, height, width = x.shape
    left, top, w, h = boxes.to(x.dtype).unbind(1)
    theta = x.new_zeros(n, 2, 3)
    theta[:, 0, 0] = torch.where(flip, -w, w) / width
    theta[:, 0, 2] = (2 * left + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * top + h) / height - 1
    grid = F.affine_grid(theta, [n, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class Loader:
    """Batches of (images float32 NCHW channels_last, labels int64) from uint8 NHWC arrays.

    `indices` restricts the loader to those rows (e.g. a search split). Without `shuffle` the rows come in the
    given order. Iterating the loader itself runs epochs 0, 1, 2, ... (`next_epoch` says which is next);
    `epoch(e)` runs epoch e explicitly.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, batch_size: int, mean, std,
                 recipe: str = "pad-crop-flip", augment: bool = False, shuffle: bool = False,
                 drop_last: bool = False, indices=None, seed: int = 0, device: str | torch.device = "cpu",
                 pad: int | None = None, crop: int | None = None):
        if recipe not in RECIPES:
            raise UsageError(f"unknown augmentation recipe {recipe!r}; known: {', '.join(RECIPES)}")
        if batch_size < 1:
            raise UsageError(f"batch size must be >= 1, got {batch_size}")
        if crop is not None and recipe != "resized-crop-flip":
            raise UsageError(f"a crop size applies to the resized-crop-flip recipe only, not {recipe}")
        self.crop = CROP if crop is None else crop
        if recipe == "resized-crop-flip" and not 1 <= self.crop <= min(images.shape[1:3]):
            raise UsageError(f"crop {self.crop} must be 1..{min(images.shape[1:3])} (the stored images are "
                             f"{images.shape[1]}x{images.shape[2]})")
        self.batch_size, self.recipe, self.augment = batch_size, recipe, augment
        self.shuffle, self.drop_last, self.seed, self.next_epoch = shuffle, drop_last, seed, 0
        if recipe == "flip":
            self.pad = 0
        else:
            self.pad = max(1, images.shape[1] // 8) if pad is None else pad
        self.device = torch.device(device)
        self.indices = torch.arange(len(labels)) if indices is None else torch.as_tensor(np.asarray(indices),
                                                                                          dtype=torch.int64)
        if len(self.indices) and not 0 <= int(self.indices.min()) <= int(self.indices.max()) < len(labels):
            raise UsageError(f"subset indices must lie in 0..{len(labels) - 1}")
        # Memory-mapped images stay on disk and are read per batch; everything else moves to the device once.
        self.on_host = isinstance(images, np.memmap)
        self.images = images if self.on_host else torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(self.device)
        # (x / 255 - mean) / std as one multiply-add.
        std_ = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.scale = 1.0 / (255.0 * std_)
        self.shift = -torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1) / std_

    @classmethod
    def from_prepared(cls, data, split: str, batch_size: int, *, augment: bool | None = None,
                      shuffle: bool | None = None, **kwargs) -> Loader:
        """A loader over a `poolnas.datasets.Prepared` split; augment and shuffle default to split == "train"; `mean`
        and `std` default to the dataset's (a named CIFAR recipe gives others)."""
        part = data.split(split)
        train = split == "train"
        return cls(part.images, part.labels, batch_size=batch_size, mean=kwargs.pop("mean", data.mean),
                   std=kwargs.pop("std", data.std),
                   recipe=data.recipe, augment=train if augment is None else augment,
                   shuffle=train if shuffle is None else shuffle, **kwargs)

    @property
    def side(self) -> int:
        """The side of the square images the loader yields (what a network sees: its MACs are counted at it)."""
        return self.crop if self.recipe == "resized-crop-flip" else self.images.shape[1]

    def __len__(self) -> int:
        n = len(self.indices)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.next_epoch += 1
        return self.epoch(self.next_epoch - 1)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of epoch `epoch`: a function of (seed, epoch) only."""
        g = epoch_generator(self.seed, epoch)
        n = len(self.indices)
        rows = self.indices[torch.randperm(n, generator=g)] if self.shuffle else self.indices
        draws = [d.to(self.device, non_blocking=True) for d in self._draw(n, g)] if self.augment else None
        rows_dev = rows.to(self.device, non_blocking=True)
        starts = range(0, len(self) * self.batch_size, self.batch_size)
        for start, x in zip(starts, self._gather(rows, rows_dev, starts)):
            s = slice(start, start + self.batch_size)
            x = self._transform(x, None if draws is None else [d[s] for d in draws])
            yield x, self.labels[rows_dev[s]]

    def stream(self, start_epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches forever, epoch after epoch (e.g. the search's validation minibatches)."""
        while True:
            yield from self.epoch(start_epoch)
            start_epoch += 1

    def _draw(self, n: int, g: torch.Generator) -> list[torch.Tensor]:
        flip = torch.randint(0, 2, (n,), generator=g, dtype=torch.bool)
        if self.recipe in PADDED:
            return [torch.randint(0, 2 * self.pad + 1, (n, 2), generator=g), flip]
        height, width = self.images.shape[1:3]
        return [resized_crop_boxes(n, height, width, g), flip]

    def _gather(self, rows: torch.Tensor, rows_dev: torch.Tensor, starts: range) -> Iterator[torch.Tensor]:
        """uint8 NHWC batches on the device, in order."""
        if not self.on_host:
            for start in starts:
                yield self.images[rows_dev[start: start + self.batch_size]]
            return

        def read(start: int) -> torch.Tensor:  # numpy fancy indexing on a memmap reads just these rows
            batch = torch.from_numpy(self.images[rows[start: start + self.batch_size].numpy()])
            return batch.pin_memory() if self.device.type == "cuda" else batch

        with ThreadPoolExecutor(max_workers=1) as pool:  # read batch i+1 while batch i is being used
            pending = pool.submit(read, starts[0]) if starts else None
            for i in range(len(starts)):
                batch = pending.result()
                if i + 1 < len(starts):
                    pending = pool.submit(read, starts[i + 1])
                yield batch.to(self.device, non_blocking=True)

    def _transform(self, x: torch.Tensor, draws: list[torch.Tensor] | None) -> torch.Tensor:
        """uint8 NHWC -> augmented, normalised float32 NCHW (channels_last)."""
        if self.recipe in PADDED:
            if draws is not None:
                x = pad_crop_flip(x, *draws, pad=self.pad)
            x = x.permute(0, 3, 1, 2).float()  # an NCHW view of NHWC memory is channels_last already
        else:
            x = x.permute(0, 3, 1, 2).float()
            if draws is not None:
                x = resize_crops(x, draws[0], draws[1], self.crop).contiguous(memory_format=torch.channels_last)
            else:
                top, left = round((x.shape[2] - self.crop) / 2), round((x.shape[3] - self.crop) / 2)
                x = x[:, :, top: top + self.crop, left: left + self.crop].contiguous(memory_format=torch.channels_last)
        return x.mul_(self.scale).add_(self.shift)


def pad_crop_flip(x: torch.Tensor, shifts: torch.Tensor, flip: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Random crop of the zero-padded batch (uint8 NHWC), then mirror where `flip`: one gather for the batch.

    shifts[i] = (dy, dx) in 0..2*pad is the crop's top-left corner in the padded image.
    """
    n, height, width, _ = x.shape
    padded = F.pad(x, (0, 0, pad, pad, pad, pad))
    rows = shifts[:, :1] + torch.arange(height, device=x.device)
    cols = shifts[:, 1:] + torch.arange(width, device=x.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # a flipped crop reads its columns right to left
    return padded[torch.arange(n, device=x.device)[:, None, None], rows[:, :, None], cols[:, None, :]]
