"""What convlens knows about layer types, and the order in which one forward pass calls them.

Every technique that must tell layers apart asks here, so each fact is written once:

* **Activations** (:data:`ACTIVATIONS`): one row per activation, with the ``torch.nn`` classes
  that compute it, the names under which a functional call reaches PyTorch (``F.silu``,
  ``torch.silu``, ``x.silu()`` all arrive as ``"silu"``), other libraries' class names
  (timm's ``Swish``), and what deconvnet and guided backpropagation do with it
  (:data:`BACKWARD_RULES`). The ReLU rules (:func:`convlens.hooks.relu_backward_rule`),
  occlusion's local layers and the receptive-field tracer all read this table: supporting a
  new activation is one new row.
* **Sliding layers**: convolutions and local pools with their geometry along each axis
  (:class:`Window`: kernel ``k``, stride ``s``, dilation ``d`` and the padding ``q`` before
  index 0; output unit ``u`` reads inputs ``u s - q + i d`` for ``i < k``), PyTorch's
  ``padding="same"`` and TensorFlow's "SAME" padding, which timm's ``Conv2dSame`` (and
  EfficientNet-Lite) computes from the input size at run time (:func:`tf_same_padding`).
* **Call order**: :func:`forward_calls` runs one forward pass and records which module
  returned what, in which order; receptive fields, model roles, explorers and the
  randomisation test all take the order of a pass from it.
"""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "ACTIVATIONS", "Activation", "BACKWARD_RULES", "ModuleCall", "Window", "forward_calls",
    "is_pointwise_module", "is_pooling", "rectifier_call", "refused_activation",
    "same_padding", "sliding_windows", "stride_of", "tf_same_padding", "timm_class",
]

# --- activations ---------------------------------------------------------------------------

#: what deconvnet and guided backpropagation (the ReLU rules) do at an activation:
#: ``"rectifier"``: the rule replaces its backward pass (modules and functional calls);
#: ``"conditional"``: a rectifier for some arguments only (``hardtanh(x, 0, u)``,
#: ``threshold(x, 0, 0)``), seen through the functional call its module makes;
#: ``"refused"``: the rules are not defined for it, so they raise rather than return a plain
#: gradient under their name; ``"plain"``: a gate (sigmoid, tanh) that back-propagates as
#: usual, as in the papers' networks.
BACKWARD_RULES = ("rectifier", "conditional", "refused", "plain")


@dataclass(frozen=True)
class Activation:
    """One activation function: its ``torch.nn`` classes, the names a functional call of it
    reaches PyTorch under, other libraries' class names for it (lower case), and its
    backward rule (one of :data:`BACKWARD_RULES`)."""

    name: str
    modules: tuple[type[nn.Module], ...]
    functions: tuple[str, ...]
    backward: str
    aliases: tuple[str, ...] = ()


#: every activation convlens knows; a new activation is one more row
ACTIVATIONS = (
    Activation("relu", (nn.ReLU,), ("relu", "relu_"), "rectifier"),
    Activation("relu6", (nn.ReLU6,), ("relu6",), "rectifier"),
    Activation("hardtanh", (nn.Hardtanh,), ("hardtanh", "hardtanh_"), "conditional"),
    Activation("threshold", (nn.Threshold,), ("threshold", "threshold_", "_threshold"),
               "conditional"),
    Activation("leaky_relu", (nn.LeakyReLU,), ("leaky_relu", "leaky_relu_"), "refused"),
    Activation("prelu", (nn.PReLU,), ("prelu",), "refused"),
    Activation("rrelu", (nn.RReLU,), ("rrelu", "rrelu_"), "refused"),
    Activation("elu", (nn.ELU,), ("elu", "elu_"), "refused"),
    Activation("selu", (nn.SELU,), ("selu", "selu_"), "refused"),
    Activation("celu", (nn.CELU,), ("celu", "celu_"), "refused"),
    Activation("gelu", (nn.GELU,), ("gelu",), "refused", ("gelutanh", "quickgelu")),
    Activation("silu", (nn.SiLU,), ("silu", "silu_"), "refused", ("swish",)),
    Activation("mish", (nn.Mish,), ("mish",), "refused"),
    Activation("hard_mish", (), (), "refused", ("hardmish",)),
    Activation("hardswish", (nn.Hardswish,), ("hardswish", "hardswish_"), "refused",
               ("hard_swish",)),
    Activation("softplus", (nn.Softplus,), ("softplus",), "refused"),
    Activation("softsign", (nn.Softsign,), ("softsign",), "refused"),
    Activation("logsigmoid", (nn.LogSigmoid,), ("logsigmoid",), "refused"),
    Activation("hardsigmoid", (nn.Hardsigmoid,), ("hardsigmoid",), "plain"),
    Activation("sigmoid", (nn.Sigmoid,), ("sigmoid", "sigmoid_"), "plain"),
    Activation("tanh", (nn.Tanh,), ("tanh", "tanh_"), "plain"),
)

