r"""Occlusion sensitivity ([Zeiler & Fergus 2014][ref-zeiler2014], "Visualizing and
Understanding Convolutional Networks", section 4.2).

Slide a square window over the image; at window position $(i, j)$ replace the pixels of
rows $i s \dots i s + w - 1$ and columns $j s \dots j s + w - 1$ ($w$ = `window`,
$s$ = `stride`) of every channel by `fill` to get $x'_{ij}$, and record how much the logit
of class $k$ drops:

$$ D[k, i, j] = y_k(x) - y_k(x'_{ij}), \qquad
i < H' = \lfloor (H - w) / s \rfloor + 1, \quad j < W' \text{ likewise} $$

A large positive $D$ marks a region the class score relies on. `fill` is a value in the
model's *normalised* input space (0.0 is the dataset mean colour after the usual
`Normalize`; it is not black). When $H - w$ is not a multiple of $s$, the last
rows/columns are never occluded.

How it is computed (both paths are exact; they differ from one forward pass per window by
floating-point rounding only, and two runs on one machine give the same bits):

* ``"batched"``: the occluded copies are built with broadcast masks and sent through a
  private copy of the model whose convolution weights are in ``channels_last`` memory
  format, ``batch_size`` copies per pass.
* ``"incremental"`` (Krypton: Nakandala, Kumar & Papakonstantinou, "Incremental and
  Approximate Inference for Faster Occlusion-based Deep CNN Explanations", SIGMOD 2019): an
  occluded copy differs from the image only inside the window, and the output of a *local*
  layer (convolution, batch norm in eval mode, pointwise activation, pooling, residual
  addition) differs only inside the window's projective field. The unoccluded activations
  are computed once; per copy only the changed rectangle is recomputed, from a crop of the
  layer input. Once the changed rectangle covers a large part of a map, or at the first
  operation not known to be local (global pooling, flatten), the copies are pasted into full
  maps and the rest of the network runs as usual. Before the first batch, three positions
  are run both ways and compared (a failure warns and uses the batched path). A model that
  cannot be traced with ``torch.fx``, or whose first operation is not local, uses the
  batched path.

[`occlusion_plan`][convlens.occlusion_maps.occlusion_plan] says which path a call takes, why, and the share of the multiply-adds
it computes per copy; the logger ``convlens.occlusion_maps`` says the same at level DEBUG for
every call.

The engine, one concern per module: ``tracing`` (the ``torch.fx`` graph and the unoccluded
pass), ``windows`` (window positions, projective fields, blocks of positions), ``crops``
(reading a layer's input around the changed rectangle, pasting patches into full maps),
``plan`` (one typed step per node for a block of positions), ``kernels`` (which kernels and
batch sizes: fixed rules, never timings) and ``engine`` (the two runners and the loop).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from .._checks import check_batch, check_positive_int, check_target, select_scores
from .engine import drops, prepare
from .kernels import DEFAULT_BATCH_SIZE, default_batch_size
from .windows import grid

__all__ = ["DEFAULT_BATCH_SIZE", "OcclusionPlan", "default_batch_size", "occlusion", "occlusion_plan"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OcclusionPlan:
    """Which path [`occlusion`][convlens.occlusion_maps.occlusion] takes for a model and input
    size, and why.

    Attributes:
        path: `"incremental"` or `"batched"`.
        reason: why, in words.
        recomputed_fraction: multiply-adds of convolutions and fully connected layers
            computed per occluded copy, on average over the window positions, as a fraction
            of those of a full forward pass (1.0 for the batched path). At equal speed per
            multiply-add, the incremental path cannot take less than this fraction of the
            time of whole copies.
        local_layers: how many layers run on changed rectangles only (in the block of
            positions that has most).

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens.occlusion_maps import occlusion_plan
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> plan = occlusion_plan(model.eval(), torch.randn(1, 3, 32, 32), window=8, stride=4)
        >>> plan.path, 0 < plan.recomputed_fraction < 1, plan.local_layers
        ('incremental', True, 2)
    """

    path: str
    reason: str
    recomputed_fraction: float
    local_layers: int = 0


def occlusion(
    model: nn.Module,
    x: torch.Tensor,
    target,
    window: int = 32,
    stride: int = 8,
    fill: float = 0.0,
    batch_size: int | None = None,
    *,
    method: str = "auto",
) -> torch.Tensor:
    """The score drop for each window position (see above), one forward pass per occluded copy.

    Runs under `torch.no_grad` on a private copy of the model; the model is not changed.
    Both paths are exact: they differ from one forward pass per window by floating-point
    rounding only.

    Args:
        model: a classifier returning logits `[N, classes]`; left as found.
        x: the input batch `[N, C, H, W]` (floating point, normalised).
        target: an int or one class index per example; None for every class from the same
            passes.
        window: the side $w$ of the square window, in pixels (at most `H` and `W`).
        stride: the step $s$ between window positions, in pixels.
        fill: the value the window's pixels are set to, in the normalised input space.
        batch_size: occluded copies per forward pass; None for the default of the device and
            path ([`default_batch_size`][convlens.occlusion_maps.default_batch_size]).
        method: `"auto"` (incremental where the model allows it, else batched),
            `"incremental"` or `"batched"`.

    Returns:
        $D$ in the logits' dtype: `[N, H', W']` for a target, `[N, classes, H', W']` for
        `target=None`.

    Raises:
        TypeError: `x` is not a floating-point tensor, `target` is not integer, `fill` is
            not a number, or `window`/`stride`/`batch_size` are not ints.
        ValueError: `x` is not `[N, C, H, W]`; `target` does not fit the batch or the
            model's outputs; `window`/`stride`/`batch_size` are below 1; the window is larger
            than the image; `method` is unknown, or `"incremental"` for a model that does not
            allow it (saying why).

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> import convlens
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2)).eval()
        >>> x = torch.randn(1, 3, 16, 16)
        >>> drops = convlens.occlusion(model, x, target=1, window=8, stride=4)
        >>> drops.shape  # (16 - 8) // 4 + 1 = 3 positions per axis
        torch.Size([1, 3, 3])
        >>> every = convlens.occlusion(model, x, target=None, window=8, stride=4)
        >>> every.shape, torch.allclose(every[:, 1], drops, atol=1e-5)
        (torch.Size([1, 2, 3, 3]), True)
    """
    x, window, stride, fill = _check(x, window, stride, fill, batch_size)
    n = x.shape[0]
    if target is not None:
        target = check_target(target, n).to(x.device)
    rows, cols = grid(x.shape[2], x.shape[3], window, stride)
    with torch.no_grad():
        runner, plan = prepare(model, x, window, stride, fill, method, batch_size)
        if batch_size is None:
            batch_size = default_batch_size(x.device, plan.path)
        logger.debug("occlusion: path=%s (%s), recomputed fraction %.3f",
                     plan.path, plan.reason, plan.recomputed_fraction)
        if target is not None:
            select_scores(runner.base_logits, target)  # names a bad target before the long loop
        out = drops(runner, x, target, batch_size)
    if target is None:
        return out.view(n, rows, cols, -1).permute(0, 3, 1, 2).contiguous()
    return out.view(n, rows, cols)


def occlusion_plan(model: nn.Module, x: torch.Tensor, window: int = 32, stride: int = 8,
                   fill: float = 0.0, batch_size: int | None = None, *,
                   method: str = "auto") -> OcclusionPlan:
    """The path [`occlusion`][convlens.occlusion_maps.occlusion] would take for these
    arguments (runs one forward pass).

    Args:
        model: the classifier; left as found.
        x: the input batch `[N, C, H, W]`.
        window: as for `occlusion`.
        stride: as for `occlusion`.
        fill: as for `occlusion`.
        batch_size: as for `occlusion`.
        method: as for `occlusion`.

    Returns:
        An [`OcclusionPlan`][convlens.occlusion_maps.OcclusionPlan].

    Raises:
        TypeError: as for `occlusion`.
        ValueError: as for `occlusion`.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens.occlusion_maps import occlusion_plan
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 14 * 14, 2))
        >>> occlusion_plan(model.eval(), torch.randn(1, 3, 16, 16), window=4,
        ...                method="batched").path
        'batched'
    """
    x, window, stride, fill = _check(x, window, stride, fill, batch_size)
    with torch.no_grad():
        return prepare(model, x, window, stride, fill, method, batch_size)[1]


def _check(x, window, stride, fill, batch_size):
    """The checked ``(x, window, stride, fill)``; bad values raise naming the argument."""
    x = check_batch(x)
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")
    window = check_positive_int(window, "window")
    stride = check_positive_int(stride, "stride")
    height, width = x.shape[-2:]
    if window > height or window > width:
        raise ValueError(f"window={window} is larger than the image ({height}x{width})")
    if isinstance(fill, bool) or not isinstance(fill, (int, float)):
        raise TypeError(f"fill must be a number, got {type(fill).__name__}")
    return x, window, stride, float(fill)
