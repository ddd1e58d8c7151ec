"""The hooks every search method implements; `search.run` drives them through `engine.loop.fit`.

A method is a class built from the run's `SearchContext` (the torch seed is set just before, so building the
networks first makes their initialisation part of the run's determinism). The loop calls, per epoch:
`start_epoch(e)`, `batches(e)`, `step(e, x, y)` per minibatch, `step_schedules(e)`, `end_epoch(e, totals,
seconds)`; then `state_dict()` for the checkpoint. After the last epoch `conclude()` evaluates and selects, and
`summary(eval_seconds)` returns the record body (`search.run` adds the common fields).

`SingleNetSearch` is the base of the baselines: one network, its SGD optimiser and per-epoch cosine schedule, the
epoch's sampler generator and validation stream, and a history entry built from the summed step statistics.
Subclasses define `build` (the network), `param_groups` (optional: what SGD trains), `setup` (their extra state),
`begin_epoch`, `step`, `epoch_state`, `extra_state`/`load_extra` and `conclude`.
"""

from __future__ import annotations

import numpy as np
import torch

from poolnas.data.loader import epoch_generator
from poolnas.engine.optim import current_lr, make_optimizer, make_scheduler
from poolnas.engine.runtime import derive_seed, log, to_device

# Independent streams derived from the run seed: validation-minibatch order, (c, m) sampling, random-search draw;
# CONet seeds trial t's initialisation from (derive_seed(seed, TRIALS), t) (engine.runtime.EVAL_ORDER is 4).
VAL_STREAM, SAMPLER, DRAW, TRIALS = 1, 2, 3, 5


def plain(state):
    """numpy arrays as tensors: a checkpoint is read with weights_only=True, which takes tensors, not arrays."""
    if isinstance(state, np.ndarray):
        return torch.from_numpy(state.copy())
    if isinstance(state, dict):
        return {k: plain(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(plain(v) for v in state)
    return state


class SearchMethod:
    """Defaults shared by every method: epochs 0..epochs_run-1 over search-train, a list of history entries."""

    def __init__(self, ctx):
        self.ctx, self.hp, self.space = ctx, ctx.hp, ctx.space
        self.dev, self.prec = ctx.dev, ctx.precision
        self.num_classes = ctx.data.num_classes
        self.history: list[dict] = []

    def remaining_epochs(self) -> range:
        return range(len(self.history), self.ctx.epochs_run)

    def where(self, e: int) -> str:
        return f"epoch {e}"

    def start_epoch(self, e: int) -> None:
        pass

    def batches(self, e: int):
        return self.ctx.train_loader.epoch(e)

    def step(self, e: int, x, y) -> dict:
        raise NotImplementedError

    def step_schedules(self, e: int) -> None:
        raise NotImplementedError

    def end_epoch(self, e: int, totals: dict, seconds: float) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError

    def conclude(self) -> dict:
        raise NotImplementedError

    def extra_budget(self) -> dict:
        return {}

    def summary(self, body: dict, eval_seconds: float) -> dict:
        """The record body: what `conclude` found, the per-epoch history, the budget and the timings."""
        history = self.history
        steps = sum(h["steps"] for h in history)
        return body | {"epochs": history,
                       "budget": {"total_steps": steps, "steps_per_epoch": len(self.ctx.train_loader),
                                  "epochs_run": self.ctx.epochs_run, **self.extra_budget()},
                       "steps": steps, "train_seconds": sum(h["seconds"] for h in history),
                       "eval_seconds": eval_seconds}


class SingleNetSearch(SearchMethod):
    """One network trained by SGD on search-train, one weight step per minibatch (the baselines)."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.spec, self.bl = ctx.spec, ctx.hp.get("baseline")  # None: dgconv (no baseline settings)
        self.net = to_device(self.build(), self.dev, ctx.channels_last)
        self.opt = make_optimizer(self.param_groups(), self.hp)
        self.sched = make_scheduler(self.opt, self.hp, ctx.epochs_run)
        self.setup()

    # --- to override ---
    def build(self) -> torch.nn.Module:
        raise NotImplementedError

    def param_groups(self):
        """What the SGD optimiser trains (parameters, or param groups with their own lr / weight decay)."""
        return self.net.parameters()

    def setup(self) -> None:
        pass

    def begin_epoch(self, e: int) -> None:
        pass

    def epoch_state(self, e: int) -> dict:
        return {}

    def extra_state(self) -> dict:
        return {}

    def load_extra(self, state: dict) -> None:
        pass

    # --- the hooks ---
    def start_epoch(self, e: int) -> None:
        self.lr = current_lr(self.opt)
        self.gen = epoch_generator(derive_seed(self.ctx.seed, SAMPLER), e)
        self.val_iter = self.ctx.val_stream.stream(e) if self.ctx.val_stream else None  # dgconv reads none
        self.begin_epoch(e)

    def step_schedules(self, e: int) -> None:
        self.sched.step()

    def end_epoch(self, e: int, totals: dict, seconds: float) -> None:
        images, val_n = totals["images"], totals.get("val_n", 0)
        h = {"epoch": e, "lr": self.lr, **self.epoch_state(e), "train_loss": totals["loss"] / images,
             "train_acc": 100.0 * totals["hits"] / images,
             **({"val_loss": totals["val_loss"] / val_n} if "val_loss" in totals and val_n else {}),
             "val_acc": 100.0 * totals["val_hits"] / val_n if val_n else None,
             "steps": totals["steps"], "images": images, "seconds": seconds}
        self.history.append(h)
        log(f"{self.ctx.name} epoch {e}/{self.ctx.epochs_run - 1} loss {h['train_loss']:.4f} train "
            f"{h['train_acc']:.2f}%" + (f" val {h['val_acc']:.2f}%" if val_n else "")
            + f" lr {self.lr:.4g} {images / seconds:.0f} img/s")

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
                "extra": plain(self.extra_state()), "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.load_extra(state["extra"])
        self.history = state["history"]
