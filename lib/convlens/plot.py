"""Figure helpers: turning weights, maps and attributions into pictures.

Everything here is presentation. The techniques return raw tensors; the choices
made for display (per-filter rescaling, reducing a 3-channel gradient to one
heat map, a diverging colour map centred on zero) live here, in one place, and
are named in each function's docstring.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = [
    "grid_figure", "filters_rgb", "kernel_heatmaps", "collated_kernels", "feature_map_grid",
    "heatmap", "signed_to_rgb", "overlay", "image_row",
]


def _numpy(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().float().cpu().numpy()
    return np.asarray(t, dtype=np.float32)


def grid_figure(count: int, ncols: int, cell: float = 1.0, title: str | None = None):
    """A figure of ``count`` axes in rows of ``ncols``, ticks off; unused cells hidden."""
    ncols = max(1, min(ncols, count))
    nrows = math.ceil(count / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * cell, nrows * cell + (0.4 if title else 0)),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig, list(axes.flat)[:count]


def filters_rgb(weight: torch.Tensor, ncols: int = 16, title: str | None = None):
    """First-layer filters ``[C_out, 3, k, k]`` as RGB patches.

    Each filter is rescaled on its own to [0, 1] (min to 0, max to 1): the
    colours show the filter's pattern, not its magnitude relative to others.
    """
    w = _numpy(weight)
    if w.ndim != 4 or w.shape[1] != 3:
        raise ValueError(f"filters_rgb needs weights [C_out, 3, k, k], got {w.shape}")
    fig, axes = grid_figure(w.shape[0], ncols, cell=0.7, title=title)
    for ax, f in zip(axes, w):
        f = (f - f.min()) / max(float(f.max() - f.min()), 1e-12)
        ax.imshow(f.transpose(1, 2, 0))
    return fig


def kernel_heatmaps(weight: torch.Tensor, filters: list[int], title: str | None = None,
                    channel_names: list[str] | None = None):
    """One row per chosen filter, one heat map per input channel of that filter.

    Diverging colour map, symmetric around zero per row, so positive and
    negative weights read the same way in every kernel of a filter.
    """
    w = _numpy(weight)
    c_in = w.shape[1]
    fig, axes = plt.subplots(len(filters), c_in, figsize=(c_in * 1.1, len(filters) * 1.1 + 0.4),
                             squeeze=False)
    for row, f in enumerate(filters):
        limit = max(float(np.abs(w[f]).max()), 1e-12)
        for col in range(c_in):
            ax = axes[row][col]
            ax.imshow(w[f, col], cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(f"filter {f}", fontsize=8)
            if row == 0:
                ax.set_title(channel_names[col] if channel_names else f"in {col}", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def collated_kernels(weight: torch.Tensor, max_filters: int | None = None,
                     max_channels: int | None = None, gap: int = 1) -> np.ndarray:
    """Tile every 2-D kernel of a conv weight ``[C_out, C_in, k, k]`` into one image.

    Row ``i`` of tiles is filter ``i``, column ``j`` its kernel on input channel
    ``j``. Each kernel is rescaled to [0, 1] on its own; gaps are NaN (drawn as
    background by ``imshow``). Returns the 2-D array; draw it with ``imshow``.
    """
    w = _numpy(weight)[:max_filters, :max_channels]
    c_out, c_in, kh, kw = w.shape
    tiled = np.full((c_out * (kh + gap) - gap, c_in * (kw + gap) - gap), np.nan, dtype=np.float32)
    low = w.min(axis=(2, 3), keepdims=True)
    span = np.maximum(w.max(axis=(2, 3), keepdims=True) - low, 1e-12)
    scaled = (w - low) / span
    for i in range(c_out):
        for j in range(c_in):
            tiled[i * (kh + gap):i * (kh + gap) + kh, j * (kw + gap):j * (kw + gap) + kw] = scaled[i, j]
    return tiled


def feature_map_grid(maps: torch.Tensor, channels: list[int] | None = None, ncols: int = 8,
                     title: str | None = None, cmap: str = "viridis"):
    """Feature maps ``[C, H, W]`` of one image, each with its own colour scale."""
    m = _numpy(maps)
    if m.ndim != 3:
        raise ValueError(f"feature_map_grid needs maps [C, H, W], got {m.shape}")
    channels = list(range(m.shape[0])) if channels is None else list(channels)
    fig, axes = grid_figure(len(channels), ncols, cell=1.2, title=title)
    for ax, c in zip(axes, channels):
        ax.imshow(m[c], cmap=cmap)
        ax.set_title(f"ch {c}", fontsize=7)
    return fig


def heatmap(attribution: torch.Tensor, reduce: str = "abs_max") -> np.ndarray:
    """Reduce a gradient-like ``[3, H, W]`` (or ``[1, 3, H, W]``) to ``[H, W]`` in [0, 1].

    ``abs_max``: max over colour channels of |g| (Simonyan et al. 2013);
    ``abs_sum``: sum of |g| over channels; ``positive``: ReLU of the channel sum.
    Divided by the map's own maximum, so only relative values are shown.
    """
    a = _numpy(attribution)
    if a.ndim == 4:
        a = a[0]
    if a.ndim == 2:
        a = a[None]
    if reduce == "abs_max":
        m = np.abs(a).max(axis=0)
    elif reduce == "abs_sum":
        m = np.abs(a).sum(axis=0)
    elif reduce == "positive":
        m = np.maximum(a.sum(axis=0), 0)
    else:
        raise ValueError(f"unknown reduce {reduce!r}: use 'abs_max', 'abs_sum' or 'positive'")
    return m / max(float(m.max()), 1e-12)


def signed_to_rgb(attribution: torch.Tensor) -> np.ndarray:
    """A signed ``[3, H, W]`` attribution as an RGB picture: 0.5 grey is zero."""
    a = _numpy(attribution)
    if a.ndim == 4:
        a = a[0]
    scale = max(float(np.abs(a).max()), 1e-12)
    return np.clip(0.5 + 0.5 * a / scale, 0, 1).transpose(1, 2, 0)


def overlay(ax, image: np.ndarray, heat: np.ndarray, alpha: float = 0.5, cmap: str = "jet",
            title: str | None = None):
    """Draw ``heat`` ``[h, w]`` (any resolution) over ``image`` ``[H, W, 3]`` on ``ax``."""
    heat = _numpy(heat)
    if heat.ndim == 3:
        heat = heat[0]
    height, width = image.shape[:2]
    ax.imshow(image)
    ax.imshow(heat, cmap=cmap, alpha=alpha, extent=(0, width, height, 0),
              interpolation="bilinear")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def image_row(pictures: list, titles: list[str], cmap: str | None = None, cell: float = 2.6,
              title: str | None = None):
    """Pictures side by side with titles: arrays ``[H, W]`` or ``[H, W, 3]``."""
    fig, axes = plt.subplots(1, len(pictures), figsize=(cell * len(pictures), cell + 0.5),
                             squeeze=False)
    for ax, picture, text in zip(axes[0], pictures, titles):
        ax.imshow(_numpy(picture), cmap=cmap)
        ax.set_title(text, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return fig


# --- helpers added for lesson 01 (filters and feature maps) ---------------------------------

def rgb_filter_mosaic(weight: torch.Tensor, ncols: int = 8, gap: int = 1,
                      per_filter: bool = True) -> np.ndarray:
    """First-layer filters ``[C_out, 3, k, k]`` tiled into one RGB picture ``[H, W, 3]``.

    Like :func:`filters_rgb`, but returns an array, so two layers (trained and
    random, say) can share one figure. ``per_filter=True`` rescales each filter
    on its own to [0, 1]; ``per_filter=False`` uses one symmetric scale for the
    whole layer (0.5 grey is a zero weight), which keeps relative magnitudes.
    Gaps are white.
    """
    w = _numpy(weight)
    if w.ndim != 4 or w.shape[1] != 3:
        raise ValueError(f"rgb_filter_mosaic needs weights [C_out, 3, k, k], got {w.shape}")
    count, _, kh, kw = w.shape
    ncols = max(1, min(ncols, count))
    nrows = math.ceil(count / ncols)
    mosaic = np.ones((nrows * (kh + gap) - gap, ncols * (kw + gap) - gap, 3), dtype=np.float32)
    limit = max(float(np.abs(w).max()), 1e-12)
    for index, f in enumerate(w):
        if per_filter:
            f = (f - f.min()) / max(float(f.max() - f.min()), 1e-12)
        else:
            f = 0.5 + 0.5 * f / limit
        row, col = divmod(index, ncols)
        mosaic[row * (kh + gap):row * (kh + gap) + kh,
               col * (kw + gap):col * (kw + gap) + kw] = f.transpose(1, 2, 0)
    return mosaic


__all__ += ["rgb_filter_mosaic"]
