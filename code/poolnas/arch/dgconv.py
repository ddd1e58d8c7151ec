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

`to_dgconv` gates a PoolNet's square 3x3 convs (79 gates in ResNet20); `gate_bits` reads the learned pattern and
`to_grouped` builds a fresh network with that pattern as real grouped convs (retraining what the search found, and
fixed-group baselines). The search that trains the gates under a complexity budget is `search.dgconv`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def permutation_of(bits: list[int]) -> torch.Tensor:
    """Channel order that makes the groups of gates `bits` adjacent: the bits of 0-gates first (most significant),
    then the rest."""
    K = len(bits)
    order = [k for k in range(K) if not bits[k]] + [k for k in range(K) if bits[k]]
    key = [sum(((c >> (K - 1 - k)) & 1) << (K - 1 - i) for i, k in enumerate(order)) for c in range(2 ** K)]
    return torch.tensor(sorted(range(2 ** K), key=lambda c: key[c]), device="cpu")  # also under a meta device


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

    def bits(self) -> list[int]:
        """The hard gates g_k (first factor first)."""
        return [int(v) for v in (self.gate_logits.detach() >= 0).tolist()]

    def permutation(self) -> torch.Tensor:
        return permutation_of(self.bits())

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
        identity = perm.tolist() == list(range(len(perm)))  # perm on the CPU: also when built for the meta device
        self.register_buffer("perm", None if identity else perm)
        self.register_buffer("inverse", None if identity else torch.argsort(perm))

    def forward(self, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
        if self.perm is None:
            return F.conv2d(x, self.conv.weight, stride=stride, padding=self.conv.padding, groups=self.conv.groups)
        y = F.conv2d(x[:, self.perm], self.conv.weight, stride=stride, padding=self.conv.padding,
                     groups=self.conv.groups)
        return y[:, self.inverse]


def _width(module: nn.Module) -> int | None:
    """C of a square 3x3 conv of power-of-two width (plain, gated or grouped), else None."""
    from poolnas.arch.models import Conv

    if isinstance(module, DGConv2d):
        return module.channels
    conv = module.conv if isinstance(module, GroupedConv) else module if isinstance(module, Conv) else None
    if conv is None or conv.kernel_size != (3, 3) or conv.in_channels != conv.out_channels:
        return None
    return conv.in_channels if 2 ** int(round(math.log2(conv.in_channels))) == conv.in_channels else None


def square_convs(net: nn.Module) -> list[tuple[nn.Module, str, int]]:
    """(block, attribute, C) of every square 3x3 conv of a PoolNet's blocks whose width is a power of two (C_in =
    C_out = 2^K; plain, gated or grouped), in block order: the layers that carry gates. The convs that change the
    width stay dense."""
    return [(block, name, c) for block in net.blocks for name, child in block.named_children()
            if (c := _width(child)) is not None]


def to_dgconv(net: nn.Module, gate_init: float = 1.0) -> nn.Module:
    """Replace every square conv of `square_convs` by a DGConv2d holding the same weight; returns `net`. With gates at
    1 the network's function is unchanged. Gates are named `gate_logits`, so an optimiser can keep them out of
    weight decay."""
    for block, name, channels in square_convs(net):
        child = getattr(block, name)
        layer = DGConv2d(channels, 3, gate_init).to(child.weight.device)
        with torch.no_grad():
            layer.weight.copy_(child.weight)
        setattr(block, name, layer)
    return net


def dgconv_layers(net: nn.Module) -> list[DGConv2d]:
    return [m for m in net.modules() if isinstance(m, DGConv2d)]


def gate_bits(net: nn.Module) -> list[list[int]]:
    """The hard gates of every DGConv2d of `net`, layer by layer."""
    return [layer.bits() for layer in dgconv_layers(net)]


def to_grouped(net: nn.Module, bits: list[list[int]]) -> nn.Module:
    """Replace the square convs of `net` by freshly initialised grouped convs with the groups (and channel order) of
    the gate pattern `bits`, one list per layer as `gate_bits` gives; returns `net`. The new convs carry
    nn.Conv2d's own initialisation for their grouped shape (callers re-run their conv_init on the network)."""
    layers = square_convs(net)
    if [len(b) for b in bits] != [int(round(math.log2(c))) for _, _, c in layers]:
        raise ValueError(f"a gate pattern of {[len(b) for b in bits]} bits per layer does not fit the network's "
                         f"square convs ({[int(round(math.log2(c))) for _, _, c in layers]})")
    device = next(net.parameters()).device
    for (block, name, C), b in zip(layers, bits):
        conv = nn.Conv2d(C, C, 3, padding=1, groups=2 ** (len(b) - sum(b)), bias=False, device=device)
        setattr(block, name, GroupedConv(conv, permutation_of(b)).to(device))
    return net
