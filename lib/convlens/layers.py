r"""What convlens knows about layer types, and the order in which one forward pass calls them.

Each technique that has to tell one kind of layer from another asks this module, so that
every fact about a layer type is stated in one place only.

- **Activations.** [`ACTIVATIONS`][convlens.layers.ACTIVATIONS] has one
  [`Activation`][convlens.layers.Activation] row per activation function: the `torch.nn`
  classes that compute it, the names a functional call of it has when it reaches PyTorch
  (`F.silu(x)`, `torch.silu(x)` and `x.silu()` all arrive as `"silu"`), the class names other
  libraries give it (timm's `Swish`), and what deconvnet and guided backpropagation do at it
  (one of [`BACKWARD_RULES`][convlens.layers.BACKWARD_RULES]). The ReLU backward rules
  ([`relu_backward_rule`][convlens.hooks.relu_backward_rule]), occlusion's local layers and
  the receptive-field tracer all read this table, so a new activation is one new row.
- **Sliding layers.** A convolution or a local pool reads its input through one
  [`Window`][convlens.layers.Window] per axis, with kernel $k$, stride $s$, dilation $d$ and
  $q$ padded positions before index 0: output $u$ reads the inputs $u s - q + i d$ for
  $0 \le i < k$ ([Dumoulin & Visin 2016][ref-dumoulin2016] work this arithmetic out in
  detail). [`sliding_windows`][convlens.layers.sliding_windows] reads it off a module,
  including PyTorch's `padding="same"`
  ([`same_padding`][convlens.layers.same_padding]) and TensorFlow's "SAME" padding
  ([`tf_same_padding`][convlens.layers.tf_same_padding]), which timm's `Conv2dSame`
  (EfficientNet-Lite's convolutions) works out from the input size on every call.
- **Call order.** [`forward_calls`][convlens.layers.forward_calls] runs one forward pass and
  lists which module returned what, in the order the calls returned. Receptive fields, model
  roles, the explorers and the randomisation test take the order of a pass from it.
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

BACKWARD_RULES = ("rectifier", "conditional", "refused", "plain")
"""What the ReLU backward rules (deconvnet, [Zeiler & Fergus 2014][ref-zeiler2014]; guided
backpropagation, [Springenberg et al. 2014][ref-springenberg2014]) do at an activation, the
values of [`Activation.backward`][convlens.layers.Activation]:

- `"rectifier"`: a ReLU-like activation; the rule takes over its backward pass, whether it
  is called as a module or as a function.
- `"conditional"`: a rectifier for some arguments only (`hardtanh(x, 0, u)`,
  `threshold(x, 0, 0)`); the rule sees it through the functional call its module makes and
  checks the arguments there ([`rectifier_call`][convlens.layers.rectifier_call]).
- `"refused"`: the rules are not defined for it (SiLU, GELU, leaky ReLU ...), so they raise
  instead of returning an ordinary gradient under their name.
- `"plain"`: a gate (sigmoid, tanh, hard sigmoid) that back-propagates as usual, as in the
  papers' networks.
