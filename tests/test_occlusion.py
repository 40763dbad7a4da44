"""Occlusion on a linear model, where the score drop is the weighted sum of the window."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convlens.occlusion import occlusion


class WeightedSum(nn.Module):
    """logit k = sum(w_k * x): hiding a region changes it by sum_region w_k * (x - fill)."""

    def __init__(self, weight):
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x):
        return torch.einsum("nchw,kchw->nk", x, self.weight)


def test_hand_computed_3x3():
    w = torch.arange(9.0).view(1, 1, 3, 3)  # [[0 1 2] [3 4 5] [6 7 8]]
    drops = occlusion(WeightedSum(w), torch.ones(1, 1, 3, 3), 0, window=2, stride=1)
    torch.testing.assert_close(drops, torch.tensor([[[8.0, 12.0], [20.0, 24.0]]]))


@pytest.mark.parametrize("window, stride", [(2, 1), (3, 2), (4, 3), (5, 5)])
def test_drop_is_weighted_sum_of_window_minus_fill(window, stride):
    torch.manual_seed(0)
    weight = torch.randn(3, 2, 7, 9)
    x = torch.randn(2, 2, 7, 9)
    fill = 0.5
    drops = occlusion(WeightedSum(weight), x, [2, 0], window=window, stride=stride, fill=fill)
    rows, cols = (7 - window) // stride + 1, (9 - window) // stride + 1
    assert drops.shape == (2, rows, cols)
    for n, k in enumerate([2, 0]):
        for i in range(rows):
            for j in range(cols):
                region = (slice(None), slice(i * stride, i * stride + window),
                          slice(j * stride, j * stride + window))
                expected = (weight[k][region] * (x[n][region] - fill)).sum()
                torch.testing.assert_close(drops[n, i, j], expected, rtol=1e-5, atol=1e-5)


def test_batch_size_does_not_change_result(attribution_resnet18):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 32, 32)
    reference = occlusion(attribution_resnet18, x, [3, 4], window=16, stride=8, batch_size=64)
    for batch_size in (1, 4):
        torch.testing.assert_close(
            occlusion(attribution_resnet18, x, [3, 4], window=16, stride=8, batch_size=batch_size),
            reference, rtol=1e-4, atol=1e-5)
    assert reference.shape == (2, 3, 3)
    for n, k in enumerate([3, 4]):  # batch of examples == one call each
        torch.testing.assert_close(
            occlusion(attribution_resnet18, x[n : n + 1], k, window=16, stride=8)[0], reference[n],
            rtol=1e-4, atol=1e-5)


def test_runs_without_grad_tracking():
    weight = torch.randn(2, 1, 4, 4, requires_grad=True)
    x = torch.randn(1, 1, 4, 4, requires_grad=True)
    drops = occlusion(WeightedSum(weight), x, 1, window=2, stride=2)
    assert not drops.requires_grad and drops.grad_fn is None


def test_output_follows_model_dtype():
    model = WeightedSum(torch.randn(2, 1, 5, 5, dtype=torch.float64))
    assert occlusion(model, torch.randn(1, 1, 5, 5, dtype=torch.float64), 0, window=2).dtype == torch.float64


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(window=6), ValueError, "larger than the image"),
    (dict(window=0), ValueError, "window"),
    (dict(stride=0), ValueError, "stride"),
    (dict(stride=1.5), TypeError, "stride"),
    (dict(batch_size=0), ValueError, "batch_size"),
])
def test_bad_arguments(kwargs, error, words):
    model = WeightedSum(torch.randn(2, 1, 5, 5))
    with pytest.raises(error, match=words):
        occlusion(model, torch.randn(1, 1, 5, 5), 0, **kwargs)


def test_window_larger_than_one_side_only():
    model = WeightedSum(torch.randn(2, 1, 4, 8))
    with pytest.raises(ValueError, match="larger than the image"):
        occlusion(model, torch.randn(1, 1, 4, 8), 0, window=5, stride=1)