if any(a.backward not in BACKWARD_RULES for a in ACTIVATIONS):  # a typo in a new row
    raise AssertionError(f"an activation's backward rule is not one of {BACKWARD_RULES}")

#: module classes the ReLU rules hook (their subclasses too: timm's own ReLU)
RECTIFIER_MODULES = tuple(m for a in ACTIVATIONS if a.backward == "rectifier" for m in a.modules)
#: functional calls the ReLU rules replace when their arguments make them a rectifier
RECTIFIER_FUNCTIONS = frozenset(f for a in ACTIVATIONS if a.backward in ("rectifier", "conditional")
                                for f in a.functions)
#: lower-cased class names and functional names of the activations the rules refuse
REFUSED_NAMES = frozenset(
    name for a in ACTIVATIONS if a.backward == "refused"
    for name in (*a.functions, *a.aliases, *(m.__name__.lower() for m in a.modules)))
#: every activation module class (exact types: a subclass may compute something else)
ACTIVATION_MODULES = tuple(m for a in ACTIVATIONS for m in a.modules)
#: every name a functional activation call reaches PyTorch under
ACTIVATION_FUNCTIONS = frozenset(f for a in ACTIVATIONS for f in a.functions)


def refused_activation(module: nn.Module) -> str | None:
    """The class name of ``module`` if the ReLU rules refuse it (matched on the lower-cased
    class name, so other libraries' classes of the same name count), else None."""
    kind = type(module).__name__
    if kind.lower() in REFUSED_NAMES and not isinstance(module, RECTIFIER_MODULES):
        return kind
    return None


def _argument(args, kwargs, index: int, name: str, default):
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def rectifier_call(name: str, args, kwargs):
    """``(input, upper, inplace)`` of a functional call ``name(*args, **kwargs)`` that is a
    rectifier (``relu``, ``relu6``, ``hardtanh`` with lower bound 0, ``threshold(x, 0, 0)``;
    ``upper`` is None when unbounded), or None when these arguments make it something else."""
    s = args[0] if args else kwargs.get("input", kwargs.get("self"))
    inplace = name.endswith("_")
    base = name.strip("_")
    if base == "relu":
        return s, None, inplace or bool(_argument(args, kwargs, 1, "inplace", False))
    if base == "relu6":
        return s, 6.0, inplace or bool(_argument(args, kwargs, 1, "inplace", False))
    if base == "hardtanh":
        low = float(_argument(args, kwargs, 1, "min_val", -1.0))
        high = float(_argument(args, kwargs, 2, "max_val", 1.0))
        if low != 0.0:
            return None
        return s, high, inplace or bool(_argument(args, kwargs, 3, "inplace", False))
    threshold = float(_argument(args, kwargs, 1, "threshold", 0.0))
    value = float(_argument(args, kwargs, 2, "value", 0.0))
    if threshold != 0.0 or value != 0.0:
        return None
    return s, None, inplace or bool(_argument(args, kwargs, 3, "inplace", False))


#: modules whose output is random in training mode: pointwise only in eval mode
_RANDOM_WHEN_TRAINING = (nn.Dropout, nn.Dropout2d, nn.RReLU)


def timm_class(name: str) -> type | None:
    """The class ``timm.layers.<name>`` if timm is already imported, else None: a model made
    of timm's layers implies that it is, and convlens never imports timm just to look."""
    return getattr(sys.modules.get("timm.layers"), name, None)


def is_pointwise_module(m: nn.Module) -> bool:
    """Whether each output value of ``m`` depends on the input at the same position only:
    an activation, ``nn.Identity``, dropout in eval mode, a batch norm in eval mode with
    running statistics (a per-channel affine map; timm's ``BatchNormAct2d`` when its
    dropout and activation are pointwise too). Exact types: a subclass may differ."""
    kind = type(m)
    if kind in _RANDOM_WHEN_TRAINING and m.training:
        return False
    if kind in ACTIVATION_MODULES or kind in (nn.Identity, nn.Dropout, nn.Dropout2d):
        return True
    batch_norm_act = timm_class("BatchNormAct2d")
    if kind is nn.BatchNorm2d or (batch_norm_act is not None and kind is batch_norm_act):
        if m.training or m.running_mean is None or m.running_var is None:
            return False
        return kind is nn.BatchNorm2d or (is_pointwise_module(m.drop)
                                          and is_pointwise_module(m.act))
    return False


