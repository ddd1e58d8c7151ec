"""Variants of a config (issue 17): slugs round-trip, grouped networks keep a DGConv pattern's function class, costs
follow the group count and the widths, and bad slugs get one clear error."""

import copy
import random

import pytest
import torch

from poolnas.arch import variants
from poolnas.arch.cost import count_macs, count_parameters
from poolnas.arch.dgconv import GroupedConv, dgconv_layers, gate_bits, square_convs, to_dgconv
from poolnas.arch.models import build_model
from poolnas.arch.spaces import SPACES
from poolnas.errors import UsageError

R20 = SPACES["resnet20"]


def random_bits(seed):
    rng = random.Random(seed)
    return [[rng.randint(0, 1) for _ in range(K)] for K in variants.gate_layout("resnet20")]


@pytest.mark.parametrize("seed", range(5))
def test_group_and_width_slugs_round_trip(seed):
    g = variants.groups("resnet20", random_bits(seed))
    assert variants.parse("resnet20", g.slug) == g and g.slug.startswith("g")
    rng = random.Random(seed)
    w = variants.widths("resnet20", [rng.randrange(2, 90, 2) for _ in range(3)],
                        [rng.randrange(2, 90, 2) for _ in range(9)])
    assert variants.parse("resnet20", w.slug) == w
    assert g.describe()["groups"] == [2 ** (len(b) - sum(b)) for b in g.bits]


def test_resnet20_carries_79_gates_in_16_square_convs():
    assert variants.gate_layout("resnet20") == (4,) * 6 + (5,) * 5 + (6,) * 5
    assert variants.uniform_groups("resnet20", 1).slug == "g" + format(2 ** 79 - 1, "x")


@pytest.mark.parametrize("slug, message", [("x12", "neither"), ("g123", "20 hex digits"), ("w16-32", "3 stage widths"),
                                           ("g" + "f" * 20, "20 hex digits")])
def test_bad_slugs_get_one_clear_error(slug, message):
    with pytest.raises(UsageError, match=message) as err:
        variants.parse("resnet20", slug)
    assert "\n" not in str(err.value)


def test_a_grouped_variant_has_the_groups_and_channel_order_of_its_gate_pattern():
    torch.manual_seed(0)
    gated = to_dgconv(build_model("resnet20", R20.default, bn="standard"))
    bits = random_bits(3)
    for layer, b in zip(dgconv_layers(gated), bits):
        with torch.no_grad():
            layer.gate_logits.copy_(torch.tensor([1.0 if g else -1.0 for g in b]))
    assert gate_bits(gated) == bits
    variant = variants.groups("resnet20", bits)
    net = variants.build(variant, R20.default, bn="standard")
    layers = [getattr(block, name) for block, name, _ in square_convs(net)]
    assert all(isinstance(layer, GroupedConv) for layer in layers)
    for layer, dg in zip(layers, dgconv_layers(gated)):
        exported = dg.export()  # the learned layer as a real grouped conv: same groups, same channel order
        assert layer.conv.groups == dg.groups == exported.conv.groups
        assert (layer.perm is None) == (exported.perm is None)
        if layer.perm is not None:
            assert torch.equal(layer.perm, exported.perm)
    # the learned network, each gated layer exported, computes what it computed: the grouped form is exact
    exported = copy.deepcopy(gated)
    for block, name, _ in square_convs(exported):
        setattr(block, name, getattr(block, name).export())
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(exported.eval()(x), gated.eval()(x), rtol=1e-4, atol=1e-4)


def test_uniform_groups_divide_the_square_convs_cost_by_g():
    macs = {G: variants.cost(variants.uniform_groups("resnet20", G), "[4,3,3]", 16)[1] for G in (1, 2, 4, 8)}
    params = {G: variants.cost(variants.uniform_groups("resnet20", G), "[4,3,3]", 16)[0] for G in (1, 2, 4, 8)}
    assert macs[1] == count_macs("resnet20", R20.default, 16)  # G = 1 is the dense network
    assert params[1] == count_parameters(build_model("resnet20"))
    # cost(G) = rest + square / G: each halving saves half of what the last one saved
    assert macs[1] - macs[2] == 2 * (macs[2] - macs[4]) == 4 * (macs[4] - macs[8])
    square = sum(9 * C * C for _, _, C in square_convs(build_model("resnet20")))
    assert params[1] - params[2] == square // 2
    with pytest.raises(UsageError, match="power of two up to 16"):
        variants.uniform_groups("resnet20", 32)


def test_default_widths_are_the_plain_network_and_widths_scale_the_cost():
    default = variants.default_widths("resnet20")
    torch.manual_seed(1)
    plain = build_model("resnet20", "[8,1,1]", bn="standard")
    torch.manual_seed(1)
    same = variants.build(default, "[8,1,1]", bn="standard")
    a, b = plain.state_dict(), same.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert variants.scaled_widths("resnet20", 1.0) == default
    assert variants.cost(default, "[8,1,1]", 16) == (count_parameters(plain),
                                                     count_macs("resnet20", R20.parse("[8,1,1]"), 16))
    small, large = (variants.cost(variants.scaled_widths("resnet20", s), "[4,3,3]", 16) for s in (0.5, 1.5))
    assert small[0] < 272474 < large[0] and small[1] < count_macs("resnet20", R20.default, 16) < large[1]
    assert variants.cost(default, "[4,3,3]", 16, bn="released")[0] == 271802  # as the standalone records count


def test_conv_init_reaches_the_new_grouped_convs():
    torch.manual_seed(0)
    net = variants.build(variants.uniform_groups("resnet20", 4), R20.default, conv_init="kaiming_fan_out")
    layer = getattr(*square_convs(net)[-1][:2]).conv  # 64 channels, 4 groups: kaiming fan_out = 64 * 9
    assert abs(float(layer.weight.detach().std()) - (2 / (64 * 9)) ** 0.5) < 0.1 * (2 / (64 * 9)) ** 0.5
