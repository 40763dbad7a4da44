"""MACO: feature visualisation that optimises only the Fourier phase of an image.

Fel, Boissin, Boutin, Picard, Novello, Colin, Linsley, Rousseau, Cadène, Goetschalckx,
Gardes & Serre 2023, "Unlocking feature visualization for deeper networks with MAgnitude
Constrained Optimization", NeurIPS. The image is written through its 2-D Fourier transform,
with the *magnitude* fixed to the mean spectrum ``m`` of natural photos
(:func:`convlens.natural_statistics.natural_spectrum`) and only the *phase* free::

    v_c  = F^{-1}[ m_c * exp(i phi_c) ]                 (one decorrelated colour component c)
    x    = sigmoid( logit(mu) + (U v) / (mu (1 - mu)) )  (RGB image in (0, 1))
    phi* = argmax_phi  E_T [ objective( T(x) ) ]

``U`` and ``mu`` are the decorrelated colour axes and mean colour of the same photos; the
sigmoid is the identity to first order around the mean colour (slope ``mu (1 - mu)`` at
``logit(mu)`` undone by the division) and bounds the pixels. Every image the optimiser can
reach has the photos' amplitude at every frequency, so energy cannot pile up at high
frequencies (the checkerboards and speckle of plain ascent): it can only be arranged,
through the phase, into edges and shapes.

The phase is carried by a free real image ``z`` as ``exp(i phi) = Z / |Z|`` with
``Z = F[z]``: the phase of a real image is automatically Hermitian-symmetric, so
``F[v_c]`` has modulus exactly ``m_c`` at every frequency (:meth:`PhaseImage.spectral`).

``T`` (transformation robustness, Olah et al. 2017; MACO's recipe) draws, at each step and
for each image, ``crops`` random square crops whose side is a fraction in ``crop_scale`` of
the image side, resizes them to the model's input size and adds Gaussian noise of standard
deviation ``noise`` (in pixel units). The objective is averaged over them.

**Importance** (MACO's transparency map): the sum over the steps of ``|d loss / d x|``
(summed over colours): where the objective kept asking for changes. It is returned with
the image; showing it as opacity hides the parts of the picture the objective never used.

**Objectives**: :class:`ChannelObjective` (mean of one channel of a layer's output over
positions) and :class:`ClassObjective` (one logit). :func:`maco` optimises one image per
objective in one batch; with ``diversity > 0`` it adds Olah et al.'s diversity term,
``- diversity * mean_{i != j} cos(G_i, G_j)``, with ``G_i`` the Gram matrix (channels by
channels, over positions) of image ``i``'s activations at ``diversity_layer``: pass the same
objective several times to get several different images of it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_positive_int, model_device_dtype, resolve_layer
from .hooks import capture, eval_mode, stop_after
from .input_optimization import Visualization, _normalizer
from .natural_statistics import ColourBasis, natural_spectrum

__all__ = ["CLASS_RECIPE", "ChannelObjective", "ClassObjective", "PhaseImage", "maco",
           "random_crops", "transparent", "visualize_class"]


@dataclass(frozen=True)
class ChannelObjective:
    """The mean over positions of channel ``channel`` of ``layer``'s output."""

    layer: str
    channel: int

    def __post_init__(self):
        if not isinstance(self.layer, str) or not self.layer:
            raise TypeError(f"ChannelObjective.layer must be a module's qualified name, got {self.layer!r}")
        if isinstance(self.channel, bool) or not isinstance(self.channel, int) or self.channel < 0:
            raise ValueError(f"ChannelObjective.channel must be an int >= 0, got {self.channel!r}")

    def __str__(self) -> str:
        return f"mean of channel {self.channel} of {self.layer}"


