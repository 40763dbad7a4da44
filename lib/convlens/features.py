r"""Feature maps: what one layer of the network outputs for an input.

$$ A = f_\ell(x), \qquad A \in \mathbb{R}^{N \times K \times h \times w}
\text{ for a convolutional layer } \ell $$

[Zeiler & Fergus 2014][ref-zeiler2014] ("Visualizing and Understanding Convolutional
Networks") and [Yosinski et al. 2015][ref-yosinski2015] ("Understanding Neural Networks
Through Deep Visualization") look at these activations directly, channel by channel.

[`saturation`][convlens.features.saturation] counts, for every clamping activation, the
units at either end of its range. A clamp $a = \min(\max(z, \ell), u)$ (ReLU: $\ell = 0$, no
$u$; ReLU6: $\ell = 0$, $u = 6$, Krizhevsky 2010, "Convolutional Deep Belief Networks on
CIFAR-10") has

$$ \frac{\partial a}{\partial z} = \begin{cases} 1 & \ell < z < u \\ 0 & \text{otherwise,}
\end{cases} $$

so a unit at $\ell$ (off) or at $u$ (saturated) passes no gradient back: every
gradient-based map (input gradients, gradient probes of a receptive field) is blind to what
reaches the network through it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._checks import check_batch, resolve_layer
from .hooks import capture, only_call

__all__ = ["Saturation", "feature_maps", "saturation"]


def feature_maps(model: nn.Module, x: torch.Tensor, layer: nn.Module | str) -> torch.Tensor:
    """The output of `layer` for the batch `x`.

    Returned as a detached copy, taken before any in-place operation downstream (the
    in-place ReLU after a convolution does not change it).

    Args:
        model: the network; run once, without gradients, and left as found.
        x: the input batch `[N, C, H, W]` (floating point, normalised).
        layer: a module of `model`, or its qualified name in `model.named_modules()`;
            it must be called exactly once per forward pass.

    Returns:
        The layer's output: `[N, K, h, w]` for a convolutional layer (whatever shape the
        layer returns, in general).

    Raises:
        TypeError: `x` is not a floating-point tensor, `layer` is neither a module nor a
            name, or the batch and the layer were passed in the wrong order.
        ValueError: `x` is not `[N, C, H, W]`, or `layer` is not in `model` or is not
            called exactly once.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> import convlens
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True))
        >>> x = torch.randn(1, 3, 8, 8)
        >>> maps = convlens.feature_maps(model, x, "0")
        >>> maps.shape
        torch.Size([1, 4, 6, 6])
        >>> bool((maps < 0).any())  # taken before the in-place ReLU
        True
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
    r"""The outputs of one clamping activation for a batch, counted at its two bounds. A unit
    at either bound has a zero derivative.

    Attributes:
        lower: the lower bound $\ell$ (0 for ReLU and ReLU6).
        upper: the upper bound $u$ (6 for ReLU6); None when there is none (ReLU).
        units: how many output values were counted (every call, every example).
        at_lower: how many of them equal $\ell$ (off).
        at_upper: how many equal $u$ (saturated); 0 without an upper bound.

    Examples:
        >>> from convlens.features import Saturation
        >>> counts = Saturation(lower=0.0, upper=6.0, units=10, at_lower=4, at_upper=1)
        >>> counts.share_at_lower, counts.share_at_upper, counts.share_without_gradient
        (0.4, 0.1, 0.5)
    """

    lower: float
    upper: float | None
    units: int
    at_lower: int
    at_upper: int

    @property
    def share_at_lower(self) -> float:
        """The share of units at the lower bound, `at_lower / units`."""
        return self.at_lower / self.units

    @property
    def share_at_upper(self) -> float:
        """The share of units at the upper bound, `at_upper / units`."""
        return self.at_upper / self.units

    @property
    def share_without_gradient(self) -> float:
        """The share of units at either bound: they pass no gradient back."""
        return (self.at_lower + self.at_upper) / self.units


def _clamp_bounds(module: nn.Module) -> tuple[float, float | None] | None:
    if isinstance(module, nn.Hardtanh):  # nn.ReLU6 is a Hardtanh(0, 6)
        return float(module.min_val), float(module.max_val)
    if isinstance(module, nn.ReLU):
        return 0.0, None
    return None


def saturation(model: nn.Module, x: torch.Tensor) -> dict[str, Saturation]:
    """How many outputs of every clamping activation module sit at its bounds.

    Counts every module that is an `nn.ReLU`, `nn.ReLU6` or `nn.Hardtanh` and runs on `x`,
    over every call and every example of the batch, under `no_grad`; the model is left as
    found. Activations called as functions (`F.relu6`) are not modules and are not seen.

    Args:
        model: the network.
        x: an input batch `[N, C, H, W]`.

    Returns:
        `{qualified module name: Saturation}`, in the order the modules are defined (a module
        that is defined but not called on `x` is left out).

    Raises:
        TypeError: `x` is not a floating-point tensor.
        ValueError: `x` is not `[N, C, H, W]`, or the model has no clamping activation
            module.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens.features import saturation
        >>> conv = nn.Conv2d(1, 1, 1, bias=False)
        >>> _ = conv.weight.data.fill_(1.0)
        >>> model = nn.Sequential(conv, nn.ReLU6()).eval()
        >>> x = torch.tensor([-1.0, 0.5, 3.0, 9.0]).view(1, 1, 2, 2)
        >>> counts = saturation(model, x)["1"]
        >>> counts.units, counts.at_lower, counts.at_upper
        (4, 1, 1)
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
