import math

import pytest
import torch

from poolnas.arch.cost import count_parameters
from poolnas.arch.models import BN_MODES, build_model
from poolnas.arch.spaces import SPACES
from poolnas.errors import UsageError

R20 = SPACES["resnet20"]


def expected_side(backbone, config, size, stem="cifar"):
    downs = len(config.positions) + (2 if stem == "imagenet" else 0)
    return size // 2 ** downs


@pytest.mark.parametrize("config", list(R20), ids=lambda c: c.slug)
def test_resnet20_every_config_output_shape(config):
    model = build_model("resnet20", config, num_classes=7).eval()
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 7)
    assert model.forward_features(x).shape[-2:] == (8, 8)


def empty_batch(size):
    """A batch of zero images: the real kernels run and report output shapes without doing arithmetic."""
    return torch.zeros(0, 3, size, size)


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
@torch.no_grad()
def test_strided_backbones_every_config_ends_at_the_right_size(backbone):
    model = build_model(backbone).eval()
    for config in SPACES[backbone]:
        assert model.forward_features(empty_batch(32), config).shape[-2:] == (4, 4), config.name


@torch.no_grad()
def test_resnet50_imagenet_stem_ends_at_7x7_for_224_for_every_config():
    model = build_model("resnet50", stem="imagenet", num_classes=101).eval()
    assert model(empty_batch(224)).shape == (0, 101)
    for config in SPACES["resnet50"]:
        assert model.forward_features(empty_batch(224), config).shape[-2:] == (7, 7), config.name


@torch.no_grad()
def test_resnet50_released_bug_option_drops_a_downsampling_only_when_d_is_1():
    buggy = build_model("resnet50", resnet50_d1_bug=True).eval()
    sides = {c.name: buggy.forward_features(empty_batch(32), c).shape[-1] for c in SPACES["resnet50"]}
    assert sum(side == 8 for side in sides.values()) == 91
    assert all((side == 8) == name.endswith(",1]") for name, side in sides.items())


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_strided_backbones_run_on_real_data(backbone):
    model = build_model(backbone, num_classes=3).eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def test_all_configs_of_a_space_share_parameters():
    counts = {count_parameters(build_model("resnet20", c)) for c in list(R20)[::7]}
    assert len(counts) == 1


@pytest.mark.parametrize("bn", BN_MODES)
def test_bn_modes(bn):
    model = build_model("resnet20", bn=bn)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    affine = [m.affine for m in bns]
    if bn == "standard":
        assert all(affine) and all(m.track_running_stats for m in bns)
    elif bn == "supernet":
        assert not any(affine) and not any(m.track_running_stats for m in bns)
    else:  # released: the first BN of each block has no affine/running stats, the others are standard
        assert [b.bn1.affine for b in model.blocks] == [False] * 9
        assert all(b.bn2.affine and b.bn2.track_running_stats for b in model.blocks)
        assert model.stem[1].affine


def test_supernet_switches_config_per_forward_without_rebuilding():
    torch.manual_seed(0)
    supernet = build_model("resnet20", bn="supernet").eval()
    x = torch.randn(4, 3, 32, 32)
    for config in [R20.by_index(1), R20.by_index(24), R20.by_index(36)]:
        standalone = build_model("resnet20", config, bn="supernet").eval()
        standalone.load_state_dict(supernet.state_dict())  # same weights, config fixed at build time
        torch.testing.assert_close(supernet(x, config), standalone(x))
    # and different configs really compute different functions
    assert not torch.allclose(supernet(x, R20.by_index(1)), supernet(x, R20.by_index(36)))
    # batch statistics in eval mode: the output of one image depends on the rest of the batch
    assert not torch.allclose(supernet(x)[:1], supernet(x[:1]))


def test_supernet_config_switch_strided_backbone():
    supernet = build_model("resnet18", bn="supernet", num_classes=5)
    x = torch.randn(2, 3, 32, 32)
    shapes = {supernet.forward_features(x, c).shape for c in list(SPACES["resnet18"])[:5]}
    assert shapes == {torch.Size([2, 512, 4, 4])}


def test_gradients_reach_every_parameter():
    model = build_model("resnet20", "[1,1,8]", bn="released")
    model(torch.randn(4, 3, 32, 32)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


# --- initialisation and BN options of the released scripts (README "Options and the release") ---------

def test_conv_init_pytorch_default_is_nn_conv2d_init_and_smaller():
    """pytorch_default keeps nn.Conv2d's init (released ResNet20); kaiming_fan_out (our default) is ~2.4x larger."""
    from poolnas.arch.models import build_model

    torch.manual_seed(0)
    default = build_model("resnet20", conv_init="pytorch_default")
    torch.manual_seed(0)
    kaiming = build_model("resnet20")
    w_d, w_k = default.blocks[4].conv2.weight, kaiming.blocks[4].conv2.weight
    fan_in = w_d[0].numel()
    bound = 1 / fan_in ** 0.5  # kaiming_uniform_(a=sqrt(5)) of nn.Conv2d: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert w_d.abs().max() <= bound
    assert 2.0 < float(w_k.std() / w_d.std()) < 2.8
    with pytest.raises(UsageError):
        build_model("resnet20", conv_init="xavier")


@pytest.mark.parametrize("backbone,last", [("resnet18", "bn2"), ("resnet50", "bn3")])
def test_zero_init_residual_zeros_each_blocks_last_bn(backbone, last):
    from poolnas.arch.models import build_model

    net = build_model(backbone, zero_init_residual=True)
    assert all(float(getattr(b, last).weight.abs().sum()) == 0 for b in net.blocks)
    assert all(float(b.bn1.weight.abs().sum()) > 0 for b in net.blocks)
    assert float(build_model(backbone).blocks[0].__getattr__(last).weight.sum()) > 0


def test_stem_bn_without_affine_keeps_running_statistics():
    from poolnas.arch.models import build_model

    bn = build_model("resnet18", stem_bn_affine=False).stem[1]
    assert bn.weight is None and bn.bias is None and bn.running_mean is not None
    assert build_model("resnet18").stem[1].weight is not None


def test_cosine_t_max_epochs_plus_one():
    from poolnas.engine.optim import make_scheduler

    def lrs(**hp):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        sched = make_scheduler(opt, {"schedule": "cosine", "lr_min": 0.0, **hp}, 4)
        out = []
        for _ in range(4):
            opt.step()
            sched.step()
            out.append(opt.param_groups[0]["lr"])
        return out

    assert lrs()[-1] == pytest.approx(0.0)  # T_max = epochs: the last step reaches lr_min
    assert lrs(cosine_t_max="epochs+1")[-1] == pytest.approx(0.05 * (1 + math.cos(math.pi * 4 / 5)))
