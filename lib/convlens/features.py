"""Feature maps: what one layer of the network outputs for an input.

    A = f_layer(x)   of shape [N, K, h, w] for a convolutional layer

Zeiler & Fergus 2014 ("Visualizing and Understanding Convolutional Networks") and
Yosinski et al. 2015 ("Understanding Neural Networks Through Deep Visualization")
look at these activations directly, channel by channel.
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_batch, resolve_layer
from .hooks import capture, only_call

__all__ = ["feature_maps"]


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
