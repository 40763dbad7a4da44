r"""Deconvnet and guided backpropagation: the gradient with a changed rule at every ReLU.

With $s$ the input of a ReLU in the forward pass and $g$ the gradient arriving from above,
each method back-propagates through the rectifier as

| method | backward through a ReLU |
|---|---|
| plain gradient | $\mathbb{1}[s > 0] \, g$ |
| deconvnet ([Zeiler & Fergus 2014][ref-zeiler2014]) | $\max(0, g)$ |
| guided backpropagation ([Springenberg et al. 2014][ref-springenberg2014]) | $\mathbb{1}[s > 0] \, \mathbb{1}[g > 0] \, g$ |

and like the plain gradient through every other layer. Max-pooling's backward sends each
output's signal to the position that held the maximum in the forward pass: Zeiler & Fergus's
*switches*, the deconvnet's only memory of the input. `deconvnet(..., switches=False)`
forgets them too: every 2-D max-pooling then spreads each output's signal evenly over its
window (the backward of average pooling with the same window), and the deconvnet's map no
longer depends on the input at all. For ReLU6 the forward gate is
$\mathbb{1}[0 < s < 6]$. The rule swap is
[`relu_backward_rule`][convlens.hooks.relu_backward_rule]; it covers `nn.ReLU`/`nn.ReLU6`
modules (called any number of times, in-place or not) and functional
`F.relu`/`torch.relu_`/`x.relu()`/`F.relu6`/`F.hardtanh(x, 0, u)` calls (torchvision's
GoogLeNet, Inception-v3, DenseNet).

Both rules are defined for rectifiers only. A network with another activation (SiLU in
torchvision's EfficientNet, Hardswish in MobileNetV3, GELU in ConvNeXt) gets a `ValueError`
naming the activation and the module, never a plain gradient under the method's name;
[`rectifier_support`][convlens.guided.rectifier_support] says beforehand which case a model
is. Results are raw and signed, with the shape of `x`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ._checks import check_batch, check_target, model_device_dtype
from .hooks import eval_mode, relu_backward_rule
from .saliency import gradient

__all__ = ["deconvnet", "guided_backprop", "rectifier_support", "unsupported_activations"]


def _gradient_with_rule(model: nn.Module, x: torch.Tensor, target, rule: str) -> torch.Tensor:
    x = check_batch(x)
    check_target(target, x.shape[0])
    with relu_backward_rule(model, rule):
        return gradient(model, x, target)


class _PoolWithoutSwitches(torch.autograd.Function):
    """Forward: the max-pooling's own output. Backward: average pooling's (each output's
    signal divided evenly over the k_h * k_w positions of its window)."""

    @staticmethod
    def forward(ctx, x, pooled, kernel, stride, padding, ceil_mode):
        ctx.save_for_backward(x)
        ctx.settings = (kernel, stride, padding, ceil_mode)
        return pooled.clone()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        kernel, stride, padding, ceil_mode = ctx.settings
        with torch.enable_grad():
            z = x.detach().requires_grad_(True)
            spread = F.avg_pool2d(z, kernel, stride, padding, ceil_mode, count_include_pad=True)
            (passed,) = torch.autograd.grad(spread, z, grad)
        return passed, None, None, None, None, None


_MAX_POOLS = frozenset({"max_pool1d", "max_pool3d", "max_pool1d_with_indices",
                        "max_pool2d_with_indices", "max_pool3d_with_indices",
                        "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
                        "adaptive_max_pool2d_with_indices", "fractional_max_pool2d"})


def _pair(value) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else tuple(int(v) for v in value)


class _ForgetSwitches(TorchFunctionMode):
    """Replace every 2-D max-pooling call (``nn.MaxPool2d`` modules and functional calls
    alike) by :class:`_PoolWithoutSwitches`; refuse other max-poolings and dilation."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _MAX_POOLS or (name == "max_pool2d" and kwargs.get("return_indices")):
            raise ValueError(f"deconvnet(switches=False) knows how to forget the switches of a "
                             f"plain 2-D max-pooling only; this model calls {name}")
        if name != "max_pool2d":
            return func(*args, **kwargs)
        names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode")
        given = {**dict(zip(names, args)), **kwargs}
        kernel = _pair(given["kernel_size"])
        stride = _pair(given.get("stride") or kernel)
        if _pair(given.get("dilation", 1)) != (1, 1):
            raise ValueError("deconvnet(switches=False): a dilated max-pooling has no "
                             "average-pooling counterpart")
        pooled = func(*args, **kwargs)
        self.count += 1
        return _PoolWithoutSwitches.apply(given["input"], pooled, kernel, stride,
                                          _pair(given.get("padding", 0)),
                                          bool(given.get("ceil_mode", False)))


