"""Deconvnet and guided backpropagation: the gradient with a changed rule at every ReLU.

With s the input of a ReLU in the forward pass and g the gradient arriving from
above, each method back-propagates through the rectifier as

    plain gradient:            1{s > 0} * g
    deconvnet:                 max(0, g)                 (Zeiler & Fergus 2014,
                                                          "Visualizing and Understanding
                                                          Convolutional Networks")
    guided backpropagation:    1{s > 0} * 1{g > 0} * g   (Springenberg et al. 2014,
                                                          "Striving for Simplicity:
                                                          The All Convolutional Net")

and like the plain gradient through every other layer. For ReLU6 the forward gate
is 1{0 < s < 6}. The rule swap is :func:`convlens.hooks.relu_backward_rule`; it
covers ``nn.ReLU``/``nn.ReLU6`` modules (called any number of times, in-place or
not) and functional ``F.relu``/``torch.relu_``/``x.relu()``/``F.relu6``/
``F.hardtanh(x, 0, u)`` calls (torchvision's GoogLeNet, Inception-v3, DenseNet).

Both rules are defined for rectifiers only. A network with another activation
(SiLU in torchvision's EfficientNet, Hardswish in MobileNetV3, GELU in ConvNeXt)
gets a ``ValueError`` naming the activation and the module, never a plain gradient
under the method's name; :func:`rectifier_support` says beforehand which case a
model is. Results are raw and signed, with the shape of ``x``.
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_batch, check_target, model_device_dtype
from .hooks import eval_mode, relu_backward_rule
from .saliency import gradient

__all__ = ["deconvnet", "guided_backprop", "rectifier_support", "unsupported_activations"]


def _gradient_with_rule(model: nn.Module, x: torch.Tensor, target, rule: str) -> torch.Tensor:
    x = check_batch(x)
    check_target(target, x.shape[0])
    with relu_backward_rule(model, rule):
        return gradient(model, x, target)


def deconvnet(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    """Zeiler & Fergus's deconvnet: only positive gradients pass each ReLU, whatever s."""
    return _gradient_with_rule(model, x, target, "deconvnet")


def guided_backprop(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    """Springenberg et al.'s guided backprop: the ReLU's forward gate and a positive gradient."""
    return _gradient_with_rule(model, x, target, "guided")


def _survey(model: nn.Module, input_size: tuple[int, int]) -> tuple[dict, list]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if (not isinstance(input_size, (tuple, list)) or len(input_size) != 2
            or not all(isinstance(v, int) and v > 0 for v in input_size)):
        raise ValueError(f"input_size must be (height, width) in pixels, got {input_size!r}")
    device, dtype = model_device_dtype(model)
    report: list[tuple[str, str]] = []
    x = torch.zeros(1, 3, *input_size, device=device, dtype=dtype)
    with torch.no_grad(), eval_mode(model), relu_backward_rule(model, "guided", report) as counts:
        model(x)
    return dict(counts), report


def unsupported_activations(model: nn.Module,
                            input_size: tuple[int, int] = (224, 224)) -> list[tuple[str, str]]:
    """``(module qualified name, activation)`` for every activation the ReLU rules do
    not cover: modules found by type, functional calls found in one forward pass of a
    zero image (the module named is the one that made the call). Empty when deconvnet
    and guided backprop apply."""
    return _survey(model, input_size)[1]


def rectifier_support(model: nn.Module, input_size: tuple[int, int] = (224, 224)) -> str:
    """Which case ``model`` is, from one forward pass of a zero image:

    - ``"modules"``: every rectifier is an ``nn.ReLU``/``nn.ReLU6`` module;
    - ``"functional"``: some (or all) rectifiers are functional calls, which the rule
      reaches through the torch-function mode;
    - ``"unsupported"``: another activation runs (see :func:`unsupported_activations`):
      :func:`deconvnet` and :func:`guided_backprop` raise ``ValueError``;
    - ``"none"``: no rectifier runs at all: they raise too.
    """
    counts, report = _survey(model, input_size)
    if report:
        return "unsupported"
    if counts["functional"]:
        return "functional"
    return "modules" if counts["modules"] else "none"
