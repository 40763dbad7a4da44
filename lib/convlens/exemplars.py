"""Dataset examples: the image patches that excite one channel most.

The other half of feature visualisation (Zeiler & Fergus 2014, "Visualizing and
understanding convolutional networks", ECCV; Olah, Mordvintsev & Schubert 2017, "Feature
visualization", Distill, section "Dataset examples"): run a pool of real images through
the network, rank every *position* ``(n, i, j)`` of channel ``c`` of a layer by its
activation ``a_c(x_n)[i, j]``, and show, for the ``k`` highest, the input patch that unit
can see: its receptive field (:func:`convlens.receptive_field`), clipped to the image.
An optimised picture says what the unit would like; the top patches say what, among real
images, it actually responds to. Read them together.
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
    """Channel ``channel`` of ``layer``'s output for every image of ``images`` (the model's
    normalised input ``[N, 3, H, W]``), ``[N, h, w]`` on the CPU, computed in batches of
    ``batch_size`` under ``no_grad`` (each pass stops after the layer)."""
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
    """The ``k`` positions of channel ``channel`` of ``layer`` with the highest activation
    over the pool ``images`` (the model's normalised input ``[N, 3, H, W]``), highest first,
    as ``(image_index, (x0, y0, x1, y1), activation)``.

    The box is the unit's receptive field (:func:`convlens.receptive_field` for the pool's
    ``(H, W)``), clipped to the image: columns ``x0 <= x < x1``, rows ``y0 <= y < y1``, so
    ``images[n, :, y0:y1, x0:x1]`` is the patch. ``max_per_image`` keeps at most that many
    positions from any one image (neighbouring units of one image see nearly the same
    patch); ``None`` ranks every position. Ties keep the order of ``(n, i, j)``.

    Raises ``ValueError`` for a layer with no local window (after a global pooling), an
    unknown layer, a channel out of range, or a ``k`` larger than the number of positions
    allowed.
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
