"""Width-configurable ResNet20/18/50: default widths are today's model exactly; other widths build and count right."""

import pytest
import torch

from poolnas.arch.cost import count_parameters
from poolnas.arch.models import BLOCK_WIDTHS, STEM_WIDTH, PoolNet, block_widths
from poolnas.errors import UsageError


@pytest.mark.parametrize("backbone", ["resnet20", "resnet18", "resnet50"])
def test_default_widths_give_todays_model_exactly(backbone):
    torch.manual_seed(0)
    today = PoolNet(backbone, num_classes=10, bn="released")
    torch.manual_seed(0)
    inner = None if backbone == "resnet50" else tuple(BLOCK_WIDTHS[backbone])
    explicit = PoolNet(backbone, num_classes=10, bn="released", widths=tuple(BLOCK_WIDTHS[backbone]), inner=inner)
    if backbone == "resnet20":
        assert STEM_WIDTH[backbone] == BLOCK_WIDTHS[backbone][0]
        assert count_parameters(PoolNet(backbone, widths=tuple(BLOCK_WIDTHS[backbone]))) == 272474  # `poolnas space`
        assert count_parameters(today) == 271802  # with the released BN: the params of every committed record
    a, b = today.state_dict(), explicit.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_other_widths_build_with_projections_where_widths_change():
    widths = block_widths("resnet20", [24, 40, 80])
    inner = (8, 16, 24, 32, 40, 48, 56, 64, 72)
    net = PoolNet("resnet20", num_classes=10, widths=widths, inner=inner)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    assert [b.conv1.out_channels for b in net.blocks] == list(inner)
    assert [b.shortcut.proj is not None for b in net.blocks] == [False, False, False, True, False, False, True,
                                                                  False, False]
    convs = 3 * 24 * 9 + sum(c_in * m * 9 + m * c_out * 9 for c_in, m, c_out in
                             zip((24,) + widths[:-1], inner, widths))
    projections = 24 * 40 + 40 * 80
    assert count_parameters(net) == convs + projections + sum(
        p.numel() for n, p in net.named_parameters() if "bn" in n or n.startswith(("fc", "stem.1")))


def test_bad_widths_get_one_clear_error():
    with pytest.raises(UsageError, match="9 positive widths"):
        PoolNet("resnet20", widths=(16, 32))
    with pytest.raises(UsageError, match="3 stages"):
        block_widths("resnet20", [16, 32])
    with pytest.raises(UsageError, match="resnet20 and resnet18"):
        PoolNet("resnet50", inner=tuple(BLOCK_WIDTHS["resnet50"]))


@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
def test_narrow_resnet50_runs_every_config_and_its_macs_are_counted_at_its_widths(stem):
    from poolnas.arch.cost import count_macs
    from poolnas.arch.models import build_model
    from poolnas.arch.spaces import get_space

    net = build_model("resnet50", "1-1-1-13", num_classes=4, stem=stem, stage_widths=[4, 8, 8, 16])
    assert [b.conv2.out_channels for b in net.blocks] == [4] * 3 + [8] * 10 + [16] * 3
    assert [b.conv3.out_channels for b in net.blocks][-1] == 64 and net.fc.in_features == 64
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    default = get_space("resnet50").default
    narrow, wide = (count_macs("resnet50", default, 32, 4, stem, w) for w in ([4, 8, 8, 16], None))
    assert wide == count_macs("resnet50", default, 32, 4, stem) and 0 < narrow < wide / 100
    # a stage of 1x1 pixels (three downsamplings after the ImageNet stem's four) is counted too
    assert count_macs("resnet50", get_space("resnet50").parse("1-1-1-13"), 32, 4, "imagenet") > 0
