"""Backbones whose downsampling positions come from a search-space config (paper.md section 2).

One class, `PoolNet`, covers ResNet20 (2x2 max pools before chosen layers), ResNet18-CIFAR and ResNet50
(stride 2 in chosen blocks). Channel widths are fixed by unit index whatever the config, so every config of a
space has the same parameters, and one set of weights can run any config: `model(x, positions)` switches the
config per forward pass without rebuilding. That is the SuperNet.

BatchNorm modes:
    standard  affine BN with running statistics.
    released  as the released ResNet20 standalone model: the first BN of each block has no affine parameters
              and always uses batch statistics; the others are standard.
    supernet  no affine parameters, batch statistics always (train and eval), as the released SuperNets.

Initialisation and BN details that differ between the released scripts (named options, recorded in every record's
`options`; the README table "Options and the release" says which released script each value comes from):
    conv_init           kaiming_fan_out  every conv kaiming_normal_(fan_out, relu) (torchvision's ResNets; our
                                         default in smoke and mini)
                        pytorch_default  nn.Conv2d's own init (kaiming_uniform_, a = sqrt(5)): the released ResNet20
    zero_init_residual  the last BN weight of each block (bn2 basic, bn3 bottleneck) starts at 0 (released
                        ResNet18/50 scripts); only where that BN is affine
    stem_bn_affine      False: the stem's BN without affine parameters, running statistics kept (released ResNet18)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from poolnas.errors import UsageError
from poolnas.arch.spaces import Config, get_space

BN_MODES = ("standard", "released", "supernet")
CONV_INITS = ("kaiming_fan_out", "pytorch_default")
ARCH_DEFAULTS = {"conv_init": "kaiming_fan_out", "zero_init_residual": False, "stem_bn_affine": True}


def arch_options(hp: dict) -> dict:
    """The initialisation/BN options of a protocol or search section (schema defaults where absent), and its
    `stage_widths` where it narrows the network (`width_option`)."""
    return {**{k: hp.get(k, v) for k, v in ARCH_DEFAULTS.items()}, **width_option(hp)}


def width_option(hp: dict) -> dict:
    """{"stage_widths": [...]} of a section that sets them, else {}: build_model's keyword and a record's option
    (records of the paper's widths gain no key)."""
    return {"stage_widths": list(hp["stage_widths"])} if hp.get("stage_widths") else {}
STEMS = ("cifar", "imagenet")

# Widths per block (ResNet50: bottleneck middle width; its output is 4x that).
BLOCK_WIDTHS = {
    "resnet20": [16] * 3 + [32] * 3 + [64] * 3,
    "resnet18": [64] * 2 + [128] * 2 + [256] * 2 + [512] * 2,
    "resnet50": [64] * 3 + [128] * 4 + [256] * 6 + [512] * 3,
}
STEM_WIDTH = {"resnet20": 16, "resnet18": 64, "resnet50": 64}


def block_widths(backbone: str, per_stage: list[int]) -> tuple[int, ...]:
    """Per-block widths (ResNet50: the bottlenecks' inner width) from one width per stage (a stage: the blocks of
    one default width)."""
    defaults = BLOCK_WIDTHS[backbone]
    stages = list(dict.fromkeys(defaults))
    if len(per_stage) != len(stages):
        raise UsageError(f"{backbone} has {len(stages)} stages, got {len(per_stage)} widths")
    return tuple(per_stage[stages.index(w)] for w in defaults)


def batchnorm(channels: int, mode: str, affine: bool = True) -> nn.BatchNorm2d:
    if mode == "supernet":
        return nn.BatchNorm2d(channels, affine=False, track_running_stats=False)
    return nn.BatchNorm2d(channels, affine=affine)


def init_convs(module: nn.Module, conv_init: str) -> None:
    """Re-initialise every conv of `module` (kaiming_fan_out) or keep nn.Conv2d's own init (pytorch_default)."""
    if conv_init not in CONV_INITS:
        raise UsageError(f"unknown conv_init {conv_init!r}; known: {', '.join(CONV_INITS)}")
    if conv_init == "kaiming_fan_out":
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def zero_last_bn(block: nn.Module) -> None:
    """Start a residual block as the identity: its last BN's weight at 0 (when that BN is affine)."""
    last = block.bn3 if isinstance(block, Bottleneck) else block.bn2
    if last.weight is not None:
        nn.init.zeros_(last.weight)


class Conv(nn.Conv2d):
    """A bias-free conv whose stride is chosen per call, so a SuperNet can switch configs without rebuilding."""

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__(c_in, c_out, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
        return F.conv2d(x, self.weight, None, stride, self.padding)


class Shortcut(nn.Module):
    """Identity (subsampled when the block strides) or, where the width changes, a 1x1 conv + BN projection."""

    def __init__(self, c_in: int, c_out: int, bn: str):
        super().__init__()
        self.proj = Conv(c_in, c_out, 1) if c_in != c_out else None
        self.bn = batchnorm(c_out, bn) if c_in != c_out else None

    def forward(self, x: torch.Tensor, stride: int) -> torch.Tensor:
        if self.proj is None:
            return x[:, :, ::stride, ::stride] if stride > 1 else x
        return self.bn(self.proj(x, stride))


class BasicBlock(nn.Module):
    """conv3x3 (c_in -> inner) - BN - ReLU - conv3x3 (inner -> c_out) - BN, + shortcut; inner defaults to c_out."""

    def __init__(self, c_in: int, c_out: int, bn: str, inner: int | None = None):
        super().__init__()
        inner = c_out if inner is None else inner
        self.conv1, self.bn1 = Conv(c_in, inner, 3), batchnorm(inner, "supernet" if bn == "released" else bn)
        self.conv2, self.bn2 = Conv(inner, c_out, 3), batchnorm(c_out, "standard" if bn == "released" else bn)
        self.shortcut = Shortcut(c_in, c_out, "standard" if bn == "released" else bn)

    def forward(self, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x, stride)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x, stride))


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: the stride sits on the 3x3 conv."""

    def __init__(self, c_in: int, width: int, bn: str):
        super().__init__()
        c_out = 4 * width
        rest = "standard" if bn == "released" else bn
        self.conv1, self.bn1 = Conv(c_in, width, 1), batchnorm(width, "supernet" if bn == "released" else bn)
        self.conv2, self.bn2 = Conv(width, width, 3), batchnorm(width, rest)
        self.conv3, self.bn3 = Conv(width, c_out, 1), batchnorm(c_out, rest)
        self.shortcut = Shortcut(c_in, c_out, rest)

    def forward(self, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out, stride)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x, stride))


class PoolNet(nn.Module):
    """A ResNet of one search space; `positions` (unit indices that downsample) may change per forward pass."""

    def __init__(self, backbone: str, config: Config | None = None, num_classes: int = 10, bn: str = "standard",
                 stem: str = "cifar", resnet50_d1_bug: bool = False, conv_init: str = "kaiming_fan_out",
                 zero_init_residual: bool = False, stem_bn_affine: bool = True,
                 widths: tuple[int, ...] | None = None, inner: tuple[int, ...] | None = None):
        """`widths`: the residual stream's width per block (ResNet50: each bottleneck's inner width, its output 4x)
        and the stem's (the first block's), `inner`: each block's inner width (ResNet20/18 only); default: today's
        fixed widths, the same modules in the same order, so the same initial weights. A projection shortcut sits
        wherever a block's input and output widths differ."""
        super().__init__()
        space = get_space(backbone)
        if bn not in BN_MODES:
            raise UsageError(f"unknown BN mode {bn!r}; known: {', '.join(BN_MODES)}")
        if stem not in STEMS or (stem == "imagenet" and backbone != "resnet50"):
            raise UsageError(f"stem {stem!r} is not available for {backbone}; resnet50 takes cifar or imagenet, "
                             "the others cifar")
        if num_classes < 1:
            raise UsageError(f"num_classes must be >= 1, got {num_classes}")
        self.backbone, self.space, self.bn_mode = backbone, space, bn
        self.resnet50_d1_bug = resnet50_d1_bug
        # ResNet20/18 count the stem as unit 0; ResNet50's units are its blocks.
        self.unit_offset = 1 if backbone in ("resnet20", "resnet18") else 0
        self.downsample = "maxpool" if backbone == "resnet20" else "stride"

        stem_bn = "standard" if bn == "released" else bn
        if inner is not None and backbone == "resnet50":
            raise UsageError("inner widths are implemented for resnet20 and resnet18 (basic blocks) only")
        n = len(BLOCK_WIDTHS[backbone])
        for name, given in (("widths", widths), ("inner", inner)):
            if given is not None and (len(given) != n or min(given) < 1):
                raise UsageError(f"{name} must give {n} positive widths for {backbone}, got {list(given)}")
        block_widths = list(widths) if widths is not None else BLOCK_WIDTHS[backbone]
        inner = list(inner) if inner is not None else [None] * n
        c = block_widths[0] if widths is not None else STEM_WIDTH[backbone]
        if stem == "imagenet":
            self.stem = nn.Sequential(nn.Conv2d(3, c, 7, 2, 3, bias=False), batchnorm(c, stem_bn, stem_bn_affine),
                                      nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 1, 1, bias=False), batchnorm(c, stem_bn, stem_bn_affine),
                                      nn.ReLU(inplace=True))
        blocks = []
        for width, mid in zip(block_widths, inner):
            block = Bottleneck(c, width, bn) if backbone == "resnet50" else BasicBlock(c, width, bn, mid)
            c = 4 * width if backbone == "resnet50" else width
            blocks.append(block)
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(c, num_classes)
        self.positions = self.resolve(config if config is not None else space.default)
        init_convs(self, conv_init)
        if zero_init_residual:
            for block in self.blocks:
                zero_last_bn(block)

    def resolve(self, config: Config | tuple[int, ...]) -> tuple[int, ...]:
        """Downsampling positions of a config, applying the released ResNet50 indexing bug when asked."""
        if isinstance(config, Config):
            config = self.space.parse(config)
            positions = config.positions
            if self.resnet50_d1_bug and self.backbone == "resnet50" and config.parts[-1] == 1:
                positions = positions[:-1]  # the released code lost the last downsampling when d = 1
            return positions
        return tuple(config)

    def forward_features(self, x: torch.Tensor, config: Config | tuple[int, ...] | None = None) -> torch.Tensor:
        """The last feature map, before global pooling."""
        positions = self.positions if config is None else self.resolve(config)
        x = self.stem(x)
        for i, down in enumerate(self.downsamples(positions)):
            x = self.run_block(i, x, down)
        return x

    def downsamples(self, positions: tuple[int, ...]) -> list[bool]:
        """Whether each block downsamples its input, for resolved positions."""
        return [(i + self.unit_offset) in positions for i in range(len(self.blocks))]

    def run_block(self, i: int, x: torch.Tensor, down: bool) -> torch.Tensor:
        if self.downsample == "maxpool":
            return self.blocks[i](F.max_pool2d(x, 2) if down else x)
        return self.blocks[i](x, 2 if down else 1)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def forward(self, x: torch.Tensor, config: Config | tuple[int, ...] | None = None) -> torch.Tensor:
        return self.head(self.forward_features(x, config))


def build_model(backbone: str, config: Config | str | None = None, num_classes: int = 10, bn: str = "standard",
                stem: str = "cifar", resnet50_d1_bug: bool = False, stage_widths: list[int] | None = None,
                **arch) -> PoolNet:
    """A standalone network (or, with bn='supernet', a SuperNet that any config can run through); `arch`: the
    options of `arch_options` (conv_init, zero_init_residual, stem_bn_affine); `stage_widths`: one width per
    stage (`block_widths`), default the paper's."""
    space = get_space(backbone)
    cfg = space.parse(config) if config is not None else space.default
    # per-block `widths` (and `inner`) from a variant (issue 17) pass through `arch`; `stage_widths` is a profile's
    widths = arch.pop("widths", None) if stage_widths is None else block_widths(backbone, stage_widths)
    return PoolNet(backbone, cfg, num_classes=num_classes, bn=bn, stem=stem, resnet50_d1_bug=resnet50_d1_bug,
                   widths=widths, **arch)
