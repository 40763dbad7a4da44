r"""Two checks of what a synthesised picture means.

**Transfer.** A picture optimised on one network is classified by *other* networks trained
on the same task. Adversarial perturbations of small norm mostly do not carry over from one
architecture to another, while features that look like the class to several networks do;
so the top-1 / top-5 rate at which independent networks name the intended class is a
one-sided measure of how natural a class visualisation is. [Fel et al. 2023][ref-fel2023]
(MACO) score visualisations this way.
[`transfer_scores`][convlens.visualization_checks.transfer_scores] resizes the pictures to
a judge network's input size (bicubic, antialiased), normalises them, and returns for each
picture whether the target is the top class, whether it is in the top $k$, and its rank
(0 = top).

**Processing path.** [Geirhos, Zimmermann, Bilodeau, Brendel & Kim 2024][ref-geirhos2024]
("Don't trust your eyes: on the (un)reliability of feature visualizations") show that a
visualisation can be made to show anything while the unit's response to natural images
stays the same, and propose a sanity check: a visualisation of a class should be processed
like photos of that class layer by layer, not only at the output.
[`layer_similarity`][convlens.visualization_checks.layer_similarity] gives, at each layer
$l$, the cosine similarity between the spatially averaged activation vectors of pictures
and of photos, both centred on the photos' mean vector (so that what every image shares
does not make everything look alike):

$$ \mathrm{sim}_l(a, b) = \cos\big(g_l(a) - \bar g_l, \; g_l(b) - \bar g_l\big), \qquad
g_l(x) = \mathrm{mean}_{i,j}\, a_l(x)[:, i, j] $$

with $a_l(x)$ layer $l$'s output (one number per channel after the mean over positions)
and $\bar g_l$ the mean of $g_l$ over the photos.

Neither check proves that a picture is faithful: a picture can transfer and be processed
like photos for reasons unrelated to what the unit does on natural images.
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
    """How a judge network classified each picture, as
    [`transfer_scores`][convlens.visualization_checks.transfer_scores] returns it.

    A rate over the pictures is the mean of a column, e.g. `result.top1.float().mean()`.

    Attributes:
        top1: bool `[N]`: the target is the top class.
        topk: bool `[N]`: the target is among the `k` highest classes.
        rank: long `[N]`: how many other classes score at least as high as the target
            (0 = top class; a tie counts against the target).
        probability: float `[N]`: the softmax probability of the target.
        k: the `k` of `topk`.

    Examples:
        >>> import torch
        >>> from convlens.visualization_checks import TransferResult
        >>> rank = torch.tensor([0, 3, 7])
        >>> result = TransferResult(rank == 0, rank < 5, rank, torch.rand(3), k=5)
        >>> result.top1.tolist(), result.topk.float().mean().item()  # top-5 rate 2/3
        ([True, False, False], 0.6666666865348816)
    """

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
    """Classify pictures with a judge network and score each against its intended class:
    the transfer check (module docstring).

    The pictures are resized to `input_size` (bicubic, antialiased, clamped to [0, 1]) and
    normalised before the model sees them. The model runs in eval mode under `no_grad` and
    is left as found.

    Args:
        model: the judge, a classifier returning logits `[N, classes]`; left as found.
        images: the pictures, pixels `[N, 3, H, W]` in [0, 1].
        targets: the intended class, an int for all pictures or one index per picture.
        normalize: a callable, or the model's `(mean, std)`, from pixels in [0, 1] to the
            model's input (None: pixels as they are).
        input_size: the `(height, width)` (or one side) the model expects (None: the
            pictures' own size).
        k: the `k` of the top-`k` score.

    Returns:
        A [`TransferResult`][convlens.visualization_checks.TransferResult]: `top1`, `topk`,
        `rank` and `probability` of the target, each `[N]` on the CPU, and `k`.

    Raises:
        TypeError: `images` is not a floating-point tensor, `k` not an int, or `targets` not
            class indices.
        ValueError: `images` is not RGB pixels in [0, 1], `k < 1`, a target out of range,
            or a model that does not return logits `[N, classes]`.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens.visualization_checks import transfer_scores
        >>> judge = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 6)).eval()
        >>> pictures = torch.rand(4, 3, 32, 32)
        >>> result = transfer_scores(judge, pictures, [0, 1, 2, 3], input_size=16, k=6)
        >>> result.rank.shape, bool(result.topk.all())  # every class is in the top 6 of 6
        (torch.Size([4]), True)
        >>> torch.equal(result.top1, result.rank == 0)
        True
    """
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
    r"""The centred cosine similarity $\mathrm{sim}_l$ (module docstring) between each
    picture and each photo, at each of several layers: the processing-path check of
    [Geirhos et al. 2024][ref-geirhos2024].

    Pictures and photos go through the model together, in batches under `no_grad`, in eval
    mode; the model is left as found. The centre at each layer is the photos' mean
    activation vector, so the similarities depend on which photos are passed.

    Args:
        model: the network; left as found.
        layers: a non-empty sequence of modules of `model` or their qualified names, each
            called once per forward pass and returning a feature map.
        pictures: the `P` synthesised pictures, pixels `[P, 3, H, W]` in [0, 1].
        photos: the `Q` photos, pixels `[Q, 3, H, W]` in [0, 1], the pictures' size.
        normalize: a callable, or the model's `(mean, std)`, from pixels in [0, 1] to the
            model's input (None: pixels as they are).
        batch_size: images per forward pass.

    Returns:
        `{layer name: [P, Q]}`, float64 on the CPU, keyed by each layer's qualified name:
        entry `[p, q]` is the similarity of picture `p` and photo `q`, in [-1, 1].

    Raises:
        TypeError: pictures or photos are not floating-point tensors, `layers` is a single
            layer or empty, or `batch_size` is not an int.
        ValueError: pictures or photos are not RGB pixels in [0, 1], their sizes differ,
            `batch_size < 1`, an unknown layer, or a layer that runs more than once per pass
            or does not return a feature map `[N, C, h, w]`.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens.visualization_checks import layer_similarity
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2)).eval()
        >>> photos = torch.rand(3, 3, 16, 16)
        >>> pictures = torch.cat([photos[:1], torch.rand(1, 3, 16, 16)])
        >>> similarity = layer_similarity(model, ["1", "3"], pictures, photos)
        >>> list(similarity), similarity["3"].shape
        (['1', '3'], torch.Size([2, 3]))
        >>> round(similarity["3"][0, 0].item(), 6)  # photo 0 against itself
        1.0
    """
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
