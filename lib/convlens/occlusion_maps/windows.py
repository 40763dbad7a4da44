"""Window geometry: where the occluding window sits, and which part of each layer's output it
can change.

Position ``p`` of the row-major grid of ``rows x cols`` positions puts the window's top-left
corner at ``(p // cols * stride, p % cols * stride)``. A *region* is one rectangle size with
one offset per position: the rectangle of a map whose values differ from the unoccluded ones.
Through a sliding layer (:class:`convlens.layers.Window` along each axis: kernel k, stride s,
dilation d, padding q before index 0) input rows ``[a, b]`` change output rows

    ceil((a + q - d (k - 1)) / s)  ...  floor((b + q) / s)

(:func:`projected`), clipped to the map. Positions are planned in blocks of neighbours
(:func:`position_blocks`) so that each block's rectangles fit its own positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..layers import Window


@dataclass(frozen=True, eq=False)
class Region:
    """The rectangle a map recomputes for every window position: its size, and its offsets
    ``top`` and ``left`` (``[P]`` tensors, one per position)."""

    height: int
    width: int
    top: torch.Tensor
    left: torch.Tensor

    def at(self, positions: torch.Tensor) -> Region:
        """The same rectangle for the positions ``positions`` (indices) only."""
        return Region(self.height, self.width, self.top[positions], self.left[positions])


def grid(height: int, width: int, window: int, stride: int) -> tuple[int, int]:
    """Rows and columns of window positions on a ``height x width`` image (the last rows and
    columns are never occluded when ``stride`` does not divide the rest)."""
    return (height - window) // stride + 1, (width - window) // stride + 1


def window_region(height: int, width: int, window: int, stride: int, device) -> Region:
    """The occluding window itself, at every position of the grid."""
    rows, cols = grid(height, width, window, stride)
    position = torch.arange(rows * cols, device=device)
    return Region(window, window, position // cols * stride, position % cols * stride)


def cover(lo: torch.Tensor, hi: torch.Tensor, size: int) -> tuple[torch.Tensor, int]:
    """Offsets and length of one run of indices, of the same length for every position, that
    holds ``[lo, hi]`` (per position) inside ``[0, size)``: shifted inwards at the borders,
    never shrunk."""
    lo, hi = lo.clamp(0, size - 1), hi.clamp(0, size - 1)
    length = int((hi - lo + 1).clamp(min=1).max())
    return lo.clamp(max=size - length), length


def projected(g: Window, start: torch.Tensor, length: int, size: int):
    """The output indices (offsets, length; see :func:`cover`) of a sliding layer with
    geometry ``g`` and ``size`` outputs that read any of the inputs
    ``start ... start + length - 1``."""
    lo = -((g.reach - 1 - start - g.before) // g.stride)  # ceil((start + q - d (k - 1)) / s)
    hi = (start + length - 1 + g.before) // g.stride
    return cover(lo, hi, size)


def union(a: Region, b: Region, height: int, width: int) -> Region:
    """The smallest region of a ``height x width`` map that holds both ``a`` and ``b``."""
    top, rows = cover(torch.minimum(a.top, b.top),
                      torch.maximum(a.top + a.height, b.top + b.height) - 1, height)
    left, cols = cover(torch.minimum(a.left, b.left),
                       torch.maximum(a.left + a.width, b.left + b.width) - 1, width)
    return Region(rows, cols, top, left)


def _mirrored(n: int) -> list[int]:
    """0, n-1, 1, n-2, ...: rows (or columns) ordered by distance from the nearer edge, so
    that neighbours in the list have projective fields of about the same size."""
    return [i // 2 if i % 2 == 0 else n - 1 - i // 2 for i in range(n)]


def _chunks(order: list[int], side: int) -> list[list[int]]:
    """``order`` cut into as few runs of at most ``side`` as possible, of near-equal length
    (25 by 6: 5, 5, 5, 5, 5, not 6, 6, 6, 6, 1)."""
    count = -(-len(order) // side)
    bounds = [round(i * len(order) / count) for i in range(count + 1)]
    return [order[a:b] for a, b in zip(bounds, bounds[1:])]


def position_blocks(rows: int, cols: int, side: int, device) -> list[torch.Tensor]:
    """The grid of window positions (row-major indices) cut into blocks of at most ``side``
    rows by ``side`` columns, rows and columns taken in ``_mirrored`` order: a block holds
    positions at about the same distances from the edges. Near an edge the edge of the map
    cuts the projective field, so such a block's rectangles are smaller than a middle one's."""
    positions = torch.arange(rows * cols, device=device).view(rows, cols)
    return [positions[r][:, c].flatten() for r in _chunks(_mirrored(rows), side)
            for c in _chunks(_mirrored(cols), side)]
