"""Feature accentuation: a photo moved toward what a unit prefers, held near the photo.

Hamblin, Fel, Saha, Konkle & Alvarez 2024, "Feature accentuation: revealing 'what'
features respond to in natural images" (arXiv:2402.10039). Instead of starting from
noise, the ascent starts from a photo ``x0`` and is pulled back to it::

    x*(strength) = argmax_x  E_T [ objective( T(x) ) ]  -  strength * mean( (x - x0)^2 )

so the result is the photo with whatever in it the unit responds to made stronger: it
answers "what does this unit see *in this photo*", where a visualisation from noise
answers "what would it like to see". ``strength`` trades the two: large, the photo barely
changes; zero, the photo is only the starting point of a plain ascent.

The change is parameterised in Fourier space with the ``1/f`` scaling of Olah et al. 2017
(coarse structure moves first) and bounded by a sigmoid around the photo::

    x = sigmoid( logit(x0) + F^{-1}[ s / f ] ),      s = 0 at the start, so x = x0

(``x0`` clipped to [0.002, 0.998] so that its logit is finite). ``T`` is MACO's
transformation robustness (random crops, noise), as in :mod:`convlens.feature_visualization`.
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
    """Accentuate in ``image`` (pixels ``[3, H, W]`` in [0, 1]) what ``objective`` responds
    to, under the pull ``strength * mean((x - image)^2)`` (see the module docstring).

    Returns a :class:`~convlens.input_optimization.Visualization`: ``image [3, H, W]`` and
    ``history`` with ``"objective"`` (averaged over each step's crops, before the step's
    update) and ``"distance"`` (the root-mean-square pixel change from the photo).
    ``normalize`` maps pixels to the model's input; ``generator`` (CPU; ``None``: seeded
    with 0) draws the crops and the noise. The model is left as found.
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
