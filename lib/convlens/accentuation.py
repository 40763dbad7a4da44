r"""Feature accentuation: a photo pushed toward what a unit responds to, held near the photo.

[Hamblin, Fel, Saha, Konkle & Alvarez 2024][ref-hamblin2024] ("Feature accentuation:
revealing 'what' features respond to in natural images") start the ascent from a photo
$x_0$ instead of noise, and pull it back toward the photo:

$$ x^*(\lambda) = \arg\max_x \; \mathbb{E}_T\big[\mathrm{objective}(T(x))\big]
- \lambda \, \mathrm{mean}\big((x - x_0)^2\big) $$

The result is the photo with whatever in it the unit responds to made stronger: it answers
"what does this unit see *in this photo*", where a visualisation from noise answers "what
would it like to see". The strength $\lambda$ sets the balance: large, the photo barely
changes; zero, the photo is only the starting point of a plain ascent.

The change is written in Fourier space with the $1/f$ scaling of
[Olah et al. 2017][ref-olah2017] (coarse structure moves first) and passed through a
sigmoid around the photo:

$$ x = \sigma\big(\mathrm{logit}(x_0) + \mathcal{F}^{-1}[s / f]\big), \qquad
s = 0 \text{ at the start, so } x = x_0 $$

($x_0$ is clipped to [0.002, 0.998] so that its logit is finite). $T$ is MACO's
transformation robustness, random crops plus noise, as in
[`convlens.feature_visualization`][convlens.feature_visualization].
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ._checks import check_positive_int, model_device_dtype, resolve_layer
from .feature_visualization import (
    ChannelObjective,
    ClassObjective,
    _objective_scores,
    random_crops,
)
from .hooks import eval_mode
from .input_optimization import Visualization, _frequency_scale, _normalizer

__all__ = ["accentuate"]


def _check(image, objective, strength, steps, lr, crops, noise) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or not image.is_floating_point():
        raise TypeError("image must be a floating-point tensor [3, H, W] of pixels in [0, 1]")
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be one RGB image [3, H, W] (or [1, 3, H, W]), got shape "
                         f"{tuple(image.shape)}")
    if image.min() < 0 or image.max() > 1:
        raise ValueError("image must hold pixels in [0, 1] (not the model's normalised input)")
    if not isinstance(objective, (ChannelObjective, ClassObjective)):
        raise TypeError(f"objective must be a ChannelObjective or a ClassObjective, got "
                        f"{type(objective).__name__}")
    check_positive_int(steps, "steps")
    check_positive_int(crops, "crops")
    for value, name in ((strength, "strength"), (lr, "lr"), (noise, "noise")):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if strength < 0 or lr <= 0 or noise < 0:
        raise ValueError(f"strength and noise must be >= 0 and lr > 0, got strength={strength}, "
                         f"lr={lr}, noise={noise}")
    return image


def accentuate(model: nn.Module, image: torch.Tensor,
               objective: ChannelObjective | ClassObjective, *, strength: float = 2000.0,
               steps: int = 48, lr: float = 0.05, crops: int = 2,
               crop_scale: tuple[float, float] = (0.8, 1.0), noise: float = 0.02,
               normalize: Callable | tuple | None = None,
               generator: torch.Generator | None = None) -> Visualization:
    r"""Accentuate in a photo what an objective responds to, held near the photo by the pull
    `strength * mean((x - image)^2)` ([Hamblin et al. 2024][ref-hamblin2024]; the equations
    are in the module docstring).

    Each step is an Adam update of the Fourier-space change on the objective of the step's
    random crops ([`random_crops`][convlens.feature_visualization.random_crops], resized
    back to the photo's size) plus noise, minus the pull. The model runs in eval mode and is
    left as found; only the change gets gradients.

    Args:
        model: the network; left as found.
        image: the photo, pixels `[3, H, W]` (or `[1, 3, H, W]`) in [0, 1], not the model's
            normalised input.
        objective: a [`ChannelObjective`][convlens.feature_visualization.ChannelObjective]
            or a [`ClassObjective`][convlens.feature_visualization.ClassObjective].
        strength: the weight $\lambda$ of the pull toward the photo (0: none).
        steps: Adam steps.
        lr: Adam's learning rate.
        crops: random crops per step.
        crop_scale: `(low, high)`: the range of a crop's side as a fraction of the photo's.
        noise: the standard deviation of the Gaussian noise added to each crop, in pixel
            units (0: none).
        normalize: a callable, or the model's `(mean, std)`, from pixels in [0, 1] to the
            model's input (None: pixels as they are).
        generator: a CPU `torch.Generator` that draws the crops and the noise (None: a
            fresh one seeded with 0).

    Returns:
        A [`Visualization`][convlens.input_optimization.Visualization]: `image [3, H, W]` in
        (0, 1) on the model's device, and `history`, float64 tensors `[steps]`:
        `"objective"` (averaged over each step's crops, before the step's update) and
        `"distance"` (the root-mean-square pixel change from the photo, before the update).

    Raises:
        TypeError: `image` is not a floating-point tensor, `objective` not an objective, or
            a number that is not one.
        ValueError: `image` is not one RGB image with pixels in [0, 1], a negative
            `strength` or `noise`, `lr <= 0`, an unknown layer, a layer that runs more than
            once per pass, or a channel or class out of range.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens.accentuation import accentuate
        >>> from convlens.feature_visualization import ClassObjective
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2)).eval()
        >>> photo = 0.1 + 0.8 * torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> result = accentuate(model, photo, ClassObjective(1), strength=100.0, steps=6,
        ...                     lr=0.1)
        >>> result.image.shape, result.history["distance"].shape
        (torch.Size([3, 16, 16]), torch.Size([6]))
        >>> distance = result.history["distance"]
        >>> bool(distance[0] < 1e-6), bool(distance[-1] > distance[0])  # starts at the photo
        (True, True)
    """
    photo = _check(image, objective, strength, steps, lr, crops, noise)
    if isinstance(objective, ChannelObjective):
        objective = ChannelObjective(resolve_layer(model, objective.layer)[0], objective.channel)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    device, dtype = model_device_dtype(model)
    photo = photo.detach().to(device=device, dtype=dtype)
    height, width = photo.shape[-2:]
    to_input = _normalizer(normalize, device, dtype)
    base = torch.logit(photo.clamp(0.002, 0.998))[None]
    scale = _frequency_scale(height, width).to(device=device, dtype=dtype)
    params = torch.zeros((1, 3, height, width // 2 + 1, 2), device=device, dtype=dtype,
                         requires_grad=True)
    optimizer = torch.optim.Adam([params], lr=lr)
    rows = []
    with eval_mode(model):
        for _ in range(steps):
            change = torch.fft.irfft2(torch.view_as_complex(params) * scale, s=(height, width),
                                      norm="ortho")
            x = torch.sigmoid(base + change)
            views = random_crops(x, crops, tuple(crop_scale), (height, width), generator)
            if noise:
                views = views + noise * torch.randn(views.shape, generator=generator).to(views)
            score, _ = _objective_scores(model, [objective], to_input(views), crops, None)
            pull = ((x - photo) ** 2).mean()
            (gradient,) = torch.autograd.grad(-score.sum() + strength * pull, params)
            params.grad = gradient  # the change's own tensor; the model's .grad stays None
            optimizer.step()
            rows.append((float(score.detach()), float(pull.detach().sqrt())))
        params.grad = None
        with torch.no_grad():
            change = torch.fft.irfft2(torch.view_as_complex(params) * scale, s=(height, width),
                                      norm="ortho")
            result = torch.sigmoid(base + change)[0]
    history = torch.tensor(rows, dtype=torch.float64).reshape(-1, 2).T
    return Visualization(image=result, history={"objective": history[0].clone(),
                                                "distance": history[1].clone()})
