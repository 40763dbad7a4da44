"""Crops: a layer's input for the rectangle it recomputes, and the full maps after the last
local layer.

An activation of the occluded copies is held as :class:`LocalValue`: the unoccluded map and,
per copy, the patch that differs from it. A sliding layer recomputes its changed rectangle
from a crop of its input (:class:`Reader`): the patch where it is, the unoccluded map
elsewhere, and the layer's own padding outside the map (zeros, or -inf for max pooling:
:func:`sliding_kernel`), so that the layer then runs with no padding of its own.
Rectangles are read and written through a strided view (:func:`rectangles`) rather than
index by index.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import Window, sliding_windows, timm_class
from .windows import Region


class LocalValue:
    """An activation of the occluded copies: the unoccluded map ``base`` [N, C, H, W] and, per
    copy, the values ``patch`` [B, C, h, w] of the rectangle at (``top``, ``left``)."""

    __slots__ = ("base", "patch", "top", "left")

    def __init__(self, base, patch, top, left):
        self.base, self.patch, self.top, self.left = base, patch, top, left


def patch_of(value):
    """The patch of a local value; any other value as it is."""
    return value.patch if isinstance(value, LocalValue) else value


@dataclass(frozen=True)
class Sliding:
    """A sliding layer as the engine runs it on crops: its geometry along (rows, cols), the
    value of its padding, and the layer applied to a crop that already holds its padding."""

    geometry: tuple[Window, Window]
    pad: float
    run: Callable[[torch.Tensor], torch.Tensor]


def sliding_kernel(m: nn.Module, input_size) -> Sliding | None:
    """How to run ``m`` on crops, or None if it is not a sliding layer the engine can prove
    local: a zero-padded ``nn.Conv2d`` (timm's ``Conv2dSame`` too), an ``nn.MaxPool2d`` or
    ``nn.AvgPool2d`` without ``ceil_mode`` (an average pool's padding counted in its
    divisor). Exact types: a subclass may compute something else."""
    kind, same = type(m), timm_class("Conv2dSame")
    if kind is nn.Conv2d or (same is not None and kind is same):
        if m.padding_mode != "zeros":
            return None
        return Sliding(sliding_windows(m, input_size), 0.0,
                       lambda crop: F.conv2d(crop, m.weight, m.bias, m.stride, 0, m.dilation,
                                             m.groups))
    if kind is nn.MaxPool2d and not m.ceil_mode and not m.return_indices:
        rows, cols = sliding_windows(m, input_size)
        return Sliding((rows, cols), -math.inf, lambda crop: F.max_pool2d(
            crop, (rows.kernel, cols.kernel), (rows.stride, cols.stride), 0,
            (rows.dilation, cols.dilation)))
    if kind is nn.AvgPool2d and not m.ceil_mode and m.divisor_override is None:
        rows, cols = sliding_windows(m, input_size)
        if (rows.before or cols.before) and not m.count_include_pad:
            return None
        return Sliding((rows, cols), 0.0, lambda crop: F.avg_pool2d(
            crop, (rows.kernel, cols.kernel), (rows.stride, cols.stride), 0))
    return None


def rectangles(maps: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """A view [B, H - h + 1, W - w + 1, h, w, C] of ``maps`` [B, H, W, C] (any strides): the
    h x w rectangle at every offset. Indexing its first three dimensions with one (copy, top,
    left) per copy reads or writes whole rectangles, faster than indexing every row and
    column (B x h x w index triples)."""
    b, height, width, c = maps.shape
    sb, sh, sw, sc = maps.stride()
    return maps.as_strided((b, height - h + 1, width - w + 1, h, w, c), (sb, sh, sw, sh, sw, sc))


class Reader:
    """Crops of one local input for one layer: for window position p, rows
    ``starts_r[p] ... starts_r[p] + length_r - 1`` (likewise columns) of the occluded copy,
    that is the patch where it is, the unoccluded map elsewhere and the layer's padding
    outside the map. ``padded`` is the unoccluded map with that padding, [N, H, W, C] (one
    per layer, shared by every block), ``before`` its (rows, cols) before index 0. The patch
    is written into each crop (``inside``: it always fits), else merged element by element."""

    def __init__(self, padded, before, source: Region, starts_r, starts_c, length_r, length_c):
        self.windows = rectangles(padded, length_r, length_c)
        self.starts_r, self.starts_c = starts_r + before[0], starts_c + before[1]
        self.steps_r = torch.arange(length_r, device=padded.device)
        self.steps_c = torch.arange(length_c, device=padded.device)
        self.rel_r, self.rel_c = source.top - starts_r, source.left - starts_c
        self.inside = bool(((self.rel_r >= 0) & (self.rel_r + source.height <= length_r)).all()
                           and ((self.rel_c >= 0) & (self.rel_c + source.width <= length_c)).all())

    def __call__(self, value: LocalValue, example, position):
        out = self.windows[example, self.starts_r[position], self.starts_c[position]]  # [B,L,M,C]
        patch = value.patch.permute(0, 2, 3, 1)
        h, w = patch.shape[1:3]
        if self.inside:
            copies = torch.arange(patch.shape[0], device=patch.device)
            rectangles(out, h, w)[copies, self.rel_r[position], self.rel_c[position]] = patch
        else:  # crop row i holds patch row i - rel_r where that is in [0, h)
            copies = torch.arange(patch.shape[0], device=patch.device)[:, None, None]
            ir = self.steps_r - self.rel_r[position][:, None]  # [B, L]
            ic = self.steps_c - self.rel_c[position][:, None]
            keep = ((ir >= 0) & (ir < h))[:, :, None] & ((ic >= 0) & (ic < w))[:, None, :]
            inside = patch[copies, ir.clamp(0, h - 1)[:, :, None], ic.clamp(0, w - 1)[:, None, :]]
            out = torch.where(keep[..., None], inside, out)
        return out.permute(0, 3, 1, 2)  # channels_last memory


def materialize(value, example):
    """The full maps [B, C, H, W] of the occluded copies of ``example`` (any value that is not
    a :class:`LocalValue` as it is)."""
    if not isinstance(value, LocalValue):
        return value
    base, patch = value.base, value.patch
    h, w = patch.shape[-2:]
    if (h, w) == tuple(base.shape[-2:]):
        return patch
    full = base.permute(0, 2, 3, 1)[example]  # a copy [B, H, W, C]
    copies = torch.arange(patch.shape[0], device=patch.device)
    rectangles(full, h, w)[copies, value.top, value.left] = patch.permute(0, 2, 3, 1)
    return full.permute(0, 3, 1, 2)