@dataclass(frozen=True)
class ClassObjective:
    """The logit (pre-softmax score) of class ``target``."""

    target: int

    def __post_init__(self):
        if isinstance(self.target, bool) or not isinstance(self.target, int) or self.target < 0:
            raise ValueError(f"ClassObjective.target must be a class index >= 0, got {self.target!r}")

    def __str__(self) -> str:
        return f"logit of class {self.target}"


class PhaseImage:
    """``n`` images of ``size`` with a fixed Fourier magnitude and a free phase.

    ``magnitude [3, H, W // 2 + 1]`` (per decorrelated colour component, ``rfft2`` layout,
    ``norm="ortho"``) and ``basis`` come from
    :func:`~convlens.natural_statistics.natural_spectrum`. ``params`` (the free real
    images ``z`` whose phase is used) is the tensor to optimise.
    """

    def __init__(self, n: int, magnitude: torch.Tensor, basis: ColourBasis,
                 generator: torch.Generator, device=None, dtype=torch.float32):
        height, width = magnitude.shape[-2], 2 * (magnitude.shape[-1] - 1)
        self.size = (height, width)
        self.magnitude = magnitude.to(device=device, dtype=dtype)
        self.axes = basis.axes.to(device=device, dtype=dtype)
        mean = basis.mean.clamp(0.05, 0.95).to(device=device, dtype=dtype)
        self.offset = torch.logit(mean)[:, None, None]
        self.gain = (1.0 / (mean * (1 - mean)))[:, None, None]
        z = torch.randn((n, 3, height, width), generator=generator, dtype=torch.float64)
        self.params = z.to(device=device, dtype=dtype).requires_grad_(True)

    def spectral(self) -> torch.Tensor:
        """The decorrelated components ``v [n, 3, H, W]``: ``|rfft2(v)| == magnitude``."""
        spectrum = torch.fft.rfft2(self.params, norm="ortho")
        phase = spectrum / spectrum.abs().clamp(min=1e-20)
        return torch.fft.irfft2(self.magnitude * phase, s=self.size, norm="ortho")

    def image(self) -> torch.Tensor:
        """The RGB images ``[n, 3, H, W]`` in (0, 1)."""
        deviation = torch.einsum("cd,ndhw->nchw", self.axes, self.spectral())
        return torch.sigmoid(self.offset + self.gain * deviation)