@contextmanager
def _without_switches() -> Iterator[_ForgetSwitches]:
    with _ForgetSwitches() as mode:
        yield mode


def deconvnet(model: nn.Module, x: torch.Tensor, target, switches: bool = True) -> torch.Tensor:
    r"""Zeiler & Fergus's deconvnet: only positive gradients pass each ReLU, whatever $s$.

    Args:
        model: a classifier whose rectifiers are ReLU/ReLU6 (modules or functional calls),
            returning logits `[N, classes]`; left as found.
        x: the input batch `[N, C, H, W]` (floating point, normalised).
        target: an int for every example, or one class index per example.
        switches: True (the paper's deconvnet): max-pooling layers send the signal back to
            the positions of this input's maxima. False: they spread it evenly over each
            window, so nothing of the input is left in the backward pass (an ablation: the
            map is then the same for every input).

    Returns:
        The modified gradient, raw and signed, with the shape of `x` `[N, C, H, W]`.

    Raises:
        TypeError: `x` is not a floating-point tensor, `target` is not integer, or
            `switches` is not a bool.
        ValueError: `x` is not `[N, C, H, W]`; `target` does not fit the batch or the
            model's outputs; the model runs another activation (named with its module),
            or no rectifier at all; with `switches=False`, a max-pooling other than a plain
            undilated 2-D one.

    Examples:
        Below a ReLU whose input is negative, the plain gradient is 0; the deconvnet
        passes the positive gradient anyway.

        >>> import torch
        >>> from torch import nn
        >>> import convlens
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(2, 1, bias=False), nn.ReLU(),
        ...                       nn.Linear(1, 1, bias=False)).eval()
        >>> with torch.no_grad():
        ...     _ = model[1].weight.copy_(torch.tensor([[1.0, 1.0]]))
        ...     _ = model[3].weight.fill_(2.0)
        >>> x = torch.tensor([[-1.0, -1.0]]).view(1, 2, 1, 1)  # the ReLU's input is -2
        >>> convlens.gradient(model, x, 0).flatten().tolist()
        [0.0, 0.0]
        >>> convlens.deconvnet(model, x, 0).flatten().tolist()
        [2.0, 2.0]
    """
    if not isinstance(switches, bool):
        raise TypeError(f"switches must be a bool, got {type(switches).__name__}")
    if switches:
        return _gradient_with_rule(model, x, target, "deconvnet")
    with _without_switches():
        return _gradient_with_rule(model, x, target, "deconvnet")


