"""Two checks of what a synthesised picture means.

**Transfer.** A picture optimised on one network is classified by *other* networks trained
on the same task. Adversarial perturbations mostly do not transfer between architectures
at small norm, while features that look like the class to several networks do; so the
top-1 / top-5 rate at which independent networks name the intended class is a (one-sided)
measure of how natural a class visualisation is. Fel et al. 2023 (MACO, NeurIPS) score
visualisations this way. :func:`transfer_scores` resizes the pictures to a judge's input
size (bicubic, antialiased), normalises them and returns, per picture, whether the target
is the top class, whether it is in the top ``k``, and its rank (0 = top).

**Processing path.** Geirhos, Zimmermann, Bilodeau, Brendel & Kim 2024, "Don't trust your
eyes: on the (un)reliability of feature visualizations" (ICML), show that a visualisation
can be made to show anything while the unit's response to natural images is unchanged,
and propose a sanity check: a visualisation of a class should be processed like photos
of that class, layer by layer, not only at the output. :func:`layer_similarity` gives, at
each layer, the cosine similarity between the spatially averaged activation vectors of
pictures and of photos, centred on the photos' mean vector (so that the activations every
image shares do not make everything look alike)::

    sim_l(a, b) = cos( g_l(a) - mean_photos g_l,  g_l(b) - mean_photos g_l ),
    g_l(x) = mean over positions of layer l's output (one number per channel)

Neither check can prove that a picture is faithful: a picture can transfer and be
processed like photos for reasons unrelated to what the unit does on natural images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import (
    check_batch,
    check_positive_int,
    check_target,
    model_device_dtype,
    resolve_layer,
)
from .hooks import capture, eval_mode, only_call
from .input_optimization import _normalizer

__all__ = ["TransferResult", "layer_similarity", "transfer_scores"]


@dataclass(frozen=True)
class TransferResult:
    """Per picture: ``top1`` and ``topk`` (bool ``[N]``), ``rank`` (long ``[N]``: how many
    other classes score at least as high as the target, so 0 = top class and a tie counts
    against the target), ``probability`` of the target (float ``[N]``); ``k``. Rates:
    ``top1.float().mean()``."""

    top1: torch.Tensor
    topk: torch.Tensor
    rank: torch.Tensor
    probability: torch.Tensor
    k: int


def _pixels(images, name="images") -> torch.Tensor:
    check_batch(images, name)
    if images.shape[1] != 3:
        raise ValueError(f"{name} must be RGB pictures [N, 3, H, W], got {tuple(images.shape)}")
    if images.min() < 0 or images.max() > 1:
        raise ValueError(f"{name} must hold pixels in [0, 1] (not normalised model inputs)")
    return images


def _resized(images, size, device, dtype) -> torch.Tensor:
    x = images.to(device=device, dtype=dtype)
    if size is None or tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bicubic", align_corners=False,
                         antialias=True).clamp(0, 1)


def transfer_scores(model: nn.Module, images: torch.Tensor, targets, *,
                    normalize: Callable | tuple | None = None,
                    input_size: int | tuple[int, int] | None = None, k: int = 5) -> TransferResult:
    """Classify the pictures ``images [N, 3, H, W]`` (pixels in [0, 1]) with ``model``
    after resizing them to ``input_size`` (default: as they are) and ``normalize`` (a
    callable or ``(mean, std)``), and score each against its ``targets`` (an int or ``N``
    class indices). The model runs in eval mode under ``no_grad`` and is left as found."""
    _pixels(images)
    check_positive_int(k, "k")
    target = check_target(targets, images.shape[0])
    size = (input_size, input_size) if isinstance(input_size, int) else input_size
    device, dtype = model_device_dtype(model)
    with eval_mode(model), torch.no_grad():
        logits = model(_normalizer(normalize, device, dtype)(_resized(images, size, device, dtype)))
    if logits.ndim != 2:
        raise ValueError(f"the model must return logits [N, classes], got {tuple(logits.shape)}")
    target = check_target(target, images.shape[0], logits.shape[1]).to(logits.device)
    chosen = logits.gather(1, target[:, None])
    rank = ((logits >= chosen).sum(dim=1) - 1).cpu()  # a tie counts against the target
    probability = logits.softmax(dim=1).gather(1, target[:, None])[:, 0].float().cpu()
    return TransferResult(rank == 0, rank < k, rank, probability, k)


def _pooled(model, layers, x, batch_size):
    vectors = {name: [] for name in layers}
    with eval_mode(model), torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            with capture(model, layers) as records:
                model(x[start:start + batch_size])
            for name in layers:
                output = only_call(records, name)
                if output.ndim != 4:
                    raise ValueError(f"layer {name!r} gives output of shape "
                                     f"{tuple(output.shape)}, not a feature map")
                vectors[name].append(output.mean(dim=(2, 3)).double().cpu())
    return {name: torch.cat(v) for name, v in vectors.items()}


def layer_similarity(model: nn.Module, layers: Sequence[nn.Module | str], pictures: torch.Tensor,
                     photos: torch.Tensor, *, normalize: Callable | tuple | None = None,
                     batch_size: int = 16) -> dict[str, torch.Tensor]:
    """``{layer: [P, Q]}``: the centred cosine similarity (module docstring) between each
    of the ``P`` ``pictures`` and each of the ``Q`` ``photos`` (both pixels ``[N, 3, H, W]``
    in [0, 1], the same size), at each layer of ``layers`` (their qualified names as keys).
    The centre is the photos' mean activation vector at that layer."""
    _pixels(pictures, "pictures")
    _pixels(photos, "photos")
    if pictures.shape[-2:] != photos.shape[-2:]:
        raise ValueError(f"pictures and photos must have the same size, got "
                         f"{tuple(pictures.shape[-2:])} and {tuple(photos.shape[-2:])}")
    if isinstance(layers, (str, nn.Module)) or not layers:
        raise TypeError("layers must be a non-empty sequence of layers (names or modules)")
    check_positive_int(batch_size, "batch_size")
    names = [resolve_layer(model, layer)[0] for layer in layers]
    device, dtype = model_device_dtype(model)
    to_input = _normalizer(normalize, device, dtype)
    both = to_input(torch.cat([pictures, photos]).to(device=device, dtype=dtype))
    pooled = _pooled(model, names, both, batch_size)
    result = {}
    for name in names:
        vectors = pooled[name]
        centred = vectors - vectors[pictures.shape[0]:].mean(dim=0)
        unit = F.normalize(centred, dim=1)
        result[name] = unit[:pictures.shape[0]] @ unit[pictures.shape[0]:].T
    return result
