"""DGConv2d: the Kronecker gate mask against dense and grouped convs, gradients, counts, export."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from poolnas.arch.dgconv import DGConv2d, kron_mask


def layer(channels, gates, seed=0):
    torch.manual_seed(seed)
    conv = DGConv2d(channels)
    with torch.no_grad():
        conv.gate_logits.copy_(torch.tensor([1.0 if g else -1.0 for g in gates]))
    return conv


@pytest.mark.parametrize("channels", [2, 16, 64])
def test_all_gates_one_is_the_dense_conv(channels):
    conv = layer(channels, [1] * conv_bits(channels))
    x = torch.randn(2, channels, 8, 8)
    assert torch.equal(conv(x), F.conv2d(x, conv.weight, padding=1))
    assert conv.groups == 1 and conv.connections == channels * channels


def conv_bits(channels):
    return channels.bit_length() - 1


@pytest.mark.parametrize("zeros", range(5))
def test_zero_gates_first_is_nn_conv2d_with_groups_on_the_same_weights(zeros):
    K, C = 4, 16
    conv = layer(C, [0] * zeros + [1] * (K - zeros))
    G = 2 ** zeros
    x = torch.randn(2, C, 6, 6)
    mask = kron_mask(conv.gates().detach())
    size = C // G
    blocks = torch.block_diag(*[torch.ones(size, size)] * G)
    assert torch.equal(mask, blocks)  # block diagonal of adjacent channels
    grouped = torch.nn.Conv2d(C, C, 3, padding=1, groups=G, bias=False)
    with torch.no_grad():
        grouped.weight.copy_(torch.stack([conv.weight[o, (o // size) * size:(o // size + 1) * size]
                                          for o in range(C)]))
    torch.testing.assert_close(conv(x), grouped(x), rtol=1e-5, atol=1e-5)
    assert conv.groups == G and conv.connections == 2 ** (K + K - zeros)


def test_counts_follow_their_formulas_for_every_gate_pattern():
    K, C = 4, 16
    for gates in itertools.product([0, 1], repeat=K):
        conv = layer(C, gates)
        mask = conv.mask().detach()
        assert int(mask.sum()) == conv.connections == C * 2 ** sum(gates)
        assert conv.groups == 2 ** (K - sum(gates))
        # the mask's connected classes are the groups: each row has one group's worth of ones
        assert {int(r.sum()) for r in mask} == {C // conv.groups}


def test_gates_receive_gradient_through_the_straight_through_step():
    conv = layer(8, [0, 1, 0])
    loss = conv(torch.randn(2, 8, 5, 5)).square().mean()
    loss.backward()
    assert conv.gate_logits.grad is not None and bool((conv.gate_logits.grad != 0).all())
    assert conv.weight.grad is not None


@pytest.mark.parametrize("gates", [(0, 0, 1, 1), (1, 0, 1, 0), (1, 1, 0, 0), (0, 1, 0, 1), (1, 1, 1, 1), (0, 0, 0, 0)])
def test_export_gives_the_same_outputs_as_a_real_grouped_conv(gates):
    conv = layer(16, gates, seed=3)
    x = torch.randn(3, 16, 7, 7)
    exported = conv.export()
    assert exported.conv.groups == conv.groups
    torch.testing.assert_close(exported(x), conv(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(exported(x, stride=2), conv(x, stride=2), rtol=1e-5, atol=1e-5)
    # a permutation is needed exactly when the 0-gates do not all come first
    ordered = list(gates) == sorted(gates)
    assert (exported.perm is None) == ordered


def test_non_power_of_two_widths_are_refused():
    with pytest.raises(ValueError, match="power-of-two"):
        DGConv2d(12)


def test_a_resnet20_with_dgconvs_at_gates_one_computes_the_dense_network():
    from poolnas.arch.dgconv import dgconv_layers, to_dgconv
    from poolnas.arch.models import PoolNet

    torch.manual_seed(0)
    dense = PoolNet("resnet20", bn="standard").eval()
    torch.manual_seed(0)
    gated = to_dgconv(PoolNet("resnet20", bn="standard"), gate_init=1.0).eval()
    layers = dgconv_layers(gated)
    assert len(layers) == 16  # 9 conv2 + the 7 conv1 that keep the width (the first of stages 2 and 3 change it)
    assert sum(layer.K for layer in layers) == 6 * 4 + 5 * 5 + 5 * 6 == 79  # gates per network (extensions.md: ~79)
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(gated(x), dense(x), rtol=1e-5, atol=1e-5)
    for layer in layers:
        with torch.no_grad():
            layer.gate_logits.fill_(-1.0)  # depthwise everywhere: the output changes
    assert not torch.allclose(gated(x), dense(x))
