r"""Measuring an attribution map: faithfulness, localisation and sanity, one metric per function.

**Deletion and insertion** ([Petsiuk, Das & Saenko 2018][ref-petsiuk2018], "RISE: Randomized
Input Sampling for Explanation of Black-box Models", section 4.1). Rank the pixels by the
map, largest first. With $x^{(k)}$ the image after the first $n_k = \mathrm{round}(k P / m)$
of the $P$ pixels have been changed ($k = 0 \dots m$, $m$ = `steps`), record the target's
softmax probability

$$ s_k = \mathrm{softmax}\big(\mathrm{model}(x^{(k)})\big)[\mathrm{target}], \qquad
\text{fraction } f_k = n_k / P $$

*Deletion* sets the pixels to a baseline one by one (the score should fall fast: a **lower**
area under the curve is better). *Insertion* starts from a blurred copy and puts the
original pixels back (the score should rise fast: a **higher** area is better). Both areas
come from [`auc`][convlens.evaluate.auc] (trapezoid rule over $f \in [0, 1]$).

**ROAD** ([Rong et al. 2022][ref-rong2022], "A Consistent and Efficient Evaluation Strategy
for Attribution Methods"). Deleting pixels to a constant leaves a trace the model can read
(the *shape* of the deleted set), and for Integrated Gradients and gradient x input, whose
baseline is that constant, the test favours them by construction. ROAD removes pixels by
*noisy linear imputation* instead: each removed pixel takes the mean of its four neighbours,
all removed pixels at once (the discrete Laplace equation, a sparse linear system), plus small
Gaussian noise,

$$ v_i = \frac{1}{|N(i)|} \sum_{j \in N(i)} v_j + e_i, \qquad e_i \sim \mathcal{N}(0,
\sigma^2), \quad \text{for removed } i, $$

so that a removed region is filled from its surroundings and hides where it was.
`order="most"` removes the most important pixels first (MoRF: lower is better), `"least"` the
least important first (LeRF: higher is better).

**Evidence mass**: on images whose deciding pixels are known
([`evidence_set`][convlens.images.evidence_set]), the share of a map's positive attribution
that falls on them.

**Pointing game** ([Zhang et al. 2016][ref-zhang2016], "Top-down Neural Attention by
Excitation Backprop"): a map scores a hit when its maximum lies within ``tolerance`` pixels of
the object's box (15 px in TorchRay's implementation, [Fong et al. 2019][ref-fong2019]).

**Model randomisation** ([Adebayo et al. 2018][ref-adebayo2018], "Sanity Checks for Saliency
Maps"): re-initialise the network's layers from the output down and measure how
similar the maps stay (Spearman rank correlation, SSIM: [Wang et al. 2004][ref-wang2004];
the top-k intersection of [Ghorbani et al. 2019][ref-ghorbani2019] for the brightest pixels). A map that barely changes when the
weights that produce the prediction are destroyed cannot be explaining the prediction.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_batch, check_positive_int, check_target, resolve_layer
from .layers import forward_calls
from .path_integral import path_baseline

__all__ = ["RandomizationResult", "auc", "bootstrap_means", "deletion_curve", "evidence_mass",
           "gaussian_blur",
           "impute", "insertion_curve", "layers_top_down", "peak_location", "pointing_game",
           "randomization_similarity", "road_curve", "top_k_intersection"]


# ---- shared helpers ---------------------------------------------------------------------

def _pixel_map(attribution, n: int | None = None, size: tuple[int, int] | None = None,
               name: str = "attribution") -> torch.Tensor:
    """``[N, C, H, W]`` (summed over channels) or ``[N, H, W]`` -> ``[N, H, W]``."""
    if not isinstance(attribution, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(attribution).__name__}")
    if attribution.ndim == 4:
        attribution = attribution.sum(dim=1)
    elif attribution.ndim != 3:
        raise ValueError(f"{name} must be [N, C, H, W] or [N, H, W], got shape "
                         f"{tuple(attribution.shape)}")
    if attribution.is_complex() or attribution.dtype == torch.bool:
        raise TypeError(f"{name} must hold real numbers, got dtype {attribution.dtype}")
    if n is not None and attribution.shape[0] != n:
        raise ValueError(f"{name} has {attribution.shape[0]} maps but the batch has {n} images")
    if size is not None and tuple(attribution.shape[1:]) != tuple(size):
        raise ValueError(f"{name} is {tuple(attribution.shape[1:])} pixels but the images are "
                         f"{tuple(size)}; upsample a coarse map to the input size first")
    return attribution.detach()


def gaussian_blur(x: torch.Tensor, kernel_size: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """Each channel blurred with a normalised Gaussian kernel (separable; borders reflected).

    RISE's reference code uses kernel 11 and sigma 5 (its borders are zero-padded; reflecting
    them keeps the edges of a normalised image at their own colour instead of the mean).

    Args:
        x: the batch `[N, C, H, W]`.
        kernel_size: the kernel's side, odd.
        sigma: the Gaussian's standard deviation, in pixels.

    Returns:
        The blurred batch, with the shape of `x` `[N, C, H, W]` (detached).

    Raises:
        TypeError: `x` is not a floating-point tensor or `kernel_size` not an int.
        ValueError: `x` is not `[N, C, H, W]`, `kernel_size` is even or below 1, or `sigma` is
            not a number > 0.

    Examples:
        >>> import torch
        >>> from convlens import evaluate
        >>> x = torch.zeros(1, 3, 9, 9)
        >>> x[..., 4, 4] = 1.0
        >>> blurred = evaluate.gaussian_blur(x, kernel_size=5, sigma=1.0)
        >>> blurred.shape, round(float(blurred.sum()), 4), bool(blurred[0, 0, 4, 4] < 1)
        (torch.Size([1, 3, 9, 9]), 3.0, True)
    """
    x = check_batch(x)
    kernel_size = check_positive_int(kernel_size, "kernel_size")
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
        raise ValueError(f"sigma must be a number > 0, got {sigma!r}")
    half = kernel_size // 2
    offsets = torch.arange(-half, half + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-offsets**2 / (2 * float(sigma) ** 2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    mode = "reflect" if min(x.shape[-2:]) > half else "replicate"
    out = F.pad(x.detach(), (half, half, half, half), mode=mode)
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _check_up_to(up_to) -> float:
    if isinstance(up_to, bool) or not isinstance(up_to, (int, float)) or not 0 < up_to <= 1:
        raise ValueError(f"up_to must be a fraction of the pixels in (0, 1], got {up_to!r}")
    return float(up_to)


def _counts(pixels: int, steps: int, up_to: float) -> list[int]:
    """How many pixels are changed at each step: round(k * up_to * P / steps), k = 0..steps."""
    return [round(k * up_to * pixels / steps) for k in range(steps + 1)]


def _curve(model, start, end, target, attribution, steps, batch_size, up_to=1.0):
    """Scores of images that take the top-ranked pixels from ``end`` and the rest from ``start``."""
    n, _, height, width = start.shape
    pixels = height * width
    ranking = _pixel_map(attribution, n, (height, width)).reshape(n, pixels)
    if not torch.isfinite(ranking).all():
        raise ValueError("attribution holds NaN or infinite values")
    order = torch.argsort(-ranking.float(), dim=1, stable=True)  # ties: row-major order
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(pixels, device=order.device).expand(n, -1))
    rank = rank.to(start.device)
    counts = torch.tensor(_counts(pixels, steps, up_to),
                          device=start.device)
    target = check_target(target, n).to(start.device)
    jobs = n * (steps + 1)
    scores = torch.empty(jobs, dtype=start.dtype, device=start.device)
    with torch.no_grad():
        for first in range(0, jobs, batch_size):
            job = torch.arange(first, min(first + batch_size, jobs), device=start.device)
            example, k = job // (steps + 1), job % (steps + 1)
            changed = (rank[example] < counts[k][:, None]).view(-1, 1, height, width)
            images = torch.where(changed, end[example], start[example])
            logits = model(images)
            if logits.ndim != 2:
                raise ValueError(f"the model must return logits [N, classes], got "
                                 f"{tuple(logits.shape)}")
            check_target(target, n, logits.shape[1])
            probabilities = logits.softmax(dim=1)
            scores[job] = probabilities.gather(1, target[example][:, None])[:, 0].to(start.dtype)
    fractions = counts.to(start.dtype) / pixels
    return fractions, scores.view(n, steps + 1)


# ---- deletion and insertion -------------------------------------------------------------

def deletion_curve(
    model: nn.Module,
    x: torch.Tensor,
    target,
    attribution: torch.Tensor,
    steps: int = 32,
    baseline=0.0,
    batch_size: int = 16,
    up_to: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RISE deletion: the target's probability as the top-ranked pixels are deleted. Lower AUC
    is better.

    Pixels are set to `baseline` in decreasing order of `attribution`, all channels of a
    pixel at once, about P/steps pixels per step; ties are taken in row-major order. Scores
    are the target's softmax probability; `fractions[k]` is the exact fraction of pixels
    changed. `baseline` lives in the model's **normalised** input space: the default 0.0 is
    the dataset's mean colour (grey-brown for ImageNet), *not* black;
    `preprocess.normalize(torch.zeros(3, 1, 1))` is black, and
    [`gaussian_blur`][convlens.evaluate.gaussian_blur] of `x` deletes into a blurred copy.

    Args:
        model: a classifier returning logits `[N, classes]`; run under `torch.no_grad`.
        x: the input batch `[N, C, H, W]`.
        target: an int for every example, or one class index per example.
        attribution: the maps ranking the pixels: `[N, C, H, W]` (summed over channels) or
            `[N, H, W]`, at the input's resolution.
        steps: the number of steps $m$.
        baseline: a number, or a tensor broadcastable to `x`.
        batch_size: images per forward pass.
        up_to: stop after this fraction of the pixels (`steps` steps of `up_to / steps`): a
            finer curve where the evidence is known to be small; divide
            [`auc`][convlens.evaluate.auc] by `fractions[-1]` for the mean score over it.

    Returns:
        `(fractions [steps + 1], scores [N, steps + 1])`.

    Raises:
        TypeError: `x` or `baseline` has the wrong type, `target` is not integer, or
            `steps`/`batch_size` are not ints.
        ValueError: `x` is not `[N, C, H, W]`; `attribution` does not match it or holds NaN
            or infinite values; `target` does not fit; `steps`/`batch_size` are below 1; the
            model does not return `[N, classes]`.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens import evaluate
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2)).eval()
        >>> x = torch.randn(2, 3, 8, 8)
        >>> fractions, scores = evaluate.deletion_curve(model, x, [0, 1], x.abs(), steps=4)
        >>> fractions.tolist(), scores.shape
        ([0.0, 0.25, 0.5, 0.75, 1.0], torch.Size([2, 5]))
        >>> evaluate.auc(fractions, scores).shape
        torch.Size([2])
    """
    x = check_batch(x).detach()
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    check_target(target, x.shape[0])
    end = path_baseline(x, baseline)
    return _curve(model, x, end, target, attribution, steps, batch_size, _check_up_to(up_to))


