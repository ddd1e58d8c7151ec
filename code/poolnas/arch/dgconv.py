"""A conv whose number of groups is learned: DGConv (Zhang et al. 2019), as summarised in shared/spec/extensions.md.

For C = 2^K channels the weight is masked by U = U_1 ⊗ ... ⊗ U_K (Kronecker), U_k = g_k * ones(2, 2) +
(1 - g_k) * I_2 with binary gates g_k, broadcast over the kernel taps: y = conv(x, U ⊙ W). Channel c has K bits
(the first factor is the most significant bit); c and c' are connected exactly when they agree on every bit whose
gate is 0. So the channels fall into G = 2^(K - sum g) groups of 2^(sum g), ||U||_0 = 2^(K + sum g), all gates 1 is
a dense conv and all 0 a depthwise one; with the 0-gates first, the groups are blocks of adjacent channels, i.e.
nn.Conv2d(groups=G).

Gates are real logits, binarised in the forward pass by a step at 0 with a straight-through gradient
(g = s + (step(s) - s).detach()). `gate_init` is the starting logit (positive: every layer starts dense).
Only square convs (C_in = C_out = 2^K) are masked here; a conv that changes the width (or whose width is no power
of two) stays dense, so the gates of a network live in its width-keeping convs. `export()` turns a layer into a
real grouped conv (with the channel permutation that makes its groups adjacent), computing the same outputs.

This is the layer and `to_dgconv` (a PoolNet with its square 3x3 convs gated: 79 gates in ResNet20); the search that
trains gates under a complexity budget (issue 17) is not built yet.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def binarise(logits: torch.Tensor) -> torch.Tensor:
    """step(logits) in the forward pass, identity gradient in the backward pass (straight-through)."""
    hard = (logits >= 0).to(logits.dtype)
    return logits + (hard - logits).detach()


def kron_mask(gates: torch.Tensor) -> torch.Tensor:
    """U = U_1 ⊗ ... ⊗ U_K for gates (K,) in {0, 1} (or straight-through reals), as a (2^K, 2^K) matrix."""
    eye, ones = torch.eye(2, dtype=gates.dtype, device=gates.device), torch.ones(2, 2, dtype=gates.dtype,
                                                                                  device=gates.device)
    mask = torch.ones(1, 1, dtype=gates.dtype, device=gates.device)
    for g in gates:
        mask = torch.kron(mask, g * ones + (1 - g) * eye)
    return mask


class DGConv2d(nn.Module):
    """A bias-free k x k conv of `channels` -> `channels` whose groups are learned (module docstring)."""

    def __init__(self, channels: int, kernel: int = 3, gate_init: float = 1.0):
        super().__init__()
        self.K = int(round(math.log2(channels)))
        if channels < 2 or 2 ** self.K != channels:
            raise ValueError(f"DGConv2d needs a power-of-two channel count >= 2, got {channels}")
        self.channels, self.kernel = channels, kernel
        self.weight = nn.Parameter(torch.empty(channels, channels, kernel, kernel))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        self.gate_logits = nn.Parameter(torch.full((self.K,), float(gate_init)))

    def gates(self) -> torch.Tensor:
        return binarise(self.gate_logits)

    def mask(self) -> torch.Tensor:
        return kron_mask(self.gates())

    def forward(self, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
        w = self.weight * self.mask()[:, :, None, None].to(self.weight.dtype)
        return F.conv2d(x, w, stride=stride, padding=self.kernel // 2)

    @property
    def ones(self) -> int:
        """sum g: the number of gates at 1."""
        return int((self.gate_logits.detach() >= 0).sum())

    @property
    def groups(self) -> int:
        """G = 2^(K - sum g)."""
        return 2 ** (self.K - self.ones)

    @property
    def connections(self) -> int:
        """||U||_0 = C * prod_k (1 + g_k) = 2^(K + sum g): the channel pairs connected (times k^2 for weights)."""
        return 2 ** (self.K + self.ones)

    def permutation(self) -> torch.Tensor:
        """Channel order that makes the groups adjacent: the bits of 0-gates first (most significant), then the rest."""
        hard = (self.gate_logits.detach() >= 0).tolist()
        order = [k for k in range(self.K) if not hard[k]] + [k for k in range(self.K) if hard[k]]
        bits = [[(c >> (self.K - 1 - k)) & 1 for k in range(self.K)] for c in range(self.channels)]
        key = [sum(b[k] << (self.K - 1 - i) for i, k in enumerate(order)) for b in bits]
        return torch.tensor(sorted(range(self.channels), key=lambda c: key[c]))

    @torch.no_grad()
    def export(self) -> "GroupedConv":
        """A real grouped conv computing this layer's function (with its channel permutation if one is needed)."""
        perm, G, C = self.permutation(), self.groups, self.channels
        w = (self.weight * self.mask()[:, :, None, None])[perm][:, perm]
        size = C // G
        conv = nn.Conv2d(C, C, self.kernel, padding=self.kernel // 2, groups=G, bias=False)
        conv.weight.copy_(torch.stack([w[o, (o // size) * size:(o // size + 1) * size] for o in range(C)]))
        return GroupedConv(conv, perm)


class GroupedConv(nn.Module):
    """nn.Conv2d(groups=G) between a channel permutation and its inverse (none when it is the identity)."""

    def __init__(self, conv: nn.Conv2d, perm: torch.Tensor):
        super().__init__()
        self.conv = conv
        identity = bool((perm == torch.arange(len(perm))).all())
        self.register_buffer("perm", None if identity else perm)
        self.register_buffer("inverse", None if identity else torch.argsort(perm))

    def forward(self, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
        if self.perm is None:
            return F.conv2d(x, self.conv.weight, stride=stride, padding=self.conv.padding, groups=self.conv.groups)
        y = F.conv2d(x[:, self.perm], self.conv.weight, stride=stride, padding=self.conv.padding,
                     groups=self.conv.groups)
        return y[:, self.inverse]


def to_dgconv(net: nn.Module, gate_init: float = 1.0) -> nn.Module:
    """Replace every square 3x3 conv of a PoolNet's blocks (C_in = C_out = 2^K) by a DGConv2d holding the same weight
    (the convs that change the width stay dense); returns `net`. With gates at 1 the network's function is unchanged.
    Gates are named `gate_logits`, so an optimiser can keep them out of weight decay."""
    from poolnas.arch.models import Conv

    for block in net.blocks:
        for name, child in list(block.named_children()):
            if isinstance(child, Conv) and child.kernel_size == (3, 3) and child.in_channels == child.out_channels \
                    and 2 ** int(round(math.log2(child.in_channels))) == child.in_channels:
                layer = DGConv2d(child.in_channels, 3, gate_init).to(child.weight.device)
                with torch.no_grad():
                    layer.weight.copy_(child.weight)
                setattr(block, name, layer)
    return net


def dgconv_layers(net: nn.Module) -> list[DGConv2d]:
    return [m for m in net.modules() if isinstance(m, DGConv2d)]
