"""Grad-CAM and guided Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations
from Deep Networks via Gradient-based Localization").

With A the output of a convolutional layer ([K, h, w] per example) and y the target logit:

    alpha_k = 1/(h*w) * sum_{i,j} dy/dA_k[i, j]        (spatial mean of the gradient)
    L       = ReLU( sum_k alpha_k * A_k )               (a [h, w] map; a sum, no bias term)

then bilinearly upsampled to the input's (H, W). Values are raw (not normalised: that
is a display concern). Guided Grad-CAM multiplies guided backpropagation (shape of x)
by the upsampled map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_batch, check_target, resolve_layer, select_scores
from .guided import guided_backprop
from .hooks import capture, only_call

__all__ = ["gradcam", "guided_gradcam"]


def gradcam(
    model: nn.Module, x: torch.Tensor, target, layer: nn.Module | str, upsample: bool = True
) -> torch.Tensor:
    """Grad-CAM of ``layer`` for each example and its own target: ``[N, 1, H, W]``,
    or ``[N, 1, h, w]`` at the layer's resolution when ``upsample`` is False.

    The layer must be called exactly once per forward pass and output ``[N, K, h, w]``.
    """
    x = check_batch(x)
    target = check_target(target, x.shape[0])
    name, _ = resolve_layer(model, layer)
    # x requires grad so that A is in the graph even when every parameter is frozen.
    inputs = x.detach().clone().requires_grad_(True)
    with torch.enable_grad(), capture(model, name) as records:
        scores = select_scores(model(inputs), target)
    activations = only_call(records, name)
    if activations.ndim != 4:
        raise ValueError(
            f"layer {name!r} outputs shape {tuple(activations.shape)}, not a feature map "
            "[N, K, h, w]; choose a convolutional layer"
        )
    (grads,) = torch.autograd.grad(scores.sum(), activations)
    weights = grads.mean(dim=(2, 3), keepdim=True)  # alpha_k, [N, K, 1, 1]
    cam = F.relu((weights * activations).sum(dim=1, keepdim=True)).detach()
    if upsample:
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return cam


def guided_gradcam(
    model: nn.Module, x: torch.Tensor, target, layer: nn.Module | str
) -> torch.Tensor:
    """Guided backpropagation times the upsampled Grad-CAM map (shape of ``x``)."""
    return guided_backprop(model, x, target) * gradcam(model, x, target, layer)

