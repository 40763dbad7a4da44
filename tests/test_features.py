"""feature_maps: the layer's output, untouched by in-place ops downstream, detached."""

from __future__ import annotations

import pytest
import torch

from convlens.features import feature_maps


def test_conv_before_inplace_relu_keeps_negative_values(attribution_alexnet):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    maps = feature_maps(attribution_alexnet, x, "features.0")
    with torch.no_grad():
        expected = attribution_alexnet.features[0](x)
    torch.testing.assert_close(maps, expected)
    assert (maps < 0).any()  # the in-place ReLU after the conv did not overwrite it
    assert not maps.requires_grad


def test_layer_by_module_and_shape(attribution_resnet18):
    x = torch.randn(1, 3, 64, 64)
    maps = feature_maps(attribution_resnet18, x, attribution_resnet18.layer2)
    assert maps.shape == (1, 128, 8, 8)
    torch.testing.assert_close(maps, feature_maps(attribution_resnet18, x, "layer2"))


def test_result_is_a_copy_detached_from_graph(attribution_resnet18):
    x = torch.randn(1, 3, 64, 64, requires_grad=True)
    maps = feature_maps(attribution_resnet18, x, "layer1")
    assert maps.grad_fn is None and not maps.requires_grad


def test_errors(attribution_resnet18):
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError, match="unknown layer name"):
        feature_maps(attribution_resnet18, x, "layer7")
    with pytest.raises(ValueError, match="called 2 times"):
        feature_maps(attribution_resnet18, x, "layer1.1.relu")
    with pytest.raises(ValueError, match="4 dimensions"):
        feature_maps(attribution_resnet18, x[0], "layer1")


def test_old_argument_order_is_named(attribution_resnet18):
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(TypeError, match=r"\(model, x, layer\)"):
        feature_maps(attribution_resnet18, "layer1", x)
    with pytest.raises(TypeError, match=r"\(model, x, layer\)"):
        feature_maps(attribution_resnet18, attribution_resnet18.layer1, x)


# ---- saturation: the units at the ends of a clamp's range ---------------------------------

def test_saturation_counts_by_hand():
    from convlens.features import saturation

    class Clamps(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.relu6 = torch.nn.ReLU6(inplace=True)
            self.relu = torch.nn.ReLU()
            self.tanh_like = torch.nn.Hardtanh(-1.0, 1.0)

        def forward(self, x):
            return self.tanh_like(self.relu(self.relu6(x) - 3.0))

    # one example [1, 1, 2, 4]: ReLU6 gives 0, 0, 2, 6, 6, 6, 0.5, 3
    x = torch.tensor([-5.0, 0.0, 2.0, 6.0, 9.0, 7.5, 0.5, 3.0]).view(1, 1, 2, 4)
    stats = saturation(Clamps(), x)
    assert list(stats) == ["relu6", "relu", "tanh_like"]
    six = stats["relu6"]
    assert (six.lower, six.upper, six.units, six.at_lower, six.at_upper) == (0.0, 6.0, 8, 2, 3)
    assert six.share_without_gradient == 5 / 8
    # relu6 - 3 = -3, -3, -1, 3, 3, 3, -2.5, 0 -> ReLU: five at 0 (the last one exactly 0)
    assert (stats["relu"].at_lower, stats["relu"].at_upper, stats["relu"].upper) == (5, 0, None)
    # then Hardtanh(-1, 1): 0, 0, 0, 1, 1, 1, 0, 0 -> none at -1, three at 1
    assert (stats["tanh_like"].at_lower, stats["tanh_like"].at_upper) == (0, 3)


def test_saturation_zero_gradient_at_the_ceiling():
    """What the counts mean: a unit at ReLU6's ceiling passes no gradient."""
    from convlens.features import saturation

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1, bias=False), torch.nn.ReLU6())
    with torch.no_grad():
        net[0].weight.fill_(1.0)
    x = torch.tensor([[[[-1.0, 3.0, 8.0]]]], requires_grad=True)
    (g,) = torch.autograd.grad(net(x).sum(), x)
    stats = saturation(net, x.detach())["1"]
    assert g.flatten().tolist() == [0.0, 1.0, 0.0]
    assert stats.at_lower + stats.at_upper == int((g == 0).sum())


def test_saturation_shared_module_and_batch(attribution_resnet18):
    from convlens.features import saturation

    x = torch.randn(2, 3, 32, 32)
    stats = saturation(attribution_resnet18, x)
    # torchvision's BasicBlock calls its one relu twice: both calls are counted
    first_block = stats["layer1.0.relu"]
    assert first_block.units == 2 * 2 * 64 * 8 * 8
    assert first_block.upper is None and first_block.at_upper == 0
    assert 0 < first_block.at_lower < first_block.units


def test_saturation_errors():
    from convlens.features import saturation

    with pytest.raises(ValueError, match="no clamping activation"):
        saturation(torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.SiLU()),
                   torch.randn(1, 3, 4, 4))
    with pytest.raises(ValueError, match="4 dimensions"):
        saturation(torch.nn.Sequential(torch.nn.ReLU()), torch.randn(3, 4, 4))
