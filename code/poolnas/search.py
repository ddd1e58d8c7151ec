"""SuperNet search by a balanced mixture of M SuperNets (paper.md section 3), and random search at equal cost.

`python -m poolnas search --method mixture --models 4 --profile mini --dataset twoscale --backbone resnet20
 --seed 0 --out R.json`  (or `--method random --configs K`)

Data: the training set split by `datasets.search_split(labels, seed)` (class-stratified 50/50, seeded by the run
seed) into search-train (augmented, shuffled per epoch) and search-validation (never augmented).

Mixture: M SuperNets (BN without affine or running statistics), independent inits (torch.manual_seed(seed), then
built one after the other), each with its own SGD and cosine schedule (T_max = epochs run, to lr_min, stepped
per epoch). Epochs e = 0..E-1, plus e = E with `extra_epoch` (the release). Per epoch: temperature, balancing
(`poolnas.mixture`), then per search-train minibatch: c ~ uniform, m ~ P'[c], one SGD step of SuperNet m on
config c, one search-validation minibatch (same batch size, shuffled stream, eval mode) through (c, m), EMA of
its accuracy into W[c, m], count. The step's one host sync reads the loss, the train hits and the validation
hits together (the algorithm needs the validation accuracy before the next sample). At the end every
(config, model) pair is evaluated on the whole search-validation split (`eval_batch_size` batches; batch
statistics, so the batch size matters). The final P is the last epoch's balancing re-applied to the final W.
c and m come from a CPU generator seeded by (seed, epoch), so a resumed run draws what an uninterrupted one does.

Random search (`--method random --configs K`): K configs drawn uniformly without replacement (numpy, seeded by
the run seed); each is trained standalone (the protocol's BN mode, torch.manual_seed(seed) init, the search's
SGD hyperparameters and batch size, cosine annealing to lr_min stepped per SGD step) on search-train, then
evaluated on the whole search-validation split; the best is picked (the first drawn on ties). Budget: the
mixture's total number of SGD steps, S = epochs_run x steps_per_epoch (steps_per_epoch = search-train batches
per epoch), which does not depend on M (every mixture step trains one SuperNet). Candidate k gets
S // K steps, plus one for the first S % K candidates, so the K candidates take exactly S steps together. The
mixture's extra cost (one validation forward per step, the configs x M final evaluation) is not in S; both
records carry their wall seconds.

Record (JSON; floats rounded to 6 significant digits; accuracies in percent unless said otherwise):
  kind "search"; method "mixture" | "random"; models M (null for random); candidates K (null for mixture);
  dataset, backbone, seed, profile;
  selected {config (name), index (1-based space index), rule};
  alternatives (mixture) {rule: {config, index, score}} for assigned, best_model (score: percent) and ema
      (score: W entry, accuracy in [0, 1]);
  configs: the names of the configs searched (mixture: the whole space; random: the K drawn, in draw order);
  accuracy: mixture: configs x M matrix, every pair on the full search-validation split; random: one per
      candidate;
  assignment (mixture): argmax_m P_final[c, m] per config; P_final: the final P (configs x M); W: the final W;
      counts: total (c, m) counts;
  epochs (mixture): per epoch {epoch (0-based e of T_e), temperature, lr, W (at the epoch's end), counts (this
      epoch's), P (the balanced P(m|c) at the epoch's start), marginals (the sequence divided by, K x M),
      train_loss, train_acc, val_acc (mean of the per-step validation minibatches), steps, images, seconds};
  candidate_runs (random): per candidate {config, index, val_acc, steps, images, train_loss (mean over its last
      pass), seconds (training), eval_seconds};
  budget {total_steps, steps_per_epoch, epochs_run, per_candidate (random)};
  steps (SGD steps run), train_seconds, eval_seconds, wall_seconds (train + eval, summed over resumed
  sessions), images_per_s (search-train images per training second); search_train, search_val (split sizes);
  hparams (the resolved search settings); options (decisions.md choices in force); run_key; provenance.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from poolnas import baselines, datasets, mixture, profiles
from poolnas.errors import UsageError
from poolnas.evaluation import evaluate_all
from poolnas.loader import Loader, epoch_generator
from poolnas.models import build_model
from poolnas.records import atomic_torch_save, provenance, write_json
from poolnas.spaces import get_space
from poolnas.train import (TrainingDiverged, train_step, add_run_arguments, autocast, evaluate, load_checkpoint,
                           log, make_optimizer, make_scheduler, resolve_device, run_key, setup_runtime, stem_for,
                           warmup_options)

METHODS = ("mixture", "random") + baselines.METHODS  # baseline hook: the baselines' names (poolnas.baselines)
# Independent streams derived from the run seed: validation-minibatch order, (c, m) sampling, random-search draw.
VAL_STREAM, SAMPLER, DRAW = 1, 2, 3


def derive_seed(seed: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, stream]).generate_state(1, np.uint32)[0])


def sig(x, digits: int = 6):
    """Round every float in a nested structure to `digits` significant digits (tensors become lists)."""
    if isinstance(x, (torch.Tensor, np.generic)):  # np.float32 is no Python float: unwrap it before rounding
        x = x.tolist()
    if isinstance(x, float):
        return float(f"{x:.{digits}g}") if math.isfinite(x) else x
    if isinstance(x, dict):
        return {k: sig(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [sig(v, digits) for v in x]
    return x


def search_run(**kwargs) -> dict:
    """Run one search (arguments as `prepare`) and write its record to `out`; resume from a matching checkpoint."""
    ctx = prepare(**kwargs)
    if ctx["method"] in baselines.METHODS:  # baseline hook: DARTS, SPOS not shared, MCTS, SBE
        body = baselines.run(ctx)
    else:
        body = MixtureRun(ctx).run() if ctx["method"] == "mixture" else _random(ctx)
    record = {"kind": "search", "method": ctx["method"], "models": ctx["models"], "candidates": ctx["configs"],
              "dataset": ctx["data"].name, "backbone": ctx["space"].name, "seed": ctx["seed"],
              "profile": ctx["prof"]["profile"], **body, "search_train": ctx["search_train"],
              "search_val": ctx["search_val"], "hparams": ctx["hp"], "options": ctx["options"], "run_key": ctx["key"],
              "provenance": provenance(ctx["dev"])}
    record = sig(record)
    write_json(ctx["out"], record)
    ctx["ckpt"].unlink(missing_ok=True)
    return record


def prepare(*, method: str, profile: str | dict, dataset: str, backbone: str, seed: int, out: str | Path,
            models: int | None = None, configs: int | None = None, data_dir: str | Path = "data",
            checkpoint: str | Path | None = None, device: str | None = None, threads: int | None = None,
            after_epoch: Callable[[int], None] | None = None) -> dict:
    """Check the arguments (UsageError before any data is touched), then resolve everything a search needs.

    `after_epoch(i)` is called after each checkpoint (mixture: epoch i; random: the i-th pass over the data).
    """
    if method not in METHODS:
        raise UsageError(f"unknown search method {method!r}; known: {', '.join(METHODS)}")
    if seed < 0:
        raise UsageError(f"--seed must be >= 0, got {seed}")
    prof = profiles.load(profile) if isinstance(profile, str) else profiles.validate(profile)
    space = get_space(backbone)
    study = profiles.find_study(prof, dataset, backbone) or {"search": {}}
    n = len(space)
    if method == "mixture":
        if models is None:
            raise UsageError("--models is required for --method mixture")
        if not 1 <= models <= n:
            raise UsageError(f"--models must be 1..{n} (the configs of {backbone}), got {models}")
        configs = None
    elif method in baselines.METHODS:  # baseline hook: no M, no K
        models = configs = None
        baselines.check(method, backbone)
    else:
        models = None
        configs = configs if configs is not None else study["search"].get("random")
        if configs is None:
            raise UsageError(f"--configs is required for --method random (profile {prof['profile']} sets none)")
        if not 1 <= configs <= n:
            raise UsageError(f"--configs must be 1..{n} (the configs of {backbone}), got {configs}")
    hp = profiles.search_settings(prof, backbone, dataset)
    if method in baselines.METHODS:  # baseline hook: the baseline's own settings, under hp["baseline"]
        hp = baselines.settings(prof, method, hp)
    params = profiles.dataset_params(prof, dataset)
    dev = resolve_device(device or prof["device"])
    setup_runtime(dev, threads or prof["threads"])

    data = datasets.open_dataset(dataset, Path(data_dir) / "cache", Path(data_dir) / "raw", **params)
    train_idx, val_idx = datasets.search_split(data.train.labels, seed)
    stem = stem_for(data)
    epochs_run = hp["epochs"] + (1 if hp["extra_epoch"] else 0)
    options = {"selection": hp["selection"], "extra_epoch": hp["extra_epoch"], "augment": hp["augment"],
               "split": "class-stratified 50/50 of the training set, seeded by the run seed", "split_seed": seed,
               "precision": prof["precision"], "channels_last": prof["channels_last"], "stem": stem,
               "resnet50_d1_bug": hp["resnet50_d1_bug"], "drop_last": False, **warmup_options(hp)}
    if method == "mixture":
        options.update(bn="supernet", final_P="last epoch's balancing re-applied to the final W",
                       sampler="P' = softmax(T W + b), b = -sum log(marginals)",
                       val_minibatch="search batch size, shuffled, no augmentation, eval mode",
                       final_eval="every (config, model) pair, full search-validation split, prefix-shared tree")
    elif method in baselines.METHODS:  # baseline hook
        options.update(baselines.options(method, hp))
    else:
        options.update(bn=profiles.protocol(prof, backbone, dataset)["bn"], budget="mixture total SGD steps / K",
                       schedule="cosine per SGD step")
    key = run_key({"method": method, "models": models, "configs": configs, "dataset": data.meta["files"],
                   "backbone": backbone, "seed": seed, "hparams": hp, "options": options})
    train_loader = Loader.from_prepared(data, "train", hp["batch_size"], augment=hp["augment"], shuffle=True,
                                        indices=train_idx, seed=seed, device=dev)
    eval_loader = Loader.from_prepared(data, "train", hp["eval_batch_size"], augment=False, shuffle=False,
                                       indices=val_idx, device=dev)
    ckpt_path = Path(checkpoint) if checkpoint else Path(out).parent / ".checkpoints" / (Path(out).stem + ".pt")
    state = load_checkpoint(ckpt_path, key)
    if state:
        log(f"search {method} seed {seed}: resuming from {ckpt_path}")
    val_stream = None if method == "random" else Loader.from_prepared(
        data, "train", hp["batch_size"], augment=False, shuffle=True, indices=val_idx,
        seed=derive_seed(seed, VAL_STREAM), device=dev)
    return dict(method=method, models=models, configs=configs, prof=prof, hp=hp, space=space, data=data, dev=dev,
                stem=stem, seed=seed, epochs_run=epochs_run, train_loader=train_loader, eval_loader=eval_loader,
                val_stream=val_stream, search_train=len(train_idx), search_val=len(val_idx), options=options,
                state=state, key=key, ckpt=ckpt_path, out=Path(out), after_epoch=after_epoch,
                name=f"{dataset}/{backbone} {method} seed {seed}")


def _timing(body: dict, images: int) -> dict:
    body["wall_seconds"] = body["train_seconds"] + body["eval_seconds"]
    body["images_per_s"] = images / max(body["train_seconds"], 1e-9)
    return body


class MixtureRun:
    """The M SuperNets, their optimizers and schedules, the mixture state and the per-epoch history."""

    def __init__(self, ctx: dict):
        self.ctx, hp, space = ctx, ctx["hp"], ctx["space"]
        self.configs, M = list(space), ctx["models"]
        self.mix = mixture.Mixture(len(self.configs), M, epochs=hp["epochs"], ema=hp["ema"], t0=hp["t0"],
                                   tmax=hp["tmax"], kl_threshold=hp["kl_threshold"])
        torch.manual_seed(ctx["seed"])
        self.nets = [build_model(space.name, num_classes=ctx["data"].num_classes, bn="supernet", stem=ctx["stem"],
                                 resnet50_d1_bug=hp["resnet50_d1_bug"]).to(ctx["dev"]) for _ in range(M)]
        if ctx["prof"]["channels_last"]:
            self.nets = [net.to(memory_format=torch.channels_last) for net in self.nets]
        self.opts = [make_optimizer(net.parameters(), hp) for net in self.nets]
        self.scheds = [make_scheduler(opt, hp, ctx["epochs_run"]) for opt in self.opts]
        self.positions = [self.nets[0].resolve(cfg) for cfg in self.configs]  # applies the d = 1 bug option
        self.history: list[dict] = []
        if ctx["state"]:
            for objs, key in [(self.nets, "nets"), (self.opts, "opts"), (self.scheds, "scheds")]:
                for obj, state in zip(objs, ctx["state"][key]):
                    obj.load_state_dict(state)
            self.mix.load_state_dict(ctx["state"]["mixture"])
            self.history = ctx["state"]["history"]

    def run(self) -> dict:
        ctx = self.ctx
        for e in range(len(self.history), ctx["epochs_run"]):
            self.epoch(e)
            atomic_torch_save({"key": ctx["key"], "nets": [n.state_dict() for n in self.nets],
                               "opts": [o.state_dict() for o in self.opts],
                               "scheds": [s.state_dict() for s in self.scheds], "mixture": self.mix.state_dict(),
                               "history": self.history}, ctx["ckpt"])
            if ctx["after_epoch"]:
                ctx["after_epoch"](e)
        start = time.perf_counter()
        acc = self.evaluate()
        return self.summary(acc, time.perf_counter() - start)

    def epoch(self, e: int) -> dict:
        """Balance, then one pass over search-train; appends and returns the epoch's history entry."""
        ctx, mix, nets, opts = self.ctx, self.mix, self.nets, self.opts
        dev, prec = ctx["dev"], ctx["prof"]["precision"]
        P = mix.start_epoch(e)
        lr = opts[0].param_groups[0]["lr"]
        gen = epoch_generator(derive_seed(ctx["seed"], SAMPLER), e)
        counts_before = mix.counts.clone()
        val_iter = ctx["val_stream"].stream(e)
        sums, steps, images, start = [0.0, 0.0, 0.0], 0, 0, time.perf_counter()
        for x, y in ctx["train_loader"].epoch(e):
            c, m = mix.sample(gen)
            xv, yv = next(val_iter)
            loss, hits, val_hits = _mixture_step(nets[m], opts[m], x, y, xv, yv, self.positions[c], dev, prec)
            stats = torch.stack([loss, hits.float(), val_hits.float()]).tolist()  # the step's one host sync
            if not math.isfinite(stats[0]):
                cfg = self.configs[c]
                raise TrainingDiverged(f"{ctx['name']}: the training loss became {stats[0]} at config {cfg.name} "
                                       f"(#{cfg.index}), model {m}, epoch {e}; no record written (lower the "
                                       "learning rate or check the data)")
            mix.update(c, m, stats[2] / len(yv))
            sums = [sums[0] + stats[0] * len(y), sums[1] + stats[1], sums[2] + stats[2] / len(yv)]
            steps, images = steps + 1, images + len(y)
        for sched in self.scheds:
            sched.step()
        seconds = time.perf_counter() - start
        h = {"epoch": e, "temperature": mix.T, "lr": lr, "W": mix.W.tolist(),
             "counts": (mix.counts - counts_before).tolist(), "P": P.tolist(), "marginals": mix.marginals.tolist(),
             "train_loss": sums[0] / images, "train_acc": 100.0 * sums[1] / images,
             "val_acc": 100.0 * sums[2] / steps, "steps": steps, "images": images, "seconds": seconds}
        self.history.append(h)
        log(f"{ctx['name']} M={len(nets)} epoch {e}/{ctx['epochs_run'] - 1} T {mix.T:.4g} balance "
            f"{len(mix.marginals)} it loss {h['train_loss']:.4f} train {h['train_acc']:.2f}% val {h['val_acc']:.2f}% "
            f"lr {lr:.4g} {images / seconds:.0f} img/s")
        return h

    def evaluate(self) -> torch.Tensor:
        """Accuracy (percent) of every (config, model) pair on the whole search-validation split."""
        ctx = self.ctx
        return evaluate_all(self.nets, ctx["eval_loader"], self.positions, ctx["dev"], ctx["prof"]["precision"])

    def summary(self, acc: torch.Tensor, eval_seconds: float) -> dict:
        configs, mix, history, rule = self.configs, self.mix, self.history, self.ctx["hp"]["selection"]
        P_final = mix.probs()
        picks = mixture.select(acc, P_final, mix.W)
        alternatives = {r: {"config": configs[p["index"]].name, "index": configs[p["index"]].index,
                            "score": p["score"]} for r, p in picks.items()}
        steps = sum(h["steps"] for h in history)
        body = {"selected": {"config": alternatives[rule]["config"], "index": alternatives[rule]["index"],
                             "rule": rule},
                "alternatives": alternatives, "configs": [c.name for c in configs], "accuracy": acc.tolist(),
                "assignment": mixture.assignment(P_final).tolist(), "P_final": P_final.tolist(),
                "W": mix.W.tolist(), "counts": mix.counts.tolist(), "epochs": history,
                "budget": {"total_steps": steps, "steps_per_epoch": len(self.ctx["train_loader"]),
                           "epochs_run": self.ctx["epochs_run"]},
                "steps": steps, "train_seconds": sum(h["seconds"] for h in history), "eval_seconds": eval_seconds}
        return _timing(body, sum(h["images"] for h in history))


