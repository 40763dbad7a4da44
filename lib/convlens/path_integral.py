r"""Integrated Gradients ([Sundararajan, Taly & Yan 2017][ref-sundararajan2017], "Axiomatic
Attribution for Deep Networks").

With $x'$ a baseline and $y$ the target's raw logit, the attribution of input $i$ is the
gradient integrated along the straight path from $x'$ to $x$:

$$ \mathrm{IG}_i(x) = (x_i - x'_i) \int_0^1
\frac{\partial y}{\partial x_i}\big(x' + a (x - x')\big) \, da $$

and it is *complete*: $\sum_i \mathrm{IG}_i(x) = y(x) - y(x')$. The integral is
approximated with $m$ = `steps` intervals at the points $a_k = k/m$, where $g_k$ is the
gradient at $x' + a_k (x - x')$:

| `rule` | sum | gradients |
|---|---|---|
| `"trapezoid"` (default) | $\frac{1}{m} \big[ \tfrac{1}{2} g_0 + g_1 + \dots + g_{m-1} + \tfrac{1}{2} g_m \big]$ | $m + 1$ |
| `"right"` (the paper's Riemann sum, eq. 3) | $\frac{1}{m} \big[ g_1 + \dots + g_m \big]$ | $m$ |

Both converge to the integral as $m$ grows (the trapezoid rule faster where the gradient is
smooth along the path); the completeness gap $\sum_i \mathrm{IG}_i - (y(x) - y(x'))$
measures the error. The default baseline is zeros in the model's *normalised* input space,
i.e. the dataset mean colour, not black.
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_batch, check_positive_int, check_target
from .saliency import IMAGES_PER_CHUNK, gradient

__all__ = ["integrated_gradients"]

RULES = ("trapezoid", "right")


def path_baseline(x: torch.Tensor, baseline, name: str = "baseline") -> torch.Tensor:
    """``baseline`` (None = zeros, a number, or a tensor broadcastable to ``x``) as ``x``'s shape."""
    if baseline is None:
        return torch.zeros_like(x)
    if isinstance(baseline, bool):
        raise TypeError(f"{name} must be None, a number or a tensor, got a bool")
    if isinstance(baseline, (int, float)):
        return torch.full_like(x, float(baseline))
    if not isinstance(baseline, torch.Tensor):
        raise TypeError(f"{name} must be None, a number or a tensor, got {type(baseline).__name__}")
    if not baseline.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {baseline.dtype}")
    try:
        return torch.broadcast_to(baseline.detach().to(x.device, x.dtype), x.shape).clone()
    except RuntimeError:
        raise ValueError(
            f"{name} of shape {tuple(baseline.shape)} does not broadcast to the input "
            f"{tuple(x.shape)}"
        ) from None


def integrated_gradients(
    model: nn.Module,
    x: torch.Tensor,
    target,
    baseline=None,
    steps: int = 32,
    batch_size: int | None = None,
    rule: str = "trapezoid",
) -> torch.Tensor:
    """Integrated Gradients of each example for its own target.

    The result does not depend on `batch_size`.

    Args:
        model: a classifier returning logits `[N, classes]`; left as found.
        x: the input batch `[N, C, H, W]` (floating point, normalised).
        target: an int for every example, or one class index per example.
        baseline: the path's start $x'$: None (zeros in the normalised input space), a
            number, or a tensor that broadcasts to `x`.
        steps: the number of intervals $m$ of the path.
        batch_size: path points per forward pass (each holds N images); None picks about
            16 images per pass.
        rule: `"trapezoid"` or `"right"` (see the table above).

    Returns:
        The attributions, signed, with the shape of `x` `[N, C, H, W]`; their sum per
        example approximates $y(x) - y(x')$.

    Raises:
        TypeError: `x` is not a floating-point tensor, `target` is not integer,
            `steps`/`batch_size` are not ints, or `baseline` is not None, a number or a
            floating-point tensor.
        ValueError: `x` is not `[N, C, H, W]`; `target` does not fit the batch or the
            model's outputs; `steps`/`batch_size` are below 1; `rule` is unknown; or
            `baseline` does not broadcast to `x`.

    Examples:
        Completeness: the attributions add up to the change of the logit along the path.

        >>> import torch
        >>> from torch import nn
        >>> import convlens
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2)).eval()
        >>> x = torch.randn(1, 3, 8, 8)
        >>> ig = convlens.integrated_gradients(model, x, target=1, steps=64)
        >>> ig.shape
        torch.Size([1, 3, 8, 8])
        >>> change = model(x)[0, 1] - model(torch.zeros_like(x))[0, 1]
        >>> bool(torch.isclose(ig.sum(), change, rtol=1e-2, atol=1e-3))
        True
    """
    x = check_batch(x).detach()
    n = x.shape[0]
    target = check_target(target, n)
    steps = check_positive_int(steps, "steps")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    start = path_baseline(x, baseline)
    if batch_size is None:
        batch_size = max(1, IMAGES_PER_CHUNK // n)
    batch_size = check_positive_int(batch_size, "batch_size")

    if rule == "trapezoid":
        ks = list(range(steps + 1))
        weights = [0.5 if k in (0, steps) else 1.0 for k in ks]
    else:
        ks = list(range(1, steps + 1))
        weights = [1.0] * steps
    delta = x - start
    total = torch.zeros_like(x)
    for first in range(0, len(ks), batch_size):
        chunk = ks[first:first + batch_size]
        alphas = torch.tensor([k / steps for k in chunk], dtype=x.dtype, device=x.device)
        points = start[None] + alphas.view(-1, 1, 1, 1, 1) * delta[None]  # [B, N, C, H, W]
        grads = gradient(model, points.reshape(-1, *x.shape[1:]), target.repeat(len(chunk)))
        w = torch.tensor(weights[first:first + batch_size], dtype=x.dtype, device=x.device)
        total += (w.view(-1, 1, 1, 1, 1) * grads.reshape(len(chunk), *x.shape)).sum(0)
    return delta * total / steps
