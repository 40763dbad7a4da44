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
