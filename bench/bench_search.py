"""Time one epoch of the balanced-mixture search against one standalone ResNet20 [4,3,3] epoch.

    .venv/bin/python bench/bench_search.py [--models 4] [--threads 1] [--rounds 5] [--train 5000] [--device cpu]

Same data (the mini profile's twoscale set, its search-train half), same batch size, same loader. A mixture
step is one SGD step of a SuperNet on a uniformly drawn config plus one validation forward, so a mixture epoch
should cost about (mean cost of the drawn configs / cost of [4,3,3]) x (fwd + bwd + val fwd) / (fwd + bwd) of a
standalone epoch. To tell the algorithm's cost from overhead, each round also times the pieces in between, on
exactly the (config, model) sequence the real mixture epoch drew in that round:

    A  standalone [4,3,3], the protocol's BN (train.py's step)                   the reference
    B  one SuperNet (BN without affine/running stats), always [4,3,3]             BN mode
    C  one SuperNet, the mixture's configs, no validation forward                 config mix
    D  M SuperNets, the mixture's (config, model) pairs, + validation forward,   the compute floor
       no per-step host sync, no mixture bookkeeping
    E  the real mixture epoch (one epoch of search.mixture.MixtureSearch)                           D + sampling, EMA, sync

Rounds run E first (it draws the sequence), then A, B, C, D. Round 0 is a warm-up; the minimum over the others
is reported (the least disturbed by other jobs). Wall time and this process's CPU time are both measured; on a
shared machine the CPU time is the steadier measure (it still includes cache and memory-bandwidth contention).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from poolnas import settings
from poolnas.arch.cost import count_macs
from poolnas.arch.models import build_model
from poolnas.arch.spaces import SPACES
from poolnas.engine.loop import run_epoch
from poolnas.engine.optim import make_optimizer
from poolnas.engine.runtime import autocast
from poolnas.engine.steps import step_and_validate, train_step
from poolnas.search.mixture import MixtureSearch
from poolnas.search.run import prepare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5, help="epochs per variant, interleaved; the first is a warm-up")
    ap.add_argument("--train", type=int, default=5000, help="twoscale training images (split 50/50)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data-dir", default=None, help="default: a temporary directory")
    args = ap.parse_args()

    prof = copy.deepcopy(settings.load("mini"))
    prof["datasets"]["twoscale"]["train"] = args.train
    tmp = tempfile.TemporaryDirectory()
    data_dir = Path(args.data_dir or tmp.name)
    ctx = prepare(method="mixture", profile=prof, dataset="twoscale", backbone="resnet20", seed=0,
                  out=data_dir / "bench.json", models=args.models, data_dir=data_dir, device=args.device,
                  threads=args.threads)
    hp, dev, prec, loader = ctx.hp, ctx.dev, prof["precision"], ctx.train_loader
    space = SPACES["resnet20"]
    macs = [count_macs("resnet20", c) for c in space]
    default_macs = count_macs("resnet20", space.default)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def net(bn, config=None):
        torch.manual_seed(0)
        return build_model("resnet20", config, num_classes=ctx.data.num_classes, bn=bn).to(dev).to(
            memory_format=torch.channels_last)

    def standalone(bn):
        model = net(bn, space.default)
        opt = make_optimizer(model.parameters(), hp)

        def epoch(e, seq):
            model.train()
            for x, y in loader.epoch(e):
                train_step(model, opt, x, y, dev, prec)
            sync()
        return epoch

    def configs_only():
        model = net("supernet")
        opt = make_optimizer(model.parameters(), hp)

        def epoch(e, seq):
            model.train()
            for (x, y), (c, _) in zip(loader.epoch(e), seq):
                with autocast(dev, prec):
                    loss = F.cross_entropy(model(x, space.configs[c].positions), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            sync()
        return epoch

    def floor():
        nets = [net("supernet") for _ in range(args.models)]
        opts = [make_optimizer(n.parameters(), hp) for n in nets]

        def epoch(e, seq):
            val = ctx.val_stream.stream(e)
            for (x, y), (c, m) in zip(loader.epoch(e), seq):
                xv, yv = next(val)
                step_and_validate(nets[m], opts[m], x, y, xv, yv, space.configs[c].positions, dev, prec)
            sync()
        return epoch

    torch.manual_seed(ctx.seed)
    run = MixtureSearch(ctx)
    drawn: list[tuple[int, int]] = []
    sample = run.mix.sample

    def logged(generator):
        drawn.append(sample(generator))
        return drawn[-1]

    run.mix.sample = logged
    variants = {
        f"E mixture M={args.models} (one epoch of MixtureSearch)": lambda e, seq: (run_epoch(run, e, name="bench"), sync()),
        "A standalone [4,3,3]": standalone(settings.protocol(prof, "resnet20", "twoscale")["bn"]),
        "B supernet [4,3,3]": standalone("supernet"),
        "C supernet, the drawn configs": configs_only(),
        f"D floor: M={args.models}, drawn pairs, + val fwd": floor(),
    }
    print(f"ResNet20 on twoscale: {ctx.search_train} search-train images, batch {hp['batch_size']}, "
          f"{len(loader)} steps/epoch, device {dev}, {torch.get_num_threads()} thread(s), torch {torch.__version__}")
    print(f"mean MACs of all 36 configs / [4,3,3] = {statistics.mean(macs) / default_macs:.3f}")
    wall = {name: [] for name in variants}
    cpu = {name: [] for name in variants}
    mix_cost = []
    for r in range(args.rounds):
        drawn.clear()
        for name, fn in variants.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn(r, list(drawn))
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
        mix_cost.append(statistics.mean(macs[c] for c, _ in drawn) / default_macs)
        print(f"round {r} (drawn configs' MACs / [4,3,3] = {mix_cost[-1]:.2f}) wall/cpu s: "
              + ", ".join(f"{n[0]} {wall[n][-1]:.2f}/{cpu[n][-1]:.2f}" for n in variants), flush=True)
    for kind, times in (("wall", wall), ("cpu", cpu)):
        ratios = {}
        for name, t in times.items():
            ratios[name[0]] = [x / a for x, a in zip(t, times["A standalone [4,3,3]"])][1:]
            print(f"{kind:<4} {name:<46} min {min(t[1:]):6.2f} s/epoch; / A per round: "
                  + ", ".join(f"{x:.2f}" for x in ratios[name[0]]))
        e_over_d = [e / d for e, d in zip(times[next(iter(variants))][1:], times[list(variants)[-1]][1:])]
        print(f"{kind:<4} E / A median {statistics.median(ratios['E']):.2f}x (expected from the drawn configs' MACs "
              f"x 4/3: {statistics.median(mix_cost[1:]) * 4 / 3:.2f}x); C / A {statistics.median(ratios['C']):.2f}x; "
              f"D / A {statistics.median(ratios['D']):.2f}x; E over D {100 * (statistics.median(e_over_d) - 1):+.1f}%")


if __name__ == "__main__":
    main()
