r"""Dataset examples: the image patches that excite one channel most.

The other half of feature visualisation ([Zeiler & Fergus 2014][ref-zeiler2014];
[Olah, Mordvintsev & Schubert 2017][ref-olah2017], section "Dataset examples"): run a pool
of real images through the network, rank every *position* $(n, i, j)$ of channel $c$ of a
layer by its activation $a_c(x_n)[i, j]$, and show, for the $k$ highest, the patch of the
input that unit can see: its receptive field
([`receptive_field`][convlens.receptive_fields.receptive_field]), clipped to the image.
An optimised picture shows what the unit would like to see; the top patches show what,
among real images, it actually responds to. The two are meant to be read together.
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_batch, check_positive_int, resolve_layer
from .hooks import capture, eval_mode, only_call, stop_after
from .receptive_fields import receptive_field

__all__ = ["channel_activations", "dataset_examples"]


def channel_activations(model: nn.Module, layer: nn.Module | str, channel: int,
                        images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """One channel of a layer's output for every image of a pool.

    The images go through the model in batches under `no_grad`, in eval mode; the first
    batch runs the whole network (which checks that the layer runs exactly once per pass),
    the others stop after the layer. The model is left as found.

    Args:
        model: the network; left as found.
        layer: a module of `model` or its qualified name, called once per forward pass.
        channel: the channel of its output.
        images: the pool, the model's normalised input `[N, 3, H, W]`.
        batch_size: images per forward pass.

    Returns:
        The channel's maps, `[N, h, w]`, float32 on the CPU.

    Raises:
        TypeError: `channel` or `batch_size` is not an int, or `images` is not a
            floating-point tensor.
        ValueError: an unknown layer, a layer that runs more than once per pass or whose
            output is not a feature map `[N, C, h, w]`, a channel out of range,
            `batch_size < 1`, or `images` not a non-empty batch `[N, C, H, W]`.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens.exemplars import channel_activations
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2)).eval()
        >>> images = torch.randn(5, 3, 16, 16)
        >>> maps = channel_activations(model, "0", 2, images, batch_size=2)
        >>> maps.shape
        torch.Size([5, 8, 8])
        >>> torch.allclose(maps, model[0](images)[:, 2].detach())
        True
    """
    name, _ = resolve_layer(model, layer)
    check_batch(images, "images")
    check_positive_int(batch_size, "batch_size")
    if isinstance(channel, bool) or not isinstance(channel, int):
        raise TypeError(f"channel must be an int, got {type(channel).__name__}")
    maps = []
    with eval_mode(model), torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            batch = images[start:start + batch_size]
            with capture(model, name) as records:
                if start == 0:  # the whole pass once: checks that the layer runs exactly once
                    model(batch)
                    output = only_call(records, name)
                else:
                    with stop_after(model, name):
                        model(batch)
                    output = records[name][0]
            if output.ndim != 4:
                raise ValueError(f"layer {name!r} gives output of shape {tuple(output.shape)}, "
                                 "not a feature map [N, C, h, w]")
            if not 0 <= channel < output.shape[1]:
                raise ValueError(f"channel {channel} is out of range for layer {name!r} with "
                                 f"{output.shape[1]} channels")
            maps.append(output[:, channel].float().cpu())
    return torch.cat(maps)


def dataset_examples(model: nn.Module, layer: nn.Module | str, channel: int,
                     images: torch.Tensor, k: int = 9, *, max_per_image: int | None = None,
                     batch_size: int = 16) -> list[tuple[int, tuple[int, int, int, int], float]]:
    """The `k` positions of one channel with the highest activation over a pool of images,
    and the patch each one sees.

    The activations come from
    [`channel_activations`][convlens.exemplars.channel_activations]. A position's box is
    the unit's receptive field
    ([`receptive_field`][convlens.receptive_fields.receptive_field] for the pool's
    `(H, W)`), clipped to the image: columns `x0 <= x < x1` and rows `y0 <= y < y1`, so
    `images[n, :, y0:y1, x0:x1]` is the patch. Ties keep the order of `(n, i, j)`.

    Args:
        model: the network; left as found.
        layer: a module of `model` or its qualified name, called once per forward pass and
            with a local receptive field (before any global pooling).
        channel: the channel of its output.
        images: the pool, the model's normalised input `[N, 3, H, W]`.
        k: how many positions to return.
        max_per_image: keep at most this many positions from any one image (neighbouring
            units of one image see nearly the same patch); None ranks every position.
        batch_size: images per forward pass.

    Returns:
        A list of `k` tuples `(image_index, (x0, y0, x1, y1), activation)`, highest
        activation first.

    Raises:
        TypeError: `channel`, `k`, `max_per_image` or `batch_size` is not an int, or
            `images` is not a floating-point tensor.
        ValueError: an unknown layer, a layer with no local receptive field (after a global
            pooling), a channel out of range, `k`, `max_per_image` or `batch_size` below 1,
            `images` not a non-empty batch `[N, C, H, W]`, or a `k` larger than the number
            of positions allowed.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens.exemplars import dataset_examples
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2)).eval()
        >>> images = torch.randn(4, 3, 16, 16)
        >>> top = dataset_examples(model, "0", 1, images, k=3, max_per_image=1)
        >>> len({index for index, box, activation in top})  # three different images
        3
        >>> index, (x0, y0, x1, y1), activation = top[0]
        >>> x1 - x0 <= 3 and y1 - y0 <= 3  # a 3x3 kernel sees at most 3x3 pixels
        True
        >>> activation == float(model[0](images)[:, 1].max().detach())  # the pool's highest
        True
    """
    name, _ = resolve_layer(model, layer)
    check_batch(images, "images")
    check_positive_int(k, "k")
    if max_per_image is not None:
        check_positive_int(max_per_image, "max_per_image")
    fields = receptive_field(model, tuple(images.shape[-2:]))
    if name not in fields or not fields[name].has_window:
        raise ValueError(f"layer {name!r} has no local receptive field (it is after a global "
                         "pooling, or not a spatial map): its units have no patch to show")
    field = fields[name]
    maps = channel_activations(model, name, channel, images, batch_size)
    n, h, w = maps.shape
    allowed = n * h * w if max_per_image is None else n * min(max_per_image, h * w)
    if k > allowed:
        raise ValueError(f"k={k} is more than the {allowed} positions available "
                         f"({n} images of {h}x{w} units, max_per_image={max_per_image})")
    order = torch.sort(maps.reshape(-1), descending=True, stable=True).indices.tolist()
    taken: dict[int, int] = {}
    examples = []
    for flat in order:
        index, rest = divmod(flat, h * w)
        if max_per_image is not None and taken.get(index, 0) >= max_per_image:
            continue
        taken[index] = taken.get(index, 0) + 1
        i, j = divmod(rest, w)
        top, left, bottom, right = field.box(i, j, clip=True)
        examples.append((index, (left, top, right, bottom), float(maps[index, i, j])))
        if len(examples) == k:
            break
    return examples
