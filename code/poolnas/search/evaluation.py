"""Evaluating SuperNets: the accuracy of every (config, SuperNet) pair, sharing the computation of common prefixes.

Used by the mixture search's final evaluation (poolnas.search.run) and by the MCTS and SBE baselines (poolnas.search.samplers).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from poolnas.arch.relaxed import N_BLOCKS, N_LEVELS, RelaxedNet, as_path, level_sizes, resample
from poolnas.data.loader import Loader
from poolnas.engine.runtime import autocast


@torch.no_grad()
def evaluate_all(nets, loader: Loader, positions: list[tuple[int, ...]], device, precision: str) -> torch.Tensor:
    """Top-1 accuracy (percent, configs x models) of every config through every SuperNet, one host sync.

    Configs that downsample at the same units so far share the computation so far: each batch goes through a
    SuperNet as a tree over the configs (`tree_forward`), so the full-resolution prefix is computed once, not
    once per config. The outputs are those of `net(x, positions)` (the same operations on the same tensors);
    the result equals `train.evaluate` per pair.
    """
    hits: dict[tuple, torch.Tensor] = {}  # (model, config indices) -> hits on the device
    seen = 0
    for net in nets:
        net.eval()
    with autocast(device, precision):
        for x, y in loader.epoch(0):
            for m, net in enumerate(nets):
                for members, logits in tree_forward(net, x, positions):
                    n = (logits.argmax(1) == y).sum()
                    hits[m, members] = hits[m, members] + n if (m, members) in hits else n
            seen += len(y)
    acc = torch.zeros(len(positions), len(nets), dtype=torch.float64)
    for (m, members), h in zip(hits, torch.stack(list(hits.values())).tolist()):  # the one host sync
        acc[list(members), m] = 100.0 * h / max(seen, 1)
    return acc


def tree_forward(net, x: torch.Tensor, positions: list[tuple[int, ...]]):
    """Yield (config indices, logits) for every distinct config of `positions`, sharing common prefixes.

    Depth first; the branch that downsamples at a unit is explored first while the input is kept, the other one
    continues in place, so at most (number of downsamplings + 1) block inputs are alive at once.
    """
    def visit(h, b, members):
        while b < len(net.blocks):
            unit = b + net.unit_offset
            down = [c for c in members if unit in positions[c]]
            members = [c for c in members if unit not in positions[c]]
            if down:
                yield from visit(_block(net, b, h, True), b + 1, down)
            if not members:
                return
            h, b = _block(net, b, h, False), b + 1
        yield tuple(members), net.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))

    yield from visit(net.stem(x), 0, list(range(len(positions))))


def _block(net, b: int, h: torch.Tensor, down: bool) -> torch.Tensor:
    """Block b of a PoolNet on input h, downsampling or not (as PoolNet.forward_features does)."""
    if net.downsample == "maxpool":
        return net.blocks[b](F.max_pool2d(h, 2) if down else h)
    return net.blocks[b](h, 2 if down else 1)


# --- paths of the relaxed ResNet20 space -----------------------------------------------------------------------------------


def tree_forward_paths(net: RelaxedNet, x: torch.Tensor, paths: list[tuple[int, ...]]):
    """Yield (path indices, logits) for every distinct path, computing each shared prefix once (depth first).

    Paths that agree on the levels of blocks 0..b share blocks 0..b; the outputs are those of `net(x, path)`.
    """
    h0 = net.stem(x)
    sizes = level_sizes(h0)

    def visit(h, level, b, members):
        if b == N_BLOCKS:
            yield tuple(members), net.head(h)
            return
        for target in range(N_LEVELS):
            group = [i for i in members if paths[i][b] == target]
            if group:
                yield from visit(net.block(b, target)(resample(h, level, target, sizes)), target, b + 1, group)

    yield from visit(h0, 0, 0, list(range(len(paths))))


@torch.no_grad()
def evaluate_paths(net: RelaxedNet, loader, paths, device, precision: str = "fp32") -> torch.Tensor:
    """Top-1 accuracy (percent, float64, one per path) of single paths on every batch of `loader` (one host sync)."""
    paths = [as_path(p) for p in paths]
    hits = torch.zeros(len(paths), dtype=torch.long, device=device)
    seen = 0
    net.eval()
    with autocast(device, precision):
        for x, y in loader.epoch(0):
            for members, logits in tree_forward_paths(net, x, paths):
                hits[list(members)] += (logits.argmax(1) == y).sum()
            seen += len(y)
    return 100.0 * hits.double().cpu() / max(seen, 1)
