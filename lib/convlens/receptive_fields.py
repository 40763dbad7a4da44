r"""Receptive fields: which input pixels can reach one unit of a feature map.

Along one image axis, a unit of a feature map is described by three integers
([Araujo, Norris & Sim 2019][ref-araujo2019], "Computing receptive fields of convolutional
neural networks"):

- $r$, the field *size*: how many input pixels the unit can see;
- $j$, the *jump* (effective stride): how far apart, in input pixels, the fields of two
  neighbouring units are;
- $p$, the effective *padding*: how far the field of unit 0 starts before pixel 0.

Unit $u$ (0-based) then sees input pixels $u j - p$ to $u j - p + r - 1$. The input image
itself is $r = 1, j = 1, p = 0$. A layer with kernel $k$, stride $s$, left/top padding $q$
and dilation $d$ maps $(r, j, p)$ to

$$ r_\mathrm{out} = r_\mathrm{in} + (k - 1)\, d\, j_\mathrm{in}, \qquad
j_\mathrm{out} = j_\mathrm{in}\, s, \qquad p_\mathrm{out} = p_\mathrm{in} + q\, j_\mathrm{in} $$

Pointwise layers (activations, eval-mode batch norm, dropout) keep all three.
When paths merge (a residual ``+``, a channel ``cat``) every path must give the
same jump and the same field centre; the merged field is then the largest one
(Araujo et al., section "Arbitrary computation graphs"). Unaligned paths raise.

[`receptive_field`][convlens.receptive_fields.receptive_field] gets these numbers by *tracing*: one forward pass of a
zero image, during which a `torch.overrides.TorchFunctionMode` follows
every tensor derived from the input and applies the rule of each operation it
meets. The rules are a table, ``_RULES``, from an operation's name (``conv2d``,
``max_pool2d``, ``pad``, ``layer_norm``, ``add``, ``cat``, ``permute`` ...) to a
short function; supporting a new operation is one more entry (decorate a function
with ``@_rule("name")``). Because it watches functions rather than module types,
it also understands functional code: the residual ``out += identity`` of
torchvision's ResNet, timm's ``Conv2dSame`` (which pads dynamically with
``F.pad``), squeeze-excitation gates, ConvNeXt's channels-last blocks (the tracer
follows where ``permute`` puts the height and width axes; a ``Linear`` or a
``LayerNorm`` over the channel axis is then pointwise).

*Global* units depend on every input pixel (``RF.is_global``): after a global
pooling (``AdaptiveAvgPool2d(1)``, ``x.mean((2, 3))``, timm's
``SelectAdaptivePool2d``) and every fully connected layer after it there is no
local window at all ([`RF.whole_input`][convlens.receptive_fields.RF.whole_input]); a map that received a global signal
(an SE gate ``x * sigmoid(fc(mean(x)))``, or GroupNorm / InstanceNorm, whose mean
and variance run over every position) keeps the local window of its convolutions
and is marked global. An operation the tracer does not understand poisons the
tensors it produces, and a module whose output is poisoned raises
[`ReceptiveFieldError`][convlens.receptive_fields.ReceptiveFieldError] (a `ValueError`) that names the module, its type
and the operation, and carries the fields computed before it.

[`empirical_receptive_field`][convlens.receptive_fields.empirical_receptive_field] answers the same question with a gradient
probe: the input pixels whose gradient is nonzero for one unit.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ._checks import check_batch, model_device_dtype, resolve_layer
from .hooks import capture, eval_mode, only_call
from .layers import ACTIVATION_FUNCTIONS, forward_calls, same_padding

__all__ = ["RF", "ReceptiveFieldError", "receptive_field", "empirical_receptive_field"]


class ReceptiveFieldError(ValueError):
    """The tracer cannot describe the field of a module's output (a `ValueError`).

    Args:
        layer: the module's qualified name (`""` for the whole model).
        module_type: its class name.
        reason: which operation, and why.
        fields: the fields of the modules computed before it, in call order.

    Attributes:
        layer: as above.
        module_type: as above.
        reason: as above.
        fields: as above: a caller can still show the part of the network that was analysed.

    Examples:
        >>> from torch import nn
        >>> from convlens.receptive_fields import ReceptiveFieldError, receptive_field
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Upsample(scale_factor=2))
        >>> try:
        ...     receptive_field(net, (16, 16))
        ... except ReceptiveFieldError as error:
        ...     print(error.layer, error.module_type, list(error.fields))
        1 Upsample ['0']
    """

    def __init__(self, layer: str, module_type: str, reason: str, fields: dict[str, RF]):
        super().__init__(
            f"cannot compute the receptive field of {layer or 'the model'!r} ({module_type}): {reason}"
        )
        self.layer, self.module_type, self.reason, self.fields = layer, module_type, reason, fields


@dataclass(frozen=True)
class RF:
    """Receptive field of the units of one feature map, per axis `(height, width)`.

    `is_global` marks units that depend on *every* input pixel. Two cases:

    - after a global pooling (`AdaptiveAvgPool2d(1)`, `x.mean((2, 3))`, timm's
      `SelectAdaptivePool2d`, or a fully connected layer after it) there is no local window
      at all: `size` is the whole `input_size`, `stride` is `(0, 0)` and `box` is the whole
      image;
    - a map that also received a global signal (a squeeze-excitation gate
      `x * sigmoid(fc(mean(x)))`, GroupNorm's statistics over all positions) keeps its local
      window in `size`/`stride`/`padding` and `box`: the pixels the unit sees through its
      convolutions, while the gradient of the unit is nonzero everywhere.

    Attributes:
        size: field size $r$ in input pixels.
        stride: jump $j$ between neighbouring units, in input pixels.
        padding: effective padding $p$: how far the field of unit `(0, 0)` starts before the
            first input pixel (it can be negative).
        input_size: the `(H, W)` the field was computed for, used to clip boxes.
        is_global: every unit depends on every input pixel (see above).

    Examples:
        >>> from convlens.receptive_fields import RF
        >>> rf = RF(size=(3, 3), stride=(2, 2), padding=(1, 1), input_size=(8, 8))
        >>> rf.box(0, 0), rf.box(0, 0, clip=True), rf.center(1, 1)
        ((-1, -1, 2, 2), (0, 0, 2, 2), (2.0, 2.0))
    """

    size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    input_size: tuple[int, int] | None = None
    is_global: bool = False

    @classmethod
    def whole_input(cls, input_size: tuple[int, int]) -> RF:
        """The field of a unit with no local window: it pools the whole input.

        Args:
            input_size: the `(H, W)` of the input.

        Returns:
            `RF(size=input_size, stride=(0, 0), padding=(0, 0), is_global=True)`.

        Raises no exception of its own.

        Examples:
            >>> from convlens.receptive_fields import RF
            >>> RF.whole_input((32, 32))
            RF(global: every unit sees the whole 32x32 input)
        """
        return cls(tuple(input_size), (0, 0), (0, 0), tuple(input_size), is_global=True)

    @property
    def has_window(self) -> bool:
        """False for a pooled unit (no local window: ``RF.whole_input``)."""
        return not (self.is_global and self.stride == (0, 0))

    def __repr__(self) -> str:
        if not self.has_window:
            size = "x".join(map(str, self.input_size)) if self.input_size else "input"
            return f"RF(global: every unit sees the whole {size} input)"
        extra = ", global context: also depends on every input pixel" if self.is_global else ""
        return (
            f"RF(size={self.size}, stride={self.stride}, padding={self.padding}, "
            f"input_size={self.input_size}{extra})"
        )

    def box(self, i: int, j: int, clip: bool = False) -> tuple[int, int, int, int]:
        """Input rectangle `(top, left, bottom, right)` of unit `(i, j)`, half-open.

        `top`/`left` are included and `bottom`/`right` excluded, like Python slices:
        `image[..., top:bottom, left:right]` is the field, and `bottom - top == size[0]` when not
        clipped. With dilation the field has holes (a dilated kernel skips pixels): the box is
        then its bounding box. For a global field with a local window the box is that window.

        Args:
            i: the unit's row in the feature map.
            j: the unit's column.
            clip: intersect the box with the image (needs `input_size`), which is what a drawing
                wants; without it the box may reach outside the image (into the padding).

        Returns:
            `(top, left, bottom, right)` in input pixels.

        Raises:
            ValueError: `clip=True` and the RF has no `input_size`.

        Examples:
            >>> from convlens.receptive_fields import RF
            >>> rf = RF(size=(5, 5), stride=(4, 4), padding=(2, 2), input_size=(16, 16))
            >>> rf.box(3, 0), rf.box(3, 3, clip=True)
            ((10, -2, 15, 3), (10, 10, 15, 15))
        """
        top = i * self.stride[0] - self.padding[0]
        left = j * self.stride[1] - self.padding[1]
        bottom, right = top + self.size[0], left + self.size[1]
        if clip:
            if self.input_size is None:
                raise ValueError("clip=True needs the RF's input_size")
            height, width = self.input_size
            top, bottom = (min(max(v, 0), height) for v in (top, bottom))
            left, right = (min(max(v, 0), width) for v in (left, right))
        return top, left, bottom, right

    def center(self, i: int, j: int) -> tuple[float, float]:
        """Centre of the (unclipped) field of unit `(i, j)`, in input pixel coordinates.

        Args:
            i: the unit's row in the feature map.
            j: the unit's column.

        Returns:
            `(row, column)`, floats (a half pixel when the size is even).

        Raises no exception of its own.

        Examples:
            >>> from convlens.receptive_fields import RF
            >>> RF(size=(4, 3), stride=(2, 2), padding=(0, 1)).center(1, 1)
            (3.5, 2.0)
        """
        top, left, bottom, right = self.box(i, j)
        return (top + bottom - 1) / 2, (left + right - 1) / 2


# --- traced states ----------------------------------------------------------------------
#
# Each traced tensor carries one of four states:
#   _Field: a spatial map with one (r, j, p) per axis; ``dims`` says where its height and
#       width axes are, counted from the end ((-2, -1) for NCHW, (-3, -2) for NHWC);
#       ``context``: it also received a global signal (an SE gate, GroupNorm statistics);
#   _FLAT: the spatial axes were flattened into a vector (units still local, untracked);
#   _GLOBAL: no spatial axes, every element depends on the whole input (global pooling,
#       a fully connected layer);
#   _Unsupported: made by an operation the tracer cannot describe (the reason says which).


@dataclass(frozen=True)
class _Field:
    h: tuple[int, int, int]  # (r, j, p) along the height
    w: tuple[int, int, int]  # (r, j, p) along the width
    dims: tuple[int, int] = (-2, -1)
    context: bool = False

    @property
    def pooled(self) -> bool:  # one window for the whole map: nothing local left
        return self.h[1] == 0 and self.w[1] == 0


@dataclass(frozen=True)
class _Unsupported:
    reason: str


_FLAT = object()
_GLOBAL = object()


class _CannotTrace(Exception):
    pass


class _States:
    """Traced state per tensor, keyed by identity (tensors compare elementwise, so a
    ``weakref.WeakKeyDictionary`` cannot hold them); an entry goes when its tensor does."""

    def __init__(self):
        self._items: dict[int, tuple[weakref.ref, object]] = {}

    def __setitem__(self, tensor: torch.Tensor, state) -> None:
        key = id(tensor)
        self._items[key] = (weakref.ref(tensor, lambda _, key=key: self._items.pop(key, None)), state)

    def get(self, tensor, default=None):
        entry = self._items.get(id(tensor))
        return entry[1] if entry is not None and entry[0]() is tensor else default

    def __contains__(self, tensor) -> bool:
        return self.get(tensor, _MISSING) is not _MISSING

    def __getitem__(self, tensor):
        return self.get(tensor)


_MISSING = object()


def _tensors(tree) -> list[torch.Tensor]:
    """Every tensor inside nested lists, tuples and dicts (arguments and results)."""
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, (list, tuple)):
        return [t for item in tree for t in _tensors(item)]
    if isinstance(tree, dict):
        return [t for item in tree.values() for t in _tensors(item)]
    return []


def _local(axis, kernel, stride, pad_before, dilation):
    r, j, p = axis
    return (r + (kernel - 1) * dilation * j, j * stride, p + pad_before * j)


def _union_of_all_units(axis, n_units):
    """One window that holds the fields of all ``n_units`` units (jump 0)."""
    r, j, p = axis
    return (r + (n_units - 1) * j, 0, p)


def _pair(value, n=2):
    if isinstance(value, (list, tuple, torch.Size)):
        value = tuple(int(v) for v in value)
        return value * n if len(value) == 1 else value
    return (int(value),) * n


def _arg(args, kwargs, index, name, default=None):
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


# --- merging paths ----------------------------------------------------------------------


def _merge_axis(axes, what):
    """Merge the (r, j, p) of several paths that meet along one axis."""
    moving = [a for a in axes if a[1] != 0]
    if not moving:  # pooled windows only: the window that holds them all
        start = min(-a[2] for a in axes)
        end = max(-a[2] + a[0] for a in axes)  # exclusive
        return (end - start, 0, -start)
    jumps = {a[1] for a in moving}
    centres = {a[0] - 1 - 2 * a[2] for a in moving}  # 2 x centre of unit 0
    if len(jumps) > 1 or len(centres) > 1:
        detail = ", ".join(f"size {r} jump {j} centre {(r - 1) / 2 - p:g}" for r, j, p in moving)
        raise _CannotTrace(
            f"{what} merges paths whose fields are not aligned ({detail}): a unit of "
            "the result has no single rectangular field; make the branches use the "
            "same total stride and centred (symmetric) padding"
        )
    return max(moving)  # equal jumps and centres: the largest field holds the others


def _merge(call: _Call) -> _Field:
    """Field of an elementwise result (with broadcasting) of several traced tensors."""
    fields = [(s, t.shape) for s, t in zip(call.states, call.inputs) if isinstance(s, _Field)]
    layouts = {s.dims for s, _ in fields}
    if len(layouts) > 1:
        raise _CannotTrace(f"{call.what} merges maps with different layouts {sorted(layouts)}")
    (dh, dw) = layouts.pop()
    out = call.outputs[0].shape
    context = any(s is _GLOBAL for s in call.states)
    h_axes, w_axes = [], []
    for state, shape in fields:
        # a size-1 axis broadcast over the output: every output unit sees its window
        h = state.h if shape[dh] == out[dh] else (state.h[0], 0, state.h[2])
        w = state.w if shape[dw] == out[dw] else (state.w[0], 0, state.w[2])
        h_axes.append(h)
        w_axes.append(w)
        context |= state.context
        if (h[1] == 0) != (w[1] == 0) and (out[dh] > 1 and out[dw] > 1):
            raise _CannotTrace(f"{call.what} broadcasts a map pooled along one axis only")
        if h[1] == 0 and w[1] == 0 and not (out[dh] == 1 and out[dw] == 1):
            context = True  # a pooled (global) signal spread over a map: an SE gate
    moving = [(h, w) for h, w in zip(h_axes, w_axes) if h[1] or w[1]]
    if moving and len(moving) < len(h_axes):  # keep the local window of the map
        h_axes, w_axes = [h for h, _ in moving], [w for _, w in moving]
    return _Field(_merge_axis(h_axes, call.what), _merge_axis(w_axes, call.what), (dh, dw), context)


# --- the table of rules: operation name -> rule ------------------------------------------


@dataclass
class _Call:
    """One traced operation: what a rule gets."""

    name: str
    args: tuple
    kwargs: dict
    inputs: list  # the traced tensors among the arguments
    states: list  # their states
    outputs: list  # the tensors it returned
    x: torch.Tensor  # the main (first traced) argument
    first: object  # its state

    @property
    def what(self) -> str:
        return repr(self.name)

    def arg(self, index, name, default=None):
        return _arg(self.args, self.kwargs, index, name, default)

    def channels_first(self) -> _Field:
        if not isinstance(self.first, _Field) or self.first.dims != (-2, -1):
            raise _CannotTrace(
                f"{self.what} on a map whose last two axes are not (height, width) "
                "(a channels-last or transposed layout)"
            )
        return self.first

    def out_spatial(self) -> tuple[int, int]:
        dh, dw = self.first.dims
        return self.outputs[0].shape[dh], self.outputs[0].shape[dw]

    def in_spatial(self) -> tuple[int, int]:
        dh, dw = self.first.dims
        return self.x.shape[dh], self.x.shape[dw]


_RULES: dict[str, Callable[[_Call], object]] = {}


def _rule(*names: str):
    """Register a rule for the torch functions/methods of these names."""

    def register(function):
        for name in names:
            _RULES[name] = function
        return function

    return register


# Spatially pointwise functions (matched by ``__name__``: torch.x, Tensor.x and F.x alike):
# the activations (convlens.layers.ACTIVATIONS) and these other operations.
_POINTWISE = ACTIVATION_FUNCTIONS | frozenset("""dropout dropout1d dropout2d alpha_dropout
    feature_alpha_dropout local_response_norm clone detach contiguous to float
    double half bfloat16 type type_as abs abs_ neg exp log sqrt rsqrt square pow clamp clamp_
    clip clip_ clamp_min clamp_max sign add add_ sub sub_ mul mul_ div div_ true_divide
    where maximum minimum __add__ __radd__ __iadd__ __sub__ __rsub__ __isub__ __mul__
    __rmul__ __imul__ __truediv__ __rtruediv__ __itruediv__ __neg__ __pow__ __abs__""".split())
_RESHAPES = """view reshape flatten squeeze unsqueeze expand expand_as chunk split unbind narrow
    __getitem__ permute transpose""".split()


@_rule(*_POINTWISE)
def _pointwise(call):
    return _merge(call)


@_rule("batch_norm")
def _batch_norm(call):
    if call.arg(5, "training", False):  # batch statistics: every position mixes in
        return replace(_merge(call), context=True)
    return _merge(call)  # running statistics: a per-channel affine map


@_rule("layer_norm")
def _layer_norm(call):
    shape = call.arg(1, "normalized_shape")
    normalized = set(range(-len(_pair(shape, 1)), 0))
    field = _merge(call)
    # over channels only (channels-last, or timm/torchvision LayerNorm2d): pointwise
    return replace(field, context=True) if normalized & set(field.dims) else field


@_rule("group_norm", "instance_norm")
def _statistics_over_positions(call):
    # mean and variance run over every position of a channel group: the value of one
    # unit depends on every position of the map, so every input pixel (global context)
    return replace(_merge(call), context=True)


@_rule("linear")
def _linear(call):
    if isinstance(call.first, _Field) and -1 in call.first.dims:
        raise _CannotTrace("'linear' over a spatial axis (it mixes positions along it)")
    if len(call.inputs) > 1:
        raise _CannotTrace("'linear' whose weights depend on the input")
    return call.first


@_rule("conv2d")
def _conv2d(call):
    first = call.channels_first()
    if len(call.inputs) > 1:
        raise _CannotTrace("conv2d whose weights depend on the input")
    weight = call.arg(1, "weight")
    kh, kw = weight.shape[-2:]
    stride = _pair(call.arg(3, "stride", 1))
    dilation = _pair(call.arg(5, "dilation", 1))
    padding = call.arg(4, "padding", 0)
    if padding == "valid":
        padding = (0, 0)
    elif padding == "same":  # PyTorch puts the odd pixel on the right/bottom
        padding = (same_padding(kh, dilation[0])[0], same_padding(kw, dilation[1])[0])
    padding = _pair(padding)
    return replace(
        first,
        h=_local(first.h, kh, stride[0], padding[0], dilation[0]),
        w=_local(first.w, kw, stride[1], padding[1], dilation[1]),
    )


def _pooled_if_whole(call, field: _Field) -> _Field:
    """A pool whose one output unit covers every unit of the map is a global pool."""
    axes = []
    for before, after, n_in, n_out in zip(
        (call.first.h, call.first.w), (field.h, field.w), call.in_spatial(), call.out_spatial()
    ):
        whole = _union_of_all_units(before, n_in)
        axes.append(whole if n_out == 1 and after[0] >= whole[0] else after)
    return replace(field, h=axes[0], w=axes[1])


@_rule("max_pool2d", "max_pool2d_with_indices", "avg_pool2d")
def _local_pool(call):
    first = call.channels_first()
    kernel = _pair(call.arg(1, "kernel_size"))
    stride = call.arg(2, "stride", None)
    stride = kernel if stride is None or stride == [] or stride == () else _pair(stride)
    padding = _pair(call.arg(3, "padding", 0))
    dilation = (1, 1) if call.name == "avg_pool2d" else _pair(call.arg(4, "dilation", 1))
    # ceil_mode only adds a last unit whose window is cut by the border: same formula.
    field = replace(
        first,
        h=_local(first.h, kernel[0], stride[0], padding[0], dilation[0]),
        w=_local(first.w, kernel[1], stride[1], padding[1], dilation[1]),
    )
    return _pooled_if_whole(call, field)


@_rule("adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_max_pool2d_with_indices")
def _adaptive_pool(call):
    first = call.channels_first()
    axes = []
    for axis, n_in, n_out in zip((first.h, first.w), call.in_spatial(), call.out_spatial()):
        if n_in == n_out:
            axes.append(axis)
        elif n_out > 1 and n_in % n_out == 0:  # regular bins: kernel = stride = n_in / n_out
            axes.append(_local(axis, n_in // n_out, n_in // n_out, 0, 1))
        else:  # one bin (global pooling), or irregular bins: the window of the whole map
            axes.append(_union_of_all_units(axis, n_in))
    return replace(first, h=axes[0], w=axes[1])


@_rule("pad")
def _pad(call):
    first = call.channels_first()
    pad = [int(v) for v in call.arg(1, "pad")]
    left, top = pad[0], pad[2] if len(pad) >= 4 else 0
    (rh, jh, ph), (rw, jw, pw) = first.h, first.w
    return replace(first, h=(rh, jh, ph + top * jh), w=(rw, jw, pw + left * jw))


@_rule("cat", "concat", "concatenate")
def _concatenate(call):
    ndim = call.outputs[0].ndim
    dim = call.arg(1, "dim", 0) % ndim - ndim
    if isinstance(call.first, _Field) and dim in call.first.dims:
        raise _CannotTrace(f"{call.what} along a spatial axis")
    return _merge(call)


@_rule("mean", "sum", "amax", "amin", "max", "min", "std", "var", "logsumexp")
def _reduction(call):
    dims = call.arg(1, "dim", None)
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        return _GLOBAL
    ndim, out = call.x.ndim, call.outputs[0]
    reduced = {d % ndim - ndim for d in ((dims,) if isinstance(dims, int) else dims)}
    spatial = set(call.first.dims)
    if not reduced & spatial:  # e.g. a mean over channels: pointwise in space
        if out.ndim == ndim:
            return call.first
        # without keepdim, each reduced axis after a spatial one moves it one place right
        return replace(call.first, dims=tuple(d + sum(r > d for r in reduced) for d in call.first.dims))
    if reduced >= spatial and out.ndim == ndim:  # keepdim: one window for the whole map
        n_h, n_w = call.in_spatial()
        return replace(
            call.first,
            h=_union_of_all_units(call.first.h, n_h),
            w=_union_of_all_units(call.first.w, n_w),
        )
    if reduced >= spatial:
        return _GLOBAL
    raise _CannotTrace(f"{call.what} over one spatial axis only")


def _reshaped(call, out):
    first, x = call.first, call.x
    if first is _FLAT:
        if out.ndim > 2:
            raise _CannotTrace(f"{call.what} turns a flattened map back into a map")
        return _FLAT
    dims = first.dims
    if call.name in ("permute", "transpose"):
        ndim = x.ndim
        if call.name == "permute":
            order = call.args[1:] if len(call.args) > 2 else call.arg(1, "dims")
            order = [d % ndim for d in order]
        else:
            a, b = call.arg(1, "dim0") % ndim, call.arg(2, "dim1") % ndim
            order = list(range(ndim))
            order[a], order[b] = b, a
        return replace(first, dims=tuple(order.index(d % ndim) - ndim for d in dims))
    if call.name == "__getitem__":
        index = call.args[1] if isinstance(call.args[1], tuple) else (call.args[1],)
        if dims != (-2, -1) or Ellipsis in index or any(
            not (isinstance(i, slice) and i == slice(None)) for i in index[2:]
        ):
            raise _CannotTrace("indexing along a spatial axis (cropping, flipping)")
    lead = min(dims) + x.ndim  # number of axes before the spatial ones
    same_space = (
        out.ndim - x.ndim == 0
        and out.shape[lead:] == x.shape[lead:]
        and out.shape[0] == x.shape[0]
    ) or (
        dims == (-2, -1) and out.ndim >= 3 and out.shape[-2:] == x.shape[-2:] and out.shape[0] == x.shape[0]
    )
    if same_space:
        return first
    if out.ndim <= 2:  # flattened: a pooled map's units all see the whole input
        return _GLOBAL if first.pooled else _FLAT
    raise _CannotTrace(f"{call.what} reshapes the spatial axes")


@_rule(*_RESHAPES)
def _reshape(call):
    return [_reshaped(call, t) for t in call.outputs]


@_rule("conv_transpose2d", "interpolate", "upsample", "pixel_shuffle", "grid_sample")
def _upsampling(call):
    raise _CannotTrace(f"{call.what} upsamples: a unit would sit between input pixels (fractional jump)")


def _non_spatial(call):
    """An operation on tensors without spatial axes (after flattening or global pooling)."""
    if any(s is _GLOBAL for s in call.states):
        return _GLOBAL
    if call.name in _POINTWISE or call.name in ("batch_norm", "layer_norm"):
        return _FLAT
    if call.name in _RESHAPES:
        return _reshape(call)
    return _GLOBAL  # linear, matmul ...: every output mixes every position


class _FieldTracer(TorchFunctionMode):
    """Follow every tensor derived from the traced input and give it a receptive field."""

    def __init__(self):
        super().__init__()
        self.states = _States()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [t for t in _tensors((args, kwargs)) if t in self.states]
        outputs = _tensors(out)
        if not inputs or not outputs:
            return out
        name = getattr(func, "__name__", repr(func))
        try:
            state = self._apply(name, args, kwargs, inputs, outputs)
        except _CannotTrace as error:
            state = _Unsupported(str(error))
        if isinstance(state, list):  # one state per output (split/chunk/unbind)
            for tensor, each in zip(outputs, state):
                self.states[tensor] = each
        else:
            for tensor in outputs:
                self.states[tensor] = state
        return out

    def _apply(self, name, args, kwargs, inputs, outputs):
        states = [self.states[t] for t in inputs]
        for state in states:
            if isinstance(state, _Unsupported):
                return state
        x = args[0] if args and isinstance(args[0], torch.Tensor) and args[0] in self.states else inputs[0]
        call = _Call(name, args, kwargs, inputs, states, outputs, x, self.states[x])
        fields = [s for s in states if isinstance(s, _Field)]
        if not fields:
            return _non_spatial(call)
        if _FLAT in states:
            raise _CannotTrace(f"{call.what} mixes a spatial map with a flattened one")
        if not isinstance(call.first, _Field):  # e.g. gate * map: the map is the main argument
            call.x = next(t for t, s in zip(inputs, states) if isinstance(s, _Field))
            call.first = self.states[call.x]
        rule = _RULES.get(name)
        if rule is None:
            raise _CannotTrace(f"the receptive-field tracer has no rule for {name!r}")
        if _GLOBAL in states and rule is not _pointwise:
            raise _CannotTrace(f"{call.what} mixes a spatial map with a non-spatial tensor")
        return rule(call)


def _first_conv_channels(model: nn.Module) -> int:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    return 3


def receptive_field(
    model: nn.Module, input_size: tuple[int, int] = (224, 224), in_channels: int | None = None
) -> dict[str, RF]:
    """Receptive field of every module of `model` whose output is a spatial map.

    Covers convolutions, pools, activations, norms, dropout/identity and containers
    (`features`, `layer4`, `layer4.1`); the root module is `""`. Modules after a global
    pooling, and fully connected layers, are global: `RF.whole_input(input_size)`. A module
    whose output is a flattened map (`Flatten` before a fully connected layer) is left out:
    its elements are units with local fields, but no longer a map. A module called several
    times whose calls have different fields (ResNet's shared `relu`, used inside and at the
    end of a block) is left out as ambiguous: ask for the block instead.

    The fields are traced (see above) in one forward pass of a zero image
    `[1, in_channels, *input_size]` with the model temporarily in eval mode and under
    `no_grad`; the model comes back as found. The input size matters only where it changes
    the answer: timm's dynamic "same" padding, and adaptive pooling, which is an identity
    when its output has the input's size, an exact pool when the sizes divide, and otherwise
    (irregular bins) is given the window of the whole map, a superset. `ceil_mode` pools use
    the same formula; their extra last unit has a field reaching past the image (see
    `RF.box(..., clip=True)`).

    Args:
        model: the network; left as found.
        input_size: the `(H, W)` of the zero image traced.
        in_channels: its channels (default: the first convolution's).

    Returns:
        `{qualified_name: RF}` in call order.

    Raises:
        ReceptiveFieldError: a module's output depends on something the tracer cannot
            describe (upsampling, a convolution over a channels-last map, unaligned branches,
            an unknown function); it carries `.layer`, `.module_type`, `.reason` and
            `.fields` with the modules before it, which a caller can show instead.
        ValueError: `input_size` is not positive.

    Examples:
        Two 3x3 convolutions, the second with stride 2, see 5x5 pixels:

        >>> from torch import nn
        >>> import convlens
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                     nn.Conv2d(4, 4, 3, stride=2, padding=1))
        >>> fields = convlens.receptive_field(net, (16, 16))
        >>> list(fields)
        ['0', '1', '2', '']
        >>> fields["2"]
        RF(size=(5, 5), stride=(2, 2), padding=(2, 2), input_size=(16, 16))
    """
    height, width = (int(v) for v in _pair(input_size))
    if height < 1 or width < 1:
        raise ValueError(f"input_size must be positive, got {input_size}")
    device, dtype = model_device_dtype(model)
    channels = in_channels if in_channels is not None else _first_conv_channels(model)
    x = torch.zeros(1, channels, height, width, device=device, dtype=dtype)

    tracer = _FieldTracer()
    tracer.states[x] = _Field((1, 1, 0), (1, 1, 0))
    calls = forward_calls(model, x, during=tracer)

    fields: dict[str, RF] = {}
    ambiguous: set[str] = set()
    for call in calls:
        name, output = call.name, call.output
        if not isinstance(output, torch.Tensor):
            continue
        state = tracer.states.get(output)
        if state is None or state is _FLAT:
            continue  # does not depend on the input, or a flattened map (units untracked)
        if isinstance(state, _Unsupported):
            for each in ambiguous:
                del fields[each]
            raise ReceptiveFieldError(name, type(call.module).__name__, state.reason, fields)
        field = _to_rf(state, (height, width))
        if name in fields and fields[name] != field:
            ambiguous.add(name)
        fields[name] = field
    for name in ambiguous:
        del fields[name]
    return fields


def _to_rf(state, input_size) -> RF:
    if state is _GLOBAL or state.pooled:
        return RF.whole_input(input_size)
    return RF(
        size=(state.h[0], state.w[0]),
        stride=(state.h[1], state.w[1]),
        padding=(state.h[2], state.w[2]),
        input_size=input_size,
        is_global=state.context,
    )


def empirical_receptive_field(
    model: nn.Module,
    layer: nn.Module | str,
    unit: tuple[int, int, int],
    input_size: tuple[int, int] = (224, 224),
    x: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Input pixels whose gradient is nonzero for one unit.

    The gradient $\partial\, \mathrm{layer}(x)[0, c, i, j] / \partial x$ comes from
    `torch.autograd.grad` with the model temporarily in eval mode; a pixel is marked when the
    gradient is nonzero in any colour channel. It shows the pixels the unit *actually*
    depends on at this input, which can be smaller than the analytic field of
    [`receptive_field`][convlens.receptive_fields.receptive_field]: a ReLU that is off, a
    saturated ReLU6, a max pool (its gradient goes to one element of each window) or a zero
    weight cuts paths. The analytic box always contains the result; on a chain of
    convolutions without nonlinearity (or with positive weights, positive inputs and average
    pools) the two are equal, up to the border, where the analytic box reaches into the
    padding.

    Args:
        model: the network; left as found.
        layer: a module of `model` or its qualified name, called once per forward pass.
        unit: `(channel, i, j)` of the layer's output.
        input_size: `(H, W)` of the default input.
        x: the input, a `[1, C, H, W]` batch to probe a real image; by default a random
            positive image $U[0.5, 1.5)$ of `input_size` (positive so ReLUs are not all off,
            random so max pools have no ties).
        generator: a CPU `torch.Generator` for the default input (None: seeded with 0).

    Returns:
        A `BoolTensor [H, W]`: True where the unit's gradient is nonzero.

    Raises:
        TypeError: `unit` is not a triple, `generator` is not a `torch.Generator`, `x` is
            not a floating-point tensor, or `layer` is neither a module nor a name.
        ValueError: `layer` is not in `model`, is called more than once (ResNet's shared
            `relu`) or does not output a map `[N, C, H, W]`; `unit` is outside its output;
            `x` is not one image `[1, C, H, W]`.

    Examples:
        >>> from torch import nn
        >>> import convlens
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1))
        >>> mask = convlens.empirical_receptive_field(net, "1", (0, 4, 4), input_size=(9, 9))
        >>> mask.shape, int(mask.sum())  # 5 x 5 pixels around (4, 4)
        (torch.Size([9, 9]), 25)
    """
    name, _ = resolve_layer(model, layer)
    if not (isinstance(unit, (tuple, list)) and len(unit) == 3):
        raise TypeError(f"unit must be a (channel, i, j) triple, got {unit!r}")
    device, dtype = model_device_dtype(model)
    if x is None:
        height, width = _pair(input_size)
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        elif not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        x = torch.rand(1, _first_conv_channels(model), height, width, generator=generator) + 0.5
        x = x.to(device=device, dtype=dtype)
    else:
        check_batch(x)
        if x.shape[0] != 1:
            raise ValueError(f"x must hold one image [1, C, H, W], got {tuple(x.shape)}")
    x = x.detach().clone().requires_grad_(True)

    with eval_mode(model), torch.enable_grad(), capture(model, name) as records:
        model(x)
    activation = only_call(records, name)
    if activation.ndim != 4:
        raise ValueError(
            f"layer {name!r} returns shape {tuple(activation.shape)}, not a map [N, C, H, W]"
        )
    channel, i, j = (int(v) for v in unit)
    _, channels, height, width = activation.shape
    if not (0 <= channel < channels and 0 <= i < height and 0 <= j < width):
        raise ValueError(
            f"unit {tuple(unit)} is outside layer {name!r}'s output of "
            f"{channels} channels x {height} x {width}"
        )
    one_hot = torch.zeros_like(activation)
    one_hot[0, channel, i, j] = 1
    (gradient,) = torch.autograd.grad(activation, x, grad_outputs=one_hot)
    return (gradient[0] != 0).any(dim=0)
