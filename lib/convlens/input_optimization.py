"""Input optimisation: the image that most excites one channel of one layer.

Gradient ascent on the input (Erhan, Bengio, Courville & Vincent 2009,
"Visualizing higher-layer features of a deep network"; Simonyan, Vedaldi &
Zisserman 2014, arXiv:1312.6034; Olah, Mordvintsev & Schubert 2017, "Feature
visualization", Distill, doi:10.23915/distill.00007)::

    image* = argmax_image  mean_{n,i,j} a_channel(image)[n, i, j]
                           - l2 * mean((image - 0.5)^2) - tv * TV(image)

with ``TV(image) = mean|image[:, i+1, j] - image[:, i, j]| + mean|image[:, i, j+1] - image[:, i, j]|``.

The image is not optimised directly but through a *parameterisation*:

- ``"pixel"``: the raw pixels, unbounded. For a first-layer channel the
  objective is *linear* in the pixels (a convolution, then a mean), so its
  gradient never shrinks and nothing stops the pixels: they grow for ever and
  the objective with them. The function returns the whole history so a lesson can
  plot this divergence; the returned image is min-max rescaled for display.
- ``"sigmoid"``: ``image = sigmoid(v)``, always inside [0, 1].
- ``"fft"``: ``image = sigmoid(C . irfft2(s / f))``: the free parameters ``s``
  live in Fourier space, scaled by ``1/f`` (``f`` the spatial frequency), so
  low frequencies move first and high-frequency noise is damped; ``C``
  decorrelates colour with the square root of ImageNet's colour covariance
  (the matrix used by Lucid, Olah et al. 2017).

Each step rolls the image by a random offset of up to ``jitter`` pixels, a cheap
transformation robustness that keeps the result from exploiting one exact pixel
grid. Steps are Adam updates computed by hand from ``torch.autograd.grad`` with
respect to the image parameters only; the model's parameters get no gradient
and the model is left as found (its mode restored, its flags untouched).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ._checks import check_positive_int, resolve_layer
from .hooks import capture, eval_mode, only_call, stop_after

__all__ = ["maximize_activation", "PARAMETERIZATIONS"]

PARAMETERIZATIONS = ("sigmoid", "pixel", "fft")

# Square root of ImageNet's RGB covariance (columns: decorrelated components), as
# published with Lucid (Olah et al. 2017); normalised so its largest column has norm 1.
_COLOR_SQRT_COVARIANCE = torch.tensor(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=torch.float64
)
_COLOR_SQRT_COVARIANCE = _COLOR_SQRT_COVARIANCE / _COLOR_SQRT_COVARIANCE.norm(dim=0).max()


def _frequency_scale(height: int, width: int) -> torch.Tensor:
    """``1 / max(f, 1/max(H, W))`` for the rfft2 grid: a 1/f spectrum."""
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(width, dtype=torch.float64)[None, :]
    frequency = torch.sqrt(fx**2 + fy**2)
    return 1.0 / frequency.clamp(min=1.0 / max(height, width))


def _total_variation(image: torch.Tensor) -> torch.Tensor:
    return (image[..., 1:, :] - image[..., :-1, :]).abs().mean() + (
        image[..., :, 1:] - image[..., :, :-1]
    ).abs().mean()


class _Parameterization:
    """Turns free parameters into an image ``[1, 3, H, W]``."""

    def __init__(self, kind, size, generator, device, dtype):
        height, width = size
        self.kind, self.size = kind, size
        if kind == "fft":
            shape = (1, 3, height, width // 2 + 1, 2)
            self.scale = _frequency_scale(height, width).to(device=device, dtype=dtype)
            self.color = _COLOR_SQRT_COVARIANCE.to(device=device, dtype=dtype)
            init = 0.01 * torch.randn(shape, generator=generator, dtype=torch.float64)
        else:
            init = torch.rand((1, 3, height, width), generator=generator, dtype=torch.float64)
            if kind == "sigmoid":  # start near grey with small random texture
                init = 0.1 * (init - 0.5)
            else:
                init = 0.5 + 0.1 * (init - 0.5)
        self.params = init.to(device=device, dtype=dtype).requires_grad_(True)

    def image(self) -> torch.Tensor:
        if self.kind == "pixel":
            return self.params
        if self.kind == "sigmoid":
            return torch.sigmoid(self.params)
        spectrum = torch.view_as_complex(self.params.contiguous()) * self.scale
        decorrelated = torch.fft.irfft2(spectrum, s=self.size, norm="ortho")
        colored = torch.einsum("cd,ndhw->nchw", self.color, decorrelated)
        return torch.sigmoid(colored)


def _normalizer(normalize, mean, std, device, dtype):
    if normalize is not None:
        if mean is not None or std is not None:
            raise ValueError("give either normalize or mean/std, not both")
        if not callable(normalize):
            raise TypeError(f"normalize must be callable, got {type(normalize).__name__}")
        return normalize
    if mean is None and std is None:
        return lambda image: image
    if mean is None or std is None:
        raise ValueError("mean and std go together")
    mean_t = torch.as_tensor(mean, device=device, dtype=dtype).reshape(1, -1, 1, 1)
    std_t = torch.as_tensor(std, device=device, dtype=dtype).reshape(1, -1, 1, 1)
    if (std_t <= 0).any():
        raise ValueError(f"std must be positive, got {std}")
    return lambda image: (image - mean_t) / std_t


def maximize_activation(
    model: nn.Module,
    layer: nn.Module | str,
    channel: int,
    steps: int = 128,
    lr: float = 0.05,
    image_size: tuple[int, int] = (224, 224),
    parameterization: str = "sigmoid",
    l2: float = 0.0,
    tv: float = 0.0,
    jitter: int = 0,
    seed: int = 0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
    return_history: bool = False,
):
    """Optimise an image so that channel ``channel`` of ``layer`` has a large mean activation.

    Returns an image ``[3, H, W]`` in [0, 1] for display (on the model's device).
    With ``parameterization="pixel"`` the raw pixels are unbounded, so the
    returned image is min-max rescaled to [0, 1]; the other two are bounded by
    construction and returned as they are.

    The image is in [0, 1] display space; ``mean``/``std`` (the model's
    normalisation) or a ``normalize`` callable turn it into the model's input.
    Without either, it is fed as it is. ``jitter`` rolls it by a random shift of
    up to that many pixels each step. ``l2`` and ``tv`` weight the penalties of
    the module docstring. Deterministic for a given ``seed`` (or ``generator``, a
    CPU ``torch.Generator`` used for the start and the shifts).

    With ``return_history=True`` returns ``(image, history)`` where ``history``
    holds per-step tensors ``"objective"`` (the mean activation before the step's
    update, without penalties), ``"pixel_min"`` and ``"pixel_max"`` (range of the
    image parameters in pixel space): enough to plot the divergence of
    ``"pixel"``.

    After the first step only the network up to ``layer`` runs (the forward pass
    stops there); a layer called several times per pass (ResNet's shared ``relu``)
    is ambiguous and raises ``ValueError``. The model is run in eval mode (its flags restored after), gradients are taken
    with ``torch.autograd.grad`` with respect to the image parameters only.
    A channel that is exactly zero for the starting image (a ReLU/ReLU6 that is
    off everywhere, common after the last activation of a trained network) has
    a zero gradient: the function warns (``RuntimeWarning``), and the remedy is a
    layer before the activation or another seed.

    Raises ``ValueError`` for an unknown layer, a channel out of range or an
    unknown parameterisation.
    """
    name, _ = resolve_layer(model, layer)
    check_positive_int(steps, "steps")
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}"
        )
    if isinstance(channel, bool) or not isinstance(channel, int):
        raise TypeError(f"channel must be an int, got {type(channel).__name__}")
    if channel < 0:
        raise ValueError(f"channel must be >= 0, got {channel}")
    if isinstance(jitter, bool) or not isinstance(jitter, int) or jitter < 0:
        raise ValueError(f"jitter must be an int >= 0, got {jitter!r}")
    if lr <= 0 or l2 < 0 or tv < 0:
        raise ValueError(f"lr must be > 0 and l2, tv >= 0, got lr={lr}, l2={l2}, tv={tv}")
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    check_positive_int(height, "image_size[0]")
    check_positive_int(width, "image_size[1]")

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    if generator is None:
        generator = torch.Generator().manual_seed(seed)
    to_model_input = _normalizer(normalize, mean, std, device, dtype)
    image_param = _Parameterization(parameterization, (height, width), generator, device, dtype)

    # Adam (Kingma & Ba 2015), written out so no .grad attribute is ever used.
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    first = torch.zeros_like(image_param.params)
    second = torch.zeros_like(image_param.params)
    objectives, pixel_min, pixel_max = [], [], []

    with eval_mode(model):
        for step in range(1, steps + 1):
            image = image_param.image()
            shifted = image
            if jitter:
                dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=generator))
                shifted = torch.roll(image, shifts=(dy, dx), dims=(-2, -1))
            if step == 1:  # a whole pass: check that the layer runs exactly once
                with capture(model, name) as records:
                    model(to_model_input(shifted))
                activation = only_call(records, name)
            else:  # then only the network up to the layer
                with capture(model, name) as records, stop_after(model, name):
                    model(to_model_input(shifted))
                activation = records[name][0]
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
            (gradient,) = torch.autograd.grad(loss, image_param.params)
            if step == 1 and not gradient.any():
                warnings.warn(
                    f"channel {channel} of layer {name!r} is zero everywhere for the starting "
                    "image (a rectifier that is off), so its gradient is zero and the image "
                    "may never change; choose the layer before the activation, or another seed",
                    RuntimeWarning,
                    stacklevel=2,
                )
            with torch.no_grad():
                first.mul_(beta1).add_(gradient, alpha=1 - beta1)
                second.mul_(beta2).addcmul_(gradient, gradient, value=1 - beta2)
                step_size = lr / (1 - beta1**step)
                denominator = (second / (1 - beta2**step)).sqrt_().add_(eps)
                image_param.params.addcdiv_(first, denominator, value=-step_size)
            objectives.append(float(objective.detach()))
            pixel_min.append(float(image.detach().min()))
            pixel_max.append(float(image.detach().max()))

    with torch.no_grad():
        result = image_param.image()[0].detach()
        if parameterization == "pixel":
            low, high = result.min(), result.max()
            result = (result - low) / (high - low).clamp(min=torch.finfo(result.dtype).tiny)
    if not return_history:
        return result
    history = {
        "objective": torch.tensor(objectives, dtype=torch.float64),
        "pixel_min": torch.tensor(pixel_min, dtype=torch.float64),
        "pixel_max": torch.tensor(pixel_max, dtype=torch.float64),
    }
    return result, history