def guided_backprop(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    r"""Springenberg et al.'s guided backprop: the ReLU's forward gate and a positive gradient.

    Args:
        model: a classifier whose rectifiers are ReLU/ReLU6 (modules or functional calls),
            returning logits `[N, classes]`; left as found.
        x: the input batch `[N, C, H, W]` (floating point, normalised).
        target: an int for every example, or one class index per example.

    Returns:
        The modified gradient, raw and signed, with the shape of `x` `[N, C, H, W]`.

    Raises:
        TypeError: `x` is not a floating-point tensor, or `target` is not integer.
        ValueError: `x` is not `[N, C, H, W]`; `target` does not fit the batch or the
            model's outputs; the model runs another activation (named with its module),
            or no rectifier at all.

    Examples:
        A negative gradient arriving at an open ReLU is blocked (the plain gradient
        passes it):

        >>> import torch
        >>> from torch import nn
        >>> import convlens
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(2, 1, bias=False), nn.ReLU(),
        ...                       nn.Linear(1, 1, bias=False)).eval()
        >>> with torch.no_grad():
        ...     _ = model[1].weight.copy_(torch.tensor([[1.0, 1.0]]))
        ...     _ = model[3].weight.fill_(-2.0)
        >>> x = torch.ones(1, 2, 1, 1)  # the ReLU's input is 2: open
        >>> convlens.gradient(model, x, 0).flatten().tolist()
        [-2.0, -2.0]
        >>> convlens.guided_backprop(model, x, 0).flatten().tolist()
        [0.0, 0.0]
    """
    return _gradient_with_rule(model, x, target, "guided")


def _survey(model: nn.Module, input_size: tuple[int, int]) -> tuple[dict, list]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if (not isinstance(input_size, (tuple, list)) or len(input_size) != 2
            or not all(isinstance(v, int) and v > 0 for v in input_size)):
        raise ValueError(f"input_size must be (height, width) in pixels, got {input_size!r}")
    device, dtype = model_device_dtype(model)
    report: list[tuple[str, str]] = []
    x = torch.zeros(1, 3, *input_size, device=device, dtype=dtype)
    with torch.no_grad(), eval_mode(model), relu_backward_rule(model, "guided", report) as counts:
        model(x)
    return dict(counts), report


def unsupported_activations(model: nn.Module,
                            input_size: tuple[int, int] = (224, 224)) -> list[tuple[str, str]]:
    """The activations that deconvnet and guided backprop do not cover, and where.

    Modules are found by type, functional calls in one forward pass of a zero image (the
    module named is the one that made the call).

    Args:
        model: the network; run once on zeros `[1, 3, height, width]` in eval mode and
            left as found.
        input_size: `(height, width)` of the zero image, in pixels.

    Returns:
        A list of `(module qualified name, activation)` pairs; empty when deconvnet and
        guided backprop apply.

    Raises:
        TypeError: `model` is not an `nn.Module`.
        ValueError: `input_size` is not two positive ints.

    Examples:
        >>> from torch import nn
        >>> from convlens.guided import unsupported_activations
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.SiLU(), nn.Flatten())
        >>> unsupported_activations(net, (8, 8))
        [('1', 'SiLU')]
    """
    return _survey(model, input_size)[1]


def rectifier_support(model: nn.Module, input_size: tuple[int, int] = (224, 224)) -> str:
    """Which case `model` is for deconvnet and guided backprop, from one forward pass of a
    zero image.

    Args:
        model: the network; run once on zeros `[1, 3, height, width]` in eval mode and
            left as found.
        input_size: `(height, width)` of the zero image, in pixels.

    Returns:
        One of four strings:

        - `"modules"`: every rectifier is an `nn.ReLU`/`nn.ReLU6` module;
        - `"functional"`: some (or all) rectifiers are functional calls, which the rule
          reaches through the torch-function mode;
        - `"unsupported"`: another activation runs (see
          [`unsupported_activations`][convlens.guided.unsupported_activations]):
          [`deconvnet`][convlens.guided.deconvnet] and
          [`guided_backprop`][convlens.guided.guided_backprop] raise `ValueError`;
        - `"none"`: no rectifier runs at all: they raise too.

    Raises:
        TypeError: `model` is not an `nn.Module`.
        ValueError: `input_size` is not two positive ints.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens.guided import rectifier_support
        >>> rectifier_support(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), (8, 8))
        'modules'
        >>> class Functional(nn.Module):
        ...     def forward(self, x):
        ...         return torch.relu(x)
        >>> rectifier_support(Functional(), (8, 8))
        'functional'
        >>> rectifier_support(nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU()), (8, 8))
        'unsupported'
    """
    counts, report = _survey(model, input_size)
    if report:
        return "unsupported"
    if counts["functional"]:
        return "functional"
    return "modules" if counts["modules"] else "none"
