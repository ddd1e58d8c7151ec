"""What only a GPU can tell us, in one command of under ten minutes: `make gpu-check` (or `python bench/gpu_check.py`).

    python bench/gpu_check.py [--device cuda] [--small] [--jobs 1 2 4] [--skip-tests]

Prints, in order:
  1. the CUDA tests of the suite (`pytest -m cuda`; on a machine without CUDA they are reported as skipped);
  2. correctness on the device: the first 5 SGD steps of a ResNet20 ([4,3,3], 'released' BN) and of a SuperNet
     (config [1,1,8] then [8,1,1]) on the same batches, on the CPU in fp32 and on the device in fp32 and bf16:
     the largest relative difference of the losses against the CPU's, with a verdict (fp32 <= 1e-2, as TF32
     convolutions are on; bf16 <= 5e-2); then a short real `train` and a short mixture `search` (M = 2) through
     the package on the device in fp32 and bf16, their records checked against the CPU record of the same run
     (the first epoch's training loss within 5 %; the records' `options` and `provenance.device`);
  3. images/s of our training loop against the released-style loop (bench/bench_train.py: torchvision pickles,
     per-image transforms, DataLoader) for [4,3,3], [8,1,1] and [1,1,8], batch 128, CIFAR-shaped data (32x32);
  4. throughput with N jobs sharing the device (`--jobs`, default 1 2 4): N processes each running our loop on
     [4,3,3] at once; their summed images/s, its ratio to one job, and each job's peak GPU memory: what to set
     the profile's `gpu_slots` from (README "Sharing a GPU").
`--device cpu --small` runs everything smaller on the CPU (the test suite does, so this script keeps working);
its numbers say nothing about a GPU. Nothing here is timed inside the test suite.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import bench_train  # noqa: E402  (the released-style loop and our loop, side by side)

from poolnas.arch.models import build_model  # noqa: E402
from poolnas.data.datasets import CIFAR_MEAN, CIFAR_STD  # noqa: E402
from poolnas.data.loader import Loader  # noqa: E402
from poolnas.data.twoscale import make_twoscale  # noqa: E402
from poolnas.engine.optim import make_optimizer  # noqa: E402
from poolnas.engine.runtime import setup_runtime  # noqa: E402
from poolnas.engine.steps import train_step  # noqa: E402
from poolnas.settings import PROFILE_DIR  # noqa: E402

TOLERANCE = {"fp32": 1e-2, "bf16": 5e-2}  # first steps, relative loss difference against the CPU in fp32
RECORD_TOLERANCE = 0.05  # first epoch's training loss of a whole run


def header(text: str) -> None:
    print(f"\n== {text}", flush=True)


def cuda_tests() -> None:
    header("1. CUDA tests (pytest -m cuda)")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-m", "cuda", "-p", "no:cacheprovider",
                           str(REPO / "tests")], capture_output=True, text=True, cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    print("\n".join(lines[-6:]))


def first_losses(device: torch.device, precision: str, supernet: bool, steps: int = 5, size: int = 32) -> list[float]:
    images, labels = make_twoscale(16 * steps, seed=0, size=size)
    loader = Loader(images, labels, batch_size=16, mean=CIFAR_MEAN, std=CIFAR_STD, augment=True, shuffle=True,
                    seed=0, device=device)
    torch.manual_seed(0)
    net = build_model("resnet20", "4-3-3", bn="supernet" if supernet else "released").to(device)
    net = net.to(memory_format=torch.channels_last)
    opt = make_optimizer(net.parameters(), {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0})
    configs = [net.resolve(net.space.parse(c)) for c in ("1-1-8", "8-1-1")] if supernet else [None]
    losses = []
    for i, (x, y) in enumerate(loader.epoch(0)):
        loss, _ = train_step(net, opt, x, y, device, precision, configs[i % len(configs)])
        losses.append(float(loss))
    return losses


def tiny_profile(precision: str, small: bool) -> dict:
    profile = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    profile.update(profile="gpucheck", precision=precision, device="auto")
    n = 256 if small else 2048
    profile["datasets"]["twoscale"] = {"train": n, "test": n // 4, "size": 16 if small else 32, "classes": 10,
                                       "seed": 0}
    profile["protocols"]["resnet20"].update(epochs=1, batch_size=64 if small else 128, milestones=[1])
    profile["search"]["resnet20"].update(epochs=1, extra_epoch=False, batch_size=64 if small else 128,
                                         eval_batch_size=128)
    return profile


def runs(device: torch.device, small: bool, tmp: Path) -> list[str]:
    """A short train and a short mixture search per precision on the device, against the CPU fp32 record."""
    from poolnas.search.run import search_run
    from poolnas.standalone import train_run

    common = {"dataset": "twoscale", "backbone": "resnet20", "seed": 0, "data_dir": tmp / "data", "threads": 1}
    failures = []

    def both(precision: str, dev: str) -> tuple[dict, dict]:
        profile = tiny_profile(precision, small)
        tag = f"{precision}-{dev.replace(':', '')}"
        train = train_run(profile=profile, config="4-3-3", out=tmp / f"train-{tag}.json", device=dev, **common)
        search = search_run(method="mixture", models=2, profile=profile, out=tmp / f"search-{tag}.json", device=dev,
                            **common)
        return train, search

    start = time.perf_counter()
    cpu_train, cpu_search = both("fp32", "cpu")
    print(f"CPU fp32 records: train loss {cpu_train['history'][0]['train_loss']:.5f}, search loss "
          f"{cpu_search['epochs'][0]['train_loss']:.5f} ({time.perf_counter() - start:.1f} s)")
    for precision in ("fp32", "bf16"):
        start = time.perf_counter()
        train, search = both(precision, str(device))
        for kind, rec, ref, loss in [("train", train, cpu_train, lambda r: r["history"][0]["train_loss"]),
                                     ("search", search, cpu_search, lambda r: r["epochs"][0]["train_loss"])]:
            rel = abs(loss(rec) - loss(ref)) / abs(loss(ref))
            ok = rel <= RECORD_TOLERANCE and rec["options"]["precision"] == precision \
                and rec["provenance"].get("device", "").startswith(device.type)
            failures += [] if ok else [f"{kind} {precision}"]
            acc = rec["test_acc"] if kind == "train" else max(max(row) for row in rec["accuracy"])
            print(f"{device} {precision} {kind:>6}: loss {loss(rec):.5f} (CPU {loss(ref):.5f}, rel {rel:.2e}) "
                  f"acc {acc:.2f} {rec['images_per_s']:.0f} img/s device {rec['provenance'].get('device')} "
                  f"{'ok' if ok else 'CHECK'}")
        print(f"   ({time.perf_counter() - start:.1f} s)")
    return failures


def correctness(device: torch.device, small: bool, tmp: Path) -> list[str]:
    header(f"2. correctness on {device}: first 5 steps and short runs against the CPU in fp32")
    failures = []
    size = 16 if small else 32
    for supernet in (False, True):
        name = "SuperNet [1,1,8]/[8,1,1]" if supernet else "ResNet20 [4,3,3] released BN"
        ref = first_losses(torch.device("cpu"), "fp32", supernet, size=size)
        for precision in ("fp32", "bf16"):
            got = first_losses(device, precision, supernet, size=size)
            rel = max(abs(a - b) / abs(b) for a, b in zip(got, ref))
            ok = rel <= TOLERANCE[precision]
            failures += [] if ok else [f"first steps {name} {precision}"]
            print(f"{name:>30} {precision}: max rel loss diff {rel:.2e} over {len(ref)} steps "
                  f"(tolerance {TOLERANCE[precision]:.0e}) {'ok' if ok else 'CHECK'}")
    return failures + runs(device, small, tmp)


def loop_rates(device: torch.device, batches: int, tmp: Path) -> None:
    header(f"3. images/s, ours vs the released-style loop (batch 128, 32x32, {batches} timed batches)")
    n = 128 * (batches + 4)
    images, labels = make_twoscale(n, seed=0, size=32)
    bench_train.write_cifar10_pickles(images, labels, tmp)
    print(f"{'config':>8} {'ours fp32':>10} {'ours bf16':>10} {'released':>10} {'fp32/rel':>9} {'bf16/rel':>9}")
    for config in ("4-3-3", "8-1-1", "1-1-8"):
        o32 = bench_train.ours(images, labels, config, batches, device, "fp32")
        o16 = bench_train.ours(images, labels, config, batches, device, "bf16")
        ref = bench_train.reference(tmp, config, batches, device)
        print(f"{config:>8} {o32:10.0f} {o16:10.0f} {ref:10.0f} {o32 / ref:9.2f} {o16 / ref:9.2f}", flush=True)


def worker(device: str, batches: int) -> None:
    """One job of section 4: our loop on [4,3,3]; prints images/s and peak memory (MB) as JSON."""
    dev = torch.device(device)
    setup_runtime(dev, 1)
    images, labels = make_twoscale(128 * (batches + 4), seed=0, size=32)
    rate = bench_train.ours(images, labels, "4-3-3", batches, dev, "fp32")
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else 0.0
    print(json.dumps({"rate": rate, "peak_mb": peak}))


def sharing(device: torch.device, batches: int, jobs: list[int]) -> None:
    header(f"4. N jobs sharing {device} (our loop, [4,3,3], batch 128, {batches} timed batches each)")
    one = None
    for n in jobs:
        procs = [subprocess.Popen([sys.executable, __file__, "--worker", "--device", str(device), "--batches",
                                   str(batches)], stdout=subprocess.PIPE, text=True) for _ in range(n)]
        results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        total = sum(r["rate"] for r in results)
        one = one or total / n
        print(f"{n} job(s): {total:8.0f} images/s together ({total / one:.2f}x one job), per job "
              f"{total / n:.0f}, peak memory per job {max(r['peak_mb'] for r in results):.0f} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true", help="tiny sizes (CPU, the test suite)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batches", type=int, default=None, help="timed batches (default 100, small 4; 3 of them warm-up)")
    parser.add_argument("--skip-tests", action="store_true", help="skip section 1")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    batches = args.batches or (4 if args.small else 100)
    if args.worker:
        worker(args.device, batches)
        return
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: --device cuda asked for, but torch sees no CUDA device (use --device cpu --small)")
    torch.set_num_threads(1 if args.small else torch.get_num_threads())
    setup_runtime(device, torch.get_num_threads())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"gpu_check: device {device} ({name}), torch {torch.__version__}, {'small' if args.small else 'full'} sizes")
    start = time.perf_counter()
    if not args.skip_tests:
        cuda_tests()
    with tempfile.TemporaryDirectory() as tmp:
        failures = correctness(device, args.small, Path(tmp))
        loop_rates(device, batches, Path(tmp) / "pickles")
    sharing(device, batches, args.jobs)
    print(f"\ngpu_check: {'all checks ok' if not failures else 'CHECK: ' + ', '.join(failures)} "
          f"({time.perf_counter() - start:.0f} s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
