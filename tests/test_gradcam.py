"""Grad-CAM and guided Grad-CAM against direct computations written here."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convlens.cam import gradcam, guided_gradcam
from convlens.guided import guided_backprop


class TwoChannelNet(nn.Module):
    """A = identity feature map (2 channels); logit k = sum(v_k * A) + relu part.

    For a linear head dy/dA_c = v_kc everywhere, so alpha_c = mean(v_kc) and the map is
    relu(sum_c alpha_c A_c): all hand-computable.
    """

    def __init__(self):
        super().__init__()
        self.features = nn.Identity()
        self.head = nn.Parameter(torch.tensor([[[[1.0, 3.0], [1.0, 3.0]], [[-1.0, -1.0], [-1.0, -1.0]]],
                                               [[[0.0, 0.0], [0.0, 0.0]], [[2.0, 2.0], [2.0, 2.0]]]]))

    def forward(self, x):
        return torch.einsum("nchw,kchw->nk", self.features(x), self.head)


def test_hand_computed_map_per_example_targets():
    x = torch.tensor([[[[1.0, 2.0], [0.0, -4.0]], [[1.0, 1.0], [5.0, 0.0]]]]).repeat(2, 1, 1, 1)
    # target 0: alpha = [2, -1] -> 2*A0 - A1 = [[1, 3], [-5, -8]] -> relu
    # target 1: alpha = [0, 2]  -> 2*A1 = [[2, 2], [10, 0]]
    cam = gradcam(TwoChannelNet(), x, [0, 1], "features", upsample=False)
    expected = torch.tensor([[[[1.0, 3.0], [0.0, 0.0]]], [[[2.0, 2.0], [10.0, 0.0]]]])
    torch.testing.assert_close(cam, expected)


def direct_gradcam(model, layer, x, target):
    """Grad-CAM computed with a hook written here, and the map formula typed out."""
    stored = []
    handle = layer.register_forward_hook(lambda m, i, out: stored.append(out))
    try:
        x = x.clone().requires_grad_(True)
        logits = model(x)
    finally:
        handle.remove()
    (activation,) = stored
    score = logits[torch.arange(len(x)), torch.as_tensor(target)].sum()
    (grad,) = torch.autograd.grad(score, activation)
    maps = []
    for n in range(len(x)):
        total = torch.zeros(activation.shape[2:])
        for k in range(activation.shape[1]):
            total = total + grad[n, k].mean() * activation[n, k]
        maps.append(total.clamp(min=0))
    return torch.stack(maps)[:, None].detach()


def test_resnet18_layer4_equals_direct(attribution_resnet18):
    torch.manual_seed(0)
    x, target = torch.randn(2, 3, 64, 64), [4, 8]
    expected = direct_gradcam(attribution_resnet18, attribution_resnet18.layer4, x, target)
    cam = gradcam(attribution_resnet18, x, target, "layer4", upsample=False)
    assert cam.shape == (2, 1, 2, 2)
    assert cam.sum() > 0
    torch.testing.assert_close(cam, expected, rtol=1e-4, atol=1e-6)
    same_by_module = gradcam(attribution_resnet18, x, target, attribution_resnet18.layer4, upsample=False)
    torch.testing.assert_close(same_by_module, cam)


def test_alexnet_conv_before_inplace_relu_equals_split_model(attribution_alexnet):
    # features.10 is a conv followed by ReLU(inplace=True): the map must use the pre-ReLU A.
    model = attribution_alexnet
    torch.manual_seed(0)
    x = torch.randn(1, 3, 96, 96)
    activation = model.features[:11](x).detach().requires_grad_(True)
    tail = nn.Sequential(model.features[11:], model.avgpool, nn.Flatten(), model.classifier)
    (grad,) = torch.autograd.grad(tail(activation * 1)[0, 7], activation)
    expected = F.relu((grad.mean(dim=(2, 3), keepdim=True) * activation).sum(1, keepdim=True))
    assert (activation < 0).any()
    cam = gradcam(model, x, 7, "features.10", upsample=False)
    torch.testing.assert_close(cam, expected.detach(), rtol=1e-4, atol=1e-6)


def test_upsampling_is_bilinear_to_input_height_width(attribution_resnet18):
    torch.manual_seed(1)
    x = torch.randn(1, 3, 64, 96)  # not square: (H, W) order matters
    small = gradcam(attribution_resnet18, x, 3, "layer3", upsample=False)
    big = gradcam(attribution_resnet18, x, 3, "layer3")
    assert small.shape == (1, 1, 4, 6) and big.shape == (1, 1, 64, 96)
    torch.testing.assert_close(big, F.interpolate(small, size=(64, 96), mode="bilinear",
                                                  align_corners=False))
    assert big.max() > 0 and big.min() >= 0  # raw values, not normalised to [0, 1]


def test_batch_with_different_targets_equals_per_example(attribution_resnet18):
    torch.manual_seed(2)
    x, target = torch.randn(3, 3, 64, 64), torch.tensor([0, 11, 22])
    together = gradcam(attribution_resnet18, x, target, "layer3")
    for n in range(3):
        alone = gradcam(attribution_resnet18, x[n : n + 1], int(target[n]), "layer3")
        torch.testing.assert_close(together[n : n + 1], alone, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(together[0], together[1])


def test_frozen_parameters_still_work(attribution_alexnet):
    import copy

    model = copy.deepcopy(attribution_alexnet).requires_grad_(False)
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(gradcam(model, x, 1, "features.10"),
                               gradcam(attribution_alexnet, x, 1, "features.10"))


def test_guided_gradcam_is_product(attribution_resnet18):
    torch.manual_seed(3)
    x = torch.randn(2, 3, 64, 64)
    result = guided_gradcam(attribution_resnet18, x, [1, 2], "layer4")
    expected = guided_backprop(attribution_resnet18, x, [1, 2]) * gradcam(attribution_resnet18, x, [1, 2], "layer4")
    assert result.shape == x.shape
    torch.testing.assert_close(result, expected)


def test_layer_called_twice_is_ambiguous(attribution_resnet18):
    with pytest.raises(ValueError, match="called 2 times"):
        gradcam(attribution_resnet18, torch.randn(1, 3, 64, 64), 0, "layer1.0.relu")


def test_layer_not_a_feature_map(attribution_resnet18):
    with pytest.raises(ValueError, match="feature map"):
        gradcam(attribution_resnet18, torch.randn(1, 3, 64, 64), 0, "fc")


def test_layer_never_called():
    net = TwoChannelNet()
    net.unused = nn.Conv2d(2, 2, 1)
    with pytest.raises(ValueError, match="not called"):
        gradcam(net, torch.randn(1, 2, 2, 2), 0, "unused")


def test_unknown_layer_name(attribution_resnet18):
    with pytest.raises(ValueError, match="unknown layer name"):
        gradcam(attribution_resnet18, torch.randn(1, 3, 64, 64), 0, "layer9")