# --- sliding layers: convolutions and local pools -------------------------------------------


@dataclass(frozen=True)
class Window:
    """How a sliding layer reads along one axis: output ``u`` reads the inputs
    ``u * stride - before + i * dilation`` for ``i < kernel`` (``before``: the padding in
    front of index 0)."""

    kernel: int
    stride: int
    dilation: int
    before: int

    @property
    def reach(self) -> int:
        """Input positions one output spans, first to last: ``dilation (kernel - 1) + 1``."""
        return self.dilation * (self.kernel - 1) + 1

    def after(self, size_in: int, size_out: int) -> int:
        """Padding after the last input index that the last of ``size_out`` outputs reads."""
        return max(0, (size_out - 1) * self.stride + self.reach - size_in - self.before)


def _pair(value) -> tuple[int, int]:
    return tuple(int(v) for v in value) if isinstance(value, (tuple, list)) else (int(value),) * 2


def same_padding(kernel: int, dilation: int) -> tuple[int, int]:
    """PyTorch's ``padding="same"`` (stride 1) along one axis: ``(before, after)``, the odd
    pixel after."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def tf_same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's "SAME" padding along one axis of ``size`` inputs: ``(before, after)``,
    such that there are ``ceil(size / stride)`` outputs, the odd pixel after. timm's
    ``Conv2dSame`` (EfficientNet-Lite's convolutions) computes it at run time."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _conv_windows(m: nn.Conv2d, input_size) -> tuple[Window, Window]:
    k, s, d = _pair(m.kernel_size), _pair(m.stride), _pair(m.dilation)
    same = timm_class("Conv2dSame")
    if same is not None and isinstance(m, same):  # from the input size; m.padding is unused
        before = tuple(tf_same_padding(input_size[i], k[i], s[i], d[i])[0] for i in range(2))
    elif m.padding == "valid":
        before = (0, 0)
    elif m.padding == "same":
        before = tuple(same_padding(k[i], d[i])[0] for i in range(2))
    else:
        before = _pair(m.padding)
    return tuple(Window(k[i], s[i], d[i], before[i]) for i in range(2))


def sliding_windows(m: nn.Module, input_size: tuple[int, int]) -> tuple[Window, Window] | None:
    """The (height, width) :class:`Window` of a 2-D convolution (timm's ``Conv2dSame``
    included: its padding depends on ``input_size``), max pool or average pool; None for
    any other module. The padding's mode (zeros, reflect ...) is not part of the answer."""
    if isinstance(m, nn.Conv2d):
        return _conv_windows(m, input_size)
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        k, p = _pair(m.kernel_size), _pair(m.padding)
        s = _pair(m.stride or m.kernel_size)
        d = _pair(m.dilation) if isinstance(m, nn.MaxPool2d) else (1, 1)
        return tuple(Window(k[i], s[i], d[i], p[i]) for i in range(2))
    return None


def stride_of(m: nn.Module) -> tuple[int, int] | None:
    """The stride of a convolution or local pool (how far apart, in its input, the windows
    of two neighbouring outputs are), None for any other module."""
    if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        return _pair(m.stride or m.kernel_size)
    return None


_POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
            nn.LPPool2d, nn.FractionalMaxPool2d)


def is_pooling(m: nn.Module) -> bool:
    """A pooling layer, local or global (timm wraps its global pooling in
    ``SelectAdaptivePool2d``)."""
    return isinstance(m, _POOLING) or type(m).__name__.endswith("AdaptivePool2d")


# --- call order of one forward pass ---------------------------------------------------------


@dataclass(frozen=True)
class ModuleCall:
    """One call of one module: its qualified name (``""`` for the model), the module, the
    object it returned (not a copy), and its rank among the calls by when they started
    (the list :func:`forward_calls` returns is in the order they returned)."""

    name: str
    module: nn.Module
    output: object
    started: int


def forward_calls(model: nn.Module, x: torch.Tensor,
                  during: contextlib.AbstractContextManager | None = None) -> list[ModuleCall]:
    """Every module call of one forward pass of ``x``, in the order the calls return
    (children before the container that holds them; the model itself, whose output is the
    model's output, last). The pass runs under ``no_grad`` with every module in eval mode
    (so batch norms update nothing and dropout is off), inside ``during`` if given (a
    tracer's torch-function mode); the model comes back as found."""
    from .hooks import eval_mode, record_calls

    modules = dict(model.named_modules())
    with torch.no_grad(), eval_mode(model), record_calls(model) as calls:
        with during if during is not None else contextlib.nullcontext():
            model(x)
    return [ModuleCall(name, modules[name], output, started) for name, started, output in calls]
