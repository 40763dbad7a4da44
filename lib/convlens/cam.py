r"""Grad-CAM and guided Grad-CAM ([Selvaraju et al. 2017][ref-selvaraju2017], "Grad-CAM:
Visual Explanations from Deep Networks via Gradient-based Localization").

With $A$ the output of a convolutional layer ($K$ maps of $h \times w$ per example) and $y$
the target's raw logit:

$$ \alpha_k = \frac{1}{h w} \sum_{i,j} \frac{\partial y}{\partial A_k[i, j]}
\qquad \text{(the spatial mean of the gradient)} $$

$$ L = \mathrm{ReLU}\Big( \sum_k \alpha_k A_k \Big)
\qquad \text{(an } h \times w \text{ map; a sum, no bias term)} $$

then bilinearly upsampled to the input's $(H, W)$. Values are raw (not normalised: that is
a display concern). Guided Grad-CAM multiplies guided backpropagation (shape of `x`) by the
upsampled map.
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
    r"""Grad-CAM of `layer` for each example and its own target.

    The layer must be called exactly once per forward pass and output `[N, K, h, w]`.

    Args:
        model: a classifier returning logits `[N, classes]`; left as found.
        x: the input batch `[N, C, H, W]` (floating point, normalised).
        target: an int for every example, or one class index per example.
        layer: a convolutional layer of `model`, or its qualified name in
            `model.named_modules()`.
        upsample: bilinearly upsample the map to the input's `(H, W)`; False keeps the
            layer's resolution `(h, w)`.

    Returns:
        The raw map (not normalised, $\geq 0$): `[N, 1, H, W]`, or `[N, 1, h, w]` when
        `upsample` is False.

    Raises:
        TypeError: `x` is not a floating-point tensor, `target` is not integer, or
            `layer` is neither a module nor a name.
        ValueError: `x` is not `[N, C, H, W]`; `target` does not fit the batch or the
            model's outputs; `layer` is not in `model`, is not called exactly once, or
            does not output a feature map `[N, K, h, w]`.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> import convlens
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2)).eval()
        >>> x = torch.randn(2, 3, 8, 8)
        >>> cam = convlens.gradcam(model, x, target=[0, 1], layer="0")
        >>> cam.shape, bool((cam >= 0).all())
        (torch.Size([2, 1, 8, 8]), True)
        >>> convlens.gradcam(model, x, 0, model[0], upsample=False).shape
        torch.Size([2, 1, 4, 4])
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
    """Guided backpropagation times the upsampled Grad-CAM map.

    The rectifiers of `model` must be ReLU or ReLU6 (see
    [`rectifier_support`][convlens.guided.rectifier_support]).

    Args:
        model: a classifier with ReLU/ReLU6 rectifiers, returning logits `[N, classes]`;
            left as found.
        x: the input batch `[N, C, H, W]` (floating point, normalised).
        target: an int for every example, or one class index per example.
        layer: the convolutional layer of Grad-CAM (a module of `model` or its name).

    Returns:
        `guided_backprop(model, x, target) * gradcam(model, x, target, layer)`, signed,
        with the shape of `x` `[N, C, H, W]`.

    Raises:
        TypeError: as [`gradcam`][convlens.cam.gradcam].
        ValueError: as [`gradcam`][convlens.cam.gradcam], and when `model` runs an
            activation other than ReLU/ReLU6, or no rectifier at all.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> import convlens
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2)).eval()
        >>> x = torch.randn(1, 3, 8, 8)
        >>> convlens.guided_gradcam(model, x, target=1, layer="0").shape
        torch.Size([1, 3, 8, 8])
    """
    return guided_backprop(model, x, target) * gradcam(model, x, target, layer)

