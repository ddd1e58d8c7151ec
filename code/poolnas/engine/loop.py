"""The one training loop: every run (standalone training and every search method) is driven by `fit`.

A run is an object with a few hooks; `fit` calls them in this order for each epoch it has left:

    start_epoch(e)              per-epoch set-up (a temperature, a sampler generator, a new candidate)
    batches(e)                  the epoch's minibatches (x, y)
    step(e, x, y) -> stats      one training step; stats are summed over the epoch: device tensors are read
                                once at the end (the epoch's one host sync), host numbers as they come
    step_schedules(e)           the learning-rate schedules, once per epoch (inside the timed part)
    end_epoch(e, totals, secs)  evaluation, the history entry, a progress line
    state_dict()                everything needed to resume after this epoch (tensors and plain containers)

and after each epoch saves the checkpoint and calls `after_epoch(e)` (tests use it to interrupt a run). A
non-finite epoch loss stops the run before anything is written.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Iterable

import torch

from poolnas.engine.checkpoint import Checkpoint


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the run stops and no record is written."""


def sum_stats(batches: Iterable[dict]) -> dict:
    """Sum per-step statistics: device tensors on the device (read in one sync at the end), the rest on the host."""
    device: dict[str, torch.Tensor] = {}
    host: dict[str, float] = {}
    for stats in batches:
        for k, v in stats.items():
            target = device if isinstance(v, torch.Tensor) else host
            target[k] = target[k] + v if k in target else v
    read = dict(zip(device, torch.stack([v.double() for v in device.values()]).tolist())) if device else {}
    return read | host


def run_epoch(run, e: int, *, name: str) -> None:
    """One epoch of `run`: its steps, the schedules, its evaluation and history entry (no checkpoint)."""
    start = time.perf_counter()
    run.start_epoch(e)
    totals = sum_stats({**run.step(e, x, y), "images": len(y), "steps": 1} for x, y in run.batches(e))
    loss = totals.get("loss", 0.0)
    if not math.isfinite(loss):
        raise TrainingDiverged(f"{name}: the training loss became {loss} in {run.where(e)}; no record written "
                               "(lower the learning rate or check the data)")
    run.step_schedules(e)
    run.end_epoch(e, totals, time.perf_counter() - start)


def fit(run, epochs: Iterable[int], checkpoint: Checkpoint, *, name: str,
        after_epoch: Callable[[int], None] | None = None) -> None:
    """Train `run` for `epochs` (those still to do), checkpointing after each."""
    for e in epochs:
        run_epoch(run, e, name=name)
        checkpoint.save(run.state_dict())
        if after_epoch:
            after_epoch(e)
