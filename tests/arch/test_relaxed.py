"""The relaxed ResNet20 network: shapes, equality with PoolNet on configs, DARTS mixing, sharing modes, standalone."""

import pytest
import torch
import torch.nn.functional as F

from poolnas.errors import UsageError
from poolnas.arch.cost import count_macs as poolnet_macs
from poolnas.arch.cost import relaxed_macs as count_macs
from poolnas.arch.models import build_model
from poolnas.arch.relaxed import RelaxedNet, as_path, build_standalone
from poolnas.search.evaluation import evaluate_paths
from poolnas.search.evaluation import tree_forward_paths as tree_forward
from poolnas.arch.spaces import RELAXED, SPACES

R20 = SPACES["resnet20"]
NON_MONOTONE = (0, 1, 0, 2, 1, 2, 0, 2, 1)
MODES = [("shared", "same"), ("not-shared", "same"), ("not-shared", "random")]


def block_input_sizes(net, x, **kw):
    """The spatial size of each block's input (for not-shared nets: of the copy that ran)."""
    sizes = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, b=b: sizes.setdefault(b, []).append(args[0].shape[-1]))
             for b, layer in enumerate(net.blocks) for m in (layer if net.sharing == "not-shared" else [layer])]
    out = net(x, **kw)
    for h in hooks:
        h.remove()
    return out, sizes


@pytest.mark.parametrize("path", [(0, 0, 0, 1, 1, 1, 2, 2, 2), NON_MONOTONE, (2,) * 9, (0,) * 9])
def test_single_path_runs_each_block_at_its_level(path):
    torch.manual_seed(0)
    net = RelaxedNet(num_classes=7)
    out, sizes = block_input_sizes(net, torch.randn(2, 3, 32, 32), path=path)
    assert out.shape == (2, 7)
    assert [sizes[b][0] for b in range(9)] == [32 >> lv for lv in path]


def test_mixed_forward_runs_every_level_of_every_block_from_full_resolution():
    torch.manual_seed(0)
    net = RelaxedNet(num_classes=5, sharing="not-shared")
    out, sizes = block_input_sizes(net, torch.randn(2, 3, 16, 16), weights=torch.full((9, 3), 1 / 3))
    assert out.shape == (2, 5)
    assert all(sorted(sizes[b]) == [4, 8, 16] for b in range(9))
    with pytest.raises(ValueError):
        net(torch.randn(1, 3, 16, 16), weights=torch.ones(9, 2))


@pytest.mark.parametrize("config", ["4-3-3", "1-1-8", "8-1-1", "5-3-2"])
def test_a_config_path_is_poolnet_with_the_same_init_and_function(config):
    torch.manual_seed(3)
    pool = build_model("resnet20", config, num_classes=10, bn="released")
    torch.manual_seed(3)
    relaxed = build_standalone(config, num_classes=10, bn="released")
    assert relaxed.path == RELAXED.from_config(R20.parse(config))
    a, b = pool.state_dict(), relaxed.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(3, 3, 32, 32)
    pool.eval(), relaxed.eval()
    assert torch.equal(pool(x), relaxed(x))


@pytest.mark.parametrize("sharing,init", MODES)
def test_one_hot_mixing_equals_the_single_path(sharing, init):
    torch.manual_seed(1)
    net = RelaxedNet(num_classes=4, sharing=sharing, init=init)
    x = torch.randn(3, 3, 16, 16)
    for path in [NON_MONOTONE, (0, 0, 1, 1, 1, 2, 2, 2, 2), (2, 0, 2, 0, 2, 0, 1, 0, 1)]:
        one_hot = F.one_hot(torch.tensor(path), 3).float()
        assert torch.allclose(net(x, weights=one_hot), net(x, path), atol=1e-5)
    # a real mixture is the weighted sum of the per-level outputs at each block: differs from every single path
    mixed = net(x, weights=torch.full((9, 3), 1 / 3))
    assert not torch.allclose(mixed, net(x, (0,) * 9), atol=1e-4)


