"""Feature maps: what one layer of the network outputs for an input.

    A = f_layer(x)   of shape [N, K, h, w] for a convolutional layer

Zeiler & Fergus 2014 ("Visualizing and Understanding Convolutional Networks") and
Yosinski et al. 2015 ("Understanding Neural Networks Through Deep Visualization")
look at these activations directly, channel by channel.

:func:`saturation` counts, for every clamping activation, the units at either end of its
range. A clamp ``a = min(max(z, lo), hi)`` (ReLU: lo = 0, no hi; ReLU6: lo = 0, hi = 6,
Krizhevsky 2010, "Convolutional Deep Belief Networks on CIFAR-10") has

    da/dz = 1 if lo < z < hi, else 0,

so a unit at ``lo`` (off) or at ``hi`` (saturated) passes no gradient back: every
gradient-based map (input gradients, gradient probes of a receptive field) is blind to
what reaches the network through it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._checks import check_batch, resolve_layer
from .hooks import capture, only_call


def feature_maps(model: nn.Module, x: torch.Tensor, layer: nn.Module | str) -> torch.Tensor:
    """The output of ``layer`` (a module or its qualified name) for the batch ``x``.

    Returned as a detached copy, taken before any in-place operation downstream
    (the ReLU after a convolution does not change it).
    """
    if isinstance(x, (str, nn.Module)) and isinstance(layer, torch.Tensor):
        raise TypeError(
            "feature_maps takes (model, x, layer): the batch comes before the layer, "
            "like every convlens function"
        )
    x = check_batch(x)
    name, _ = resolve_layer(model, layer)
    with torch.no_grad(), capture(model, name) as records:
        model(x)
    return only_call(records, name).detach().clone()


@dataclass(frozen=True)
class Saturation:
    """The outputs of one clamping activation for a batch: ``units`` values in all,
    ``at_lower`` of them at its lower bound ``lower``, ``at_upper`` at its upper bound
    ``upper`` (0 when it has none). A unit at either bound has a zero derivative."""

    lower: float
    upper: float | None
    units: int
    at_lower: int
    at_upper: int

    @property
    def share_at_lower(self) -> float:
        return self.at_lower / self.units

    @property
    def share_at_upper(self) -> float:
        return self.at_upper / self.units

    @property
    def share_without_gradient(self) -> float:
        return (self.at_lower + self.at_upper) / self.units


def _clamp_bounds(module: nn.Module) -> tuple[float, float | None] | None:
    if isinstance(module, nn.Hardtanh):  # nn.ReLU6 is a Hardtanh(0, 6)
        return float(module.min_val), float(module.max_val)
    if isinstance(module, nn.ReLU):
        return 0.0, None
    return None


def saturation(model: nn.Module, x: torch.Tensor) -> dict[str, Saturation]:
    """For every clamping activation module (``nn.ReLU``, ``nn.ReLU6``, ``nn.Hardtanh``) that
    runs on ``x``, how many of its outputs sit at its lower and upper bound, counted over
    every call and every example of the batch: ``{qualified name: Saturation}`` in the
    order the modules are defined. Activations called as functions (``F.relu6``) are not
    modules and are not seen; a model with no clamping module at all is a ``ValueError``.
    """
    x = check_batch(x)
    bounds = {name: b for name, m in model.named_modules() if (b := _clamp_bounds(m))}
    if not bounds:
        raise ValueError("the model has no clamping activation module (nn.ReLU, nn.ReLU6, "
                         "nn.Hardtanh): nothing to count (functional calls are not seen)")
    with torch.no_grad(), capture(model, list(bounds)) as records:
        model(x)
    result = {}
    for name, (lower, upper) in bounds.items():
        if not records[name]:
            continue  # defined but not called on this input
        values = torch.cat([call.flatten() for call in records[name]])
        result[name] = Saturation(lower, upper, values.numel(), int((values <= lower).sum()),
                                  int((values >= upper).sum()) if upper is not None else 0)
    return result
