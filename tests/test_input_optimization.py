"""Input optimisation: divergence of raw pixels, bounded parameterisations, determinism."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from convlens.input_optimization import maximize_activation

pytestmark = pytest.mark.usefixtures("single_thread")


def _one_conv() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()


def _small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
    ).eval()


def test_pixel_objective_grows_without_bound_on_first_layer():
    # conv then mean: linear in the pixels, constant gradient, nothing stops the ascent
    _, history = maximize_activation(
        _one_conv(), "0", 1, steps=60, image_size=(12, 12), parameterization="pixel",
        lr=0.1, return_history=True,
    )
    objective = history["objective"]
    assert (objective.diff() > 0).all()
    assert objective[-1] > objective[0] + 5
    magnitude = torch.maximum(history["pixel_max"].abs(), history["pixel_min"].abs())
    assert (magnitude[10:].diff() > 0).all() and magnitude[-1] > 4


def test_sigmoid_stays_bounded_and_images_are_in_unit_range():
    model = _one_conv()
    image, history = maximize_activation(
        model, "0", 1, steps=60, image_size=(12, 12), parameterization="sigmoid",
        lr=0.1, return_history=True,
    )
    assert (history["pixel_min"] >= 0).all() and (history["pixel_max"] <= 1).all()
    for kind in ("sigmoid", "pixel", "fft"):
        image = maximize_activation(model, "0", 2, steps=5, image_size=(10, 14), parameterization=kind)
        assert image.shape == (3, 10, 14)
        assert image.min() >= 0 and image.max() <= 1


def test_fft_objective_increases():
    _, history = maximize_activation(
        _small_net(), "4", 3, steps=20, image_size=(16, 16), parameterization="fft",
        return_history=True,
    )
    assert history["objective"][-1] > history["objective"][0]


def test_deterministic_for_a_seed():
    model = _small_net()
    kwargs = dict(steps=6, image_size=(16, 16), parameterization="fft", jitter=2, tv=0.1)
    a = maximize_activation(model, "4", 2, seed=3, **kwargs)
    b = maximize_activation(model, "4", 2, seed=3, **kwargs)
    c = maximize_activation(model, "4", 2, seed=4, **kwargs)
    assert torch.equal(a, b) and not torch.equal(a, c)


def _tv(image):
    return (image[:, 1:] - image[:, :-1]).abs().sum() + (image[:, :, 1:] - image[:, :, :-1]).abs().sum()


def test_total_variation_penalty_smooths_the_result():
    model = _small_net()
    for kind in ("sigmoid", "fft"):
        plain = maximize_activation(model, "4", 1, steps=30, image_size=(16, 16), parameterization=kind, lr=0.1)
        smooth = maximize_activation(
            model, "4", 1, steps=30, image_size=(16, 16), parameterization=kind, lr=0.1, tv=5.0
        )
        assert _tv(smooth) < 0.8 * _tv(plain), kind


def test_model_left_as_found():
    model = _small_net().train()
    model[0].weight.requires_grad_(False)
    before = copy.deepcopy(model.state_dict())
    maximize_activation(model, "4", 0, steps=3, image_size=(16, 16), mean=[0.5] * 3, std=[0.25] * 3)
    assert all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN stats too
    assert not model[0].weight.requires_grad and model[4].weight.requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())


def test_invalid_arguments_raise():
    model = _small_net()
    with pytest.raises(ValueError, match="unknown layer"):
        maximize_activation(model, "9", 0, steps=1, image_size=(8, 8))
    with pytest.raises(ValueError, match="channel 8 is out of range"):
        maximize_activation(model, "4", 8, steps=1, image_size=(8, 8))
    with pytest.raises(ValueError, match="parameterization"):
        maximize_activation(model, "4", 0, steps=1, parameterization="raw")
    with pytest.raises(TypeError, match="channel"):
        maximize_activation(model, "4", 1.5, steps=1)
    shared = nn.ReLU()
    twice = nn.Sequential(nn.Conv2d(3, 3, 1), shared, nn.Conv2d(3, 3, 1), shared)
    with pytest.raises(ValueError, match="called 2 times"):
        maximize_activation(twice, "1", 0, steps=1, image_size=(8, 8))


def test_dead_channel_warns():
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU()).eval()
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(-1.0)  # channel output is always negative: the ReLU is off
    with pytest.warns(RuntimeWarning, match="zero everywhere"):
        maximize_activation(model, "1", 0, steps=2, image_size=(8, 8))
