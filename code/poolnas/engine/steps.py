"""One SGD step and one evaluation pass: the two things every run does to a network."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from poolnas.data.loader import Loader
from poolnas.engine.runtime import autocast


def train_step(model, optimizer, x, y, device, precision, config=None):
    """One SGD step (of `config`, for a SuperNet or relaxed network); returns the mean loss and the number of
    correct predictions as device tensors, so the caller decides when to synchronise."""
    model.train()
    with autocast(device, precision):
        logits = model(x) if config is None else model(x, config)
        loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach().float(), (logits.argmax(1) == y).sum()


@torch.no_grad()
def evaluate(model, loader: Loader, device: torch.device, precision: str = "fp32", config=None) -> float:
    """Top-1 accuracy in percent over every image the loader yields (one host sync, at the end)."""
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    with autocast(device, precision):
        for x, y in loader.epoch(0):
            correct += (model(x, config).argmax(1) == y).sum()
            seen += len(y)
    return 100.0 * correct.item() / max(seen, 1)


def step_and_validate(net, opt, x, y, xv, yv, config, device, precision):
    """One SGD step of `config` through a SuperNet, then one validation minibatch through the same path in eval
    mode (the reward of the mixture's W and of the samplers); device tensors, no sync."""
    loss, hits = train_step(net, opt, x, y, device, precision, config)
    net.eval()
    with torch.no_grad(), autocast(device, precision):
        val_hits = (net(xv, config).argmax(1) == yv).sum()
    return loss, hits, val_hits
