"""Integrated Gradients and gradient x input on nets whose path integral is known in closed form."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convlens.path_integral import integrated_gradients
from convlens.saliency import gradient, gradient_x_input


class WeightedSquares(nn.Module):
    """logit c = sum_i w_c,i x_i^2: along x' = 0 -> x the gradient is 2 a w x, so IG = w x^2."""

    def __init__(self, shape):
        super().__init__()
        torch.manual_seed(1)
        self.weight = nn.Parameter(torch.randn(2, *shape))

    def forward(self, x):
        return torch.einsum("nchw,kchw->nk", x**2, self.weight)


class ReluOfLinear(nn.Module):
    """logit 0 = ReLU(a . x - b), logit 1 = a . x. From x' = 0, if a . x > b > 0 the gradient is
    0 for alpha < t = b / (a . x) and a afterwards, so IG_i = (1 - t) a_i x_i exactly."""

    def __init__(self, a, b):
        super().__init__()
        self.a = nn.Parameter(a)
        self.b = b

    def forward(self, x):
        s = (x * self.a).sum(dim=(1, 2, 3))
        return torch.stack([torch.relu(s - self.b), s], dim=1)


class Linear(nn.Module):
    def __init__(self, shape):
        super().__init__()
        torch.manual_seed(2)
        self.weight = nn.Parameter(torch.randn(3, *shape))
        self.bias = nn.Parameter(torch.randn(3))

    def forward(self, x):
        return torch.einsum("nchw,kchw->nk", x, self.weight) + self.bias


def tiny_relu_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 3 * 3, 3))


@pytest.mark.parametrize("rule", ["trapezoid", "right"])
def test_weighted_squares_hand_value(rule):
    model = WeightedSquares((2, 3, 3))
    x = torch.randn(2, 2, 3, 3, dtype=torch.float64)
    ig = integrated_gradients(model.double(), x, [0, 1], steps=4, rule=rule)
    expected = torch.stack([model.weight[0] * x[0] ** 2, model.weight[1] * x[1] ** 2]).detach()
    if rule == "trapezoid":  # the integrand 2 a w x is linear in a: the trapezoid rule is exact
        torch.testing.assert_close(ig, expected)
    else:  # right Riemann sum of a: 1/m sum_k k/m = (m + 1) / (2m) instead of 1/2
        torch.testing.assert_close(ig, expected * (4 + 1) / 4)


def test_relu_kink_hand_value_and_convergence():
    a = torch.tensor([[[[1.0, 2.0], [-0.5, 0.25]]]], dtype=torch.float64)
    x = torch.tensor([[[[1.0, 1.5], [0.4, 2.0]]]], dtype=torch.float64)
    s = float((a * x).sum())  # 4.3
    b = 1.3
    model = ReluOfLinear(a[0], b)
    exact = (1 - b / s) * a * x
    largest = float((a * x).abs().max())
    for steps in (4, 16, 64, 256):  # the kink misplaces at most one interval of width 1/m
        ig = integrated_gradients(model, x, 0, steps=steps, rule="right")
        assert float((ig - exact).abs().max()) <= largest / steps + 1e-12
    # 64 right-Riemann points: the kink at t = 0.302 falls inside interval 20; by hand:
    # the sum counts the 45 points with k/64 > t, so the factor is 45/64.
    ig = integrated_gradients(model, x, 0, steps=64, rule="right")
    torch.testing.assert_close(ig, 45 / 64 * a * x)


@pytest.mark.parametrize("rule", ["trapezoid", "right"])
def test_completeness_gap_shrinks_with_steps(rule):
    model = tiny_relu_net().double()
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    baseline = torch.full_like(x, -0.3)
    with torch.no_grad():
        logits, base = model(x), model(baseline)
    change = (logits - base)[torch.arange(2), torch.tensor([2, 0])]
    gaps = []
    for steps in (2, 8, 32, 256):
        ig = integrated_gradients(model, x, [2, 0], baseline=baseline, steps=steps, rule=rule)
        gaps.append(float((ig.sum(dim=(1, 2, 3)) - change).abs().max()))
    assert gaps[-1] < 0.02 * float(change.abs().max()) + 1e-9
    assert gaps[-1] < gaps[0]
    assert gaps[-1] <= min(gaps[:-1]) + 1e-12


def test_linear_model_ig_is_gradient_times_input_and_gradient_times_delta():
    model = Linear((3, 4, 4))
    x = torch.randn(2, 3, 4, 4)
    ig = integrated_gradients(model, x, [1, 2], steps=3)
    torch.testing.assert_close(ig, gradient_x_input(model, x, [1, 2]))
    torch.testing.assert_close(ig, x * gradient(model, x, [1, 2]))
    baseline = torch.rand(1, 3, 1, 1)
    torch.testing.assert_close(integrated_gradients(model, x, [1, 2], baseline=baseline, steps=1),
                               (x - baseline) * model.weight[[1, 2]].detach())


def test_gradient_x_input_hand_value():
    model = WeightedSquares((1, 2, 2))
    x = torch.tensor([[[[1.0, -2.0], [0.5, 3.0]]]])
    torch.testing.assert_close(gradient_x_input(model, x, 1), 2 * model.weight[1:].detach() * x**2)


def test_batch_size_does_not_change_the_result():
    model = tiny_relu_net()
    x = torch.randn(3, 2, 5, 5)
    reference = integrated_gradients(model, x, [0, 1, 2], steps=7, batch_size=1)
    for batch_size in (2, 3, 100, None):
        torch.testing.assert_close(
            integrated_gradients(model, x, [0, 1, 2], steps=7, batch_size=batch_size), reference)


def test_each_example_uses_its_own_target():
    model = tiny_relu_net()
    x = torch.randn(2, 2, 5, 5)
    both = integrated_gradients(model, x, [0, 2], steps=5)
    torch.testing.assert_close(both[1:], integrated_gradients(model, x[1:], 2, steps=5))
    torch.testing.assert_close(both[:1], integrated_gradients(model, x[:1], 0, steps=5))


@pytest.mark.parametrize("kwargs, error, words", [
    ({"steps": 0}, ValueError, "steps must be >= 1"),
    ({"steps": 2.0}, TypeError, "steps must be an int"),
    ({"rule": "simpson"}, ValueError, "rule must be one of"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"baseline": torch.zeros(2, 1, 1, 1)}, ValueError, "does not broadcast"),
    ({"baseline": "black"}, TypeError, "baseline must be"),
    ({"baseline": torch.zeros(1, 2, 5, 5, dtype=torch.long)}, TypeError, "floating-point"),
])
def test_bad_arguments_are_named(kwargs, error, words):
    with pytest.raises(error, match=words):
        integrated_gradients(tiny_relu_net(), torch.randn(3, 2, 5, 5), 0, **kwargs)
