"""Input optimisation: divergence of raw pixels, bounded parameterisations, determinism."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from convlens.input_optimization import (
    Transforms,
    Visualization,
    colour_decorrelation,
    maximize_activation,
    random_transform,
)

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
    history = maximize_activation(
        _one_conv(), "0", 1, steps=60, image_size=(12, 12), parameterization="pixel", lr=0.1
    ).history
    objective = history["objective"]
    assert (objective.diff() > 0).all()
    assert objective[-1] > objective[0] + 5
    magnitude = torch.maximum(history["pixel_max"].abs(), history["pixel_min"].abs())
    assert (magnitude[10:].diff() > 0).all() and magnitude[-1] > 4


def test_sigmoid_stays_bounded_and_images_are_in_unit_range():
    model = _one_conv()
    history = maximize_activation(
        model, "0", 1, steps=60, image_size=(12, 12), parameterization="sigmoid", lr=0.1
    ).history
    assert (history["pixel_min"] >= 0).all() and (history["pixel_max"] <= 1).all()
    for kind in ("sigmoid", "pixel", "fft"):
        image = maximize_activation(model, "0", 2, steps=5, image_size=(10, 14), parameterization=kind).image
        assert image.shape == (3, 10, 14)
        assert image.min() >= 0 and image.max() <= 1


def test_fft_objective_increases():
    history = maximize_activation(
        _small_net(), "4", 3, steps=20, image_size=(16, 16), parameterization="fft"
    ).history
    assert history["objective"][-1] > history["objective"][0]


@pytest.mark.parametrize(
    "transforms", [Transforms(jitter=2), Transforms(jitter=2, scale=(0.8, 1.2), degrees=10)]
)
def test_deterministic_for_a_generator(transforms):
    model = _small_net()
    kwargs = dict(steps=6, image_size=(16, 16), parameterization="fft", decorrelate=True,
                  transforms=transforms, tv=0.1)

    def run(seed):
        generator = torch.Generator().manual_seed(seed)
        return maximize_activation(model, "4", 2, generator=generator, **kwargs).image

    a, b, c = run(3), run(3), run(4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def _tv(image):
    return (image[:, 1:] - image[:, :-1]).abs().sum() + (image[:, :, 1:] - image[:, :, :-1]).abs().sum()


def test_total_variation_penalty_smooths_the_result():
    model = _small_net()
    for kind in ("sigmoid", "fft"):
        plain = maximize_activation(
            model, "4", 1, steps=30, image_size=(16, 16), parameterization=kind, lr=0.1
        ).image
        smooth = maximize_activation(
            model, "4", 1, steps=30, image_size=(16, 16), parameterization=kind, lr=0.1, tv=5.0
        ).image
        assert _tv(smooth) < 0.8 * _tv(plain), kind


def test_model_left_as_found():
    model = _small_net().train()
    model[0].weight.requires_grad_(False)
    before = copy.deepcopy(model.state_dict())
    maximize_activation(
        model, "4", 0, steps=3, image_size=(16, 16), normalize=([0.5] * 3, [0.25] * 3),
        parameterization="fft", decorrelate=True,
        transforms=Transforms(jitter=1, scale=(0.9, 1.1), degrees=5),
    )
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


def test_returns_one_visualization_with_per_step_history():
    result = maximize_activation(_small_net(), "4", 1, steps=7, image_size=(16, 16))
    assert isinstance(result, Visualization)
    assert result.image.shape == (3, 16, 16)
    assert set(result.history) == {"objective", "pixel_min", "pixel_max"}
    assert all(v.shape == (7,) and v.dtype == torch.float64 for v in result.history.values())


@pytest.mark.parametrize("kind", ["sigmoid", "fft"])
def test_decorrelated_parameterisation_stays_in_unit_range_and_ascends(kind):
    history_and_image = maximize_activation(
        _small_net(), "4", 3, steps=25, image_size=(16, 18), parameterization=kind,
        decorrelate=True, lr=0.1, transforms=Transforms(jitter=2, scale=(0.9, 1.1), degrees=8),
    )
    image, history = history_and_image.image, history_and_image.history
    assert image.min() >= 0 and image.max() <= 1
    assert (history["pixel_min"] >= 0).all() and (history["pixel_max"] <= 1).all()
    assert history["objective"][-5:].mean() > history["objective"][:5].mean()


def test_colour_decorrelation_whitens_the_photos_covariance():
    # M M^T = Sigma / lambda_max, with Sigma the pool's colour covariance (its computation
    # is tested in test_natural_statistics.py); the first component (luminance) is
    # all-positive.
    import numpy as np

    from convlens.natural_statistics import colour_basis

    m = colour_decorrelation()
    basis = colour_basis()
    sigma = (basis.axes * basis.std**2) @ basis.axes.T
    np.testing.assert_allclose(m @ m.T, sigma.numpy() / float(basis.std[0] ** 2), atol=1e-12)
    assert np.linalg.norm(m, axis=0).max() == pytest.approx(1.0)
    assert (m[:, 0] > 0).all()  # luminance: the same sign in R, G and B


def test_transforms_are_identity_when_disabled_and_move_when_enabled():
    image = torch.rand(1, 3, 10, 14, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    state = generator.get_state()
    assert random_transform(image, None, generator) is image
    assert random_transform(image, Transforms(), generator) is image
    assert torch.equal(generator.get_state(), state)  # nothing drawn
    # zoom and rotation switched "on" at their identity values: grid_sample reproduces the image
    exact = Transforms(scale=(1.0, 1.0 + 1e-12), degrees=1e-12)
    assert torch.allclose(random_transform(image, exact, generator), image, atol=1e-5)
    rolled = random_transform(image, Transforms(jitter=3), torch.Generator().manual_seed(2))
    assert any(
        torch.equal(rolled, torch.roll(image, (dy, dx), (-2, -1)))
        for dy in range(-3, 4) for dx in range(-3, 4)
    )
    # a fixed zoom by 2 of a column ramp (value = column index): column k samples 3.5 + (k - 3.5) / 2
    ramp = torch.arange(8.0).expand(1, 1, 8, 8)
    zoomed = random_transform(ramp, Transforms(scale=(2.0, 2.0)), generator)
    expected = 3.5 + (torch.arange(8.0) - 3.5) / 2
    assert torch.allclose(zoomed[0, 0], expected.expand(8, 8), atol=1e-5)
    # any rotation and zoom keeps the centre pixel of an odd-sized image, and moves the rest
    odd = torch.rand(1, 3, 9, 9, generator=torch.Generator().manual_seed(3))
    turned = random_transform(odd, Transforms(scale=(0.8, 1.2), degrees=30), generator)
    assert torch.allclose(turned[..., 4, 4], odd[..., 4, 4], atol=1e-5)
    assert not torch.allclose(turned, odd, atol=1e-2)


def test_bad_new_arguments_raise_named_errors():
    model = _small_net()
    with pytest.raises(ValueError, match="jitter"):
        Transforms(jitter=-1)
    with pytest.raises(ValueError, match="scale"):
        Transforms(scale=(1.2, 0.8))
    with pytest.raises(ValueError, match="degrees"):
        Transforms(degrees=-5)
    with pytest.raises(TypeError, match="transforms"):
        maximize_activation(model, "4", 0, steps=1, image_size=(8, 8), transforms=4)
    with pytest.raises(TypeError, match="generator"):
        maximize_activation(model, "4", 0, steps=1, image_size=(8, 8), generator=3)
    with pytest.raises(TypeError, match="normalize"):
        maximize_activation(model, "4", 0, steps=1, image_size=(8, 8), normalize="imagenet")
    with pytest.raises(ValueError, match="std must be positive"):
        maximize_activation(model, "4", 0, steps=1, image_size=(8, 8), normalize=([0.5] * 3, [0, 1, 1]))
    with pytest.raises(ValueError, match="lr"):
        maximize_activation(model, "4", 0, steps=1, image_size=(8, 8), lr=0)
    with pytest.raises(TypeError, match="steps"):
        maximize_activation(model, "4", 0, steps=2.0, image_size=(8, 8))