def insertion_curve(
    model: nn.Module,
    x: torch.Tensor,
    target,
    attribution: torch.Tensor,
    steps: int = 32,
    blur=(11, 5.0),
    batch_size: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RISE insertion: the target's probability as the top-ranked pixels are put back into a
    blurred copy. Higher AUC is better.

    Ranking as in [`deletion_curve`][convlens.evaluate.deletion_curve].

    Args:
        model: a classifier returning logits `[N, classes]`; run under `torch.no_grad`.
        x: the input batch `[N, C, H, W]`.
        target: an int for every example, or one class index per example.
        attribution: `[N, C, H, W]` (summed over channels) or `[N, H, W]`.
        steps: the number of steps.
        blur: `(kernel_size, sigma)` of [`gaussian_blur`][convlens.evaluate.gaussian_blur]
            (RISE: 11 and 5), or a tensor broadcastable to `x` to start from instead (e.g.
            zeros, the mean colour).
        batch_size: images per forward pass.

    Returns:
        `(fractions [steps + 1], scores [N, steps + 1])`.

    Raises:
        TypeError: `blur` is neither a pair nor a tensor, or the other arguments have the
            wrong types (as for `deletion_curve`).
        ValueError: as for `deletion_curve`.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens import evaluate
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2)).eval()
        >>> x = torch.randn(2, 3, 8, 8)
        >>> fractions, scores = evaluate.insertion_curve(model, x, 0, x.abs(), steps=4,
        ...                                              blur=(3, 1.0))
        >>> p = model(x).softmax(1)[:, 0]
        >>> torch.allclose(scores[:, -1], p)  # every pixel back: the original image
        True
    """
    x = check_batch(x).detach()
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    check_target(target, x.shape[0])
    if isinstance(blur, torch.Tensor):
        start = path_baseline(x, blur, "blur")
    elif isinstance(blur, (tuple, list)) and len(blur) == 2:
        start = gaussian_blur(x, *blur)
    else:
        raise TypeError(f"blur must be (kernel_size, sigma) or a tensor, got {blur!r}")
    return _curve(model, start, x, target, attribution, steps, batch_size)


def auc(fractions: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Area under a curve by the trapezoid rule.

    For deletion a lower area is better (the score collapses once the top pixels are gone);
    for insertion a higher area is better.

    Args:
        fractions: `[S]`, non-decreasing, at least 2 points.
        scores: `[N, S]` (or `[S]`).

    Returns:
        `[N]` areas (a scalar tensor for scores `[S]`).

    Raises:
        TypeError: an argument is not a tensor.
        ValueError: `fractions` is not 1-D with 2 points or more, is decreasing somewhere,
            or does not match the last dimension of `scores`.

    Examples:
        >>> import torch
        >>> from convlens import evaluate
        >>> f = torch.linspace(0, 1, 5)
        >>> evaluate.auc(f, torch.stack([1 - f, torch.ones(5)])).tolist()
        [0.5, 1.0]
    """
    for name, value in (("fractions", fractions), ("scores", scores)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if fractions.ndim != 1 or fractions.numel() < 2:
        raise ValueError(f"fractions must be 1-D with at least 2 points, got shape "
                         f"{tuple(fractions.shape)}")
    if scores.shape[-1:] != fractions.shape:
        raise ValueError(f"scores' last dimension ({tuple(scores.shape)}) must match the "
                         f"{fractions.numel()} fractions")
    if (fractions.diff() < 0).any():
        raise ValueError("fractions must be non-decreasing")
    return torch.trapezoid(scores, fractions.to(scores.device, scores.dtype), dim=-1)


# ---- ROAD: removal by noisy linear imputation ---------------------------------------------

def _laplace_system(removed: np.ndarray):
    """The sparse matrix of "each removed pixel is the mean of its 4 neighbours" over the
    removed pixels that can reach a kept one, and per removed pixel the kept neighbours'
    weights (``(rows, kept flat indices, weights)`` for the right-hand side)."""
    from scipy import ndimage, sparse

    height, width = removed.shape
    components, count = ndimage.label(removed)  # 4-connected regions of removed pixels
    touching = np.zeros(count + 1, bool)
    kept = ~removed
    grown = ndimage.binary_dilation(kept)  # removed pixels next to a kept one
    touching[np.unique(components[grown & removed])] = True
    touching[0] = False
    solvable = touching[components]  # regions with no kept neighbour are left out
    index = -np.ones(removed.shape, np.int64)
    index[solvable] = np.arange(int(solvable.sum()))
    rows, cols = np.nonzero(solvable)
    degree = ((rows > 0).astype(float) + (rows < height - 1) + (cols > 0) + (cols < width - 1))
    a_rows, a_cols, a_vals = [np.arange(len(rows))], [np.arange(len(rows))], [np.ones(len(rows))]
    b_rows, b_pixels, b_vals = [], [], []
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        r, c = rows + dr, cols + dc
        inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
        eq, r, c = np.nonzero(inside)[0], r[inside], c[inside]
        weight = 1.0 / degree[eq]
        unknown = solvable[r, c]
        a_rows.append(eq[unknown])
        a_cols.append(index[r[unknown], c[unknown]])
        a_vals.append(-weight[unknown])
        b_rows.append(eq[~unknown])
        b_pixels.append(r[~unknown] * width + c[~unknown])
        b_vals.append(weight[~unknown])
    n = len(rows)
    matrix = sparse.csc_matrix((np.concatenate(a_vals), (np.concatenate(a_rows),
                                                         np.concatenate(a_cols))), shape=(n, n))
    return matrix, solvable, (np.concatenate(b_rows), np.concatenate(b_pixels),
                              np.concatenate(b_vals))


def impute(x: torch.Tensor, removed: torch.Tensor, noise: float = 0.01,
           generator: torch.Generator | None = None) -> torch.Tensor:
    r"""ROAD's noisy linear imputation: `x` with the `removed` pixels filled in from the kept
    ones.

    Each removed pixel $i$ takes the mean of its edge-adjacent neighbours $N(i)$ inside the
    image (4; 3 on a border, 2 in a corner), and all removed pixels of an image are solved
    together, so that for every removed $i$

    $$ v_i - \frac{1}{|N(i)|} \sum_{j \in N(i)} v_j = 0 $$

    (the discrete Laplace equation, with the kept pixels as boundary values: a sparse linear
    system per image, factorised once by SciPy's SuperLU and solved for every channel). Then
    Gaussian noise $e_i \sim \mathcal{N}(0, \sigma^2)$, $\sigma$ = `noise`, is added to
    each removed value ([Rong et al. 2022][ref-rong2022]). A region of removed pixels that
    touches no kept pixel (the whole image, at the end of a curve) has nothing to be
    imputed from and is set to 0 plus the noise: the model's normalised mean colour. Kept
    pixels are returned unchanged. A linear ramp satisfies the equation at every pixel off
    the border, so without noise a ramp whose removed pixels lie off the border comes back
    exactly, and so does a constant image, whatever is removed (short of everything).

    Args:
        x: the batch `[N, C, H, W]`, in the model's input units.
        removed: a bool mask `[N, H, W]`, or `[H, W]` for every image: the pixels to fill
            (all channels of a pixel together).
        noise: the noise's standard deviation $\sigma$, in `x`'s units (0: none).
        generator: draws the noise (None: the global RNG), on its own device.

    Returns:
        The imputed batch, with the shape of `x` `[N, C, H, W]` (detached).

    Raises:
        TypeError: `x` is not a floating-point tensor, or `removed` is not a bool tensor.
        ValueError: `x` is not `[N, C, H, W]` or is empty, `removed` is neither `[N, H, W]`
            nor `[H, W]` of `x`'s size, or `noise` is not a number >= 0.

    Examples:
        >>> import torch
        >>> from convlens import evaluate
        >>> ramp = torch.arange(8.0).expand(1, 1, 8, 8)  # rises along the columns
        >>> removed = torch.zeros(8, 8, dtype=torch.bool)
        >>> removed[2:6, 2:6] = True
        >>> damaged = ramp.clone()
        >>> damaged[..., removed] = 100.0  # the removed values are never read
        >>> torch.allclose(evaluate.impute(damaged, removed, noise=0.0), ramp)
        True
        >>> noisy = evaluate.impute(ramp, removed, noise=0.1,
        ...                         generator=torch.Generator().manual_seed(0))
        >>> torch.equal(noisy[..., ~removed], ramp[..., ~removed])  # kept pixels untouched
        True
    """
    from scipy.sparse.linalg import splu

    x = check_batch(x).detach()
    n, channels, height, width = x.shape
    if not isinstance(removed, torch.Tensor) or removed.dtype != torch.bool:
        raise TypeError(f"removed must be a bool tensor, got "
                        f"{getattr(removed, 'dtype', type(removed).__name__)}")
    if removed.ndim == 2:
        removed = removed.expand(n, -1, -1)
    if tuple(removed.shape) != (n, height, width):
        raise ValueError(f"removed must be [N, H, W] = {(n, height, width)} or [H, W], got "
                         f"{tuple(removed.shape)}")
    noise = _check_noise(noise)
    out = x.clone()
    masks = removed.cpu().numpy()
    for i in range(n):
        if not masks[i].any():
            continue
        matrix, solvable, (b_rows, b_pixels, b_vals) = _laplace_system(masks[i])
        pixels = x[i].reshape(channels, -1).cpu().double().numpy()
        filled = np.zeros((channels, height, width))
        if matrix.shape[0]:
            rhs = np.zeros((matrix.shape[0], channels))
            np.add.at(rhs, b_rows, b_vals[:, None] * pixels[:, b_pixels].T)
            # the pattern is symmetric (neighbours of neighbours): a minimum-degree ordering
            # of A + A^T keeps the fill-in small even when most pixels are removed
            factor = splu(matrix, permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True})
            filled[:, solvable] = factor.solve(rhs).T
        values = torch.from_numpy(filled).to(x.device, x.dtype)
        if noise > 0:
            values = values + noise * torch.randn(values.shape, generator=generator,
                                                  device=values.device if generator is None
                                                  else generator.device,
                                                  dtype=x.dtype).to(x.device)
        mask = removed[i].to(x.device)
        out[i] = torch.where(mask, values, x[i])
    return out


