r"""Vanilla gradient, SmoothGrad and gradient × input.

**Gradient** ([Simonyan, Vedaldi & Zisserman 2014][ref-simonyan2013], "Deep Inside
Convolutional Networks"). With $y_n$ the raw logit `model(x)[n, target[n]]` of example $n$
(not the softmax):

$$ S_n = \frac{\partial y_n}{\partial x_n} $$

**SmoothGrad** ([Smilkov et al. 2017][ref-smilkov2017], "SmoothGrad: removing noise by
adding noise") averages the gradient over $M$ noisy copies of each example:

$$ S_n = \frac{1}{M} \sum_{m=1}^{M} \frac{\partial y_n}{\partial x}\Big|_{x_n + \epsilon_m},
\qquad \epsilon_m \sim \mathcal{N}(0, \sigma_n^2 I),
\qquad \sigma_n = \mathrm{noise} \cdot (\max x_n - \min x_n) $$

$\sigma_n$ is a standard deviation, a fraction of the value range of *each* example.

**Gradient × input** ([Shrikumar et al. 2016][ref-shrikumar2016]) is $x_n \odot S_n$ with
the plain gradient $S_n$.

All three return the raw signed result with the shape of `x`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._checks import check_batch, check_positive_int, check_target, select_scores

__all__ = ["gradient", "smoothgrad", "gradient_x_input"]

IMAGES_PER_CHUNK = 16  # default SmoothGrad chunk: about this many noisy images per forward


def gradient(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    r"""The gradient of each example's target logit with respect to that example.

    One forward and one backward pass for the whole batch, which is exact when examples do
    not interact (``model.eval()``: BatchNorm in training mode mixes the examples of a
    batch).

    Args:
        model: a classifier returning logits `[N, classes]`; left as found.
        x: the input batch `[N, C, H, W]` (floating point, normalised).
        target: the class explained: an int for every example, or one index per example
            (a list or a tensor of N).

    Returns:
        $\partial y_n / \partial x_n$, raw and signed, with the shape of `x`
        `[N, C, H, W]`.

    Raises:
        TypeError: `x` is not a floating-point tensor, or `target` is not integer.
        ValueError: `x` is not `[N, C, H, W]`, `target` has the wrong length or an index
            out of range, or the model does not return `[N, classes]`.

    Examples:
        A linear model's gradient is its weight row, whatever the input:

        >>> import torch
        >>> from torch import nn
        >>> import convlens
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2)).eval()
        >>> x = torch.randn(2, 3, 4, 4)
        >>> g = convlens.gradient(model, x, target=[0, 1])
        >>> g.shape
        torch.Size([2, 3, 4, 4])
        >>> torch.allclose(g[1].flatten(), model[1].weight[1])
        True
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
    r"""The mean gradient over `samples` noisy copies of each example (SmoothGrad).

    The noise of sample m is always drawn m-th, one ``randn(x.shape)`` per sample, so the
    result does not depend on `batch_size`.

    Args:
        model: a classifier returning logits `[N, classes]`; left as found.
        x: the input batch `[N, C, H, W]` (floating point, normalised).
        target: an int for every example, or one class index per example.
        samples: the number M of noisy copies per example.
        noise: $\sigma_n$ as a fraction of each example's value range
            $\max x_n - \min x_n$ (0.15: 15 %).
        batch_size: noisy samples per forward pass (each holds N images); None picks
            about 16 images per pass.
        generator: seeds the noise. It is drawn on the generator's device (the input's
            device when None) in the input's dtype, then moved to the input's device.

    Returns:
        The averaged gradient, raw and signed, with the shape of `x` `[N, C, H, W]`.

    Raises:
        TypeError: `x` is not a floating-point tensor, `target` is not integer, `noise`
            is not a number, or `samples`/`batch_size` are not ints.
        ValueError: `x` is not `[N, C, H, W]`, `target` does not fit the batch or the
            model's outputs, `noise` is negative or not finite, or `samples`/`batch_size`
            are below 1.

    Examples:
        With `noise=0` every copy is `x` itself: SmoothGrad is the gradient.

        >>> import torch
        >>> from torch import nn
        >>> import convlens
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2)).eval()
        >>> x = torch.randn(1, 3, 8, 8)
        >>> smooth = convlens.smoothgrad(model, x, target=1, samples=8,
        ...                              generator=torch.Generator().manual_seed(0))
        >>> smooth.shape
        torch.Size([1, 3, 8, 8])
        >>> torch.allclose(convlens.smoothgrad(model, x, 1, samples=4, noise=0.0),
        ...                convlens.gradient(model, x, 1))
        True
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
    r"""Gradient times input, elementwise: $x_n \odot \partial y_n / \partial x_n$.

    [Shrikumar et al. 2016][ref-shrikumar2016], "Not Just a Black Box: Learning Important
    Features Through Propagating Activation Differences". For a linear model
    $y = w \cdot x + b$ it is each input's exact share $w_i x_i$ of $y - b$, the change
    from the all-zeros input; "zero" here is the model's *normalised* input space (the
    dataset mean colour after the usual ``Normalize``), not black. It equals Integrated
    Gradients from the zero baseline when the model is linear.

    Args:
        model: a classifier returning logits `[N, classes]`; left as found.
        x: the input batch `[N, C, H, W]` (floating point, normalised); not modified.
        target: an int for every example, or one class index per example.

    Returns:
        `x * gradient(model, x, target)`, signed, with the shape of `x` `[N, C, H, W]`.

    Raises:
        TypeError: `x` is not a floating-point tensor, or `target` is not integer.
        ValueError: `x` is not `[N, C, H, W]`, `target` does not fit the batch or the
            model's outputs.

    Examples:
        For a linear model the attributions add up to the logit minus the bias:

        >>> import torch
        >>> from torch import nn
        >>> import convlens
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2)).eval()
        >>> x = torch.randn(1, 3, 4, 4)
        >>> a = convlens.gradient_x_input(model, x, target=0)
        >>> a.shape
        torch.Size([1, 3, 4, 4])
        >>> torch.allclose(a.sum(), model(x)[0, 0] - model[1].bias[0])
        True
    """
    x = check_batch(x)
    return x.detach() * gradient(model, x, target)
