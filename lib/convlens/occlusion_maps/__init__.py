"""Occlusion sensitivity (Zeiler & Fergus 2014, "Visualizing and Understanding
Convolutional Networks", section 4.2).

Slide a square window over the image; at window position (i, j) replace the pixels

    rows i*stride ... i*stride + window - 1,  cols j*stride ... j*stride + window - 1

of every channel by ``fill`` to get x'_{ij}, and record how much the logit of class k drops:

    D[k, i, j] = y_k(x) - y_k(x'_{ij}),    i < H' = (H - window) // stride + 1,  j < W' likewise

A large positive D marks a region the class score relies on. ``fill`` is a value in the
model's *normalised* input space (0.0 is the dataset mean colour after the usual
``Normalize``; it is not black). When (H - window) is not a multiple of ``stride``, the
last rows/columns are never occluded.

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

:func:`occlusion_plan` says which path a call takes, why, and the share of the multiply-adds
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
    """Which path :func:`occlusion` takes for a model and input size, and why.

    ``recomputed_fraction``: multiply-adds of convolutions and fully connected layers
    computed per occluded copy, on average over the window positions, as a fraction of those
    of a full forward pass (1.0 for the batched path). At equal speed per multiply-add, the
    incremental path cannot take less than this fraction of the time of whole copies.
    ``local_layers``: how many layers run on changed rectangles only (in the block of
    positions that has most).
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
    """Score drop for each window position, in the logits' dtype.

    ``target``: an int or N class indices -> ``[N, H', W']``; ``None`` -> every class from
    the same passes, ``[N, classes, H', W']``. ``batch_size``: occluded copies per forward
    pass, ``None`` for the default of the device and path (:func:`default_batch_size`).
    ``method``: ``"auto"`` (incremental where the model allows it, else batched),
    ``"incremental"`` (a ``ValueError`` saying why if the model does not allow it) or
    ``"batched"``.
    Runs under ``torch.no_grad`` on a private copy of the model; the model is not changed.
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
    """The path :func:`occlusion` would take for these arguments (runs one forward pass)."""
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
