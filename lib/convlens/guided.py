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
not) and raises ``ValueError`` for functional ``F.relu`` calls it cannot reach.
Results are raw and signed, with the shape of ``x``.
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_batch, check_target
from .hooks import relu_backward_rule
from .saliency import gradient


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
