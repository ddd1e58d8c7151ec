"""Training-loop throughput on this machine: ours against a bare step and against a released-style loop.

    python bench/bench_train.py [--configs 4-3-3 8-1-1 1-1-8] [--batches 30] [--threads 2] [--precision bf16]
    python bench/bench_train.py --scan 16 12 --scan-batch 64 128 --threads 1 [--configs ...]

For each config (ResNet20, batch 128, CPU unless CUDA is present) it prints images/s of
  ours       the real training loop of poolnas.train (uint8 data on the device, batched augmentation, step)
  bare       forward/backward/SGD on one pre-made batch (the ceiling for any loader)
  reference  a loop in the style of the released code: torchvision's CIFAR10 class reading the on-disk python
             pickles, per-image transforms (RandomCrop(32, 4), RandomHorizontalFlip, ToTensor, Normalize),
             DataLoader(num_workers=0), the same model, batch and optimizer, always fp32 (as released)
`--precision bf16` runs ours and bare under bf16 autocast (BatchNorm in fp32), the profiles' `precision` option.
and the ratios ours/bare (goal >= 0.95) and ours/reference (goal >= 1.5). Then two 1-thread training processes
side by side against one 2-thread process, so the workflow can choose threads per job from a measurement.
`--scan` instead prints bare-step images/s for every image size x batch size given, and each one's ratio to the
first pair: what a cheaper protocol would buy (the mini profile trains 16x16 images at batch 64).
All numbers come from this one run; nothing is timed inside the test suite.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from poolnas.data.datasets import CIFAR_MEAN, CIFAR_STD
from poolnas.data.loader import Loader
from poolnas.arch.models import build_model
from poolnas.engine.optim import make_optimizer
from poolnas.engine.steps import train_step
from poolnas.data.twoscale import make_twoscale

HP = {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0}


def write_cifar10_pickles(images: np.ndarray, labels: np.ndarray, root: Path) -> None:
    """The CIFAR10 python format (rows of 3072 bytes: red, green, blue planes), so torchvision reads it as is."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    for i, part in enumerate(np.array_split(np.arange(len(images)), 5), start=1):
        entry = {"batch_label": f"training batch {i} of 5", "data": rows[part], "labels": labels[part].tolist()}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(entry))
    (folder / "test_batch").write_bytes(pickle.dumps({"data": rows[:10], "labels": labels[:10].tolist()}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(c) for c in range(10)]}))


def timed(step_batches, warmup: int = 3) -> float:
    """Images per second over the iterator's batches after `warmup` batches."""
    seen, start = 0, None
    for i, n in enumerate(step_batches):
        if i == warmup:
            seen, start = 0, time.perf_counter()
        seen += n
    return seen / (time.perf_counter() - start)


def fresh(config: str):
    torch.manual_seed(0)
    model = build_model("resnet20", config, bn="released").to(memory_format=torch.channels_last)
    return model.train(), make_optimizer(model.parameters(), HP)


def ours(images, labels, config, batches, device, precision):
    model, opt = fresh(config)
    loader = Loader(images, labels, batch_size=128, mean=CIFAR_MEAN, std=CIFAR_STD, augment=True, shuffle=True,
                    drop_last=True, device=device)

    def run():
        for i, (x, y) in enumerate(loader.epoch(0)):
            if i == batches:
                return
            train_step(model, opt, x, y, device, precision)
            yield len(y)

    return timed(run())


def bare(config, batches, device, precision, size: int = 32, batch: int = 128):
    model, opt = fresh(config)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)

    def run():
        for _ in range(batches):
            train_step(model, opt, x, y, device, precision)
            yield batch

    return timed(run())


