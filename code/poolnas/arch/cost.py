"""What a configuration costs: parameters, and forward multiply-adds by torch's own FLOP counter.

Counting runs on weightless models (the meta device), part by part (stem, each block, head) and cached per
(part, input shape), so the 36 ResNet20 configs cost 27 block counts, not 324, and the workflow's runtime
estimates stay cheap.
"""

from __future__ import annotations

from functools import lru_cache

import pandas as pd
import torch
from torch import nn

from poolnas.arch.models import PoolNet, block_widths
from poolnas.arch.relaxed import RelaxedNet, as_path
from poolnas.arch.spaces import Config


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@lru_cache(maxsize=None)
def _meta_model(backbone: str, classes: int, stem: str, widths: tuple[int, ...] | None = None) -> PoolNet:
    """A weightless model (meta device) for counting: one serves every config of the space. In eval mode, so
    that a map of 1x1 pixels (ResNet50's last stage on small inputs) counts at batch 1 (training-mode BN refuses
    one value per channel); BN's own operations are not counted either way."""
    with torch.device("meta"):
        return PoolNet(backbone, num_classes=classes, stem=stem, widths=widths).eval()


@lru_cache(maxsize=None)
def _part_macs(backbone: str, classes: int, stem: str, part: str, shape: tuple[int, ...], block: int = 0,
               down: bool = False, widths: tuple[int, ...] | None = None) -> tuple[int, tuple[int, ...]]:
    """Multiply-adds and output shape of one part of the network (stem, one block, head) for an input shape.
    A block's count depends only on its input shape and whether it downsamples, so counting part by part
    reuses each count across the configs of a space (36 ResNet20 configs: 27 block counts, not 324)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = _meta_model(backbone, classes, stem, widths)
    run = {"stem": model.stem, "head": model.head, "block": lambda x: model.run_block(block, x, down)}[part]
    with FlopCounterMode(display=False) as counter:
        out = run(torch.zeros(shape, device="meta"))
    return counter.get_total_flops() // 2, tuple(out.shape)  # torch counts a multiply-add as 2 FLOPs


def _macs(backbone: str, positions: tuple[int, ...], image_size: int, classes: int, stem: str,
          widths: tuple[int, ...] | None = None) -> int:
    total, shape = _part_macs(backbone, classes, stem, "stem", (1, 3, image_size, image_size), widths=widths)
    for i, down in enumerate(_meta_model(backbone, classes, stem, widths).downsamples(positions)):
        macs, shape = _part_macs(backbone, classes, stem, "block", shape, i, down, widths)
        total += macs
    return total + _part_macs(backbone, classes, stem, "head", shape, widths=widths)[0]


def count_macs(backbone: str, config: Config, image_size: int = 32, classes: int = 10, stem: str = "cifar",
               stage_widths: list[int] | None = None) -> int:
    """Forward multiply-adds for one image (convs and the linear head), by torch's own FLOP counter; at one width
    per stage when given (models.block_widths), else the paper's widths."""
    widths = None if stage_widths is None else block_widths(backbone, stage_widths)
    return _macs(backbone, config.positions, image_size, classes, stem, widths)


def cost_table(backbone: str, configs: list[Config], image_size: int = 32, classes: int = 10,
               stem: str = "cifar") -> pd.DataFrame:
    """index, name, code, params, macs for each config (parameters are the same for all configs)."""
    params = count_parameters(_meta_model(backbone, classes, stem))
    rows = [{"index": c.index, "name": c.name, "code": c.code, "params": params,
             "macs": count_macs(backbone, c, image_size, classes, stem)} for c in configs]
    return pd.DataFrame(rows, columns=["index", "name", "code", "params", "macs"])


# --- the relaxed ResNet20 space ----------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _meta_net(classes: int) -> RelaxedNet:
    with torch.device("meta"):
        return RelaxedNet(classes, bn="standard")


def relaxed_macs(path, image_size: int = 32, classes: int = 10) -> int:
    """Forward multiply-adds of one image through a single path (convs and the head; pooling/upsampling free),
    by torch's FLOP counter as `count_macs`; equal to it for a path that is a ResNet20 config."""
    return _relaxed_macs(as_path(path), image_size, classes)


@lru_cache(maxsize=None)
def _relaxed_macs(path: tuple[int, ...], image_size: int, classes: int) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, image_size, image_size, device="meta")
    with FlopCounterMode(display=False) as counter:
        _meta_net(classes)(x, path)
    return counter.get_total_flops() // 2


