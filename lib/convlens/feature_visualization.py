r"""MACO: feature visualisation that optimises only the Fourier phase of a picture.

[Fel et al. 2023][ref-fel2023] ("Unlocking feature visualization for deeper networks with
MAgnitude Constrained Optimization", NeurIPS) write the picture through its 2-D Fourier
transform $\mathcal{F}$. The *magnitude* is held at the mean spectrum $m$ of natural photos
([`natural_spectrum`][convlens.natural_statistics.natural_spectrum]); only the *phase*
$\varphi$ is free. For each decorrelated colour component $c$:

$$ v_c = \mathcal{F}^{-1}\big[m_c \, e^{i \varphi_c}\big], \qquad
x = \sigma\Big(\mathrm{logit}(\mu) + \frac{U v}{\mu (1 - \mu)}\Big), \qquad
\varphi^* = \arg\max_\varphi \; \mathbb{E}_T\big[\mathrm{objective}(T(x))\big] $$

$U$ and $\mu$ are the decorrelated colour axes and the mean colour of the same photos
([`ColourBasis`][convlens.natural_statistics.ColourBasis]) and $\sigma$ is the sigmoid, so
$x$ is an RGB picture in $(0, 1)$. Near the mean colour the sigmoid changes nothing to first
order: its slope $\mu (1 - \mu)$ at $\mathrm{logit}(\mu)$ is cancelled by the division. Every
picture the optimiser can reach carries the photos' amplitude at every frequency, so it
cannot pile energy into high frequencies (the checkerboards and speckle of plain gradient
ascent); it can only arrange that energy, through the phase, into edges and shapes.

The phase is read off a free real image $z$: $e^{i \varphi} = Z / |Z|$ with
$Z = \mathcal{F}[z]$. The spectrum of a real image is Hermitian-symmetric, so its phase is
too, and $\mathcal{F}[v_c]$ has modulus exactly $m_c$ at every frequency
([`PhaseImage`][convlens.feature_visualization.PhaseImage]).

$T$ is transformation robustness ([Olah et al. 2017][ref-olah2017], as MACO uses it): at
every step each picture gives `crops` random square crops, each side a fraction drawn from
`crop_scale` of the picture's side, resized to the model's input size
([`random_crops`][convlens.feature_visualization.random_crops]), plus Gaussian noise of
standard deviation `noise` in pixel units. The objective is the mean over these views.

**Importance** (MACO's transparency map) is
$\sum_\text{steps} \sum_\text{colours} |\partial \mathrm{loss} / \partial x|$: large where
the objective kept asking for a change. [`maco`][convlens.feature_visualization.maco]
returns it with the picture, and [`transparent`][convlens.feature_visualization.transparent]
uses it as opacity, fading out the parts the objective never used.

**Objectives.** [`ChannelObjective`][convlens.feature_visualization.ChannelObjective] (one
channel of a layer) and [`ClassObjective`][convlens.feature_visualization.ClassObjective]
(one logit). [`maco`][convlens.feature_visualization.maco] optimises one picture per
objective, all in one batch. With `diversity > 0` it adds Olah et al.'s diversity term

$$ -\,\mathrm{diversity} \cdot \mathrm{mean}_{i \ne j} \cos(G_i, G_j) $$

where $G_i$ is the Gram matrix (channels by channels, averaged over positions and over the
picture's crops) of picture $i$'s activations at `diversity_layer`: give the same objective several times to get
several different pictures of it.
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
    """An objective for [`maco`][convlens.feature_visualization.maco] and
    [`accentuate`][convlens.accentuation.accentuate]: the mean over positions (and over the
    step's crops) of one channel of one layer's output.

    Its `str` is a caption for a figure. Whether the layer exists and the channel is in range
    is checked against the model when the objective is used.

    Attributes:
        layer: the layer's qualified name in `model.named_modules()`.
        channel: the channel of its output, an int `>= 0`.

    Raises:
        TypeError: `layer` is not a non-empty string.
        ValueError: `channel` is not an int `>= 0`.

    Examples:
        >>> from convlens.feature_visualization import ChannelObjective
        >>> str(ChannelObjective("features.3", 7))
        'mean of channel 7 of features.3'
        >>> ChannelObjective("features.3", -1)
        Traceback (most recent call last):
        ...
        ValueError: ChannelObjective.channel must be an int >= 0, got -1
    """

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
    """An objective for [`maco`][convlens.feature_visualization.maco] and
    [`accentuate`][convlens.accentuation.accentuate]: the logit (the score before the
    softmax) of one class, averaged over the step's crops.

    Its `str` is a caption for a figure. Whether the class is in range is checked against
    the model's output when the objective is used.

    Attributes:
        target: the class index, an int `>= 0`.

    Raises:
        ValueError: `target` is not an int `>= 0`.

    Examples:
        >>> from convlens.feature_visualization import ClassObjective
        >>> str(ClassObjective(281))
        'logit of class 281'
    """

    target: int

    def __post_init__(self):
        if isinstance(self.target, bool) or not isinstance(self.target, int) or self.target < 0:
            raise ValueError(f"ClassObjective.target must be a class index >= 0, got {self.target!r}")

    def __str__(self) -> str:
        return f"logit of class {self.target}"


class PhaseImage:
    r"""`n` pictures with a fixed Fourier magnitude and a free phase: MACO's
    parameterisation (module docstring).

    The free parameters are real images $z$ drawn from a standard normal; only their phase
    $Z / |Z|$, $Z = \mathcal{F}[z]$, reaches the picture, so any update of `params` changes
    the phase and never the magnitude.

    Args:
        n: the number of pictures.
        magnitude: the Fourier magnitude of each decorrelated colour component,
            `[3, H, W // 2 + 1]` (`rfft2` layout, `norm="ortho"`), as
            [`natural_spectrum`][convlens.natural_statistics.natural_spectrum] returns it for
            pictures of `(H, W)`; `W` is taken to be even.
        basis: the [`ColourBasis`][convlens.natural_statistics.ColourBasis] the magnitude is
            measured in (its mean colour is clamped to [0.05, 0.95] so the logit stays finite).
        generator: the CPU `torch.Generator` that draws the starting $z$.
        device: where the tensors live (None: the CPU).
        dtype: their floating-point type.

    Attributes:
        size: the pictures' `(H, W)`.
        params: the free real images $z$, `[n, 3, H, W]`, with `requires_grad`: the tensor
            to optimise.

    Raises no exception of its own ([`maco`][convlens.feature_visualization.maco] checks the
    magnitude's shape against the picture size).

    Examples:
        >>> import torch
        >>> from PIL import Image
        >>> from convlens.feature_visualization import PhaseImage
        >>> from convlens.natural_statistics import natural_spectrum
        >>> noise = torch.rand(24, 24, 3, generator=torch.Generator().manual_seed(0))
        >>> photo = Image.fromarray((255 * noise).byte().numpy())  # a stand-in photo
        >>> magnitude, basis = natural_spectrum(16, [photo], cache=False)
        >>> magnitude.shape
        torch.Size([3, 16, 9])
        >>> pictures = PhaseImage(2, magnitude, basis, torch.Generator().manual_seed(0))
        >>> pictures.size, pictures.params.shape
        ((16, 16), torch.Size([2, 3, 16, 16]))
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
        r"""The decorrelated colour components of the pictures,
        $v = \mathcal{F}^{-1}\big[m \, Z / |Z|\big]$ with $Z = \mathcal{F}[z]$ (`rfft2` and
        `irfft2`, `norm="ortho"`), so that `|rfft2(v)|` equals `magnitude` up to rounding.

        Returns:
            `v`, `[n, 3, H, W]`, differentiable with respect to `params`.

        Raises no exception of its own.

        Examples:
            >>> import torch
            >>> from PIL import Image
            >>> from convlens.feature_visualization import PhaseImage
            >>> from convlens.natural_statistics import natural_spectrum
            >>> noise = torch.rand(24, 24, 3, generator=torch.Generator().manual_seed(0))
            >>> photo = Image.fromarray((255 * noise).byte().numpy())
            >>> magnitude, basis = natural_spectrum(16, [photo], cache=False)
            >>> pictures = PhaseImage(1, magnitude, basis, torch.Generator().manual_seed(0),
            ...                       dtype=torch.float64)
            >>> v = pictures.spectral()
            >>> v.shape
            torch.Size([1, 3, 16, 16])
            >>> torch.allclose(torch.fft.rfft2(v, norm="ortho").abs()[0], magnitude)
            True
        """
        spectrum = torch.fft.rfft2(self.params, norm="ortho")
        phase = spectrum / spectrum.abs().clamp(min=1e-20)
        return torch.fft.irfft2(self.magnitude * phase, s=self.size, norm="ortho")

    def image(self) -> torch.Tensor:
        r"""The RGB pictures,
        $x = \sigma\big(\mathrm{logit}(\mu) + U v / (\mu (1 - \mu))\big)$ with
        $v$ = [`spectral()`][convlens.feature_visualization.PhaseImage.spectral].

        Returns:
            `[n, 3, H, W]`, pixels in (0, 1), differentiable with respect to `params`.

        Raises no exception of its own.

        Examples:
            >>> import torch
            >>> from PIL import Image
            >>> from convlens.feature_visualization import PhaseImage
            >>> from convlens.natural_statistics import natural_spectrum
            >>> noise = torch.rand(24, 24, 3, generator=torch.Generator().manual_seed(0))
            >>> photo = Image.fromarray((255 * noise).byte().numpy())
            >>> magnitude, basis = natural_spectrum(16, [photo], cache=False)
            >>> x = PhaseImage(2, magnitude, basis, torch.Generator().manual_seed(0)).image()
            >>> x.shape, bool(0 < x.min() and x.max() < 1)
            (torch.Size([2, 3, 16, 16]), True)
        """
        deviation = torch.einsum("cd,ndhw->nchw", self.axes, self.spectral())
        return torch.sigmoid(self.offset + self.gain * deviation)


def random_crops(images: torch.Tensor, crops: int, scale: tuple[float, float],
                 out_size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    r"""Random crops of each image, resized to one size: the views of MACO's transformation
    robustness (module docstring).

    Each crop keeps the image's aspect ratio: its sides are the fraction
    $s \sim \mathcal{U}(\text{scale})$ of the image's, and its centre, in coordinates where
    the image spans $[-1, 1]^2$, is drawn uniformly in $[-(1 - s), 1 - s]^2$, so the crop
    lies inside the image. It is resampled bilinearly (`F.affine_grid` / `F.grid_sample`)
    to `out_size`.

    Args:
        images: the pictures, `[n, 3, H, W]`.
        crops: the number of crops per picture.
        scale: `(low, high)`, the range of the fraction $s$, within (0, 1].
        out_size: the crops' `(height, width)` after resizing.
        generator: the CPU `torch.Generator` that draws the sizes and places.

    Returns:
        `[n * crops, 3, *out_size]`: picture `i`'s crops at rows `i * crops` to
        `(i + 1) * crops - 1`, differentiable with respect to `images`.

    Raises no exception of its own.

    Examples:
        >>> import torch
        >>> from convlens.feature_visualization import random_crops
        >>> images = torch.rand(2, 3, 32, 32)
        >>> views = random_crops(images, 3, (0.5, 1.0), (16, 16), torch.Generator().manual_seed(0))
        >>> views.shape
        torch.Size([6, 3, 16, 16])
        >>> whole = random_crops(images, 1, (1.0, 1.0), (32, 32), torch.Generator())
        >>> torch.allclose(whole, images, atol=1e-6)  # a crop of the full side is the image
        True
    """
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
    """Optimise one phase-only picture per objective, all in one batch (MACO,
    [Fel et al. 2023][ref-fel2023]; the equations are in the module docstring).

    Each step is an Adam update of the free phase images
    ([`PhaseImage`][convlens.feature_visualization.PhaseImage]) on the objectives of the
    step's random crops ([`random_crops`][convlens.feature_visualization.random_crops]) plus
    noise. All randomness (the start, the crops, the noise) comes from `generator`: the
    same generator state gives the same pictures. The model runs in eval mode and is left
    as found; only the phase images get gradients. When no objective needs the logits and
    only one layer is read, each pass stops after that layer.

    Args:
        model: the network; left as found.
        objectives: a non-empty sequence of
            [`ChannelObjective`][convlens.feature_visualization.ChannelObjective] and
            [`ClassObjective`][convlens.feature_visualization.ClassObjective], one picture
            each (repeat one to get several pictures of it).
        steps: Adam steps.
        lr: Adam's learning rate.
        image_size: the optimised picture's `(H, W)` (or one side).
        input_size: the `(height, width)` (or one side) the crops are resized to before the
            model sees them (None: `image_size`).
        crops: random crops per picture and step.
        crop_scale: `(low, high)` with `0 < low <= high <= 1`: the range of a crop's side as
            a fraction of the picture's.
        noise: the standard deviation of the Gaussian noise added to each crop, in pixel
            units (0: none).
        diversity: the weight of the Gram-matrix diversity term (0: none; it needs two
            objectives or more and `diversity_layer`).
        diversity_layer: a module of `model` or its qualified name whose activations'
            Gram matrices are pushed apart.
        normalize: a callable, or the model's `(mean, std)`, from pixels in [0, 1] to the
            model's input (None: pixels as they are).
        spectrum: a `(magnitude, basis)` pair for `image_size`, as
            [`natural_spectrum`][convlens.natural_statistics.natural_spectrum] returns it
            (None: `natural_spectrum(image_size, cache_dir=cache_dir)`, from the offline
            photo pool).
        cache_dir: where that default spectrum is cached (None: `~/.cache/convlens`); unused
            when `spectrum` is given.
        generator: a CPU `torch.Generator` (None: a fresh one seeded with 0).

    Returns:
        One [`Visualization`][convlens.input_optimization.Visualization] per objective, in
        order: `image [3, H, W]` in (0, 1) on the model's device; `importance [H, W]`, the
        accumulated `|d loss / d x|` summed over colours; and `history`, float64 tensors
        `[steps]`: `"objective"` (the objective at each step, before its update, averaged
        over the step's crops) and `"diversity"` (the mean Gram cosine similarity between
        the pictures, 0 without diversity).

    Raises:
        TypeError: `objectives` is not a non-empty sequence of objectives, or another
            argument has the wrong type (`generator` not a `torch.Generator`, a number
            that is not one).
        ValueError: a bad number (`lr <= 0`, negative `noise` or `diversity`, a bad
            `crop_scale`), diversity without two objectives or without `diversity_layer`,
            an unknown layer, a layer that runs more than once per pass, a channel or class
            out of range, or a `spectrum` whose magnitude does not fit `image_size`.

    Examples:
        >>> import torch
        >>> from PIL import Image
        >>> from torch import nn
        >>> from convlens.feature_visualization import ChannelObjective, ClassObjective, maco
        >>> from convlens.natural_statistics import natural_spectrum
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2)).eval()
        >>> noise = torch.rand(24, 24, 3, generator=torch.Generator().manual_seed(0))
        >>> photo = Image.fromarray((255 * noise).byte().numpy())  # stands in for the pool
        >>> spectrum = natural_spectrum(16, [photo], cache=False)
        >>> pictures = maco(model, [ChannelObjective("0", 1), ClassObjective(0)], steps=8,
        ...                 image_size=16, crops=2, spectrum=spectrum)
        >>> len(pictures), pictures[0].image.shape, pictures[0].importance.shape
        (2, torch.Size([3, 16, 16]), torch.Size([16, 16]))
        >>> objective = pictures[0].history["objective"]
        >>> objective.shape, bool(objective[-2:].mean() > objective[:2].mean())
        (torch.Size([8]), True)
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


CLASS_RECIPE = {"steps": 288, "image_size": 192, "input_size": 160, "crops": 2,
                "crop_scale": (0.6, 1.0), "noise": 0.05, "lr": 0.08}
"""The settings of [`maco`][convlens.feature_visualization.maco] that
[`visualize_class`][convlens.feature_visualization.visualize_class] uses for every argument
it is not given: 288 steps on a 192-pixel picture seen through two crops (60 to 100 % of its
side) resized to 160 pixels, noise 0.05, learning rate 0.08.

The number of steps was chosen with `benchmarks/bench_class_recipe.py` (`nox -s bench --
class_recipe`): on EfficientNet-Lite0, eight classes fixed beforehand, and the other two
EfficientNet-Lites as judges, 96 steps gave a median judge rank of 8 (6 s a picture on a
2-core CPU), 288 steps a median rank of 1 (19 s), and 576 steps no better than 288 (40 s).
The results are on the site's Benchmarks page.
"""


def visualize_class(model: nn.Module, target: int, *, steps: int | None = None,
                    image_size: int | tuple[int, int] | None = None,
                    generator: torch.Generator | None = None,
                    normalize: Callable | tuple | None = None,
                    input_size: int | tuple[int, int] | None = None,
                    cache_dir: str | os.PathLike | None = None) -> Visualization:
    """A MACO picture of one class: [`maco`][convlens.feature_visualization.maco] with one
    [`ClassObjective`][convlens.feature_visualization.ClassObjective] and the settings of
    [`CLASS_RECIPE`][convlens.feature_visualization.CLASS_RECIPE] for every argument left
    None.

    The magnitude is the offline photo pool's spectrum for the picture size
    ([`natural_spectrum`][convlens.natural_statistics.natural_spectrum]), computed once and
    cached in `cache_dir`.

    Args:
        model: the classifier; left as found.
        target: the class index whose logit is raised.
        steps: Adam steps (None: the recipe's).
        image_size: the picture's `(H, W)` or one side (None: the recipe's); the crops are
            then resized to it too, unless `input_size` is given.
        generator: a CPU `torch.Generator` (None: a fresh one seeded with 0).
        normalize: the model's normalisation, a callable or `(mean, std)`, which the recipe
            cannot guess (None: the model sees pixels in [0, 1]).
        input_size: the size the crops are resized to (None: the recipe's, or `image_size`
            when that is given).
        cache_dir: where the spectrum is cached (None: `~/.cache/convlens`).

    Returns:
        A [`Visualization`][convlens.input_optimization.Visualization]: `image [3, H, W]` in
        (0, 1), `importance [H, W]` and the per-step `history`, as
        [`maco`][convlens.feature_visualization.maco] returns them.

    Raises:
        TypeError: `target` is not an int, or an argument of `maco` has the wrong type.
        ValueError: `target` is negative or out of range for the model's output, or a bad
            number.

    Examples:
        >>> import tempfile
        >>> import torch
        >>> from torch import nn
        >>> from convlens.feature_visualization import visualize_class
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2)).eval()
        >>> with tempfile.TemporaryDirectory() as folder:  # the pool's spectrum, cached there
        ...     picture = visualize_class(model, 1, steps=2, image_size=16, cache_dir=folder)
        >>> picture.image.shape, picture.history["objective"].shape
        (torch.Size([3, 16, 16]), torch.Size([2]))
    """
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
    r"""The picture with its importance map as opacity, over a plain background: MACO's
    transparency ([Fel et al. 2023][ref-fel2023]).

    $$ \alpha = \mathrm{clip}(g / q, 0, 1), \qquad
    \text{shown} = \alpha \, x + (1 - \alpha) \, b $$

    with $g$ the importance blurred by a Gaussian of standard deviation `blur` pixels
    (separable, reflected borders), $q$ its `quantile`, $x$ the picture and $b$ the
    `background`. Parts the objective never pushed on fade into the background.

    Args:
        visualization: a [`Visualization`][convlens.input_optimization.Visualization] with
            an `importance` map, as [`maco`][convlens.feature_visualization.maco] returns.
        blur: the Gaussian's standard deviation in pixels (0: no blur).
        quantile: the quantile of the blurred importance that becomes fully opaque, in
            (0, 1].
        background: the grey level behind the picture (1: white, 0: black).

    Returns:
        `[3, H, W]` on the CPU, in the picture's dtype, pixels in [0, 1] when `background`
        is.

    Raises:
        ValueError: the visualisation has no importance map, `quantile` is outside (0, 1]
            or `blur` is negative.

    Examples:
        >>> import torch
        >>> from convlens.feature_visualization import transparent
        >>> from convlens.input_optimization import Visualization
        >>> importance = torch.zeros(16, 16)
        >>> importance[:, 8:] = 1.0  # only the right half was used
        >>> picture = Visualization(torch.zeros(3, 16, 16), {}, importance=importance)
        >>> shown = transparent(picture, blur=0)
        >>> shown.shape, shown[0, 0, 0].item(), shown[0, 0, 15].item()
        (torch.Size([3, 16, 16]), 1.0, 0.0)
    """
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
