"""Width-configurable ResNet20/18: default widths are today's model exactly; other widths build and count right."""

import pytest
import torch

from poolnas.arch.cost import count_parameters
from poolnas.arch.models import BLOCK_WIDTHS, STEM_WIDTH, PoolNet, stage_widths
from poolnas.errors import UsageError


@pytest.mark.parametrize("backbone", ["resnet20", "resnet18"])
def test_default_widths_give_todays_model_exactly(backbone):
    torch.manual_seed(0)
    today = PoolNet(backbone, num_classes=10, bn="released")
    torch.manual_seed(0)
    explicit = PoolNet(backbone, num_classes=10, bn="released", widths=tuple(BLOCK_WIDTHS[backbone]),
                       inner=tuple(BLOCK_WIDTHS[backbone]))
    if backbone == "resnet20":
        assert STEM_WIDTH[backbone] == BLOCK_WIDTHS[backbone][0]
        assert count_parameters(PoolNet(backbone, widths=tuple(BLOCK_WIDTHS[backbone]))) == 272474  # `poolnas space`
        assert count_parameters(today) == 271802  # with the released BN: the params of every committed record
    a, b = today.state_dict(), explicit.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_other_widths_build_with_projections_where_widths_change():
    widths = stage_widths("resnet20", [24, 40, 80])
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
        stage_widths("resnet20", [16, 32])
    with pytest.raises(UsageError, match="resnet20 and resnet18"):
        PoolNet("resnet50", widths=tuple(BLOCK_WIDTHS["resnet50"]))
