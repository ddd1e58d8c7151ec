"""CONet search (Hosseini et al. 2021, as summarised in shared/spec/extensions.md): the width of every stage and
block of one pooling config, by a sequence of short trainings whose weights' spectral statistics move each width.

`python -m poolnas search --method conet --pooling best --groundtruth R1.json R2.json ... --profile smoke
 --dataset twoscale --backbone resnet20 --seed 0 --out R.json`

    variables  one width per stage (the residual stream: the stem or a block's conv2 writes it, conv1 and the
               projection of the next blocks read it) and one inner width per block (its conv1 writes, its conv2
               reads): 3 + 9 in ResNet20; every variable starts at `init_width` (published 32) or the default widths
    a trial    the PoolNet of the pooling config (`search.run`) at the current widths (`arch.variants`, built as
               the standalone protocol builds it, initialised from (seed, trial)), or with `transfer` (CONetV2) the
               last trial's weights copied into it where shapes overlap (the leading channels); trained
               `trial_epochs` epochs on search-train with the search's SGD, a cosine schedule per trial; then
               evaluated on the whole search-validation split
    metrics    after each epoch (and at the trial's start, R(0)) the EVBMF rank and mapping condition of every conv
               (`search.evbmf`), averaged over the convs of a variable: `pairing` average (absent; ours) gives both
               variables a conv touches the mean of its two modes, modes (CONet's) its input mode to the variable it
               reads and its output mode to the one it writes; RAS = (R(e*) - R(0)) / e*, e* the epoch of
               the highest rank; MC of the trial's last epoch
    update     CONet's rule (`search.conet_rule`: delta, mu, phi, gamma, c_min, c_max) on every variable
    found      the widths after the last trial's update (`selected.variant`); `compare.uniform_widths`: every
               default width times one factor s (nearest even) whose parameters are nearest the found widths'
               (the equal-parameters baseline retrained beside them)

For the loop (`engine.loop.fit`) an "epoch" is one epoch of one trial, numbered across trials; the checkpoint after
each holds the finished trials, the width states and the current trial's network (and, with transfer, the last
trial's weights), so a run resumes where it stopped with the record an uninterrupted run writes.

Record fields besides the common ones (`search.run`): pooling, trials (per trial: trial, variant, stream, inner,
params, macs, val_acc, rank and mc {variable: per epoch from 0}, ras, mc_last, next {variable: width}, frozen,
seconds), states {variable: {width, op, phi, frozen}}, found {variant, params, macs}, default {variant, params,
macs}, compare {uniform_widths {variant, scale, params, macs}}, val_acc (the last trial's); configs and accuracy
null; epochs: per epoch {epoch, trial, trial_epoch, lr, variant, rank_mean, train_loss, train_acc, val_acc null,
steps, images, seconds}.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from poolnas.arch import variants
from poolnas.arch.models import BLOCK_WIDTHS
from poolnas.engine.optim import current_lr, make_optimizer, make_scheduler
from poolnas.engine.runtime import derive_seed, log, to_device
from poolnas.engine.steps import evaluate, train_step
from poolnas.search.base import TRIALS, SearchMethod
from poolnas.search.conet_rule import RuleSettings, WidthState, update
from poolnas.search.dgconv import cost, network_kwargs
from poolnas.search.evbmf import mode_metrics, rank_and_condition

RULE_KEYS = ("delta", "mu", "phi", "gamma", "c_min", "c_max")


def width_variables(backbone: str) -> list[str]:
    return [f"stream{s + 1}" for s in range(len(variants.stages(backbone)))] + \
        [f"inner{b + 1}" for b in range(len(BLOCK_WIDTHS[backbone]))]


def conv_variables(net, backbone: str) -> list[tuple[torch.Tensor, tuple[str | None, str]]]:
    """(weight, (the width variable it reads, the one it writes)) of every conv of a basic-block PoolNet; the stem
    reads the image (None)."""
    stage = [variants.stages(backbone).index(w) for w in BLOCK_WIDTHS[backbone]]
    out = [(net.stem[0].weight, (None, "stream1"))]
    for b, block in enumerate(net.blocks):
        reads, writes = f"stream{stage[b - 1 if b else 0] + 1}", f"stream{stage[b] + 1}"
        out += [(block.conv1.weight, (reads, f"inner{b + 1}")), (block.conv2.weight, (f"inner{b + 1}", writes))]
        if block.shortcut.proj is not None:
            out.append((block.shortcut.proj.weight, (reads, writes)))
    return out


def metrics(net, backbone: str, pairing: str = "average") -> tuple[dict, dict]:
    """Per width variable: the mean EVBMF rank and the mean mapping condition over its convs. `average` (ours): a
    conv's two modes averaged, given to both variables it touches; `modes` (CONet's pairing): a conv's input mode to
    the variable it reads, its output mode to the one it writes, so a variable averages its producers' output modes
    with its consumers' input modes."""
    per: dict[str, list] = {}
    for weight, names in conv_variables(net, backbone):
        w = weight.detach().float().cpu().numpy()
        modes = mode_metrics(w) if pairing == "modes" else [rank_and_condition(w)] * 2
        for name, mode in zip(names, modes):
            if name is not None:
                per.setdefault(name, []).append(mode)
    names = width_variables(backbone)
    return ({n: float(np.mean([r for r, _ in per[n]])) for n in names},
            {n: float(np.mean([c for _, c in per[n]])) for n in names})


