"""Figure helpers: turning weights, maps and attributions into pictures.

Everything here is presentation. The techniques return raw tensors; the choices
made for display (per-filter rescaling, reducing a 3-channel gradient to one
heat map, a diverging colour map centred on zero) live here, in one place, and
are named in each function's docstring.

``import convlens`` does not import ``matplotlib.pyplot`` (which picks a backend and may
start a GUI toolkit): the functions that make a figure import it when called.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "grid_figure", "filters_rgb", "kernel_heatmaps", "collated_kernels", "feature_map_grid",
    "rgb_filter_mosaic", "heatmap", "signed_to_rgb", "correlation", "overlay", "image_row",
    "table",
]


def _numpy(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().float().cpu().numpy()
    return np.asarray(t, dtype=np.float32)


def _check_percentile(percentile) -> float | None:
    if percentile is None:
        return None
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)):
        raise TypeError(f"percentile must be a number or None, got {type(percentile).__name__}")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    return float(percentile)


def grid_figure(count: int, ncols: int, cell: float = 1.0, title: str | None = None):
    """A figure of ``count`` axes in rows of ``ncols``, ticks off; unused cells hidden.

    Returns ``(figure, list of the count axes)``.
    """
    import matplotlib.pyplot as plt

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
    import matplotlib.pyplot as plt

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


def heatmap(attribution: torch.Tensor, reduce: str = "abs_max",
            percentile: float | None = None) -> np.ndarray:
    """Reduce a gradient-like ``[3, H, W]`` (or ``[1, 3, H, W]``) to ``[H, W]`` in [0, 1].

    ``abs_max``: max over colour channels of |g| (Simonyan et al. 2013);
    ``abs_sum``: sum of |g| over channels; ``positive``: ReLU of the channel sum.
    Divided by the map's own maximum, so only relative values are shown.

    With ``percentile`` (in (0, 100], e.g. 99), the map is instead divided by that
    percentile of its values and clipped to [0, 1]: the few extreme pixels that would set
    the scale alone saturate at 1 (Smilkov et al. 2017 clip at the 99th). The percentile
    is numpy's (linear interpolation between the two nearest values).
    """
    percentile = _check_percentile(percentile)
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
    m = m / max(float(m.max()), 1e-12)
    if percentile is not None:
        m = np.clip(m / max(float(np.percentile(m, percentile)), 1e-12), 0, 1)
    return m


def signed_to_rgb(attribution: torch.Tensor, percentile: float | None = None) -> np.ndarray:
    """A signed ``[3, H, W]`` (or ``[1, 3, H, W]``) attribution as RGB ``[H, W, 3]``.

    Each channel maps to ``0.5 + 0.5 * a / q``: 0.5 grey is zero, ``q`` is the largest
    |value|. With ``percentile`` (in (0, 100]), ``q`` is that percentile of |values| over
    all channels and pixels instead, and values beyond ``±q`` are clipped to 0 and 1.
    """
    percentile = _check_percentile(percentile)
    a = _numpy(attribution)
    if a.ndim == 4:
        a = a[0]
    if a.ndim != 3:
        raise ValueError(f"signed_to_rgb needs an attribution [3, H, W], got shape {a.shape}")
    magnitude = np.abs(a)
    q = magnitude.max() if percentile is None else np.percentile(magnitude, percentile)
    return np.clip(0.5 + 0.5 * a / max(float(q), 1e-12), 0, 1).transpose(1, 2, 0)


def correlation(a, b) -> float:
    """Pearson's correlation of two maps (tensors or arrays), over all their elements.

        r = sum (a_i - mean a)(b_i - mean b) / sqrt(sum (a_i - mean a)^2 * sum (b_i - mean b)^2)

    Both are flattened (so ``[3, H, W]`` attributions compare every channel of every
    pixel) and must have the same number of elements. Computed in float64; 1 means
    equal up to a positive scale and shift, 0 no linear relation. A constant map has
    no correlation: ``ValueError``.
    """
    x = _numpy(a).astype(np.float64).ravel()
    y = _numpy(b).astype(np.float64).ravel()
    if x.size != y.size:
        raise ValueError(
            f"correlation needs maps of the same size, got {_numpy(a).shape} and {_numpy(b).shape}"
        )
    if x.size < 2:
        raise ValueError("correlation needs at least 2 elements")
    x = x - x.mean()
    y = y - y.mean()
    spread = math.sqrt(float(x @ x) * float(y @ y))
    if spread == 0:
        raise ValueError("correlation is undefined for a constant map (zero variance)")
    return float(np.clip(float(x @ y) / spread, -1.0, 1.0))


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
    import matplotlib.pyplot as plt

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


def _markdown_cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence, rows: Sequence[Sequence], display: bool = True) -> str:
    """A table as Markdown: a header row, a ``|---|`` rule, one line per row.

    Each value is written with ``str`` (a ``|`` inside a value is escaped). Returns the
    Markdown text. When running under IPython (a notebook, the course build) and
    ``display`` is true, it is also displayed, rendered as Markdown; in plain Python
    nothing is shown, so print the returned text if you want it. In a notebook, assign the
    result (``_ = plot.table(...)``) so the text is not displayed a second time.
    """
    headers = list(headers)
    if not headers:
        raise ValueError("table needs at least one header")
    rows = [list(row) for row in rows]
    for index, row in enumerate(rows):
        if len(row) != len(headers):
            raise ValueError(
                f"rows[{index}] has {len(row)} values but there are {len(headers)} headers"
            )
    lines = ["| " + " | ".join(_markdown_cell(h) for h in headers) + " |",
             "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_markdown_cell(v) for v in row) + " |" for row in rows]
    text = "\n".join(lines)
    if display:
        _display_markdown(text)
    return text


def _display_markdown(text: str) -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    if get_ipython() is None:
        return
    from IPython.display import Markdown
    from IPython.display import display as show

    show(Markdown(text))