def _check_noise(noise) -> float:
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not (
            math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a standard deviation >= 0, got {noise!r}")
    return float(noise)


def road_curve(
    model: nn.Module,
    x: torch.Tensor,
    target,
    attribution: torch.Tensor,
    steps: int = 32,
    order: str = "most",
    noise: float = 0.01,
    generator: torch.Generator | None = None,
    batch_size: int = 16,
    up_to: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""ROAD ([Rong et al. 2022][ref-rong2022]): the target's probability as pixels are removed
    by noisy linear imputation, the most or the least important first.

    Pixels are ranked by `attribution`, largest first for `order="most"` (MoRF: a lower
    area is better), smallest first for `"least"` (LeRF: a higher area is better); ties are
    taken in row-major order. At step $k = 0 \dots m$ ($m$ = `steps`, $u$ = `up_to`) the
    first

    $$ n_k = \mathrm{round}(k\, u P / m) $$

    of the $P$ pixels are removed by [`impute`][convlens.evaluate.impute], and the score is
    the target's softmax probability, as in
    [`deletion_curve`][convlens.evaluate.deletion_curve]. Each step imputes from the
    original image, not from the previous step's. With every pixel removed nothing is left
    to impute from and the image is 0 (plus the noise), so the last point equals
    deletion's with its default baseline.

    Args:
        model: a classifier returning logits `[N, classes]`; run under `torch.no_grad`.
        x: the input batch `[N, C, H, W]`.
        target: an int for every example, or one class index per example.
        attribution: the maps ranking the pixels: `[N, C, H, W]` (summed over channels) or
            `[N, H, W]`, at the input's resolution.
        steps: the number of steps $m$.
        order: `"most"` (MoRF) or `"least"` (LeRF) important pixels first.
        noise: the imputation noise's standard deviation, in the model's input units.
        generator: draws the noise (None: the global RNG).
        batch_size: images per forward pass.
        up_to: stop after this fraction $u$ of the pixels, as in `deletion_curve`.

    Returns:
        `(fractions [steps + 1], scores [N, steps + 1])`.

    Raises:
        TypeError: `x` is not a floating-point tensor, `attribution` not a real tensor,
            `target` not integer, `steps`/`batch_size` not ints, or `generator` not a
            `torch.Generator`.
        ValueError: `x` is not `[N, C, H, W]`; `order` is unknown; `noise` is negative;
            `up_to` is outside (0, 1]; `attribution` does not match `x` or holds NaN or
            infinite values; `target` does not fit; `steps`/`batch_size` are below 1; the
            model does not return `[N, classes]`.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens import evaluate
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2)).eval()
        >>> x = torch.randn(2, 3, 8, 8)
        >>> fractions, scores = evaluate.road_curve(model, x, [0, 1], x.abs(), steps=4,
        ...                                         generator=torch.Generator().manual_seed(0))
        >>> fractions.tolist(), scores.shape
        ([0.0, 0.25, 0.5, 0.75, 1.0], torch.Size([2, 5]))
        >>> p = model(x).softmax(1)[[0, 1], [0, 1]]
        >>> torch.allclose(scores[:, 0], p)  # nothing removed yet: the original images
        True
    """
    x = check_batch(x).detach()
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    if order not in ("most", "least"):
        raise ValueError(f"order must be 'most' or 'least', got {order!r}")
    _check_noise(noise)
    up_to = _check_up_to(up_to)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    n, _, height, width = x.shape
    target = check_target(target, n).to(x.device)
    ranking = _pixel_map(attribution, n, (height, width)).reshape(n, -1).float()
    if not torch.isfinite(ranking).all():
        raise ValueError("attribution holds NaN or infinite values")
    pixels = height * width
    first = torch.argsort(-ranking if order == "most" else ranking, dim=1, stable=True).cpu()
    counts = _counts(pixels, steps, up_to)
    images = []
    for count in counts:
        removed = torch.zeros(n, pixels, dtype=torch.bool)
        removed.scatter_(1, first[:, :count], True)
        images.append(impute(x, removed.view(n, height, width), noise, generator))
    stacked = torch.stack(images, dim=1).reshape(n * (steps + 1), *x.shape[1:])
    scores = torch.empty(n * (steps + 1), dtype=x.dtype, device=x.device)
    example = torch.arange(n, device=x.device).repeat_interleave(steps + 1)
    with torch.no_grad():
        for start in range(0, len(stacked), batch_size):
            logits = model(stacked[start:start + batch_size])
            if logits.ndim != 2:
                raise ValueError(f"the model must return logits [N, classes], got "
                                 f"{tuple(logits.shape)}")
            check_target(target, n, logits.shape[1])
            rows = example[start:start + batch_size]
            scores[start:start + len(rows)] = logits.softmax(1).gather(
                1, target[rows][:, None])[:, 0].to(x.dtype)
    fractions = torch.tensor(counts, dtype=x.dtype, device=x.device) / pixels
    return fractions, scores.view(n, steps + 1)


def evidence_mass(attribution: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r"""The share of each map's positive attribution that lies on the known evidence.

    On images whose deciding pixels are known (the `evidence` mask of
    [`evidence_set`][convlens.images.evidence_set]), with $a_i^+ = \max(a_i, 0)$ the
    positive part of the map at pixel $i$ and $E$ the evidence,

    $$ \mathrm{mass} = \frac{\sum_{i \in E} a_i^+}{\sum_i a_i^+}, $$

    so 1 means every positive value lies on the evidence, and a map spread evenly scores the
    evidence's share of the image. To score a magnitude map, pass its absolute values. A map
    with no positive value has no share: NaN.

    Args:
        attribution: the maps, `[N, C, H, W]` (summed over channels first) or `[N, H, W]`.
        mask: a bool `[N, H, W]`, or `[H, W]` for every map: the pixels known to decide the
            class.

    Returns:
        `[N]` shares in [0, 1] (float64; NaN for a map with no positive value).

    Raises:
        TypeError: `attribution` is not a real tensor, or `mask` not a bool tensor.
        ValueError: `attribution` is neither `[N, C, H, W]` nor `[N, H, W]` or holds NaN
            values, or `mask` matches neither `[N, H, W]` nor `[H, W]` of the maps.

    Examples:
        >>> import torch
        >>> from convlens import evaluate
        >>> maps = torch.zeros(3, 4, 4)
        >>> maps[0, 0, 0], maps[0, 3, 3] = 3.0, 1.0  # 3 of 4 on the evidence
        >>> maps[1] = 1.0                            # spread evenly
        >>> maps[2] = -1.0                           # nothing positive
        >>> mask = torch.zeros(4, 4, dtype=torch.bool)
        >>> mask[:2, :2] = True                      # a quarter of the image
        >>> evaluate.evidence_mass(maps, mask).tolist()
        [0.75, 0.25, nan]
    """
    maps = _pixel_map(attribution)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor, got "
                        f"{getattr(mask, 'dtype', type(mask).__name__)}")
    if mask.ndim == 2:
        mask = mask.expand(maps.shape[0], -1, -1)
    if mask.shape != maps.shape:
        raise ValueError(f"mask must be [N, H, W] = {tuple(maps.shape)} or [H, W], got "
                         f"{tuple(mask.shape)}")
    if torch.isnan(maps).any():
        raise ValueError("attribution holds NaN values")
    positive = maps.clamp(min=0).double()
    total = positive.sum(dim=(1, 2))
    inside = (positive * mask.to(positive.device)).sum(dim=(1, 2))
    return torch.where(total > 0, inside / total.clamp_min(1e-300),
                       torch.full_like(total, float("nan")))


def top_k_intersection(first: torch.Tensor, second: torch.Tensor,
                       fraction: float = 0.05) -> torch.Tensor:
    r"""The share of one map's top pixels that are also the other map's top pixels.

    [Ghorbani, Abid & Zou 2019][ref-ghorbani2019] ("Interpretation of Neural Networks Is
    Fragile") compare two maps by their $k$ most important pixels. With $T_k(a)$ the $k$
    pixels of largest value in map $a$ and $k = \max(1, \mathrm{round}(\text{fraction} \cdot
    P))$ of $P$ pixels,

    $$ \mathrm{intersection} = \frac{|T_k(a) \cap T_k(b)|}{k}, $$

    so 1 means the same brightest pixels and two unrelated maps score about `fraction`.
    A rank correlation over all pixels is moved by the many faint ones; this looks only at
    the bright ones. Ties are broken by pixel order (row by row), so a constant map's top
    pixels are its first $k$. To compare magnitudes, pass absolute values.

    Args:
        first: maps `[N, C, H, W]` (summed over channels first) or `[N, H, W]`.
        second: maps of the same shape as `first`.
        fraction: the share of pixels that counts as the top, in (0, 1].

    Returns:
        `[N]` shares in [0, 1] (float64).

    Raises:
        TypeError: a map is not a real tensor.
        ValueError: the maps differ in shape or hold NaN values, or `fraction` is not in
            (0, 1].

    Examples:
        >>> import torch
        >>> from convlens import evaluate
        >>> a = torch.arange(16.0).reshape(1, 4, 4)   # brightest: the last row
        >>> b = a.clone(); b[0, 3, 0] = -1.0           # one of those four swapped out
        >>> evaluate.top_k_intersection(a, b, fraction=0.25).tolist()
        [0.75]
    """
    a, b = _pixel_map(first, name="first"), _pixel_map(second, name="second")
    if a.shape != b.shape:
        raise ValueError(f"the maps differ in shape: {tuple(a.shape)} and {tuple(b.shape)}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
            or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
    if torch.isnan(a).any() or torch.isnan(b).any():
        raise ValueError("a map holds NaN values")
    n, pixels = a.shape[0], a[0].numel()
    k = max(1, round(fraction * pixels))
    top = [m.reshape(n, -1).double().sort(dim=1, descending=True, stable=True).indices[:, :k]
           for m in (a, b)]
    chosen = torch.zeros(n, pixels, dtype=torch.bool, device=a.device)
    chosen.scatter_(1, top[0], True)
    return chosen.gather(1, top[1].to(a.device)).sum(1).double() / k


# ---- how sure is a mean over images? -------------------------------------------------------

def bootstrap_means(values: torch.Tensor, resamples: int = 2000,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Paired bootstrap means (Efron 1979): how much a mean over images owes to the images
    drawn.

    `values` holds M methods scored on the same N images. Each of the `resamples` draws
    picks N images with replacement, the same images for every row, and takes each row's
    mean over them. Percentiles of a column give an interval for that method's mean; since
    every row sees the same draws, differences between rows are paired: when the 2.5th to
    97.5th percentiles of `b[:, i] - b[:, j]` contain 0, these images do not tell methods
    `i` and `j` apart. NaN entries (a map with no positive value, say) are left out of each
    mean.

    Args:
        values: `[M, N]` scores (M methods, N images), or `[N]` for one method.
        resamples: the number of draws.
        generator: draws the images (None: the global RNG).

    Returns:
        `[resamples, M]` means (float64, on the CPU; M = 1 for `values` `[N]`).

    Raises:
        TypeError: `values` is not a floating-point tensor, or `resamples` not an int.
        ValueError: `values` is neither `[M, N]` nor `[N]`, holds no image, or `resamples` is
            below 1.

    Examples:
        >>> import torch
        >>> from convlens import evaluate
        >>> first = torch.tensor([0.1, 0.4, 0.2, 0.7, 0.3])
        >>> values = torch.stack([first, first + 0.1])  # the second method: always 0.1 more
        >>> b = evaluate.bootstrap_means(values, resamples=500,
        ...                              generator=torch.Generator().manual_seed(0))
        >>> b.shape
        torch.Size([500, 2])
        >>> torch.allclose(b[:, 1] - b[:, 0], torch.tensor(0.1, dtype=torch.float64))  # paired
        True
    """
    if not isinstance(values, torch.Tensor) or not values.is_floating_point():
        raise TypeError(f"values must be a floating-point tensor [M, N] or [N], got "
                        f"{getattr(values, 'dtype', type(values).__name__)}")
    rows = values.detach().double().cpu()
    rows = rows[None] if rows.ndim == 1 else rows
    if rows.ndim != 2 or rows.shape[1] == 0:
        raise ValueError(f"values must be [M, N] with N >= 1 images, got shape "
                         f"{tuple(values.shape)}")
    resamples = check_positive_int(resamples, "resamples")
    n = rows.shape[1]
    draws = torch.randint(n, (resamples, n), generator=generator)
    picked = rows[:, draws]  # [M, resamples, N]
    return picked.nanmean(dim=2).T


# ---- the pointing game ------------------------------------------------------------------

def _check_boxes(boxes, n: int) -> torch.Tensor:
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu()
    else:
        try:
            boxes = torch.tensor(boxes)
        except (TypeError, ValueError):
            raise TypeError("boxes must be a tensor [N, 4] or N boxes (x0, y0, x1, y1)") from None
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be [N, 4] as (x0, y0, x1, y1), got shape {tuple(boxes.shape)}")
    if boxes.shape[0] != n:
        raise ValueError(f"boxes has {boxes.shape[0]} boxes but there are {n} maps")
    boxes = boxes.to(torch.float64)
    if ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).any():
        raise ValueError("every box needs x0 < x1 and y0 < y1")
    return boxes


