r"""Input optimisation: the image that most excites one channel of one layer.

Gradient ascent on the input ([Erhan, Bengio, Courville & Vincent 2009][ref-erhan2009],
"Visualizing higher-layer features of a deep network"; [Simonyan, Vedaldi & Zisserman
2014][ref-simonyan2013]; [Olah, Mordvintsev & Schubert 2017][ref-olah2017], "Feature
visualization"):

$$ x^* = \arg\max_x \; \mathrm{mean}_{n,i,j}\, a_c(T(x))[n, i, j]
- l_2 \, \mathrm{mean}\big((x - 0.5)^2\big) - tv \, \mathrm{TV}(x) $$

with $T$ a random transformation drawn afresh at each step (identity by default) and
the total variation

$$ \mathrm{TV}(x) = \mathrm{mean}|x_{i+1,j} - x_{i,j}| + \mathrm{mean}|x_{i,j+1} - x_{i,j}|. $$

The image is not optimised directly but through a *parameterisation*:

- ``"pixel"``: the raw pixels, unbounded. For a first-layer channel the
  objective is *linear* in the pixels (a convolution, then a mean), so its
  gradient never shrinks and nothing stops the pixels: they grow for ever and
  the objective with them. The history records this divergence; the returned
  image is min-max rescaled for display.
- ``"sigmoid"``: ``image = sigmoid(v)``, always inside [0, 1].
- ``"fft"``: ``image = sigmoid(irfft2(s / f))``: the free parameters ``s`` live
  in Fourier space, scaled by ``1/f`` (``f`` the spatial frequency), so every
  frequency band starts with the same share of the step while natural images
  have a 1/f amplitude spectrum; low frequencies move first and high-frequency
  noise is damped (Olah et al. 2017, section "Preconditioning and
  parameterization").

``decorrelate=True`` puts a colour transform in front of the sigmoid
(``image = sigmoid(M v)``, with "pixel" ``image = 0.5 + M (v - 0.5)``): the
parameters are the three decorrelated colour components of natural images, and
``M`` maps them back to RGB. ``M = U diag(sqrt(lambda / lambda_max))`` from the
eigendecomposition ``Sigma = U diag(lambda) U^T`` of the RGB pixel covariance of
the colour photos of the offline pool (:mod:`convlens.natural_statistics`), computed on
first use (Olah et al. 2017
use ImageNet's covariance the same way). One step then moves luminance more than
colour, as natural images vary.

*Transformation robustness* (Olah et al. 2017, "Transformation robustness";
Mordvintsev, Olah & Tyka 2015, "Inceptionism"): a :class:`Transforms` rolls the
image by a random shift, zooms it by a random factor and rotates it by a small
random angle before each forward pass, so the result cannot exploit one exact
pixel grid; patterns that survive are the ones the channel responds to wherever
they are.

Steps are Adam updates (``torch.optim.Adam``, Kingma & Ba 2015) on the image
parameters only; their gradient comes from ``torch.autograd.grad``, so the
model's parameters get no gradient, and the model is left as found (its mode
restored, its flags untouched).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_positive_int, model_device_dtype, resolve_layer
from .hooks import capture, eval_mode, only_call, stop_after

__all__ = ["PARAMETERIZATIONS", "Transforms", "Visualization", "maximize_activation"]

PARAMETERIZATIONS = ("sigmoid", "pixel", "fft")
"""The parameterisations of [`maximize_activation`][convlens.input_optimization.maximize_activation]
(see above).
"""


@dataclass(frozen=True)
class Visualization:
    """The result of [`maximize_activation`][convlens.input_optimization.maximize_activation]
    (and of the feature visualisations of `convlens.feature_visualization` and
    `convlens.accentuation`).

    Attributes:
        image: `[3, H, W]` in [0, 1] on the model's device.
        history: per-step float64 tensors; for `maximize_activation` `"objective"` (the
            mean activation before the step's update, without penalties), `"pixel_min"` and
            `"pixel_max"` (range of the image in pixel space before rescaling; for `"pixel"`
            it diverges).
        importance: `[H, W]` where the method accumulates one (MACO's transparency map),
            else None.

    Examples:
        >>> import torch
        >>> from convlens.input_optimization import Visualization
        >>> v = Visualization(torch.zeros(3, 8, 8), {"objective": torch.zeros(4)})
        >>> v.image.shape, list(v.history)
        (torch.Size([3, 8, 8]), ['objective'])
    """

    image: torch.Tensor
    history: dict[str, torch.Tensor]
    importance: torch.Tensor | None = None


@dataclass(frozen=True)
class Transforms:
    """Random transformations applied to the image before every forward pass.

    Zoom and rotation resample bilinearly with reflected borders (`F.affine_grid` /
    `F.grid_sample`). The defaults are the identity.

    Attributes:
        jitter: roll by a random integer shift in `[-jitter, jitter]` pixels per axis
            (wrapping around).
        scale: zoom by a factor uniform in `(low, high)` (above 1 enlarges).
        degrees: rotate by an angle uniform in `[-degrees, degrees]`.

    Raises:
        ValueError: `jitter` is not an int >= 0, `scale` not a pair with
            `0 < low <= high`, or `degrees` not in [0, 180).

    Examples:
        >>> from convlens.input_optimization import Transforms
        >>> Transforms(jitter=4).resamples, Transforms(scale=(0.9, 1.1), degrees=5).resamples
        (False, True)
    """

    jitter: int = 0
    scale: tuple[float, float] = (1.0, 1.0)
    degrees: float = 0.0

    def __post_init__(self):
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, int) or self.jitter < 0:
            raise ValueError(f"Transforms.jitter must be an int >= 0, got {self.jitter!r}")
        if (
            not isinstance(self.scale, (tuple, list))
            or len(self.scale) != 2
            or not all(isinstance(v, (int, float)) for v in self.scale)
            or not 0 < self.scale[0] <= self.scale[1]
        ):
            raise ValueError(
                f"Transforms.scale must be a pair (low, high) with 0 < low <= high, got {self.scale!r}"
            )
        if not isinstance(self.degrees, (int, float)) or not 0 <= self.degrees < 180:
            raise ValueError(f"Transforms.degrees must be a number in [0, 180), got {self.degrees!r}")

    @property
    def resamples(self) -> bool:
        """True when zoom or rotation is on (the image is resampled, not only rolled)."""
        return tuple(self.scale) != (1.0, 1.0) or self.degrees != 0


# --- parameterisations -------------------------------------------------------------------


def _frequency_scale(height: int, width: int) -> torch.Tensor:
    """``1 / max(f, 1/max(H, W))`` for the rfft2 grid: a 1/f spectrum."""
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(width, dtype=torch.float64)[None, :]
    frequency = torch.sqrt(fx**2 + fy**2)
    return 1.0 / frequency.clamp(min=1.0 / max(height, width))


@functools.lru_cache(maxsize=1)
def colour_decorrelation() -> np.ndarray:
    """``M = U diag(sqrt(lambda / lambda_max))``, ``[3, 3]``: decorrelated colour -> RGB.

    ``Sigma = U diag(lambda) U^T`` is the covariance of the RGB values (in [0, 1])
    of the pixels of the colour photos of the offline pool, each photo weighing the same
    (:func:`convlens.natural_statistics.colour_basis`). ``M M^T = Sigma / lambda_max``:
    white noise in the decorrelated space has the photos' colour correlations in RGB.
    """
    from .natural_statistics import colour_basis

    basis = colour_basis()
    return (basis.axes * (basis.std / basis.std[0])).numpy()


class _Parameterization:
    """Free parameters and the map that turns them into an image ``[1, 3, H, W]``."""

    def __init__(self, kind, size, decorrelate, generator, device, dtype):
        height, width = size
        self.kind, self.size = kind, size
        self.colour = None
        if decorrelate:
            self.colour = torch.as_tensor(colour_decorrelation()).to(device=device, dtype=dtype)
        if kind == "fft":
            self.scale = _frequency_scale(height, width).to(device=device, dtype=dtype)
            init = 0.01 * torch.randn((1, 3, height, width // 2 + 1, 2), generator=generator, dtype=torch.float64)
        else:
            init = torch.rand((1, 3, height, width), generator=generator, dtype=torch.float64)
            # start near grey with a small random texture
            init = 0.1 * (init - 0.5) if kind == "sigmoid" else 0.5 + 0.1 * (init - 0.5)
        self.params = init.to(device=device, dtype=dtype).requires_grad_(True)

    def _mix(self, v: torch.Tensor) -> torch.Tensor:
        return v if self.colour is None else torch.einsum("cd,ndhw->nchw", self.colour, v)

    def image(self) -> torch.Tensor:
        if self.kind == "pixel":
            return self.params if self.colour is None else 0.5 + self._mix(self.params - 0.5)
        if self.kind == "sigmoid":
            return torch.sigmoid(self._mix(self.params))
        spectrum = torch.view_as_complex(self.params.contiguous()) * self.scale
        return torch.sigmoid(self._mix(torch.fft.irfft2(spectrum, s=self.size, norm="ortho")))


# --- transformation robustness -----------------------------------------------------------


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def random_transform(image: torch.Tensor, transforms: Transforms | None, generator: torch.Generator) -> torch.Tensor:
    """Apply one random draw of ``transforms`` to ``image [N, C, H, W]``.

    Returns ``image`` itself (the same tensor, nothing drawn) when ``transforms``
    is ``None`` or the identity.
    """
    if transforms is None:
        return image
    if transforms.jitter:
        dy, dx = (int(v) for v in torch.randint(-transforms.jitter, transforms.jitter + 1, (2,), generator=generator))
        image = torch.roll(image, shifts=(dy, dx), dims=(-2, -1))
    if not transforms.resamples:
        return image
    zoom = _uniform(generator, *transforms.scale)
    angle = math.radians(_uniform(generator, -transforms.degrees, transforms.degrees))
    height, width = image.shape[-2:]
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    # output -> input sampling positions in [-1, 1] coordinates; the H/W factors make the
    # rotation a rotation in pixels on a non-square image
    theta = torch.tensor(
        [[cos, -sin * height / width, 0.0], [sin * width / height, cos, 0.0]],
        device=image.device,
        dtype=image.dtype,
    )
    grid = F.affine_grid(theta.expand(image.shape[0], 2, 3), list(image.shape), align_corners=False)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


# --- the ascent ---------------------------------------------------------------------------


def _total_variation(image: torch.Tensor) -> torch.Tensor:
    return (image[..., 1:, :] - image[..., :-1, :]).abs().mean() + (
        image[..., :, 1:] - image[..., :, :-1]
    ).abs().mean()


def _normalizer(normalize, device, dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    if normalize is None:
        return lambda image: image
    if callable(normalize):
        return normalize
    if isinstance(normalize, (tuple, list)) and len(normalize) == 2:
        mean, std = (torch.as_tensor(v, device=device, dtype=dtype).reshape(1, -1, 1, 1) for v in normalize)
        if (std <= 0).any():
            raise ValueError(f"normalize's std must be positive, got {normalize[1]}")
        return lambda image: (image - mean) / std
    raise TypeError(
        f"normalize must be a callable or a (mean, std) pair, got {type(normalize).__name__}"
    )


def _check_arguments(channel, steps, lr, parameterization, l2, tv, transforms, generator, image_size):
    check_positive_int(steps, "steps")
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}"
        )
    if isinstance(channel, bool) or not isinstance(channel, int):
        raise TypeError(f"channel must be an int, got {type(channel).__name__}")
    if channel < 0:
        raise ValueError(f"channel must be >= 0, got {channel}")
    for value, name in ((lr, "lr"), (l2, "l2"), (tv, "tv")):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if lr <= 0 or l2 < 0 or tv < 0:
        raise ValueError(f"lr must be > 0 and l2, tv >= 0, got lr={lr}, l2={l2}, tv={tv}")
    if transforms is not None and not isinstance(transforms, Transforms):
        raise TypeError(f"transforms must be a Transforms or None, got {type(transforms).__name__}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU generator, got one on {generator.device}")
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    check_positive_int(height, "image_size[0]")
    check_positive_int(width, "image_size[1]")
    return height, width


def _layer_output(model, name, x, whole_pass: bool) -> torch.Tensor:
    """The layer's output; ``whole_pass`` checks the layer runs exactly once, else the
    forward pass stops at the layer."""
    if whole_pass:
        with capture(model, name) as records:
            model(x)
        return only_call(records, name)
    with capture(model, name) as records, stop_after(model, name):
        model(x)
    return records[name][0]


def _ascend(model, name, channel, param, to_input, steps, lr, l2, tv, transforms, generator):
    """Adam ascent on ``param.params``; returns the per-step history rows."""
    optimizer = torch.optim.Adam([param.params], lr=lr)
    rows = []
    for step in range(steps):
        image = param.image()
        activation = _layer_output(
            model, name, to_input(random_transform(image, transforms, generator)), step == 0
        )
        if activation.ndim < 2 or not 0 <= channel < activation.shape[1]:
            raise ValueError(
                f"channel {channel} is out of range for layer {name!r} with output shape "
                f"{tuple(activation.shape)}"
            )
        objective = activation[:, channel].mean()
        loss = -objective
        if l2:
            loss = loss + l2 * ((image - 0.5) ** 2).mean()
        if tv:
            loss = loss + tv * _total_variation(image)
        (gradient,) = torch.autograd.grad(loss, param.params)
        if step == 0 and not gradient.any():
            warnings.warn(
                f"channel {channel} of layer {name!r} is zero everywhere for the starting "
                "image (a rectifier that is off), so its gradient is zero and the image "
                "may never change; choose the layer before the activation, or another generator",
                RuntimeWarning,
                stacklevel=3,
            )
        param.params.grad = gradient  # the image's own tensor; the model's .grad stays None
        optimizer.step()
        image = image.detach()
        rows.append((float(objective.detach()), float(image.min()), float(image.max())))
    param.params.grad = None
    return rows


def _history(rows) -> dict[str, torch.Tensor]:
    columns = torch.tensor(rows, dtype=torch.float64).reshape(-1, 3).T
    return dict(zip(("objective", "pixel_min", "pixel_max"), columns.clone()))


def maximize_activation(
    model: nn.Module,
    layer: nn.Module | str,
    channel: int,
    *,
    steps: int = 128,
    lr: float = 0.05,
    image_size: int | tuple[int, int] = (224, 224),
    parameterization: str = "sigmoid",
    decorrelate: bool = False,
    transforms: Transforms | None = None,
    l2: float = 0.0,
    tv: float = 0.0,
    normalize: Callable[[torch.Tensor], torch.Tensor] | tuple[Sequence[float], Sequence[float]] | None = None,
    generator: torch.Generator | None = None,
) -> Visualization:
    """Optimise an image so that channel `channel` of `layer` has a large mean activation.

    With `parameterization="pixel"` the raw pixels are unbounded, so the image is min-max
    rescaled to [0, 1]; the other two are bounded by construction and returned as they are.
    The image lives in [0, 1] display space; `normalize` turns it into the model's input,
    otherwise it is fed as it is. All randomness (the start, the transformations) comes from
    `generator`: a given generator state gives the same image. After the first step only the
    network up to `layer` runs (the forward pass stops there). The model runs in eval mode
    (its flags restored after). A channel that is exactly zero for the starting image (a
    ReLU/ReLU6 that is off everywhere) has a zero gradient: the function warns
    (`RuntimeWarning`); use the layer before the activation.

    Args:
        model: the network; left as found.
        layer: a module of `model` or its qualified name, called once per forward pass.
        channel: the channel of its output to excite.
        steps: Adam steps.
        lr: Adam's learning rate.
        image_size: the image's `(H, W)` (or one side).
        parameterization: `"sigmoid"`, `"pixel"` or `"fft"` (see above).
        decorrelate: optimise decorrelated colour components (see above).
        transforms: a random [`Transforms`][convlens.input_optimization.Transforms] applied
            before each forward pass, or None.
        l2: the weight of the L2 penalty.
        tv: the weight of the total-variation penalty.
        normalize: a callable, or the model's `(mean, std)`, from pixels to the model's input.
        generator: a CPU `torch.Generator` (None: a fresh one seeded with 0).

    Returns:
        A [`Visualization`][convlens.input_optimization.Visualization]: `image [3, H, W]` in
        [0, 1] on the model's device, and the per-step `history`.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: an unknown layer, a layer called more than once per pass (ResNet's shared
            `relu`), a channel out of range, an unknown parameterisation or a bad number.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2)).eval()
        >>> from convlens import maximize_activation
        >>> result = maximize_activation(model, "0", channel=2, steps=5, image_size=16,
        ...                              parameterization="fft")
        >>> result.image.shape, result.history["objective"].shape
        (torch.Size([3, 16, 16]), torch.Size([5]))
        >>> bool(result.history["objective"][-1] > result.history["objective"][0])
        True
    """
    name, _ = resolve_layer(model, layer)
    size = _check_arguments(channel, steps, lr, parameterization, l2, tv, transforms, generator, image_size)
    device, dtype = model_device_dtype(model)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    to_input = _normalizer(normalize, device, dtype)
    image_param = _Parameterization(parameterization, size, decorrelate, generator, device, dtype)

    with eval_mode(model):
        rows = _ascend(model, name, channel, image_param, to_input, steps, lr, l2, tv, transforms, generator)

    with torch.no_grad():
        image = image_param.image()[0].detach()
        if parameterization == "pixel":
            low, high = image.min(), image.max()
            image = (image - low) / (high - low).clamp(min=torch.finfo(image.dtype).tiny)
    return Visualization(image=image, history=_history(rows))