def _mixture_step(net, opt, x, y, xv, yv, positions, dev, precision):
    """One SGD step of SuperNet `net` on a config, then one validation minibatch through it (no sync)."""
    loss, hits = train_step(net, opt, x, y, dev, precision, positions)
    net.eval()
    with torch.no_grad(), autocast(dev, precision):
        val_hits = (net(xv, positions).argmax(1) == yv).sum()
    return loss, hits, val_hits


def _random(ctx: dict) -> dict:
    K, hp, space, dev, prec = ctx["configs"], ctx["hp"], ctx["space"], ctx["dev"], ctx["prof"]["precision"]
    bn = profiles.protocol(ctx["prof"], space.name, ctx["data"].name)["bn"]
    steps_per_epoch = len(ctx["train_loader"])
    total = ctx["epochs_run"] * steps_per_epoch
    per = [total // K + (1 if k < total % K else 0) for k in range(K)]
    draw = np.random.default_rng(np.random.SeedSequence([ctx["seed"], DRAW])).choice(len(space), K, replace=False)
    picks = [space.configs[int(i)] for i in draw]
    state = ctx["state"] or {}
    done: list[dict] = state.get("done", [])
    current = state.get("current")
    passes = state.get("passes", 0)
    for k in range(len(done), K):
        cfg = picks[k]
        torch.manual_seed(ctx["seed"])
        net = build_model(space.name, cfg, num_classes=ctx["data"].num_classes, bn=bn, stem=ctx["stem"],
                          resnet50_d1_bug=hp["resnet50_d1_bug"]).to(dev)
        if ctx["prof"]["channels_last"]:
            net = net.to(memory_format=torch.channels_last)
        opt = make_optimizer(net.parameters(), hp)
        sched = make_scheduler(opt, hp, per[k])
        steps, epoch, images, seconds, loss_mean = 0, 0, 0, 0.0, None
        if current and current["k"] == k:
            net.load_state_dict(current["net"])
            opt.load_state_dict(current["opt"])
            sched.load_state_dict(current["sched"])
            steps, epoch, images = current["steps"], current["epoch"], current["images"]
            seconds, loss_mean = current["seconds"], current["loss"]
        while steps < per[k]:
            net.train()
            start, loss_sum, seen = time.perf_counter(), torch.zeros((), device=dev), 0
            for x, y in ctx["train_loader"].epoch(epoch):
                loss, _ = train_step(net, opt, x, y, dev, prec)
                sched.step()
                loss_sum += loss * len(y)
                seen, steps = seen + len(y), steps + 1
                if steps == per[k]:
                    break
            loss_mean = loss_sum.item() / seen  # one host sync per pass
            if not math.isfinite(loss_mean):
                raise TrainingDiverged(f"{ctx['name']}: the training loss became {loss_mean} at config {cfg.name} "
                                       f"(#{cfg.index}), candidate {k}, pass {epoch}; no record written")
            seconds += time.perf_counter() - start
            epoch, passes, images = epoch + 1, passes + 1, images + seen
            log(f"{ctx['name']} candidate {k + 1}/{K} {cfg.name} pass {epoch} steps {steps}/{per[k]} "
                f"loss {loss_mean:.4f} {seen / (time.perf_counter() - start):.0f} img/s")
            current = {"k": k, "net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                       "steps": steps, "epoch": epoch, "images": images, "seconds": seconds, "loss": loss_mean}
            _save_random(ctx, done, current, passes)
        start = time.perf_counter()
        val_acc = evaluate(net, ctx["eval_loader"], dev, prec)
        done.append({"config": cfg.name, "index": cfg.index, "val_acc": val_acc, "steps": steps, "images": images,
                     "train_loss": loss_mean, "seconds": seconds, "eval_seconds": time.perf_counter() - start})
        current = None
        _save_random(ctx, done, None, passes)

    accs = [d["val_acc"] for d in done]
    best = done[accs.index(max(accs))]
    body = {"selected": {"config": best["config"], "index": best["index"], "rule": "best_val"},
            "configs": [c.name for c in picks], "accuracy": accs, "candidate_runs": done,
            "budget": {"total_steps": total, "steps_per_epoch": steps_per_epoch, "epochs_run": ctx["epochs_run"],
                       "per_candidate": per},
            "steps": sum(d["steps"] for d in done), "train_seconds": sum(d["seconds"] for d in done),
            "eval_seconds": sum(d["eval_seconds"] for d in done)}
    return _timing(body, sum(d["images"] for d in done))


def _save_random(ctx, done, current, passes):
    atomic_torch_save({"key": ctx["key"], "done": done, "current": current, "passes": passes}, ctx["ckpt"])
    if ctx["after_epoch"]:
        ctx["after_epoch"](passes - 1)


# --- command line -------------------------------------------------------------------------------------------


def register(sub) -> None:
    p = sub.add_parser("search", help="search pooling configs (balanced mixture of SuperNets, or random)",
                       description=__doc__.splitlines()[0])
    add_run_arguments(p, what="search")
    p.add_argument("--method", default="mixture", help=f"one of: {', '.join(METHODS)} (default mixture)")
    p.add_argument("--models", type=int, default=None, help="M, the number of SuperNets (mixture)")
    p.add_argument("--configs", type=int, default=None,
                   help="K, the configs random search trains (default: the profile's study setting)")
    p.add_argument("--checkpoint-dir", default=None,
                   help="put the checkpoint in DIR/<out name>.pt (instead of --checkpoint)")
    p.set_defaults(func=_cli_search)


def _cli_search(args) -> int:
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    checkpoint = args.checkpoint
    if checkpoint is None and args.checkpoint_dir is not None:
        checkpoint = Path(args.checkpoint_dir) / (Path(args.out).stem + ".pt")
    try:
        record = search_run(method=args.method, profile=args.profile, dataset=args.dataset, backbone=args.backbone,
                            seed=args.seed, out=args.out, models=args.models, configs=args.configs,
                            data_dir=args.data_dir, checkpoint=checkpoint, device=args.device, threads=args.threads)
    except (TrainingDiverged, mixture.BalancingError) as err:
        log(f"poolnas search: error: {err}")
        return 1
    sel = record["selected"]
    log(f"search {record['method']} seed {record['seed']}: selected {sel['config']} (#{sel['index']}, "
        f"rule {sel['rule']}) -> {args.out}")
    return 0