def random_crops(images: torch.Tensor, crops: int, scale: tuple[float, float],
                 out_size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """``crops`` random crops of each image of ``images [n, 3, H, W]``, resized (bilinear)
    to ``out_size``: ``[n * crops, 3, *out_size]``, image ``i``'s crops at rows
    ``i * crops .. (i + 1) * crops - 1``. Each crop's sides are the fraction ``s`` (uniform
    in ``scale``) of the image's, at a uniformly drawn place inside the image."""
    n = images.shape[0] * crops
    draws = torch.rand((n, 3), generator=generator, dtype=torch.float64)
    side = scale[0] + (scale[1] - scale[0]) * draws[:, 0]
    centre = (1 - side)[:, None] * (2 * draws[:, 1:] - 1)  # keeps the crop inside
    theta = torch.zeros((n, 2, 3), dtype=torch.float64)
    theta[:, 0, 0] = theta[:, 1, 1] = side
    theta[:, :, 2] = centre
    theta = theta.to(device=images.device, dtype=images.dtype)
    grid = F.affine_grid(theta, [n, images.shape[1], *out_size], align_corners=False)
    return F.grid_sample(images.repeat_interleave(crops, dim=0), grid, mode="bilinear",
                         padding_mode="reflection", align_corners=False)


def _gram_diversity(activations: torch.Tensor, n: int) -> torch.Tensor:
    """Mean cosine similarity between the Gram matrices of the ``n`` images (their crops'
    Gram matrices averaged) of ``activations [n * crops, C, h, w]``."""
    flat = activations.reshape(n, -1, activations.shape[1], activations.shape[2] * activations.shape[3])
    gram = (flat @ flat.transpose(-1, -2)).mean(dim=1) / flat.shape[-1]
    unit = F.normalize(gram.reshape(n, -1), dim=1)
    similarity = unit @ unit.T
    return (similarity.sum() - similarity.diagonal().sum()) / (n * (n - 1))


def _objective_scores(model, objectives, x, crops, diversity_layer):
    """Per-image objective (mean over its crops) ``[n]`` and the diversity layer's output."""
    layers = sorted({o.layer for o in objectives if isinstance(o, ChannelObjective)}
                    | ({diversity_layer} if diversity_layer else set()))
    logits_needed = any(isinstance(o, ClassObjective) for o in objectives)
    with capture(model, layers) as records:
        if not logits_needed and len(layers) == 1:
            with stop_after(model, layers[0]):
                model(x)
            logits = None
        else:
            logits = model(x)
    for name in layers:
        if len(records[name]) != 1:
            raise ValueError(f"layer {name!r} ran {len(records[name])} times in one forward "
                             "pass; choose a layer that runs once")
    scores = []
    for i, objective in enumerate(objectives):
        rows = slice(i * crops, (i + 1) * crops)
        if isinstance(objective, ClassObjective):
            if logits.ndim != 2 or objective.target >= logits.shape[1]:
                raise ValueError(f"class {objective.target} is out of range for the model's "
                                 f"output of shape {tuple(logits.shape)}")
            scores.append(logits[rows, objective.target].mean())
        else:
            output = records[objective.layer][0]
            if output.ndim < 2 or objective.channel >= output.shape[1]:
                raise ValueError(f"channel {objective.channel} is out of range for layer "
                                 f"{objective.layer!r} with output shape {tuple(output.shape)}")
            scores.append(output[rows, objective.channel].mean())
    diverse = records[diversity_layer][0] if diversity_layer else None
    return torch.stack(scores), diverse


@dataclass(frozen=True)
class _Recipe:
    steps: int
    lr: float
    crops: int
    crop_scale: tuple[float, float]
    noise: float
    input_size: tuple[int, int]
    diversity: float
    diversity_layer: str | None


def _ascend(model, objectives, param, to_input, recipe: _Recipe, generator):
    """Adam on the phase images; returns the per-step rows and the importance ``[n, H, W]``."""
    optimizer = torch.optim.Adam([param.params], lr=recipe.lr)
    n = len(objectives)
    importance = torch.zeros((n, *param.size), dtype=torch.float64)
    rows = []
    for _ in range(recipe.steps):
        image = param.image()
        views = random_crops(image, recipe.crops, recipe.crop_scale, recipe.input_size, generator)
        if recipe.noise:
            views = views + recipe.noise * torch.randn(views.shape, generator=generator).to(views)
        scores, activations = _objective_scores(model, objectives, to_input(views), recipe.crops,
                                                recipe.diversity_layer)
        loss = -scores.sum()
        similarity = torch.zeros(())
        if recipe.diversity:
            similarity = _gram_diversity(activations, n)
            loss = loss + recipe.diversity * n * similarity
        (image_gradient,) = torch.autograd.grad(loss, image)
        importance += image_gradient.detach().abs().sum(dim=1).to("cpu", torch.float64)
        (gradient,) = torch.autograd.grad(image, param.params, image_gradient)
        param.params.grad = gradient  # the phase images' own tensor; the model's .grad stays None
        optimizer.step()
        rows.append([*scores.detach().cpu().double().tolist(), float(similarity.detach())])
    param.params.grad = None
    return torch.tensor(rows, dtype=torch.float64).reshape(recipe.steps, n + 1), importance


def _pair(value, name: str) -> tuple[int, int]:
    height, width = (value, value) if isinstance(value, int) and not isinstance(value, bool) else (
        tuple(value) if isinstance(value, (tuple, list)) and len(value) == 2 else (None, None))
    check_positive_int(height, f"{name}[0]")
    check_positive_int(width, f"{name}[1]")
    return height, width


def _check_recipe(objectives, steps, lr, crops, crop_scale, noise, diversity, diversity_layer):
    if not isinstance(objectives, Sequence) or not objectives or not all(
            isinstance(o, (ChannelObjective, ClassObjective)) for o in objectives):
        raise TypeError("objectives must be a non-empty sequence of ChannelObjective / "
                        "ClassObjective")
    check_positive_int(steps, "steps")
    check_positive_int(crops, "crops")
    for value, name in ((lr, "lr"), (noise, "noise"), (diversity, "diversity")):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if lr <= 0 or noise < 0 or diversity < 0:
        raise ValueError(f"lr must be > 0 and noise, diversity >= 0, got lr={lr}, "
                         f"noise={noise}, diversity={diversity}")
    if (not isinstance(crop_scale, (tuple, list)) or len(crop_scale) != 2
            or not all(isinstance(v, (int, float)) for v in crop_scale)
            or not 0 < crop_scale[0] <= crop_scale[1] <= 1):
        raise ValueError(f"crop_scale must be a pair (low, high) with 0 < low <= high <= 1, "
                         f"got {crop_scale!r}")
    if diversity and len(objectives) < 2:
        raise ValueError("diversity needs at least two objectives (pass one objective several times)")
    if diversity and diversity_layer is None:
        raise ValueError("diversity needs diversity_layer, the layer whose Gram matrices are "
                         "pushed apart")


def maco(model: nn.Module, objectives: Sequence[ChannelObjective | ClassObjective], *,
         steps: int = 128, lr: float = 0.08, image_size: int | tuple[int, int] = 224,
         input_size: int | tuple[int, int] | None = None, crops: int = 4,
         crop_scale: tuple[float, float] = (0.5, 1.0), noise: float = 0.05,
         diversity: float = 0.0, diversity_layer: nn.Module | str | None = None,
         normalize: Callable | tuple | None = None,
         spectrum: tuple[torch.Tensor, ColourBasis] | None = None,
         cache_dir: str | os.PathLike | None = None,
         generator: torch.Generator | None = None) -> list[Visualization]:
    """Optimise one phase-only image per objective (see the module docstring), all in one
    batch, and return one :class:`~convlens.input_optimization.Visualization` per objective:
    ``image [3, H, W]`` in (0, 1), ``importance [H, W]`` (accumulated ``|d loss / d x|``) and
    ``history`` (``"objective"``: the objective at each step, averaged over the step's
    crops; ``"diversity"``: the mean Gram cosine similarity, 0 without diversity).

    ``image_size``: the optimised image; ``input_size``: the side of the crops fed to the
    model (default: ``image_size``). ``normalize`` (a callable or the model's
    ``(mean, std)``) maps pixels in [0, 1] to the model's input. ``spectrum``: a
    ``(magnitude, basis)`` pair for ``image_size`` (default:
    ``natural_spectrum(image_size, cache_dir=cache_dir)``, from the offline photo pool).
    Randomness (the start, the crops, the noise) comes from ``generator`` (CPU; ``None``:
    seeded with 0): the same generator state gives the same images. The model runs in eval
    mode and is left as found; only the phase images get gradients.
    """
    _check_recipe(objectives, steps, lr, crops, crop_scale, noise, diversity, diversity_layer)
    objectives = [ChannelObjective(resolve_layer(model, o.layer)[0], o.channel)
                  if isinstance(o, ChannelObjective) else o for o in objectives]
    size = _pair(image_size, "image_size")
    in_size = size if input_size is None else _pair(input_size, "input_size")
    layer_name = resolve_layer(model, diversity_layer)[0] if diversity_layer is not None else None
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    magnitude, basis = spectrum if spectrum is not None else natural_spectrum(size, cache_dir=cache_dir)
    if tuple(magnitude.shape) != (3, size[0], size[1] // 2 + 1):
        raise ValueError(f"spectrum's magnitude has shape {tuple(magnitude.shape)}, but an "
                         f"image of {size} needs (3, {size[0]}, {size[1] // 2 + 1})")
    device, dtype = model_device_dtype(model)
    param = PhaseImage(len(objectives), magnitude, basis, generator, device, dtype)
    recipe = _Recipe(steps, float(lr), crops, tuple(crop_scale), float(noise), in_size,
                     float(diversity), layer_name)
    with eval_mode(model):
        rows, importance = _ascend(model, objectives, param, _normalizer(normalize, device, dtype),
                                   recipe, generator)
    with torch.no_grad():
        images = param.image().detach()
    return [Visualization(image=images[i], history={"objective": rows[:, i].clone(),
                                                    "diversity": rows[:, -1].clone()},
                          importance=importance[i].to(images.device))
            for i in range(len(objectives))]


#: The recommended recipe of :func:`visualize_class` (tuned on EfficientNet-Lite0 on a 2-core CPU).
CLASS_RECIPE = {"steps": 96, "image_size": 192, "input_size": 160, "crops": 2,
                "crop_scale": (0.6, 1.0), "noise": 0.05, "lr": 0.08}


def visualize_class(model: nn.Module, target: int, *, steps: int | None = None,
                    image_size: int | tuple[int, int] | None = None,
                    generator: torch.Generator | None = None,
                    normalize: Callable | tuple | None = None,
                    input_size: int | tuple[int, int] | None = None,
                    cache_dir: str | os.PathLike | None = None) -> Visualization:
    """A MACO picture of class ``target``: :func:`maco` with one :class:`ClassObjective`
    and the recommended recipe :data:`CLASS_RECIPE` for every argument left ``None``.
    ``normalize``: the model's normalisation (a callable or ``(mean, std)``), which the
    recipe cannot guess; without it the model sees pixels in [0, 1]."""
    recipe = dict(CLASS_RECIPE)
    if image_size is not None:
        recipe["image_size"] = image_size
        recipe["input_size"] = image_size if input_size is None else input_size
    elif input_size is not None:
        recipe["input_size"] = input_size
    if steps is not None:
        recipe["steps"] = steps
    if isinstance(target, bool) or not isinstance(target, int):
        raise TypeError(f"target must be a class index (int), got {type(target).__name__}")
    return maco(model, [ClassObjective(target)], normalize=normalize, generator=generator,
                cache_dir=cache_dir, **recipe)[0]


def transparent(visualization: Visualization, *, blur: float = 2.0, quantile: float = 0.98,
                background: float = 1.0) -> torch.Tensor:
    """The picture with its importance as opacity, over a plain ``background`` (1: white):
    ``alpha = clip(g / q, 0, 1)``, ``g`` the importance blurred by a Gaussian of standard
    deviation ``blur`` pixels and ``q`` its ``quantile``. Returns ``[3, H, W]`` in [0, 1]."""
    if visualization.importance is None:
        raise ValueError("this visualisation has no importance map (MACO returns one)")
    if not 0 < quantile <= 1 or blur < 0:
        raise ValueError(f"quantile must be in (0, 1] and blur >= 0, got {quantile}, {blur}")
    weight = visualization.importance.detach().double().cpu()[None, None]
    if blur > 0:
        radius = max(1, int(3 * blur))
        taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / blur) ** 2)
        taps = taps / taps.sum()
        weight = F.pad(weight, (radius, radius, radius, radius), mode="reflect")
        weight = F.conv2d(F.conv2d(weight, taps.reshape(1, 1, 1, -1)), taps.reshape(1, 1, -1, 1))
    alpha = (weight[0, 0] / torch.quantile(weight.flatten(), quantile).clamp(min=1e-30)).clamp(0, 1)
    image = visualization.image.detach().double().cpu()
    return (alpha * image + (1 - alpha) * background).to(visualization.image.dtype)
