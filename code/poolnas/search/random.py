"""Random search at equal cost: K configs drawn uniformly, each trained standalone, the best on validation.

K configs are drawn without replacement (numpy, seeded by (seed, DRAW)); each is trained standalone (the
protocol's BN mode, torch.manual_seed(seed) init, the search's SGD hyperparameters and batch size, cosine
annealing to lr_min stepped per SGD step) on search-train, then evaluated on the whole search-validation split;
the best is picked (the first drawn on ties). Budget: the mixture's total number of SGD steps, S = epochs_run x
steps_per_epoch, which does not depend on M (every mixture step trains one SuperNet). Candidate k gets S // K
steps, plus one for the first S % K candidates, so the K candidates take exactly S steps together.

For the loop (`engine.loop.fit`) an "epoch" is one pass of one candidate over search-train (the last pass of a
candidate stops at its step budget); passes are numbered across candidates, and the checkpoint after each pass
holds the finished candidates and the current one's network, so a run resumes at the pass it was in.
"""

from __future__ import annotations

import math
import time
from itertools import islice

import numpy as np
import torch

from poolnas.arch.models import build_model, width_option
from poolnas.engine.optim import make_optimizer, make_scheduler
from poolnas.engine.runtime import log, to_device
from poolnas.engine.steps import evaluate, train_step
from poolnas.search.base import DRAW, SearchMethod


class RandomSearch(SearchMethod):
    def __init__(self, ctx):
        super().__init__(ctx)
        K, spe = ctx.configs, len(ctx.train_loader)
        self.bn = ctx.settings.protocol(self.space.name, ctx.data.name)["bn"]
        self.total = ctx.epochs_run * spe
        self.per = [self.total // K + (1 if k < self.total % K else 0) for k in range(K)]
        draw = np.random.default_rng(np.random.SeedSequence([ctx.seed, DRAW])).choice(len(self.space), K,
                                                                                       replace=False)
        self.picks = [self.space.configs[int(i)] for i in draw]
        self.units = [(k, p) for k in range(K) for p in range(math.ceil(self.per[k] / spe))]
        self.done: list[dict] = []
        self.passes = 0
        self.current: dict | None = None  # the candidate in training: k, steps, epoch, images, seconds, loss

    def remaining_epochs(self) -> range:
        return range(self.passes, len(self.units))

    def where(self, p: int) -> str:
        k, local = self.units[p]
        return f"config {self.picks[k].name} (#{self.picks[k].index}), candidate {k}, pass {local}"

    def _build(self, k: int) -> None:
        torch.manual_seed(self.ctx.seed)
        self.net = to_device(build_model(self.space.name, self.picks[k], num_classes=self.num_classes, bn=self.bn,
                                         stem=self.ctx.stem, resnet50_d1_bug=self.hp["resnet50_d1_bug"],
                                         conv_init=self.hp["conv_init"], **width_option(self.hp)),
                             self.dev, self.ctx.channels_last)
        self.opt = make_optimizer(self.net.parameters(), self.hp)
        self.sched = make_scheduler(self.opt, self.hp, self.per[k])

    def start_epoch(self, p: int) -> None:
        k, _ = self.units[p]
        if self.current is not None and self.current["k"] == k:
            return  # the candidate in training (or resumed from a checkpoint) goes on with its next pass
        self._build(k)
        self.current = {"k": k, "steps": 0, "epoch": 0, "images": 0, "seconds": 0.0, "loss": None}

    def batches(self, p: int):
        k, cur = self.units[p][0], self.current
        return islice(self.ctx.train_loader.epoch(cur["epoch"]), self.per[k] - cur["steps"])

    def step(self, p: int, x, y) -> dict:
        loss, _ = train_step(self.net, self.opt, x, y, self.dev, self.prec)
        self.sched.step()  # per SGD step: the candidates' budgets are not whole passes
        return {"loss": loss * len(y)}

    def step_schedules(self, p: int) -> None:
        pass

    def end_epoch(self, p: int, totals: dict, seconds: float) -> None:
        k, cur = self.units[p][0], self.current
        cur.update(steps=cur["steps"] + totals["steps"], epoch=cur["epoch"] + 1,
                   images=cur["images"] + totals["images"], seconds=cur["seconds"] + seconds,
                   loss=totals["loss"] / totals["images"])
        self.passes = p + 1
        log(f"{self.ctx.name} candidate {k + 1}/{len(self.picks)} {self.picks[k].name} pass {cur['epoch']} steps "
            f"{cur['steps']}/{self.per[k]} loss {cur['loss']:.4f} {totals['images'] / seconds:.0f} img/s")
        if cur["steps"] == self.per[k]:
            self._finish(k)

    def _finish(self, k: int) -> None:
        """Evaluate candidate k on the whole search-validation split."""
        cur = self.current or {"steps": 0, "images": 0, "seconds": 0.0, "loss": None}
        start = time.perf_counter()
        val_acc = evaluate(self.net, self.ctx.eval_loader, self.dev, self.prec)
        cfg = self.picks[k]
        self.done.append({"config": cfg.name, "index": cfg.index, "val_acc": val_acc, "steps": cur["steps"],
                          "images": cur["images"], "train_loss": cur["loss"], "seconds": cur["seconds"],
                          "eval_seconds": time.perf_counter() - start})
        self.current, self.net = None, None

    def state_dict(self) -> dict:
        current = None
        if self.current is not None:
            current = {**self.current, "net": self.net.state_dict(), "opt": self.opt.state_dict(),
                       "sched": self.sched.state_dict()}
        return {"done": self.done, "current": current, "passes": self.passes}

    def load_state_dict(self, state: dict) -> None:
        self.done, self.passes = state["done"], state["passes"]
        if state["current"] is not None:  # the candidate in training: built and loaded now, not at its next pass,
            # so a saved network that does not fit fails here, where the checkpoint is set aside (Checkpoint.resume)
            saved = {k: state["current"][k] for k in ("net", "opt", "sched")}
            self.current = {k: v for k, v in state["current"].items() if k not in saved}
            self._build(self.current["k"])  # seeds its init itself: the same network as at its next pass
            for obj, key in ((self.net, "net"), (self.opt, "opt"), (self.sched, "sched")):
                obj.load_state_dict(saved[key])

    def conclude(self) -> dict:
        for k in range(len(self.done), len(self.picks)):  # candidates whose budget is 0 steps: never trained
            self._build(k)
            self._finish(k)
        accs = [d["val_acc"] for d in self.done]
        best = self.done[accs.index(max(accs))]
        return {"selected": {"config": best["config"], "index": best["index"], "rule": "best_val"},
                "configs": [c.name for c in self.picks], "accuracy": accs, "candidate_runs": self.done}

    def summary(self, body: dict, eval_seconds: float) -> dict:
        done = self.done
        return body | {"budget": {"total_steps": self.total, "steps_per_epoch": len(self.ctx.train_loader),
                                  "epochs_run": self.ctx.epochs_run, "per_candidate": self.per},
                       "steps": sum(d["steps"] for d in done), "train_seconds": sum(d["seconds"] for d in done),
                       "eval_seconds": sum(d["eval_seconds"] for d in done)}