def peak_location(attribution: torch.Tensor) -> torch.Tensor:
    """Where each map's maximum lies, as `(row, column)`.

    Where several pixels share the maximum (a map made of equal blocks, such as occlusion's,
    has a plateau), the peak is the maximal pixel nearest the centroid of all maximal
    pixels, so that a plateau is represented by its centre, not by its top-left corner;
    among equally near ones, the first in row-major order.

    Args:
        attribution: `[N, C, H, W]` (summed over channels) or `[N, H, W]`.

    Returns:
        A long tensor `[N, 2]` on the CPU.

    Raises:
        ValueError: `attribution` holds NaN values or does not have 3 or 4 dimensions.

    Examples:
        >>> import torch
        >>> from convlens import evaluate
        >>> maps = torch.zeros(2, 8, 8)
        >>> maps[0, 1, 6] = 1.0           # a single maximum
        >>> maps[1, 2:5, 3:6] = 1.0       # a 3x3 plateau: its centre
        >>> evaluate.peak_location(maps).tolist()
        [[1, 6], [3, 4]]
    """
    maps = _pixel_map(attribution)
    n, height, width = maps.shape
    flat = maps.reshape(n, -1).double()
    if torch.isnan(flat).any():
        raise ValueError("attribution holds NaN values")
    is_peak = flat == flat.max(dim=1, keepdim=True).values
    index = torch.arange(height * width, device=flat.device)
    rows, cols = (index // width).double(), (index % width).double()
    count = is_peak.sum(dim=1, keepdim=True)
    centre_row = (is_peak * rows).sum(dim=1, keepdim=True) / count
    centre_col = (is_peak * cols).sum(dim=1, keepdim=True) / count
    distance = (rows - centre_row) ** 2 + (cols - centre_col) ** 2
    peak = distance.masked_fill(~is_peak, math.inf).argmin(dim=1).cpu()
    return torch.stack([peak // width, peak % width], dim=1)


def pointing_game(attribution: torch.Tensor, boxes, tolerance: float = 15) -> torch.Tensor:
    """One bool per map: does the map's maximum fall within `tolerance` pixels of its box?

    The maximum is [`peak_location`][convlens.evaluate.peak_location]'s (the centre of a
    plateau of equal maxima); a hit means the Euclidean distance from it to the nearest pixel
    of the box is at most `tolerance` (0: inside the box).

    Args:
        attribution: `[N, C, H, W]` (summed over channels) or `[N, H, W]`.
        boxes: `[N, 4]`, `(x0, y0, x1, y1)` in pixels of the map, covering columns
            `x0 <= c < x1` and rows `y0 <= r < y1` (PIL's crop box).
        tolerance: the distance allowed, in pixels.

    Returns:
        A bool tensor `[N]`.

    Raises:
        TypeError: `boxes` is not a tensor or a list of boxes.
        ValueError: `boxes` is not `[N, 4]` with `x0 < x1` and `y0 < y1`, `tolerance` is
            negative, or `attribution` holds NaN values.

    Examples:
        >>> import torch
        >>> from convlens import evaluate
        >>> maps = torch.zeros(2, 32, 32)
        >>> maps[0, 5, 5] = maps[1, 30, 30] = 1.0
        >>> evaluate.pointing_game(maps, [(0, 0, 10, 10), (0, 0, 10, 10)]).tolist()
        [True, False]
    """
    maps = _pixel_map(attribution)
    boxes = _check_boxes(boxes, maps.shape[0])
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not (
            math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a number of pixels >= 0, got {tolerance!r}")
    peak = peak_location(maps).double()
    row, col = peak[:, 0], peak[:, 1]
    dx = torch.clamp(torch.maximum(boxes[:, 0] - col, col - (boxes[:, 2] - 1)), min=0)
    dy = torch.clamp(torch.maximum(boxes[:, 1] - row, row - (boxes[:, 3] - 1)), min=0)
    return (dx**2 + dy**2).sqrt() <= tolerance


# ---- model randomisation ----------------------------------------------------------------

@dataclass
class RandomizationResult:
    """What [`randomization_similarity`][convlens.evaluate.randomization_similarity] measured,
    one row per step.

    Attributes:
        layers: what step s re-initialised (cascading: on top of the steps before).
        spearman_abs: `[steps, N]` Spearman correlations of the absolute maps.
        spearman: `[steps, N]` Spearman correlations of the signed maps.
        ssim: `[steps, N]` SSIM of the absolute maps.
        reference: the map of the trained model (as `method` returned it).
        maps: the map after each step.

    Examples:
        See [`randomization_similarity`][convlens.evaluate.randomization_similarity].

        >>> from convlens.evaluate import RandomizationResult
        >>> [f for f in RandomizationResult.__dataclass_fields__][:3]
        ['layers', 'spearman_abs', 'spearman']
    """

    layers: list[str]
    spearman_abs: torch.Tensor
    spearman: torch.Tensor
    ssim: torch.Tensor
    reference: torch.Tensor
    maps: list[torch.Tensor]


def _resettable(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if callable(getattr(m, "reset_parameters", None))]


def layers_top_down(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Names of the modules that hold parameters of their own and can `reset_parameters()`,
    the last called first.

    In the order of one forward pass of `x[:1]` (`convlens.layers.forward_calls`); a module called several
    times counts at its first call. The model is left as found.

    Args:
        model: the network.
        x: an input batch `[N, C, H, W]` (its first image is used).

    Returns:
        A list of qualified names, from the output down.

    Raises:
        TypeError: `x` is not a floating-point tensor.
        ValueError: `x` is not `[N, C, H, W]`.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens import evaluate
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2)).eval()
        >>> x = torch.randn(2, 3, 8, 8)
        >>> evaluate.layers_top_down(model, x)
        ['4', '0']
    """
    x = check_batch(x)
    called: list[str] = []
    for call in sorted(forward_calls(model, x[:1]), key=lambda c: c.started):
        if call.name not in called and any(True for _ in call.module.parameters(recurse=False)) \
                and _resettable(call.module):
            called.append(call.name)
    return called[::-1]


def _spearman(a, b) -> float:
    from scipy.stats import rankdata

    ra, rb = rankdata(a), rankdata(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")  # a constant map has no ranking
    return float(((ra - ra.mean()) * (rb - rb.mean())).mean() / (ra.std() * rb.std()))


def _ssim(a, b) -> float:
    from skimage.metrics import structural_similarity

    side = min(a.shape)
    if side < 3:
        return float("nan")  # too small for a window
    a = a / max(float(a.max()), 1e-30)
    b = b / max(float(b.max()), 1e-30)
    window = min(7, side if side % 2 else side - 1)
    return float(structural_similarity(a, b, data_range=1.0, win_size=window))


def _reductions(attribution: torch.Tensor, n: int, name: str = "method must return"):
    """Signed map (sum over channels) and absolute map (sum of |value| over channels)."""
    if not isinstance(attribution, torch.Tensor):
        raise TypeError(f"{name} a tensor, got {type(attribution).__name__}")
    a = attribution.detach().double().cpu()
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4 or a.shape[0] != n:
        raise ValueError(f"{name} [N, C, H, W] or [N, H, W] maps for the {n} "
                         f"images, got shape {tuple(attribution.shape)}")
    return a.sum(1).numpy(), a.abs().sum(1).numpy()


def _randomization_steps(model: nn.Module, x: torch.Tensor, layers) -> list[list[str]]:
    """The module names randomised at each step of :func:`randomization_similarity`, checked:
    every name exists and has a submodule with ``reset_parameters()``."""
    if layers is None:
        layers = layers_top_down(model, x)
    if isinstance(layers, str) or not isinstance(layers, Sequence) or len(layers) == 0:
        raise TypeError("layers must be a non-empty list of module names (or lists of names)")
    steps: list[list[str]] = []
    for entry in layers:
        names = [entry] if isinstance(entry, str) else entry
        names = list(names) if isinstance(names, Sequence) else None
        if not names or not all(isinstance(name, str) for name in names):
            raise TypeError(f"each entry of layers must be a module name or a list of names, "
                            f"got {entry!r}")
        for name in names:
            _, module = resolve_layer(model, name)
            if not _resettable(module):
                raise ValueError(f"layer {name!r} has no submodule with reset_parameters()")
        steps.append(names)
    return steps


def randomization_similarity(
    model: nn.Module,
    x: torch.Tensor,
    target,
    method: Callable[[nn.Module, torch.Tensor, object], torch.Tensor],
    order: str = "cascading",
    layers: Sequence[str | Sequence[str]] | None = None,
    seed: int = 0,
    reference: torch.Tensor | None = None,
) -> RandomizationResult:
    """Adebayo et al.'s model-randomisation test for one attribution `method`.

    Each step calls `reset_parameters()` on every submodule of its entry (BatchNorm: weight
    1, bias 0, running mean 0 and variance 1), with the global RNG forked and seeded by
    `seed`. At each step the map is compared with the trained model's: Spearman rank
    correlation of the absolute map (sum of |value| over channels) and of the signed map (sum
    over channels), and SSIM of the absolute maps each divided by its maximum (skimage, data
    range 1, 7x7 windows or the largest odd side that fits; NaN below 3 pixels). A constant
    map has no ranking: its correlation is NaN. The model itself is never modified (deep
    copies).

    Args:
        model: the trained network; left as found.
        x: the input batch `[N, C, H, W]`.
        target: an int for every example, or one class index per example.
        method: `method(model, x, target)` returns maps (`[N, C, H, W]` or `[N, H, W]`),
            e.g. `convlens.gradient` or `lambda m, x, t: convlens.gradcam(m, x, t, "layer4")`
            (name layers by their qualified *names*: the method runs on a copy of the model).
        order: `"cascading"` randomises step s on top of steps 0..s-1 (the paper's cascade);
            `"independent"` randomises only entry s of a fresh copy.
        layers: what to re-initialise, one entry per step, in the order given (from the
            output down); an entry is a module name or a list of names randomised together.
            None: every module holding parameters of its own, the last called first
            ([`layers_top_down`][convlens.evaluate.layers_top_down]).
        seed: seeds the re-initialisation.
        reference: the trained model's maps `method(model, x, target)` when already computed
            (not recomputed; pass exactly what `method` returned).

    Returns:
        A [`RandomizationResult`][convlens.evaluate.RandomizationResult] with `[steps, N]`
        similarities.

    Raises:
        TypeError: `method` is not callable, `seed` is not an int, `layers` is not a list of
            names, or a map is not a tensor.
        ValueError: `order` is unknown, a layer is not in `model` or cannot be reset, or a map
            does not have one `[C, H, W]` or `[H, W]` per image.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens import evaluate
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2)).eval()
        >>> x = torch.randn(2, 3, 8, 8)
        >>> import convlens
        >>> result = evaluate.randomization_similarity(model, x, 0, convlens.gradient)
        >>> result.layers, result.spearman.shape
        (['4', '0'], torch.Size([2, 2]))
    """
    x = check_batch(x).detach()
    n = x.shape[0]
    check_target(target, n)
    if not callable(method):
        raise TypeError(f"method must be callable as method(model, x, target), got "
                        f"{type(method).__name__}")
    if order not in ("cascading", "independent"):
        raise ValueError(f"order must be 'cascading' or 'independent', got {order!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    steps = _randomization_steps(model, x, layers)

    given = reference is not None
    if not given:
        reference = method(model, x, target)
    signed_ref, abs_ref = _reductions(reference, n, "reference must be" if given else
                                      "method must return")
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    rho_abs, rho, ssim, maps = [], [], [], []
    work = copy.deepcopy(model)
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for names in steps:
            if order == "independent":
                work = copy.deepcopy(model)
            modules = dict(work.named_modules())
            with torch.no_grad():
                for name in names:
                    for module in _resettable(modules[name]):
                        module.reset_parameters()
            result = method(work, x, target)
            signed, absolute = _reductions(result, n)
            maps.append(result.detach())
            rho_abs.append([_spearman(abs_ref[i].ravel(), absolute[i].ravel()) for i in range(n)])
            rho.append([_spearman(signed_ref[i].ravel(), signed[i].ravel()) for i in range(n)])
            ssim.append([_ssim(abs_ref[i], absolute[i]) for i in range(n)])
    return RandomizationResult(
        layers=["+".join(names) for names in steps],
        spearman_abs=torch.tensor(rho_abs, dtype=torch.float64),
        spearman=torch.tensor(rho, dtype=torch.float64),
        ssim=torch.tensor(ssim, dtype=torch.float64),
        reference=reference.detach(),
        maps=maps,
    )