def transfer(state: dict, net) -> None:
    """Copy `state` (the last trial's weights) into `net` where names match: the leading block of every shape."""
    own = net.state_dict()
    with torch.no_grad():
        for name, old in state.items():
            new = own.get(name)
            if new is not None and new.dim() == old.dim():
                block = tuple(slice(0, min(a, b)) for a, b in zip(old.shape, new.shape))
                new[block] = old[block].to(new.device)


def ras(ranks: list[float]) -> float:
    """(R(e*) - R(0)) / e*, e* the first epoch (1..E) of the highest rank."""
    e_star = 1 + int(np.argmax(ranks[1:]))
    return (ranks[e_star] - ranks[0]) / e_star


class CONetSearch(SearchMethod):
    def __init__(self, ctx):
        super().__init__(ctx)
        ext = ctx.hp["extension"]
        self.E, self.n_trials, self.transfer = ext["trial_epochs"], ext["trials"], ext["transfer"]
        self.pairing = ext.get("pairing", "average")
        self.rule = RuleSettings(**{k: ext[k] for k in RULE_KEYS})
        self.names = width_variables(self.space.name)
        start = variants.default_widths(self.space.name)
        widths = list(start.stream + start.inner) if ext["init_width"] == "default" else \
            [ext["init_width"]] * len(self.names)
        self.states = {n: WidthState(width=w, phi=self.rule.phi) for n, w in zip(self.names, widths)}
        self.trials: list[dict] = []
        self.current: dict | None = None  # the trial in training: its metrics so far
        self.last: dict | None = None  # the last finished trial's weights (transfer)

    def variant(self) -> variants.Variant:
        w = [self.states[n].width for n in self.names]
        n = len(variants.stages(self.space.name))
        return variants.widths(self.space.name, w[:n], w[n:])

    def where(self, p: int) -> str:
        return f"trial {p // self.E}, epoch {p % self.E + 1}"

    def start_epoch(self, p: int) -> None:
        t, j = divmod(p, self.E)
        if j:
            return  # the trial in training (or resumed from a checkpoint) goes on
        variant = self._build(t)
        if self.transfer and self.last is not None:
            transfer(self.last, self.net)
        rank, cond = metrics(self.net, self.space.name, self.pairing)
        self.current = {"trial": t, "variant": variant.slug, "rank": {n: [rank[n]] for n in self.names},
                        "mc": {n: [cond[n]] for n in self.names}, "seconds": 0.0}

    def _build(self, t: int) -> variants.Variant:
        """Trial t's network (seeded by the trial), optimiser and schedule, at the current widths."""
        variant = self.variant()
        torch.manual_seed(derive_seed(derive_seed(self.ctx.seed, TRIALS), t))
        self.net = to_device(variants.build(variant, self.ctx.pooling["config"], **network_kwargs(self.ctx)),
                             self.dev, self.ctx.channels_last)
        self.opt = make_optimizer(self.net.parameters(), self.hp)
        self.sched = make_scheduler(self.opt, self.hp, self.E)
        return variant

    def step(self, p: int, x, y) -> dict:
        loss, hits = train_step(self.net, self.opt, x, y, self.dev, self.prec)
        return {"loss": loss * len(y), "hits": hits}

    def step_schedules(self, p: int) -> None:
        self.lr = current_lr(self.opt)
        self.sched.step()

    def end_epoch(self, p: int, totals: dict, seconds: float) -> None:
        t, j = divmod(p, self.E)
        cur, images = self.current, totals["images"]
        rank, cond = metrics(self.net, self.space.name, self.pairing)
        for n in self.names:
            cur["rank"][n].append(rank[n])
            cur["mc"][n].append(cond[n])
        cur["seconds"] += seconds
        h = {"epoch": p, "trial": t, "trial_epoch": j + 1, "lr": self.lr, "variant": cur["variant"],
             "rank_mean": float(np.mean(list(rank.values()))), "train_loss": totals["loss"] / images,
             "train_acc": 100.0 * totals["hits"] / images, "val_acc": None, "steps": totals["steps"],
             "images": images, "seconds": seconds}
        self.history.append(h)
        log(f"{self.ctx.name} trial {t + 1}/{self.n_trials} {cur['variant']} epoch {j + 1}/{self.E} loss "
            f"{h['train_loss']:.4f} train {h['train_acc']:.2f}% mean rank {h['rank_mean']:.3f} "
            f"{images / seconds:.0f} img/s")
        if j == self.E - 1:
            self._finish()

    def _finish(self) -> None:
        """Evaluate the trial's network, apply the width rule, keep its weights for the next trial."""
        cur, start = self.current, time.perf_counter()
        slopes = {n: ras(cur["rank"][n]) for n in self.names}
        last = {n: cur["mc"][n][-1] for n in self.names}
        self.states = {n: update(self.states[n], slopes[n], last[n], self.rule) for n in self.names}
        trained = variants.parse(self.space.name, cur["variant"])
        params, macs = cost(self.ctx, trained)
        self.trials.append(cur | {"stream": list(trained.stream), "inner": list(trained.inner),
                                  "params": params, "macs": macs,
                                  "val_acc": evaluate(self.net, self.ctx.eval_loader, self.dev, self.prec),
                                  "ras": slopes, "mc_last": last,
                                  "next": {n: self.states[n].width for n in self.names},
                                  "frozen": [n for n in self.names if self.states[n].frozen],
                                  "eval_seconds": time.perf_counter() - start})
        self.last = {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()} if self.transfer else None
        self.current, self.net = None, None

    def extra_budget(self) -> dict:
        return {"trials": self.n_trials, "trial_epochs": self.E}

    def summary(self, body: dict, eval_seconds: float) -> dict:
        """As every search's, with each trial's evaluation counted in eval_seconds (and so in wall_seconds)."""
        return super().summary(body, eval_seconds + sum(t["eval_seconds"] for t in self.trials))

    def state_dict(self) -> dict:
        current = None
        if self.current is not None:
            current = {"metrics": self.current, "net": self.net.state_dict(), "opt": self.opt.state_dict(),
                       "sched": self.sched.state_dict()}
        return {"states": {n: vars(s) for n, s in self.states.items()}, "trials": self.trials, "current": current,
                "last": self.last, "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.states = {n: WidthState(**s) for n, s in state["states"].items()}
        self.trials, self.last, self.history = state["trials"], state["last"], state["history"]
        if state["current"] is not None:  # in the middle of a trial: built and loaded now (see random.py)
            self.current = state["current"]["metrics"]
            self._build(self.current["trial"])
            for obj, key in ((self.net, "net"), (self.opt, "opt"), (self.sched, "sched")):
                obj.load_state_dict(state["current"][key])

    def conclude(self) -> dict:
        ctx, backbone = self.ctx, self.space.name
        found, default = self.variant(), variants.default_widths(backbone)
        params, macs = cost(ctx, found)
        lo, hi = 1 / 16, 16.0  # params grow with the scale: bisect for the nearest, then take the nearer side
        tried = []
        for _ in range(40):
            mid = (lo * hi) ** 0.5
            tried.append(mid)
            lo, hi = (mid, hi) if cost(ctx, variants.scaled_widths(backbone, mid))[0] < params else (lo, mid)
        scale = min(tried + [lo, hi],
                    key=lambda s: (abs(cost(ctx, variants.scaled_widths(backbone, s))[0] - params), s))
        uniform = variants.scaled_widths(backbone, scale)
        return {"selected": {"config": ctx.pooling["config"], "index": ctx.pooling["index"], "rule": "conet",
                             "variant": found.slug},
                "configs": None, "accuracy": None, "pooling": ctx.pooling, "trials": self.trials,
                "states": {n: vars(s) for n, s in self.states.items()},
                "found": {"variant": found.describe(), "params": params, "macs": macs},
                "default": {"variant": default.slug, "params": cost(ctx, default)[0], "macs": cost(ctx, default)[1]},
                "compare": {"uniform_widths": {"variant": uniform.slug, "scale": scale,
                                               "params": cost(ctx, uniform)[0], "macs": cost(ctx, uniform)[1]}},
                "val_acc": self.trials[-1]["val_acc"]}
