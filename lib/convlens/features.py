r"""Feature maps: what one layer of the network outputs for an input.

$$ A = f_\ell(x), \qquad A \in \mathbb{R}^{N \times K \times h \times w}
\text{ for a convolutional layer } \ell $$

[Zeiler & Fergus 2014][ref-zeiler2014] ("Visualizing and Understanding Convolutional
Networks") and [Yosinski et al. 2015][ref-yosinski2015] ("Understanding Neural Networks
Through Deep Visualization") look at these activations directly, channel by channel.
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_batch, resolve_layer
from .hooks import capture, only_call

__all__ = ["feature_maps"]


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
