"""Architectures beyond the pooling config (issue 17): learned groups or learned widths of one PoolNet, named by a slug.

A variant changes the network of a pooling config in one of two ways (they do not combine: CONet gives arbitrary
even widths, DGConv needs powers of two; shared/spec/extensions.md):

    groups  g<hex>          every square 3x3 conv (`dgconv.square_convs`: 16 in ResNet20) a real grouped conv with
                            the groups and channel order of a DGConv gate pattern; the slug is the bits of all
                            layers in order (each layer's first factor first) as one hexadecimal number
    widths  w<s1>-...-<i1>-...  the residual stream's width per stage, then each block's inner width (ResNet20: 3 + 9
                            numbers, ResNet18: 4 + 8); projection shortcuts wherever a block's widths differ

`build` makes the network with a fresh initialisation (standalone training of what a search found), `cost` its
parameters and forward multiply-adds (torch's FLOP counter on a weightless copy, as `arch.cost`; a grouped conv
counts C / G inputs per output), `uniform_groups` and `scaled_widths` the comparison architectures: one group
count G in every square conv, and every width scaled by one factor (uniform, compound scaling).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch.utils.flop_counter import FlopCounterMode

from poolnas.arch.dgconv import square_convs, to_grouped
from poolnas.arch.models import BLOCK_WIDTHS, build_model, block_widths, init_convs
from poolnas.arch.spaces import VARIANT_SLUG, get_space
from poolnas.errors import UsageError
from poolnas.records import nearest_even


def stages(backbone: str) -> list[int]:
    """The default width of each stage (a stage: the blocks of one default width)."""
    return list(dict.fromkeys(BLOCK_WIDTHS[backbone]))


@lru_cache(maxsize=None)
def gate_layout(backbone: str) -> tuple[int, ...]:
    """K (gates) of every square conv of the backbone's default-width network, in order."""
    with torch.device("meta"):
        net = build_model(backbone)
    return tuple(int(round(math.log2(c))) for _, _, c in square_convs(net))


@dataclass(frozen=True)
class Variant:
    """Learned groups (`bits`, one tuple per square conv) or learned widths (`stream` per stage, `inner` per block)."""

    backbone: str
    bits: tuple[tuple[int, ...], ...] | None = None
    stream: tuple[int, ...] | None = None
    inner: tuple[int, ...] | None = None

    @property
    def kind(self) -> str:
        return "groups" if self.bits is not None else "widths"

    @property
    def slug(self) -> str:
        if self.bits is not None:
            flat = "".join(str(b) for layer in self.bits for b in layer)
            return "g" + format(int(flat, 2), "x").zfill(math.ceil(len(flat) / 4))
        return "w" + "-".join(map(str, self.stream + self.inner))

    def groups(self) -> list[int]:
        return [2 ** (len(b) - sum(b)) for b in self.bits]

    def describe(self) -> dict:
        """The record's `variant` field."""
        if self.bits is not None:
            return {"slug": self.slug, "kind": "groups", "groups": self.groups(), "bits": [list(b) for b in self.bits]}
        return {"slug": self.slug, "kind": "widths", "stream": list(self.stream), "inner": list(self.inner)}


def groups(backbone: str, bits) -> Variant:
    bits = tuple(tuple(int(b) for b in layer) for layer in bits)
    if tuple(map(len, bits)) != gate_layout(backbone) or any(b not in (0, 1) for layer in bits for b in layer):
        raise UsageError(f"a {backbone} gate pattern has {len(gate_layout(backbone))} layers of "
                         f"{list(gate_layout(backbone))} bits (0 or 1), got {[len(b) for b in bits]}")
    return Variant(backbone, bits=bits)


