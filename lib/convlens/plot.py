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

from ._checks import check_positive_int

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
    """A figure of `count` axes in rows of `ncols`, ticks off; unused cells hidden.

    Args:
        count: the number of axes.
        ncols: axes per row (at most `count`).
        cell: the side of one cell, in inches.
        title: the figure's title (none when None).

    Returns:
        `(figure, axes)`: the matplotlib figure and a list of its `count` axes, row by row.

    Raises:
        TypeError: `count` or `ncols` is not an int.
        ValueError: `count` or `ncols` is below 1.

    Examples:
        >>> from convlens import plot
        >>> fig, axes = plot.grid_figure(5, ncols=3)
        >>> len(axes), len(fig.axes)  # the sixth cell is there, hidden
        (5, 6)
    """
    import matplotlib.pyplot as plt

    count, ncols = check_positive_int(count, "count"), check_positive_int(ncols, "ncols")
    ncols = min(ncols, count)
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
    """First-layer filters `[C_out, 3, k, k]` as RGB patches, one per axis.

    Each filter is rescaled on its own to [0, 1] (min to 0, max to 1): the colours show the
    filter's pattern, not its magnitude relative to others.

    Args:
        weight: the first convolution's weight `[C_out, 3, k, k]` (a tensor or an array).
        ncols: patches per row.
        title: the figure's title (none when None).

    Returns:
        The matplotlib figure, one axis per filter.

    Raises:
        ValueError: `weight` is not `[C_out, 3, k, k]`.

    Examples:
        >>> import torch
        >>> from convlens import plot
        >>> fig = plot.filters_rgb(torch.randn(8, 3, 5, 5), ncols=4)
        >>> len(fig.axes)
        8
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

    Diverging colour map, symmetric around zero per row, so positive and negative weights
    read the same way in every kernel of a filter.

    Args:
        weight: a convolution's weight `[C_out, C_in, k, k]`.
        filters: the indices of the filters to draw, one row each.
        title: the figure's title (none when None).
        channel_names: a column title per input channel (default `in 0`, `in 1`, ...).

    Returns:
        The matplotlib figure: `len(filters)` rows of `C_in` axes.

    Raises:
        ValueError: `weight` is not 4-D, `filters` is empty or holds an index out of range,
            or `channel_names` does not have `C_in` names.

    Examples:
        >>> import torch
        >>> from convlens import plot
        >>> fig = plot.kernel_heatmaps(torch.randn(8, 3, 5, 5), filters=[0, 7],
        ...                            channel_names=["R", "G", "B"])
        >>> len(fig.axes)
        6
    """
    import matplotlib.pyplot as plt

    w = _numpy(weight)
    if w.ndim != 4:
        raise ValueError(f"kernel_heatmaps needs weights [C_out, C_in, k, k], got {w.shape}")
    if not filters or not all(0 <= f < w.shape[0] for f in filters):
        raise ValueError(f"filters must be indices in 0..{w.shape[0] - 1}, got {filters}")
    c_in = w.shape[1]
    if channel_names is not None and len(channel_names) != c_in:
        raise ValueError(f"channel_names has {len(channel_names)} names for {c_in} channels")
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
    """Tile every 2-D kernel of a conv weight `[C_out, C_in, k, k]` into one image.

    Row `i` of tiles is filter `i`, column `j` its kernel on input channel `j`. Each kernel
    is rescaled to [0, 1] on its own; gaps are NaN (drawn as background by `imshow`).

    Args:
        weight: a convolution's weight `[C_out, C_in, k, k]`.
        max_filters: draw only the first filters (None: all).
        max_channels: draw only the first input channels (None: all).
        gap: pixels between tiles.

    Returns:
        A 2-D float32 array `[C_out * (k + gap) - gap, C_in * (k + gap) - gap]` (after the
        limits); draw it with `imshow`.

    Raises:
        ValueError: `weight` is not 4-D.

    Examples:
        >>> import torch
        >>> from convlens import plot
        >>> tiles = plot.collated_kernels(torch.randn(4, 2, 3, 3), gap=1)
        >>> tiles.shape
        (15, 7)
    """
    w = _numpy(weight)
    if w.ndim != 4:
        raise ValueError(f"collated_kernels needs weights [C_out, C_in, k, k], got {w.shape}")
    w = w[:max_filters, :max_channels]
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
    """Feature maps `[C, H, W]` of one image, each with its own colour scale.

    Args:
        maps: the maps of one image `[C, H, W]` (e.g. `feature_maps(...)[0]`).
        channels: the channels to draw, in order (None: all).
        ncols: maps per row.
        title: the figure's title (none when None).
        cmap: a matplotlib colour map name.

    Returns:
        The matplotlib figure, one axis per channel drawn.

    Raises:
        ValueError: `maps` is not `[C, H, W]`.

    Examples:
        >>> import torch
        >>> from convlens import plot
        >>> fig = plot.feature_map_grid(torch.randn(6, 7, 7), channels=[0, 2, 5], ncols=3)
        >>> len(fig.axes)
        3
    """
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
    """Reduce a gradient-like `[3, H, W]` (or `[1, 3, H, W]`) to a heat map `[H, W]` in [0, 1].

    Divided by the map's own maximum, so only relative values are shown. With `percentile`
    (in (0, 100], e.g. 99), the map is instead divided by that percentile of its values and
    clipped to [0, 1]: the few extreme pixels that would set the scale alone saturate at 1
    ([Smilkov et al. 2017][ref-smilkov2017] clip at the 99th). The percentile is numpy's
    (linear interpolation between the two nearest values).

    Args:
        attribution: `[C, H, W]`, `[1, C, H, W]` (the first example is drawn) or `[H, W]`.
        reduce: how channels become one value per pixel: `"abs_max"`, the maximum of
            $|g|$ over channels ([Simonyan et al. 2013][ref-simonyan2013]); `"abs_sum"`,
            the sum of $|g|$; `"positive"`, the ReLU of the channel sum.
        percentile: clip at this percentile of the map (None: divide by the maximum).

    Returns:
        A float numpy array `[H, W]` in [0, 1].

    Raises:
        TypeError: `percentile` is not a number.
        ValueError: `reduce` is unknown, or `percentile` is not in (0, 100].

    Examples:
        >>> import torch
        >>> from convlens import plot
        >>> g = torch.zeros(3, 4, 4)
        >>> g[0, 1, 1], g[2, 1, 1], g[1, 3, 3] = -2.0, 1.0, 1.0
        >>> m = plot.heatmap(g)
        >>> m.shape, float(m[1, 1]), float(m[3, 3])
        ((4, 4), 1.0, 0.5)
        >>> float(plot.heatmap(g, reduce="positive")[1, 1])  # the channel sum is -1
        0.0
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
    r"""A signed `[3, H, W]` (or `[1, 3, H, W]`) attribution as an RGB picture `[H, W, 3]`.

    Each channel maps to $0.5 + 0.5 \, a / q$: 0.5 grey is zero, $q$ is the largest $|a|$.

    Args:
        attribution: `[3, H, W]`, or `[1, 3, H, W]` (the first example is drawn).
        percentile: take $q$ as this percentile of $|a|$ over all channels and pixels
            instead, and clip the values beyond $\pm q$ to 0 and 1.

    Returns:
        A float numpy array `[H, W, 3]` in [0, 1].

    Raises:
        TypeError: `percentile` is not a number.
        ValueError: `attribution` is not `[3, H, W]`, or `percentile` is not in (0, 100].

    Examples:
        >>> import torch
        >>> from convlens import plot
        >>> a = torch.zeros(1, 3, 2, 2)
        >>> a[0, 0, 0, 0], a[0, 2, 1, 1] = 4.0, -2.0
        >>> rgb = plot.signed_to_rgb(a)
        >>> rgb.shape, rgb[0, 0].tolist(), rgb[1, 1].tolist()
        ((2, 2, 3), [1.0, 0.5, 0.5], [0.5, 0.5, 0.25])
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
    r"""Pearson's correlation of two maps (tensors or arrays), over all their elements.

    $$ r = \frac{\sum_i (a_i - \bar a)(b_i - \bar b)}
    {\sqrt{\sum_i (a_i - \bar a)^2 \, \sum_i (b_i - \bar b)^2}} $$

    Both are flattened (so `[3, H, W]` attributions compare every channel of every pixel).
    Computed in float64; 1 means equal up to a positive scale and shift, 0 no linear
    relation.

    Args:
        a: a map (tensor, array or nested list).
        b: another map with the same number of elements.

    Returns:
        $r$ in [-1, 1], a Python float.

    Raises:
        ValueError: the maps differ in size, have fewer than 2 elements, or one is constant
            (zero variance: no correlation).

    Examples:
        >>> import torch
        >>> from convlens import plot
        >>> a = torch.arange(6.0).view(2, 3)
        >>> plot.correlation(a, 2 * a + 1), plot.correlation(a, -a)
        (1.0, -1.0)
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
    """Draw `heat` (any resolution) over `image` on the axis `ax`, stretched to the image.

    Args:
        ax: a matplotlib axis.
        image: the picture `[H, W, 3]` (or `[H, W]`), e.g. from `images.to_display`.
        heat: the map `[h, w]` (or the first channel of `[C, h, w]`); bilinearly
            interpolated when drawn.
        alpha: the heat map's opacity.
        cmap: a matplotlib colour map name.
        title: the axis title (none when None).

    Returns:
        `ax`, with its ticks removed.

    Raises:
        ValueError: `image` is not `[H, W]` or `[H, W, 3]`, or `heat` is not `[h, w]` or
            `[C, h, w]`.

    Examples:
        >>> import numpy as np
        >>> import matplotlib.pyplot as plt
        >>> from convlens import plot
        >>> fig, ax = plt.subplots()
        >>> ax = plot.overlay(ax, np.zeros((32, 32, 3)), np.random.rand(4, 4))
        >>> len(ax.images)
        2
    """
    heat = _numpy(heat)
    if heat.ndim == 3:
        heat = heat[0]
    if heat.ndim != 2:
        raise ValueError(f"overlay needs a heat map [h, w], got shape {heat.shape}")
    if np.ndim(image) not in (2, 3):
        raise ValueError(f"overlay needs an image [H, W] or [H, W, 3], got shape {np.shape(image)}")
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
    """Pictures side by side, each with its title.

    Args:
        pictures: arrays or tensors `[H, W]` or `[H, W, 3]`.
        titles: one title per picture.
        cmap: the colour map of single-channel pictures (None: matplotlib's default).
        cell: the side of one picture, in inches.
        title: the figure's title (none when None).

    Returns:
        The matplotlib figure, one axis per picture.

    Raises:
        ValueError: `pictures` is empty, or `titles` does not have one title per picture.

    Examples:
        >>> import numpy as np
        >>> from convlens import plot
        >>> fig = plot.image_row([np.zeros((8, 8)), np.ones((8, 8, 3))], ["a", "b"])
        >>> [ax.get_title() for ax in fig.axes]
        ['a', 'b']
    """
    import matplotlib.pyplot as plt

    if not len(pictures) or len(titles) != len(pictures):
        raise ValueError(f"image_row needs one title per picture, got {len(pictures)} "
                         f"pictures and {len(titles)} titles")
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
    """First-layer filters `[C_out, 3, k, k]` tiled into one RGB picture `[H, W, 3]`.

    Like [`filters_rgb`][convlens.plot.filters_rgb], but returns an array, so two layers
    (trained and random, say) can share one figure. Gaps are white.

    Args:
        weight: the first convolution's weight `[C_out, 3, k, k]`.
        ncols: filters per row.
        gap: pixels between filters.
        per_filter: rescale each filter on its own to [0, 1]; False uses one symmetric
            scale for the whole layer (0.5 grey is a zero weight), which keeps relative
            magnitudes.

    Returns:
        A float32 array `[rows * (k + gap) - gap, ncols * (k + gap) - gap, 3]` in [0, 1].

    Raises:
        ValueError: `weight` is not `[C_out, 3, k, k]`.

    Examples:
        >>> import torch
        >>> from convlens import plot
        >>> plot.rgb_filter_mosaic(torch.randn(6, 3, 5, 5), ncols=3).shape
        (11, 17, 3)
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
    r"""A table as Markdown: a header row, a `|---|` rule, one line per row.

    Each value is written with `str` (a `|` inside a value is escaped). Under IPython (a
    notebook, the course build) with `display` true, the table is also displayed, rendered
    as Markdown; in plain Python nothing is shown, so print the returned text if you want
    it. In a notebook, assign the result (`_ = plot.table(...)`) so the text is not
    displayed a second time.

    Args:
        headers: the column titles.
        rows: the rows, each with one value per header.
        display: display the table when running under IPython.

    Returns:
        The Markdown text.

    Raises:
        ValueError: there are no headers, or a row does not have one value per header.

    Examples:
        >>> from convlens import plot
        >>> print(plot.table(["layer", "size"], [["conv1", 11], ["a|b", 3]]))
        | layer | size |
        |---|---|
        | conv1 | 11 |
        | a\|b | 3 |
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