def test_sharing_modes_and_copy_initialisation():
    torch.manual_seed(0)
    shared = RelaxedNet(sharing="shared")
    torch.manual_seed(0)
    same = RelaxedNet(sharing="not-shared", init="same")
    torch.manual_seed(0)
    rnd = RelaxedNet(sharing="not-shared", init="random")
    n_shared = sum(p.numel() for p in shared.parameters())
    blocks = sum(p.numel() for p in shared.blocks.parameters())
    assert sum(p.numel() for p in same.parameters()) == n_shared + 2 * blocks
    for b in range(9):
        copies = [dict(same.blocks[b][lv].named_parameters()) for lv in range(3)]
        assert all(torch.equal(copies[0][k], copies[lv][k]) for lv in (1, 2) for k in copies[0])
        # copies are distinct tensors: training one leaves the others
        assert copies[0]["conv1.weight"].data_ptr() != copies[1]["conv1.weight"].data_ptr()
        r = [dict(rnd.blocks[b][lv].named_parameters()) for lv in range(3)]
        assert not torch.equal(r[0]["conv1.weight"], r[1]["conv1.weight"])
        assert not torch.equal(r[1]["conv1.weight"], r[2]["conv1.weight"])
        # level 0 of both not-shared nets is the shared net's block (same seed, PoolNet's initialisation)
        assert torch.equal(shared.blocks[b].conv1.weight, same.blocks[b][0].conv1.weight)
        assert torch.equal(shared.blocks[b].conv1.weight, rnd.blocks[b][0].conv1.weight)
    with pytest.raises(UsageError):
        RelaxedNet(sharing="partly")
    with pytest.raises(UsageError):
        RelaxedNet(init="zeros")


@pytest.mark.parametrize("sharing", ["shared", "not-shared"])
def test_tree_evaluation_equals_per_path_outputs(sharing):
    torch.manual_seed(2)
    net = RelaxedNet(num_classes=4, sharing=sharing, init="random").eval()
    paths = [RELAXED.from_config(c) for c in list(R20)[:5]] + [NON_MONOTONE, (2,) * 9, (0,) * 9]
    x = torch.randn(4, 3, 16, 16)
    seen = []
    with torch.no_grad():
        for members, logits in tree_forward(net, x, paths):
            seen += members
            for i in members:
                assert torch.allclose(logits, net(x, paths[i]), atol=1e-5)
    assert sorted(seen) == list(range(len(paths)))

    class OneBatch:
        def epoch(self, e):
            yield x, torch.tensor([0, 1, 2, 3])

    acc = evaluate_paths(net, OneBatch(), paths, torch.device("cpu"))
    with torch.no_grad():
        expected = [100.0 * (net(x, p).argmax(1) == torch.tensor([0, 1, 2, 3])).float().mean().item() for p in paths]
    assert acc.tolist() == pytest.approx(expected)


def test_standalone_training_of_a_non_monotone_architecture():
    torch.manual_seed(0)
    net = build_standalone("010212021", num_classes=3, bn="released")
    assert net.path == NON_MONOTONE and net.sharing == "shared"
    x, y = torch.randn(16, 3, 16, 16), torch.randint(0, 3, (16,))
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses = []
    net.train()
    for _ in range(6):
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
    net.eval()
    assert net(x).shape == (16, 3)


def test_macs_of_paths():
    for config in ["4-3-3", "1-1-8", "8-1-1"]:
        cfg = R20.parse(config)
        assert count_macs(RELAXED.from_config(cfg)) == poolnet_macs("resnet20", cfg)
    assert count_macs((0,) * 9) > count_macs(NON_MONOTONE) > count_macs((2,) * 9) > 0


def test_path_forms():
    assert as_path("010212021") == as_path([0, 1, 0, 2, 1, 2, 0, 2, 1]) == NON_MONOTONE
    assert as_path("[4,3,3]") == as_path(R20.default) == (0, 0, 0, 1, 1, 1, 2, 2, 2)
    for bad in [(0, 1), (0, 1, 2, 3, 0, 0, 0, 0, 0)]:
        with pytest.raises(UsageError):
            as_path(bad)
