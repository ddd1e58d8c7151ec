"""The balanced mixture of M SuperNets (paper.md section 3) as a search method; M = 1 is SPOS on one SuperNet.

M SuperNets (BN without affine or running statistics) with independent inits (built one after the other after
the run's torch seed), each with its own SGD and cosine schedule (T_max = epochs run, to lr_min, stepped per
epoch). Per epoch: temperature and balancing (`search.balancing`); then per search-train minibatch: c ~ uniform,
m ~ P'[c], one SGD step of SuperNet m on config c, one search-validation minibatch (same batch size, shuffled
stream, eval mode) through (c, m), the EMA of its accuracy into W[c, m], a count. The step's one host sync reads
the loss, the train hits and the validation hits together (the algorithm needs the validation accuracy before
the next sample). At the end every (config, model) pair is evaluated on the whole search-validation split
(batch statistics, so the batch size matters); the final P is the last epoch's balancing re-applied to the final
W. c and m come from a CPU generator seeded by (seed, epoch), so a resumed run draws what an uninterrupted one does.
"""

from __future__ import annotations

import math

import torch

from poolnas.arch.models import build_model, width_option
from poolnas.data.loader import epoch_generator
from poolnas.engine.loop import TrainingDiverged
from poolnas.engine.optim import current_lr, make_optimizer, make_scheduler
from poolnas.engine.runtime import derive_seed, log, to_device
from poolnas.engine.steps import step_and_validate
from poolnas.search import balancing
from poolnas.search.base import SAMPLER, SearchMethod
from poolnas.search.evaluation import evaluate_all


class MixtureSearch(SearchMethod):
    """The M SuperNets, their optimizers and schedules, the mixture state and the per-epoch history."""

    def __init__(self, ctx):
        super().__init__(ctx)
        hp, M = self.hp, ctx.models
        only = ctx.spec.only  # mixture-pair: Figure 1's two configs; otherwise the whole space
        self.configs = [c for c in self.space if only is None or c.name in only]
        self.mix = balancing.Mixture(len(self.configs), M, epochs=hp["epochs"], ema=hp["ema"], t0=hp["t0"],
                                     tmax=hp["tmax"], kl_threshold=hp["kl_threshold"])
        self.nets = [to_device(build_model(self.space.name, num_classes=self.num_classes, bn="supernet",
                                           stem=ctx.stem, resnet50_d1_bug=hp["resnet50_d1_bug"],
                                           conv_init=hp["conv_init"], **width_option(hp)),
                               self.dev, ctx.channels_last) for _ in range(M)]
        self.opts = [make_optimizer(net.parameters(), hp) for net in self.nets]
        self.scheds = [make_scheduler(opt, hp, ctx.epochs_run) for opt in self.opts]
        self.positions = [self.nets[0].resolve(cfg) for cfg in self.configs]  # applies the d = 1 bug option

    def start_epoch(self, e: int) -> None:
        self.P = self.mix.start_epoch(e)
        self.lr = current_lr(self.opts[0])
        self.gen = epoch_generator(derive_seed(self.ctx.seed, SAMPLER), e)
        self.counts_before = self.mix.counts.clone()
        self.val_iter = self.ctx.val_stream.stream(e)

    def step(self, e: int, x, y) -> dict:
        mix = self.mix
        c, m = mix.sample(self.gen)
        xv, yv = next(self.val_iter)
        loss, hits, val_hits = step_and_validate(self.nets[m], self.opts[m], x, y, xv, yv, self.positions[c],
                                                 self.dev, self.prec)
        stats = torch.stack([loss, hits.float(), val_hits.float()]).tolist()  # the step's one host sync
        if not math.isfinite(stats[0]):
            cfg = self.configs[c]
            raise TrainingDiverged(f"{self.ctx.name}: the training loss became {stats[0]} at config {cfg.name} "
                                   f"(#{cfg.index}), model {m}, epoch {e}; no record written (lower the "
                                   "learning rate or check the data)")
        mix.update(c, m, stats[2] / len(yv))
        return {"loss": stats[0] * len(y), "hits": stats[1], "val_acc": stats[2] / len(yv)}

    def step_schedules(self, e: int) -> None:
        for sched in self.scheds:
            sched.step()

    def end_epoch(self, e: int, totals: dict, seconds: float) -> None:
        mix, images, steps = self.mix, totals["images"], totals["steps"]
        h = {"epoch": e, "temperature": mix.T, "lr": self.lr, "W": mix.W.tolist(),
             "counts": (mix.counts - self.counts_before).tolist(), "P": self.P.tolist(),
             "marginals": mix.marginals.tolist(), "train_loss": totals["loss"] / images,
             "train_acc": 100.0 * totals["hits"] / images, "val_acc": 100.0 * totals["val_acc"] / steps,
             "steps": steps, "images": images, "seconds": seconds}
        self.history.append(h)
        log(f"{self.ctx.name} M={len(self.nets)} epoch {e}/{self.ctx.epochs_run - 1} T {mix.T:.4g} balance "
            f"{len(mix.marginals)} it loss {h['train_loss']:.4f} train {h['train_acc']:.2f}% val {h['val_acc']:.2f}% "
            f"lr {self.lr:.4g} {images / seconds:.0f} img/s")

    def state_dict(self) -> dict:
        return {"nets": [n.state_dict() for n in self.nets], "opts": [o.state_dict() for o in self.opts],
                "scheds": [s.state_dict() for s in self.scheds], "mixture": self.mix.state_dict(),
                "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        for objs, key in [(self.nets, "nets"), (self.opts, "opts"), (self.scheds, "scheds")]:
            for obj, part in zip(objs, state[key]):
                obj.load_state_dict(part)
        self.mix.load_state_dict(state["mixture"])
        self.history = state["history"]

    def conclude(self) -> dict:
        """Every (config, model) pair on the whole search-validation split; every selection rule's pick."""
        acc = evaluate_all(self.nets, self.ctx.eval_loader, self.positions, self.dev, self.prec)
        configs, mix, rule = self.configs, self.mix, self.hp["selection"]
        P_final = mix.probs()
        picks = balancing.select(acc, P_final, mix.W, balancing.shortlist_size(self.hp))
        alternatives = {r: {"config": configs[p["index"]].name, "index": configs[p["index"]].index,
                            "score": p["score"]} for r, p in picks.items()}
        return {"selected": {"config": alternatives[rule]["config"], "index": alternatives[rule]["index"],
                             "rule": rule},
                "alternatives": alternatives, "configs": [c.name for c in configs], "accuracy": acc.tolist(),
                "assignment": balancing.assignment(P_final).tolist(), "P_final": P_final.tolist(),
                "W": mix.W.tolist(), "counts": mix.counts.tolist()}
