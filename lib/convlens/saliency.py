"""Vanilla gradient and SmoothGrad saliency.

Gradient (Simonyan, Vedaldi & Zisserman 2014, "Deep Inside Convolutional Networks"):

    S_n = dy_n / dx_n,   y_n = model(x)[n, target[n]]   (the raw logit, not the softmax)

SmoothGrad (Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise"):

    S_n = 1/M * sum_{m=1..M} dy_n/dx (x_n + eps_m),   eps_m ~ N(0, sigma_n^2 I),
    sigma_n = noise * (max(x_n) - min(x_n))

sigma_n is a standard deviation, a fraction of the value range of *each* example.
Both return the raw signed gradient with the shape of ``x``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._checks import check_batch, check_positive_int, check_target, select_scores

__all__ = ["gradient", "smoothgrad", "gradient_x_input"]

IMAGES_PER_CHUNK = 16  # default SmoothGrad chunk: about this many noisy images per forward


def gradient(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    """dy_n/dx_n for every example of the batch (one forward and one backward pass).

    The batch is explained in one pass, which is exact when examples do not interact
    (``model.eval()``: BatchNorm in training mode mixes the examples of a batch).
    """
    x = check_batch(x)
    target = check_target(target, x.shape[0])
    inputs = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        scores = select_scores(model(inputs), target)
        (grad,) = torch.autograd.grad(scores.sum(), inputs)
    return grad


def _check_noise(noise) -> float:
    if isinstance(noise, bool) or not isinstance(noise, (int, float)):
        raise TypeError(f"noise must be a number, got {type(noise).__name__}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite fraction >= 0 of the input range, got {noise}")
    return float(noise)


def smoothgrad(
    model: nn.Module,
    x: torch.Tensor,
    target,
    samples: int = 50,
    noise: float = 0.15,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean gradient over ``samples`` noisy copies of each example (see module docstring).

    ``batch_size`` is the number of noisy samples per forward pass (each holds N images);
    None picks about 16 images per pass. The noise of sample m is always drawn m-th, one
    ``randn(x.shape)`` per sample, so the result does not depend on ``batch_size``.
    ``generator`` seeds the noise; it is drawn on the generator's device (the input's
    device when None) in the input's dtype, then moved to the input's device.
    """
    x = check_batch(x).detach()
    samples = check_positive_int(samples, "samples")
    noise = _check_noise(noise)
    n = x.shape[0]
    target = check_target(target, n)
    if batch_size is None:
        batch_size = max(1, min(samples, IMAGES_PER_CHUNK // n))
    batch_size = check_positive_int(batch_size, "batch_size")
    flat = x.flatten(1)
    sigma = (noise * (flat.amax(1) - flat.amin(1))).view(n, 1, 1, 1)
    draw_device = x.device if generator is None else generator.device

    total = torch.zeros_like(x)
    for start in range(0, samples, batch_size):
        chunk = min(batch_size, samples - start)
        eps = torch.stack(
            [
                torch.randn(x.shape, generator=generator, device=draw_device, dtype=x.dtype)
                for _ in range(chunk)
            ]
        ).to(x.device)
        noisy = (x + sigma * eps).reshape(chunk * n, *x.shape[1:])
        grads = gradient(model, noisy, target.repeat(chunk))
        total += grads.reshape(chunk, *x.shape).sum(0)
    return total / samples


def gradient_x_input(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    """Gradient times input, elementwise: ``x * dy_n/dx_n`` (shape of ``x``, signed).

    Shrikumar et al. 2016, "Not Just a Black Box: Learning Important Features Through
    Propagating Activation Differences" (arXiv:1605.01713). For a linear model
    y = w . x + b it is each input's exact share w_i x_i of y - b, the change from the
    all-zeros input; "zero" here is the model's *normalised* input space (the dataset
    mean colour after the usual ``Normalize``), not black. It equals Integrated
    Gradients from the zero baseline when the model is linear.
    """
    x = check_batch(x)
    return x.detach() * gradient(model, x, target)
