"""Occlusion sensitivity (Zeiler & Fergus 2014, "Visualizing and Understanding
Convolutional Networks", section 4.2).

Slide a square window over the image; at window position (i, j) replace the pixels

    rows i*stride ... i*stride + window - 1,  cols j*stride ... j*stride + window - 1

of every channel by ``fill`` to get x'_{ij}, and record how much the target logit drops:

    D[i, j] = y(x) - y(x'_{ij}),    i < H' = (H - window) // stride + 1,  j < W' likewise

A large positive D marks a region the class score relies on. ``fill`` is a value in the
model's *normalised* input space (0.0 is the dataset mean colour after the usual
``Normalize``; it is not black). When (H - window) is not a multiple of ``stride``, the
last rows/columns are never occluded.
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_batch, check_positive_int, check_target, select_scores


def occlusion(
    model: nn.Module,
    x: torch.Tensor,
    target,
    window: int = 32,
    stride: int = 8,
    fill: float = 0.0,
    batch_size: int = 64,
) -> torch.Tensor:
    """Score drop for each window position: ``[N, H', W']``, in the logits' dtype.

    Runs under ``torch.no_grad``; the occluded copies are built with broadcast masks and
    sent through the model ``batch_size`` at a time.
    """
    x = check_batch(x)
    window = check_positive_int(window, "window")
    stride = check_positive_int(stride, "stride")
    batch_size = check_positive_int(batch_size, "batch_size")
    n, _, height, width = x.shape
    if window > height or window > width:
        raise ValueError(f"window={window} is larger than the image ({height}x{width})")
    target = check_target(target, n).to(x.device)
    rows = (height - window) // stride + 1
    cols = (width - window) // stride + 1
    positions = rows * cols
    row_index = torch.arange(height, device=x.device)
    col_index = torch.arange(width, device=x.device)

    with torch.no_grad():
        base = select_scores(model(x), target)  # [N]
        drops = torch.empty(n * positions, dtype=base.dtype, device=x.device)
        for start in range(0, n * positions, batch_size):
            job = torch.arange(start, min(start + batch_size, n * positions), device=x.device)
            example, position = job // positions, job % positions
            top = (position // cols * stride)[:, None]
            left = (position % cols * stride)[:, None]
            in_rows = (row_index >= top) & (row_index < top + window)  # [B, H]
            in_cols = (col_index >= left) & (col_index < left + window)  # [B, W]
            mask = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # [B, 1, H, W]
            occluded = x[example].masked_fill(mask, fill)
            drops[job] = base[example] - select_scores(model(occluded), target[example])
    return drops.view(n, rows, cols)
