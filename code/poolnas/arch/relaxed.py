"""The relaxed ResNet20 network: each of the 9 residual blocks at its own resolution level (paper.md section 2).

A path is a 9-tuple of levels (0 full, 1 half, 2 quarter), one per block; the stem always runs at level 0. The
3^9 = 19,683 paths include non-monotone ones (the resolution may go back up). Channels are fixed by block index as
in ResNet20 (`models.BLOCK_WIDTHS`); the stem, the blocks and the head are those of `models.PoolNet`, built by
PoolNet itself, so they are initialised exactly as PoolNet initialises them.

Level sizes: s_0 is the stem output's size, s_l = floor(s_(l-1) / 2) (2x2 max pools, as PoolNet pools).
Resampling from level a to level b: (b - a) successive 2x2 max pools when b > a; nearest upsampling to s_b when
b < a (the exact pixel replication when the sizes divide, e.g. 32/16/8).

Two ways to run the network:

    single path  `net(x, path)`: the feature map moves from level to level; block b gets the previous block's
                 output resampled to level path[b] (the stem's output at level 0 for block 0), then global average
                 pooling and the linear head at whatever level the last block ran. This is how a found
                 architecture is trained standalone (`build_standalone`) and how SPOS samples relaxed paths.
                 For a monotone path every level change is one or more max pools before a block, i.e. PoolNet: a
                 path that is a ResNet20 config (monotone, every level used; `RELAXED.to_config`) runs the very same
                 operations as PoolNet with that config, and a `shared` net given PoolNet's state dict computes
                 PoolNet's function bit for bit. A monotone path that jumps two levels at once (pool twice before one
                 block) or never reaches level 2 is not one of the 36 configs; it runs by the same rule.
    mixed        `net(x, weights=W)`, W of shape (9, 3) (DARTS: softmax(alpha) per block): as the released DARTS
                 code, the block input h stays at full resolution between blocks; block b runs on h pooled 0, 1
                 and 2 times, each output is upsampled (nearest) back to full size, and the block's output is
                 sum_l W[b, l] * up(out_l). With one-hot weights this equals the single path of the one-hot levels
                 when the stem output's side is divisible by 4 (a nearest-upsampled map max-pooled back is the map
                 itself, and pooling an upsampled map by more levels equals pooling the original by fewer), up to
                 float rounding in the global average pool (of a full-size map of replicated values).

Weight sharing (`sharing`): `shared` runs one block at every level (DARTS fully shared); `not-shared` keeps one copy
of each block per level (DARTS / SPOS not shared). With `init="same"` the copies start as exact copies of the
level-0 block; with `init="random"` levels 1 and 2 get independent (Kaiming-normal, as PoolNet) initialisations.
The stem and the head are always shared (the stem never changes resolution; the head follows global pooling).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from poolnas.errors import UsageError
from poolnas.arch.models import BN_MODES, BasicBlock, PoolNet, init_convs
from poolnas.arch.spaces import RELAXED, Config

SHARING = ("shared", "not-shared")
INITS = ("same", "random")
N_BLOCKS, N_LEVELS = RELAXED.n_layers, RELAXED.n_levels


def as_path(path) -> tuple[int, ...]:
    """A 9-tuple of levels from a tuple/list, a string ("010111222", a ResNet20 config) or a ResNet20 Config."""
    if isinstance(path, Config):
        return RELAXED.from_config(path)
    if isinstance(path, str):
        return RELAXED.parse(path)
    levels = tuple(int(v) for v in path)
    if len(levels) != N_BLOCKS or not all(0 <= v < N_LEVELS for v in levels):
        raise UsageError(f"path {levels} is not {N_BLOCKS} levels in 0..{N_LEVELS - 1}")
    return levels


def level_sizes(h: torch.Tensor) -> list[tuple[int, int]]:
    """Spatial size of each level, from the level-0 map `h`."""
    sizes = [tuple(h.shape[-2:])]
    for _ in range(1, N_LEVELS):
        sizes.append((sizes[-1][0] // 2, sizes[-1][1] // 2))
    return sizes


def resample(h: torch.Tensor, src: int, dst: int, sizes) -> torch.Tensor:
    """Move a map from level `src` to level `dst`: max pools down, nearest upsampling up."""
    for _ in range(dst - src):
        h = F.max_pool2d(h, 2)
    if dst < src:
        h = F.interpolate(h, size=sizes[dst], mode="nearest")
    return h


class RelaxedNet(nn.Module):
    """ResNet20 over the relaxed space; see the module docstring for the two forward modes and the sharing modes."""

    def __init__(self, num_classes: int = 10, *, bn: str = "supernet", sharing: str = "shared", init: str = "same",
                 path=None, conv_init: str = "kaiming_fan_out", **arch):
        super().__init__()
        if sharing not in SHARING:
            raise UsageError(f"unknown weight sharing {sharing!r}; known: {', '.join(SHARING)}")
        if init not in INITS:
            raise UsageError(f"unknown init {init!r}; known: {', '.join(INITS)}")
        if bn not in BN_MODES:
            raise UsageError(f"unknown BN mode {bn!r}; known: {', '.join(BN_MODES)}")
        # stem, blocks, head, initialised by PoolNet (arch: zero_init_residual, stem_bn_affine)
        base = PoolNet("resnet20", num_classes=num_classes, bn=bn, conv_init=conv_init, **arch)
        self.sharing, self.init, self.bn_mode, self.conv_init = sharing, init, bn, conv_init
        self.stem = base.stem
        if sharing == "shared":
            self.blocks = base.blocks
        else:
            self.blocks = nn.ModuleList(nn.ModuleList([block, *(self._copy(block, bn, init, conv_init) for _ in
                                                                range(1, N_LEVELS))]) for block in base.blocks)
        self.fc = base.fc
        self.path = as_path(path) if path is not None else RELAXED.from_config(base.space.default)

    @staticmethod
    def _copy(block: BasicBlock, bn: str, init: str, conv_init: str) -> BasicBlock:
        if init == "same":
            return copy.deepcopy(block)
        fresh = BasicBlock(block.conv1.in_channels, block.conv1.out_channels, bn)
        init_convs(fresh, conv_init)
        return fresh

    def block(self, b: int, level: int) -> nn.Module:
        return self.blocks[b] if self.sharing == "shared" else self.blocks[b][level]

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))

    def forward(self, x: torch.Tensor, path=None, *, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Single path (`path`, default the net's own) or, with `weights` (9 x 3), the DARTS mixture."""
        if weights is not None:
            return self.forward_mixed(x, weights)
        levels = self.path if path is None else as_path(path)
        h = self.stem(x)
        sizes, level = level_sizes(h), 0
        for b, target in enumerate(levels):
            h = self.block(b, target)(resample(h, level, target, sizes))
            level = target
        return self.head(h)

    def forward_mixed(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if tuple(weights.shape) != (N_BLOCKS, N_LEVELS):
            raise ValueError(f"mixing weights must have shape {(N_BLOCKS, N_LEVELS)}, got {tuple(weights.shape)}")
        h = self.stem(x)
        full = level_sizes(h)[0]
        for b in range(N_BLOCKS):
            out, xl = None, h
            for level in range(N_LEVELS):
                if level:
                    xl = F.max_pool2d(xl, 2)
                y = self.block(b, level)(xl)
                if level:
                    y = F.interpolate(y, size=full, mode="nearest")
                out = weights[b, level] * y if out is None else out + weights[b, level] * y
            h = out
        return self.head(h)


def build_standalone(path, num_classes: int = 10, bn: str = "standard", **arch) -> RelaxedNet:
    """A found relaxed architecture as a standalone network (one block per layer, single-path forward).

    With torch.manual_seed(s) before it, a path that is a ResNet20 config gets exactly the initial weights (same
    state-dict keys and values) and the function of `models.build_model("resnet20", config, bn=bn)`.
    """
    return RelaxedNet(num_classes, bn=bn, sharing="shared", path=as_path(path), **arch)