"""


@dataclass(frozen=True)
class Activation:
    """One activation function, as one row of [`ACTIVATIONS`][convlens.layers.ACTIVATIONS].

    A module from another library is recognised by its lower-cased class name, which is
    looked up among `functions`, `aliases` and the lower-cased names of `modules` (this is
    how the ReLU rules find a refused activation they have no class for).

    Attributes:
        name: a short name for the activation, such as `"silu"`.
        modules: the `torch.nn` classes that compute it (empty when PyTorch has none).
        functions: the names under which a functional call of it reaches PyTorch's function
            dispatch (`F.silu`, `torch.silu_` and `x.silu()` arrive as `"silu"` or `"silu_"`).
        backward: what the ReLU backward rules do at it, one of
            [`BACKWARD_RULES`][convlens.layers.BACKWARD_RULES].
        aliases: lower-cased class names other libraries use for it (timm's `Swish`).

    Examples:
        >>> from torch import nn
        >>> from convlens.layers import ACTIVATIONS
        >>> silu = next(a for a in ACTIVATIONS if a.name == "silu")
        >>> silu.modules == (nn.SiLU,), silu.functions, silu.backward, silu.aliases
        (True, ('silu', 'silu_'), 'refused', ('swish',))
        >>> [a.name for a in ACTIVATIONS if a.backward == "rectifier"]
        ['relu', 'relu6']
    """

    name: str
    modules: tuple[type[nn.Module], ...]
    functions: tuple[str, ...]
    backward: str
    aliases: tuple[str, ...] = ()


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
"""Every activation convlens knows, one [`Activation`][convlens.layers.Activation] per row
(ReLU, ReLU6, the bounded and thresholded rectifiers, the smooth and leaky variants, and the
sigmoid and tanh gates). Supporting a new activation means adding one row here; the sets
the ReLU rules and the tracers use are derived from it.
"""

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
    """The class name of `module` when the ReLU backward rules refuse it, else None.

    The match is on the lower-cased class name (against the functions, aliases and class
    names of the `"refused"` rows of [`ACTIVATIONS`][convlens.layers.ACTIVATIONS]), so a
    class of the same name from another library counts too; a subclass of `nn.ReLU` or
    `nn.ReLU6` never does.

    Args:
        module: any module.

    Returns:
        Its class name, as spelled (`"SiLU"`), or None when the rules accept it or leave it
        alone (rectifiers, gates, every non-activation layer).

    Raises no exception of its own.

    Examples:
        >>> from torch import nn
        >>> from convlens.layers import refused_activation
        >>> refused_activation(nn.SiLU()), refused_activation(nn.ReLU())
        ('SiLU', None)
        >>> class Swish(nn.Module):  # another library's class of that name
        ...     pass
        >>> refused_activation(Swish()), refused_activation(nn.Sigmoid())
        ('Swish', None)
    """
    kind = type(module).__name__
    if kind.lower() in REFUSED_NAMES and not isinstance(module, RECTIFIER_MODULES):
        return kind
    return None


def _argument(args, kwargs, index: int, name: str, default):
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def rectifier_call(name: str, args, kwargs):
    r"""Read a functional activation call as a rectifier, if its arguments make it one.

    `relu` and `relu6` always are; `hardtanh(x, min_val, max_val)` is one when `min_val` is 0
    (it then computes $\min(\max(0, x), u)$ with $u$ = `max_val`);
    `threshold(x, threshold, value)` is one when both numbers are 0. Arguments are read by position
    or by keyword, with PyTorch's defaults; a name ending in `_` is the in-place form.

    Args:
        name: the function's name as it reaches PyTorch's dispatch, one of the `functions`
            of the `"rectifier"` and `"conditional"` rows of
            [`ACTIVATIONS`][convlens.layers.ACTIVATIONS] (`relu`, `relu_`, `relu6`,
            `hardtanh`, `hardtanh_`, `threshold`, `threshold_`, `_threshold`). The caller
            checks this first: any other name is read as a `threshold` call.
        args: the call's positional arguments.
        kwargs: the call's keyword arguments.

    Returns:
        `(input, upper, inplace)`: the input tensor (the same object, not a copy), the
        upper bound (None when unbounded, 6.0 for `relu6`) and whether the call writes into
        its input; or None when these arguments make it something other than a rectifier.

    Raises no exception of its own.

    Examples:
        >>> import torch
        >>> from convlens.layers import rectifier_call
        >>> x = torch.tensor([-1.0, 2.0])
        >>> s, upper, inplace = rectifier_call("relu_", (x,), {})
        >>> s is x, upper, inplace
        (True, None, True)
        >>> rectifier_call("hardtanh", (x,), {"min_val": 0.0, "max_val": 6.0})[1:]
        (6.0, False)
        >>> print(rectifier_call("hardtanh", (x,), {}))  # min_val -1: not a rectifier
        None
    """
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
    """The class `timm.layers.<name>`, looked up only if timm is already imported.

    A model built from timm's layers means timm has been imported; convlens never imports it
    just to check a module's type, so a model without timm pays nothing for this.

    Args:
        name: a class name in `timm.layers`, such as `"Conv2dSame"`.

    Returns:
        The class, or None when timm is not imported or has no class of that name.

    Raises no exception of its own.

    Examples:
        >>> import timm.layers
        >>> from convlens.layers import timm_class
        >>> timm_class("Conv2dSame") is timm.layers.Conv2dSame
        True
        >>> print(timm_class("NoSuchLayer"))
        None
    """
    return getattr(sys.modules.get("timm.layers"), name, None)


def is_pointwise_module(m: nn.Module) -> bool:
    r"""Whether each output value of `m` depends only on the input value at the same position.

    Such a layer keeps a receptive field unchanged and can be applied to a patch on its own.
    It is pointwise when it is one of the activations of
    [`ACTIVATIONS`][convlens.layers.ACTIVATIONS] or `nn.Identity`, dropout (and `nn.RReLU`)
    in eval mode (in training mode their output is random), or a
    batch norm in eval mode that has running statistics (then a per-channel affine map
    $y = \gamma (x - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta$); timm's `BatchNormAct2d`
    counts when its dropout and activation are pointwise too. Types are compared exactly,
    since a subclass may compute something else.

    Args:
        m: any module.

    Returns:
        True for a pointwise module in its current mode, False otherwise.

    Raises no exception of its own.

    Examples:
        >>> from torch import nn
        >>> from convlens.layers import is_pointwise_module
        >>> is_pointwise_module(nn.ReLU()), is_pointwise_module(nn.Conv2d(1, 1, 1))
        (True, False)
        >>> bn = nn.BatchNorm2d(4)
        >>> is_pointwise_module(bn), is_pointwise_module(bn.eval())  # batch statistics first
        (False, True)
    """
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
    r"""How a sliding layer (a convolution or a local pool) reads its input along one axis.

    With kernel $k$, stride $s$, dilation $d$ and $q$ padded positions before input index 0,
    output $u$ reads the input positions

    $$ u s - q + i d, \qquad 0 \le i < k $$

    (a negative position, or one past the end, falls in the padding). The arithmetic is that
    of [Dumoulin & Visin 2016][ref-dumoulin2016].

    Attributes:
        kernel: $k$, the number of input positions one output combines.
        stride: $s$, how far apart in the input the windows of two neighbouring outputs are.
        dilation: $d$, the spacing between the positions one window reads.
        before: $q$, the padding in front of input index 0.

    Examples:
        >>> from convlens.layers import Window
        >>> w = Window(kernel=3, stride=2, dilation=1, before=1)
        >>> [[u * w.stride - w.before + i * w.dilation for i in range(w.kernel)]
        ...  for u in range(3)]
        [[-1, 0, 1], [1, 2, 3], [3, 4, 5]]
        >>> w.reach, w.after(size_in=7, size_out=4)
        (3, 1)
    """

    kernel: int
    stride: int
    dilation: int
    before: int

    @property
    def reach(self) -> int:
        r"""How many input positions one window spans, first to last: $d (k - 1) + 1$."""
        return self.dilation * (self.kernel - 1) + 1

    def after(self, size_in: int, size_out: int) -> int:
        r"""The padding after the last input position that the last output reads.

        For $n_\mathrm{in}$ inputs and $n_\mathrm{out}$ outputs it is

        $$ \max\bigl(0,\; (n_\mathrm{out} - 1)\, s + d (k - 1) + 1 - n_\mathrm{in} - q\bigr). $$

        Padding that no output reads is not counted: a strided convolution may leave some of
        the padding PyTorch adds untouched.

        Args:
            size_in: $n_\mathrm{in}$, the input size along this axis.
            size_out: $n_\mathrm{out}$, the output size along this axis.

        Returns:
            The number of padded positions past the end of the input that are read, an int.

        Raises no exception of its own.

        Examples:
            >>> import torch
            >>> from torch import nn
            >>> from convlens.layers import Window
            >>> conv = nn.Conv2d(1, 1, 3, stride=2, padding=1)
            >>> w = Window(kernel=3, stride=2, dilation=1, before=1)
            >>> for n in (7, 8):
            ...     n_out = conv(torch.zeros(1, 1, n, n)).shape[-1]
            ...     print(n, n_out, w.after(n, n_out))
            7 4 1
            8 4 0
        """
        return max(0, (size_out - 1) * self.stride + self.reach - size_in - self.before)


def _pair(value) -> tuple[int, int]:
    return tuple(int(v) for v in value) if isinstance(value, (tuple, list)) else (int(value),) * 2


def same_padding(kernel: int, dilation: int) -> tuple[int, int]:
    r"""PyTorch's `padding="same"` along one axis (stride 1, which that mode requires).

    The total padding $P = d (k - 1)$ keeps the output as long as the input; it is split
    $\lfloor P / 2 \rfloor$ before and $P - \lfloor P / 2 \rfloor$ after, so an odd total puts
    the extra position after the input.

    Args:
        kernel: $k$, the kernel size along this axis.
        dilation: $d$, the dilation along this axis.

    Returns:
        `(before, after)`, the padding on each side, two ints.

    Raises no exception of its own.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens.layers import same_padding
        >>> same_padding(3, 1), same_padding(4, 1), same_padding(3, 2)
        ((1, 1), (1, 2), (2, 2))
        >>> nn.Conv2d(1, 1, 3, dilation=2, padding="same")(torch.zeros(1, 1, 5, 5)).shape
        torch.Size([1, 1, 5, 5])
    """
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def tf_same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    r"""TensorFlow's "SAME" padding along one axis of `size` inputs, for any stride.

    The padding gives $\lceil n / s \rceil$ outputs for $n$ inputs. Its total is

    $$ P = \max\bigl(0,\; (\lceil n / s \rceil - 1)\, s + d (k - 1) + 1 - n\bigr), $$

    split $\lfloor P / 2 \rfloor$ before and the rest after (an odd total puts the extra
    position after). It depends on $n$, so a layer that uses it, such as timm's `Conv2dSame`
    (the convolutions of EfficientNet-Lite and other ported TensorFlow models), works it out
    from the input on every call.

    Args:
        size: $n$, the input size along this axis.
        kernel: $k$, the kernel size.
        stride: $s$, the stride.
        dilation: $d$, the dilation.

    Returns:
        `(before, after)`, the padding on each side, two ints.

    Raises no exception of its own.

    Examples:
        >>> import timm.layers
        >>> import torch
        >>> from convlens.layers import tf_same_padding
        >>> tf_same_padding(7, 3, 2, 1), tf_same_padding(8, 3, 2, 1)  # the odd one after
        ((1, 1), (0, 1))
        >>> conv = timm.layers.Conv2dSame(1, 1, 3, stride=2)
        >>> conv(torch.zeros(1, 1, 7, 8)).shape  # ceil(7 / 2), ceil(8 / 2)
        torch.Size([1, 1, 4, 4])
    """
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
    """The `(height, width)` windows through which a convolution or a local pool reads.

    Handles `nn.Conv2d` (numeric padding, `"valid"` and `"same"`), timm's `Conv2dSame`
    (whose TensorFlow "SAME" padding depends on `input_size`:
    [`tf_same_padding`][convlens.layers.tf_same_padding]), `nn.MaxPool2d` and
    `nn.AvgPool2d`. Only where the padding is, not how it is filled (zeros, reflection ...),
    is part of the answer.

    Args:
        m: any module.
        input_size: `(H, W)` of the module's input; only timm's `Conv2dSame` needs it.

    Returns:
        `(height window, width window)`, two [`Window`][convlens.layers.Window]s, or None
        for any other kind of module.

    Raises no exception of its own.

    Examples:
        >>> import timm.layers
        >>> from torch import nn
        >>> from convlens.layers import sliding_windows
        >>> sliding_windows(nn.Conv2d(3, 4, 3, stride=2, padding=1), (8, 8))[0]
        Window(kernel=3, stride=2, dilation=1, before=1)
        >>> sliding_windows(nn.MaxPool2d(2), (8, 8))[1]
        Window(kernel=2, stride=2, dilation=1, before=0)
        >>> same = timm.layers.Conv2dSame(3, 4, 3, stride=2)
        >>> [w.before for w in sliding_windows(same, (7, 8))]  # from the input size
        [1, 0]
        >>> print(sliding_windows(nn.ReLU(), (8, 8)))
        None
    """
    if isinstance(m, nn.Conv2d):
        return _conv_windows(m, input_size)
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        k, p = _pair(m.kernel_size), _pair(m.padding)
        s = _pair(m.stride or m.kernel_size)
        d = _pair(m.dilation) if isinstance(m, nn.MaxPool2d) else (1, 1)
        return tuple(Window(k[i], s[i], d[i], p[i]) for i in range(2))
    return None


def stride_of(m: nn.Module) -> tuple[int, int] | None:
    """The stride of a convolution or a local pool, per axis.

    The stride is how far apart, in the layer's input, the windows of two neighbouring outputs
    are; a pool created without one strides by its kernel size, as PyTorch does.

    Args:
        m: any module.

    Returns:
        `(height stride, width stride)`, two ints, for `nn.Conv2d` (timm's `Conv2dSame`
        included), `nn.MaxPool2d` and `nn.AvgPool2d`; None for any other module.

    Raises no exception of its own.

    Examples:
        >>> from torch import nn
        >>> from convlens.layers import stride_of
        >>> stride_of(nn.Conv2d(3, 4, 3, stride=(2, 1))), stride_of(nn.MaxPool2d(3))
        ((2, 1), (3, 3))
        >>> print(stride_of(nn.ReLU()))
        None
    """
    if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        return _pair(m.stride or m.kernel_size)
    return None


_POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
            nn.LPPool2d, nn.FractionalMaxPool2d)


def is_pooling(m: nn.Module) -> bool:
    """Whether `m` is a 2-D pooling layer, local or global.

    The local ones are max, average, power-average (`nn.LPPool2d`) and fractional max
    pooling; the global ones are PyTorch's adaptive pools and any class whose name ends in
    `AdaptivePool2d`, which is how timm's `SelectAdaptivePool2d` wrapper is recognised.

    Args:
        m: any module.

    Returns:
        True for a pooling layer, False otherwise.

    Raises no exception of its own.

    Examples:
        >>> from torch import nn
        >>> from convlens.layers import is_pooling
        >>> is_pooling(nn.MaxPool2d(2)), is_pooling(nn.AdaptiveAvgPool2d(1))
        (True, True)
        >>> is_pooling(nn.Conv2d(3, 4, 3, stride=2))
        False
    """
    return isinstance(m, _POOLING) or type(m).__name__.endswith("AdaptivePool2d")


# --- call order of one forward pass ---------------------------------------------------------


@dataclass(frozen=True)
class ModuleCall:
    """One call of one module in a forward pass.

    [`forward_calls`][convlens.layers.forward_calls] returns a list of them.

    Attributes:
        name: the module's qualified name in the model (`""` for the model itself).
        module: the module that was called.
        output: the object it returned, not a copy (a tensor, or whatever the module
            returns), so an in-place operation later in the pass may have changed its values.
        started: the call's rank by start time (0 for the model's own call, which starts
            first); the list `forward_calls` returns is in the order the calls returned
            instead.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens.layers import forward_calls
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> last = forward_calls(model, torch.randn(1, 3, 8, 8))[-1]
        >>> last.name, last.module is model, last.started, last.output.shape
        ('', True, 0, torch.Size([1, 4, 6, 6]))
    """

    name: str
    module: nn.Module
    output: object
    started: int


def forward_calls(model: nn.Module, x: torch.Tensor,
                  during: contextlib.AbstractContextManager | None = None) -> list[ModuleCall]:
    """Every module call of one forward pass of `x`, in the order the calls returned.

    A container returns after the children it calls, so the model's own call, whose output
    is the model's output, comes last; a module called twice (a shared ReLU) appears twice.
    The pass runs under `torch.no_grad()` with every module in eval mode (batch norms use
    and keep their running statistics, dropout is off), and inside `during` when it is
    given. Afterwards the model is as it was found: each module's mode is restored and the
    hooks ([`record_calls`][convlens.hooks.record_calls]) are removed.

    Args:
        model: the network.
        x: its input, e.g. `[N, C, H, W]`.
        during: a context manager entered around the pass, such as a tracer's
            `TorchFunctionMode`; None for none.

    Returns:
        One [`ModuleCall`][convlens.layers.ModuleCall] per call, in the order the calls
        returned; each holds the output as the module returned it (e.g. `[N, K, h, w]`).

    Raises no exception of its own: an error of the forward pass propagates, after the model
    is restored.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens.hooks import count_hooks
        >>> from convlens.layers import forward_calls
        >>> relu = nn.ReLU()
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), relu, nn.Conv2d(4, 4, 1), relu).train()
        >>> calls = forward_calls(model, torch.randn(1, 3, 8, 8))
        >>> [(call.name, call.started, tuple(call.output.shape)) for call in calls]
        [('0', 1, (1, 4, 6, 6)), ('1', 2, (1, 4, 6, 6)), ('2', 3, (1, 4, 6, 6)),
         ('1', 4, (1, 4, 6, 6)), ('', 0, (1, 4, 6, 6))]
        >>> model.training, count_hooks(model)  # left as found
        (True, 0)
    """
    from .hooks import eval_mode, record_calls

    modules = dict(model.named_modules())
    with torch.no_grad(), eval_mode(model), record_calls(model) as calls:
        with during if during is not None else contextlib.nullcontext():
            model(x)
    return [ModuleCall(name, modules[name], output, started) for name, started, output in calls]
