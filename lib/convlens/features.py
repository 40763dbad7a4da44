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
from ._hooks import capture


def only_call(records: dict[str, list[torch.Tensor]], name: str) -> torch.Tensor:
    """The output of ``name`` from a ``capture`` record, which must hold exactly one call."""
    calls = records[name]
    if len(calls) == 0:
        raise ValueError(f"layer {name!r} was not called during the forward pass")
    if len(calls) > 1:
        raise ValueError(
            f"layer {name!r} was called {len(calls)} times in one forward pass (a shared "
            "module, e.g. ResNet's relu), so its output is ambiguous; choose a layer "
            "called once, e.g. the block that contains it"
        )
    return calls[0]


def feature_maps(model: nn.Module, layer: nn.Module | str, x: torch.Tensor) -> torch.Tensor:
    """The output of ``layer`` (a module or its qualified name) for the batch ``x``.

    Returned as a detached copy, taken before any in-place operation downstream
    (the ReLU after a convolution does not change it).
    """
    x = check_batch(x)
    name, _ = resolve_layer(model, layer)
    with torch.no_grad(), capture(model, name) as records:
        model(x)
    return only_call(records, name).detach().clone()
