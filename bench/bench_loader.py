"""How much of a training step the loader costs: augmented batches/s against a ResNet20 step, batch 128.

    python bench/bench_loader.py [--images 20000] [--steps 20] [--threads 2] [--device cpu]

Prints
  loader     images/s of augmented, normalised batches (pad-crop-flip, 32x32, what CIFAR/twoscale training uses)
  step       images/s of one ResNet20 [4,3,3] training step (forward, backward, SGD) on a ready batch
  ratio      loader time / step time per batch (goal < 5%)
  food       images/s of the Food101 recipe (random-resized-crop 224 + flip) from a memory-mapped 256x256 array,
             for information: a ResNet50 step at 224x224 costs far more than this on any device.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from poolnas.data.datasets import CIFAR_MEAN, CIFAR_STD, FOOD_MEAN, FOOD_STD
from poolnas.data.loader import Loader
from poolnas.data.twoscale import make_twoscale

try:
    from poolnas.arch.models import build_model
except ImportError as err:  # the models module is written separately; say so instead of a traceback
    sys.exit(f"bench_loader needs poolnas.models.build_model for the ResNet20 step ({err})")

BATCH = 128


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_batch(batches, device: torch.device, warmup: int = 2) -> tuple[float, int]:
    """Mean wall time per batch after `warmup` batches, and the images timed."""
    images, start, count = 0, None, 0
    for i, (x, _) in enumerate(batches):
        if i == warmup:
            sync(device)
            start, images, count = time.perf_counter(), 0, 0
        images += len(x)
        count += 1
    sync(device)
    return (time.perf_counter() - start) / count, images


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000, help="32x32 images in the loader (one epoch is timed)")
    parser.add_argument("--steps", type=int, default=20, help="training steps timed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, batch {BATCH}")

    images, labels = make_twoscale(args.images, seed=0, size=32, classes=10)
    loader = Loader(images, labels, batch_size=BATCH, mean=CIFAR_MEAN, std=CIFAR_STD, augment=True, shuffle=True,
                    drop_last=True, device=device)
    load_s, n = seconds_per_batch(loader.epoch(0), device)
    print(f"loader  {BATCH / load_s:10.0f} images/s  ({1e3 * load_s:.2f} ms per batch, {n} images timed)")

    torch.manual_seed(0)
    model = build_model("resnet20", "[4,3,3]", num_classes=10).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = next(loader.epoch(1))

    def steps():
        for _ in range(args.steps + 2):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            yield x, y

    step_s, _ = seconds_per_batch(steps(), device)
    print(f"step    {BATCH / step_s:10.0f} images/s  ({1e3 * step_s:.1f} ms per batch, ResNet20 [4,3,3], fp32)")
    print(f"ratio   {100 * load_s / step_s:10.2f} %  loader time / step time (goal < 5%)")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "food.npy"
        np.save(path, np.random.default_rng(0).integers(0, 256, (8 * 32, 256, 256, 3), dtype=np.uint8))
        food = Loader(np.load(path, mmap_mode="r"), np.zeros(8 * 32, np.int64), batch_size=32, mean=FOOD_MEAN,
                      std=FOOD_STD, recipe="resized-crop-flip", augment=True, shuffle=True, device=device)
        food_s, _ = seconds_per_batch(food.epoch(0), device)
        print(f"food    {32 / food_s:10.0f} images/s  (random-resized-crop 224 + flip from a memory-mapped array)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
