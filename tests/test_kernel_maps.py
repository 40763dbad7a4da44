"""Kernel maps: the per-kernel terms of a convolution sum back to the convolution."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from convlens.kernel_decomposition import KernelMapConv2d, convert_convs, kernel_maps

pytestmark = pytest.mark.usefixtures("single_thread")


def _biased(conv: nn.Conv2d, summed: torch.Tensor) -> torch.Tensor:
    return summed if conv.bias is None else summed + conv.bias[:, None, None]


def test_hand_computed_two_channel_example():
    conv = nn.Conv2d(2, 1, 2, bias=True).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 2.0]]]]))
        conv.bias.fill_(10.0)
    x = torch.arange(18, dtype=torch.double).reshape(1, 2, 3, 3)
    maps = kernel_maps(conv, x)
    assert maps.shape == (1, 1, 2, 2, 2)
    # channel 0 picks the top-left pixel of each window, channel 1 twice the bottom-right
    assert torch.equal(maps[0, 0, 0], torch.tensor([[0.0, 1.0], [3.0, 4.0]], dtype=torch.double))
    assert torch.equal(maps[0, 0, 1], 2 * torch.tensor([[13.0, 14.0], [16.0, 17.0]], dtype=torch.double))
    assert torch.equal(maps.sum(2) + 10.0, conv(x))  # the bias is not inside the maps


CONVS = {
    "plain": lambda: nn.Conv2d(4, 6, 3),
    "strided_dilated": lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=2),
    "grouped_rectangular": lambda: nn.Conv2d(6, 9, (3, 5), stride=(2, 1), padding=(1, 2), groups=3),
    "depthwise_circular": lambda: nn.Conv2d(6, 6, 3, groups=6, padding=1, padding_mode="circular"),
    "same_reflect": lambda: nn.Conv2d(4, 8, 3, padding="same", padding_mode="reflect"),
    "same_even_dilated": lambda: nn.Conv2d(4, 8, (2, 4), padding="same", dilation=(1, 2)),
    "valid_no_bias": lambda: nn.Conv2d(4, 6, 3, bias=False, padding="valid"),
    "replicate_rect_pad": lambda: nn.Conv2d(4, 5, 3, padding=(2, 1), padding_mode="replicate"),
    "timm_conv2d_same": lambda: timm.layers.Conv2dSame(4, 6, 3, stride=2),
}


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("kind", sorted(CONVS))
def test_sum_over_kernels_is_the_convolution(kind):
    torch.manual_seed(0)
    conv = CONVS[kind]().double()
    x = torch.randn(2, conv.in_channels, 11, 12, dtype=torch.double)
    maps = kernel_maps(conv, x)
    assert maps.shape[:3] == (2, conv.out_channels, conv.in_channels // conv.groups)
    torch.testing.assert_close(_biased(conv, maps.sum(2)), conv(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["plain", "grouped_rectangular", "depthwise_circular"])
def test_selection_equals_slice_of_full_result(kind):
    torch.manual_seed(1)
    conv = CONVS[kind]().double()
    x = torch.randn(1, conv.in_channels, 9, 10, dtype=torch.double)
    full = kernel_maps(conv, x)
    chosen = [conv.out_channels - 1, 0, 2, 2]
    for selection in (chosen, torch.tensor(chosen)):
        part = kernel_maps(conv, x, selection, chunk=2)
        torch.testing.assert_close(part, full[:, chosen], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(kernel_maps(conv, x, 1), full[:, [1]], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "builder, size", [(torchvision.models.alexnet, 67), (torchvision.models.vgg16, 64)]
)
@pytest.mark.slow
def test_every_conv_of_alexnet_and_vgg16(builder, size):
    torch.manual_seed(0)
    model = builder(weights=None).eval()
    x = torch.randn(1, 3, size, size)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    inputs = {}
    handles = [m.register_forward_pre_hook(lambda m, a: inputs.__setitem__(m, a[0])) for m in convs]
    try:
        with torch.no_grad():
            model.features(x)
    finally:
        for handle in handles:
            handle.remove()
    for conv in convs:
        with torch.no_grad():
            maps = kernel_maps(conv, inputs[conv], chunk=512)
            expected = conv(inputs[conv])
            # float32: relative 1e-5 of the layer's output scale (sums of hundreds of terms)
            scale = float(expected.abs().max())
            torch.testing.assert_close(
                maps.sum(2) + conv.bias[:, None, None], expected, rtol=1e-5, atol=1e-5 * scale
            )


def test_differentiable_in_input():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3).double()
    x = torch.randn(1, 3, 6, 6, dtype=torch.double, requires_grad=True)
    weights = torch.arange(4, dtype=torch.double)[:, None, None]
    (g_conv,) = torch.autograd.grad((conv(x) * weights).sum(), x)
    for chunk in (64, 1):  # one piece, and pieces copied into the result
        (g_maps,) = torch.autograd.grad((kernel_maps(conv, x, chunk=chunk).sum(2) * weights).sum(), x)
        torch.testing.assert_close(g_maps, g_conv)


def test_kernel_map_conv_equals_source_and_is_trainable():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1, groups=1)
    layer = KernelMapConv2d.from_conv(conv)
    assert layer.weight is not conv.weight and torch.equal(layer.weight, conv.weight)
    x = torch.randn(2, 3, 9, 9)
    assert torch.equal(layer(x), conv(x))
    assert layer.last_kernel_maps is None  # nothing kept by default
    (grad_w,) = torch.autograd.grad(layer(x).square().sum(), layer.weight)
    assert grad_w.abs().sum() > 0
    keeping = KernelMapConv2d.from_conv(conv, keep_maps=True, map_channels=[4, 1])
    keeping(x)
    torch.testing.assert_close(keeping.last_kernel_maps, kernel_maps(conv, x, [4, 1]))
    same = KernelMapConv2d.from_conv(timm.layers.Conv2dSame(3, 4, 3, stride=2))
    assert same.dynamic_same_padding


@pytest.mark.slow
@pytest.mark.parametrize("builder", [torchvision.models.alexnet, torchvision.models.vgg11])
def test_convert_convs_keeps_outputs_and_leaves_model_untouched(builder):
    torch.manual_seed(0)
    model = builder(weights=None).eval()
    before = copy.deepcopy(model.state_dict())
    modules_before = [(name, type(m), id(m)) for name, m in model.named_modules()]
    converted = convert_convs(model)
    assert [(n, type(m), id(m)) for n, m in model.named_modules()] == modules_before
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    n_convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    assert sum(isinstance(m, KernelMapConv2d) for m in converted.modules()) == n_convs
    assert not any(isinstance(m, KernelMapConv2d) for m in model.modules())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), model(x), rtol=0, atol=0)


def test_convert_convs_keep_maps_records_each_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3, groups=2))
    converted = convert_convs(model, keep_maps=True)
    x = torch.randn(1, 3, 8, 8)
    converted(x)
    assert converted[0].last_kernel_maps.shape == (1, 4, 3, 6, 6)
    assert converted[2].last_kernel_maps.shape == (1, 2, 2, 4, 4)


class _Standardized(nn.Conv2d):
    def forward(self, x):
        w = self.weight - self.weight.mean((1, 2, 3), keepdim=True)
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


def test_bad_inputs_raise():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(TypeError, match="Linear"):
        kernel_maps(nn.Linear(3, 4), torch.randn(1, 3, 5, 5))
    with pytest.raises(ValueError, match="4 dimensions"):
        kernel_maps(conv, torch.randn(3, 5, 5))
    with pytest.raises(TypeError, match="floating-point"):
        kernel_maps(conv, torch.ones(1, 3, 5, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="in_channels=3"):
        kernel_maps(conv, torch.randn(1, 2, 5, 5))
    with pytest.raises(TypeError, match="dtype"):
        kernel_maps(conv, torch.randn(1, 3, 5, 5, dtype=torch.double))
    with pytest.raises(ValueError, match="out of range"):
        kernel_maps(conv, torch.randn(1, 3, 5, 5), [4])
    with pytest.raises(TypeError, match="overrides"):
        kernel_maps(_Standardized(3, 4, 3), torch.randn(1, 3, 5, 5))
    with pytest.raises(TypeError, match="'0'"):
        convert_convs(nn.Sequential(_Standardized(3, 4, 3)))