def scan(configs, sizes, batch_sizes, batches, device, precision) -> None:
    """Bare-step images/s per config over sizes x batch sizes, as a ratio to the first (size, batch)."""
    pairs = [(s, b) for s in sizes for b in batch_sizes]
    print(f"{'config':>8} " + " ".join(f"{f'{s}px/b{b}':>13}" for s, b in pairs) + "  (images/s, x first)")
    for config in configs:
        rates = [bare(config, max(batches, 2048 // b), device, precision, s, b) for s, b in pairs]
        print(f"{config:>8} " + " ".join(f"{r:7.0f} x{r / rates[0]:4.2f}" for r in rates), flush=True)


def reference(root, config, batches, device):
    import torchvision
    from torchvision import transforms as T

    model, opt = fresh(config)
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(CIFAR_MEAN, CIFAR_STD)])
    folder = root / "cifar-10-batches-py"
    md5 = {f.name: hashlib.md5(f.read_bytes()).hexdigest() for f in folder.iterdir()}

    class LocalCIFAR10(torchvision.datasets.CIFAR10):  # torchvision's reader, with our files' checksums
        train_list = [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)]
        test_list = [["test_batch", md5["test_batch"]]]
        meta = {**torchvision.datasets.CIFAR10.meta, "md5": md5["batches.meta"]}

    data = LocalCIFAR10(str(root), train=True, transform=transform, download=False)
    loader = torch.utils.data.DataLoader(data, batch_size=128, shuffle=True, num_workers=0, drop_last=True)

    def run():
        for i, (x, y) in enumerate(loader):
            if i == batches:
                return
            x, y = x.to(device), y.to(device)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
            yield len(y)

    return timed(run())


def parallel_jobs(config: str, batches: int, precision: str) -> tuple[float, float]:
    """Total images/s of two 1-thread processes at once, and of one 2-thread process (bare steps)."""

    def launch(threads: int):
        return subprocess.Popen([sys.executable, __file__, "--worker", "--threads", str(threads), "--configs", config,
                                 "--batches", str(batches), "--precision", precision],
                                stdout=subprocess.PIPE, text=True)

    pair = [launch(1), launch(1)]
    two_single = sum(float(p.communicate()[0]) for p in pair)
    one_double = float(launch(2).communicate()[0])
    return two_single, one_double


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["4-3-3", "8-1-1", "1-1-8"])
    parser.add_argument("--batches", type=int, default=30, help="timed batches per measurement (after 3 warm-up)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="ours and bare (default fp32)")
    parser.add_argument("--scan", nargs="+", type=int, metavar="SIZE", help="image sizes to scan (bare steps only)")
    parser.add_argument("--scan-batch", nargs="+", type=int, default=[128], metavar="B", help="batch sizes to scan")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one bare measurement
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.worker:
        print(bare(args.configs[0], args.batches, device, args.precision))
        return
    if args.scan:
        print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}, {args.precision}")
        scan(args.configs, args.scan, args.scan_batch, args.batches, device, args.precision)
        return
    n = 128 * (args.batches + 4)
    images, labels = make_twoscale(n, seed=0)
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}, batch 128, "
          f"ours and bare in {args.precision}, reference in fp32")
    print(f"{'config':>8} {'ours':>8} {'bare':>8} {'reference':>10} {'ours/bare':>10} {'ours/ref':>9}  (images/s)")
    with tempfile.TemporaryDirectory() as tmp:
        write_cifar10_pickles(images, labels, Path(tmp))
        for config in args.configs:
            o = ours(images, labels, config, args.batches, device, args.precision)
            b = bare(config, args.batches, device, args.precision)
            r = reference(Path(tmp), config, args.batches, device)
            print(f"{config:>8} {o:8.0f} {b:8.0f} {r:10.0f} {o / b:10.3f} {o / r:9.2f}", flush=True)
    if device.type == "cpu":
        two, one = parallel_jobs(args.configs[0], args.batches, args.precision)
        print(f"two 1-thread jobs together {two:.0f} images/s, one 2-thread job {one:.0f} images/s: "
              f"ratio {two / one:.2f}")


if __name__ == "__main__":
    main()
