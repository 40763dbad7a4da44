"""Vanilla gradient and SmoothGrad on nets whose gradients are known in closed form."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convlens.saliency import gradient, smoothgrad


class ConvSum(nn.Module):
    """Two 2x2 kernels on a 1-channel image; logit c = sum of conv map c (linear in x)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=2, bias=True)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[0.0, -1.0], [0.0, 0.0]]]]))
            self.conv.bias.fill_(0.5)

    def forward(self, x):
        return self.conv(x).sum(dim=(2, 3))


class HalfSquare(nn.Module):
    """logit 0 = sum(x^2)/2, so d logit / dx = x: the gradient shows the noisy input itself."""

    def forward(self, x):
        return (x**2).sum(dim=(1, 2, 3))[:, None] / 2


class Linear(nn.Module):
    def __init__(self, shape, classes=3):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, *shape))

    def forward(self, x):
        return torch.einsum("nchw,kchw->nk", x, self.weight)


def tiny_tanh_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4))


def test_gradient_of_conv_sum_is_hand_value_per_example_target():
    # d/dx[i,j] sum_{p,q} (w * x)[p,q] = sum of the kernel taps that touch pixel (i, j).
    expected_class0 = torch.tensor([[1.0, 3.0, 2.0], [4.0, 10.0, 6.0], [3.0, 7.0, 4.0]])
    expected_class1 = torch.tensor([[0.0, -1.0, -1.0], [0.0, -1.0, -1.0], [0.0, 0.0, 0.0]])
    x = torch.randn(2, 1, 3, 3)
    grad = gradient(ConvSum(), x, [0, 1])
    assert grad.shape == x.shape
    torch.testing.assert_close(grad[0, 0], expected_class0)
    torch.testing.assert_close(grad[1, 0], expected_class1)


def test_gradient_is_of_raw_logit_and_signed():
    x = torch.tensor([[[[1.0, -2.0], [0.5, 3.0]]]])
    torch.testing.assert_close(gradient(HalfSquare(), x, 0), x)


def test_smoothgrad_of_linear_model_is_its_weight():
    torch.manual_seed(1)
    model = Linear((2, 5, 5))
    x = torch.randn(3, 2, 5, 5)
    result = smoothgrad(model, x, [2, 0, 1], samples=7, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(result, model.weight.detach()[[2, 0, 1]])


def test_smoothgrad_reproducible_and_seed_dependent():
    model, x = tiny_tanh_net(), torch.randn(2, 1, 6, 6)
    first = smoothgrad(model, x, 1, samples=5, generator=torch.Generator().manual_seed(0))
    again = smoothgrad(model, x, 1, samples=5, generator=torch.Generator().manual_seed(0))
    other = smoothgrad(model, x, 1, samples=5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.allclose(first, other)
    assert not torch.allclose(first, gradient(model, x, 1))


def test_smoothgrad_global_rng_when_no_generator():
    model, x = tiny_tanh_net(), torch.randn(1, 1, 6, 6)
    torch.manual_seed(5)
    first = smoothgrad(model, x, 0, samples=3)
    torch.manual_seed(5)
    torch.testing.assert_close(smoothgrad(model, x, 0, samples=3), first, rtol=0, atol=0)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7])
def test_smoothgrad_chunking_does_not_change_result(batch_size):
    model, x = tiny_tanh_net(), torch.randn(2, 1, 6, 6)
    one_chunk = smoothgrad(model, x, [0, 3], samples=7, batch_size=7,
                           generator=torch.Generator().manual_seed(2))
    chunked = smoothgrad(model, x, [0, 3], samples=7, batch_size=batch_size,
                         generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(chunked, one_chunk, rtol=1e-6, atol=1e-7)


def test_smoothgrad_sigma_is_std_of_each_examples_range():
    # With gradient == input, (result - x) is the drawn noise; its std must be
    # noise * (max - min) of that example: 0.15 and 1.5 here (not 0.0225, a variance).
    x = torch.rand(2, 1, 64, 64)
    x[1] *= 10
    for n in range(2):  # pin the ranges exactly to 1 and 10
        x[n, 0, 0, 0], x[n, 0, 0, 1] = 0.0, 10.0**n
    noise_drawn = smoothgrad(HalfSquare(), x, 0, samples=1, noise=0.15,
                             generator=torch.Generator().manual_seed(0)) - x
    stds = noise_drawn.flatten(1).std(dim=1)
    torch.testing.assert_close(stds, torch.tensor([0.15, 1.5]), rtol=0.05, atol=0)
    assert abs(noise_drawn.mean()) < 0.1


def test_smoothgrad_noise_zero_is_gradient():
    model, x = tiny_tanh_net(), torch.randn(2, 1, 6, 6)
    torch.testing.assert_close(smoothgrad(model, x, 2, samples=3, noise=0.0), gradient(model, x, 2))


def test_smoothgrad_batch_equals_per_example_with_noise_off():
    model, x = tiny_tanh_net(), torch.randn(3, 1, 6, 6)
    together = smoothgrad(model, x, [0, 1, 2], samples=2, noise=0.0)
    for n in range(3):
        torch.testing.assert_close(together[n : n + 1], gradient(model, x[n : n + 1], n))


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(samples=0), ValueError, "samples"),
    (dict(noise=-0.1), ValueError, "noise"),
    (dict(noise="big"), TypeError, "noise"),
    (dict(batch_size=0), ValueError, "batch_size"),
])
def test_smoothgrad_bad_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        smoothgrad(tiny_tanh_net(), torch.randn(1, 1, 6, 6), 0, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("name, size", [("alexnet", 64), ("vgg11", 32), ("resnet18", 32)])
def test_torchvision_gradient_equals_plain_autograd(request, name, size):
    model = request.getfixturevalue(f"attribution_{name}")
    torch.manual_seed(0)
    x, target = torch.randn(2, 3, size, size), torch.tensor([10, 20])
    inputs = x.clone().requires_grad_(True)
    logits = model(inputs)
    (expected,) = torch.autograd.grad(logits[0, 10] + logits[1, 20], inputs)
    torch.testing.assert_close(gradient(model, x, target), expected, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(gradient(model, x[1:], 20), expected[1:], rtol=1e-4, atol=1e-7)