def widths(backbone: str, stream, inner) -> Variant:
    n_stages, n_blocks = len(stages(backbone)), len(BLOCK_WIDTHS[backbone])
    stream, inner = tuple(int(w) for w in stream), tuple(int(w) for w in inner)
    if backbone == "resnet50" or len(stream) != n_stages or len(inner) != n_blocks or min(stream + inner) < 1:
        raise UsageError(f"widths of {backbone}: {n_stages} stage widths and {n_blocks} inner widths, all >= 1 "
                         f"(resnet20 and resnet18 only), got {list(stream)} and {list(inner)}")
    return Variant(backbone, stream=stream, inner=inner)


def default_widths(backbone: str) -> Variant:
    return widths(backbone, stages(backbone), BLOCK_WIDTHS[backbone])


def parse(backbone: str, slug: str) -> Variant:
    """The variant a slug names, or one UsageError line."""
    if not re.fullmatch(VARIANT_SLUG, slug):
        raise UsageError(f"variant {slug!r} is neither g<hex> (groups) nor w<width>-<width>-... (widths)")
    if slug.startswith("w"):
        numbers, n = [int(v) for v in slug[1:].split("-")], len(stages(backbone))
        return widths(backbone, numbers[:n], numbers[n:])
    layout = gate_layout(backbone)
    total, value = sum(layout), int(slug[1:], 16)
    if len(slug) - 1 != math.ceil(total / 4) or value >= 2 ** total:
        raise UsageError(f"variant {slug!r}: a {backbone} gate pattern is {math.ceil(total / 4)} hex digits "
                         f"({total} bits)")
    flat = format(value, "b").zfill(total)
    cuts = [sum(layout[:i]) for i in range(len(layout) + 1)]
    return groups(backbone, [[int(b) for b in flat[a:z]] for a, z in zip(cuts, cuts[1:])])


def build(variant: Variant, config=None, **kw) -> torch.nn.Module:
    """A freshly initialised PoolNet of `config` changed by `variant`; `kw` as `models.build_model` takes them
    (num_classes, bn, stem, resnet50_d1_bug, conv_init, ...)."""
    if variant.kind == "widths":
        return build_model(variant.backbone, config, widths=block_widths(variant.backbone, list(variant.stream)),
                           inner=variant.inner, **kw)
    net = to_grouped(build_model(variant.backbone, config, **kw), [list(b) for b in variant.bits])
    for block, name, _ in square_convs(net):  # the new grouped convs get the network's conv_init too
        init_convs(getattr(block, name), kw.get("conv_init", "kaiming_fan_out"))
    return net


def count(net: torch.nn.Module, image_size: int) -> tuple[int, int]:
    """(parameters, forward multiply-adds of one image) of a network, by torch's FLOP counter."""
    device = next(net.parameters()).device
    with FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 3, image_size, image_size, device=device))
    return sum(p.numel() for p in net.parameters()), counter.get_total_flops() // 2


@lru_cache(maxsize=None)
def cost(variant: Variant, config_name: str, image_size: int = 32, classes: int = 10, stem: str = "cifar",
         bn: str = "standard") -> tuple[int, int]:
    """(parameters, MACs) of a variant of a config; `bn` matters for the parameters (the released mode has fewer)."""
    with torch.device("meta"):
        net = build(variant, get_space(variant.backbone).parse(config_name), num_classes=classes, stem=stem, bn=bn)
    return count(net, image_size)


def uniform_groups(backbone: str, G: int) -> Variant:
    """G groups of adjacent channels in every square conv (nn.Conv2d(groups=G), no permutation)."""
    k = int(round(math.log2(G)))
    if 2 ** k != G or any(k > K for K in gate_layout(backbone)):
        raise UsageError(f"uniform groups must be a power of two up to {2 ** min(gate_layout(backbone))}, got {G}")
    return groups(backbone, [[0] * k + [1] * (K - k) for K in gate_layout(backbone)])


def scaled_widths(backbone: str, scale: float) -> Variant:
    """Every default width times `scale`, rounded to the nearest even integer (at least 2)."""
    base = default_widths(backbone)
    return widths(backbone, [max(2, nearest_even(w * scale)) for w in base.stream],
                  [max(2, nearest_even(w * scale)) for w in base.inner])
