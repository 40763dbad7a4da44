"""Receptive fields: which input pixels can reach one unit of a feature map.

Along one image axis, a unit of a feature map is described by three integers
(Araujo, Norris & Sim 2019, "Computing receptive fields of convolutional neural
networks", Distill, doi:10.23915/distill.00021):

- ``r``, the field *size*: how many input pixels the unit can see;
- ``j``, the *jump* (effective stride): how far apart, in input pixels, the fields
  of two neighbouring units are;
- ``p``, the effective *padding*: how far the field of unit 0 starts before pixel 0.

Unit ``u`` (0-based) then sees input pixels ``u*j - p`` to ``u*j - p + r - 1``.
The input image itself is ``r = 1, j = 1, p = 0``. A layer with kernel ``k``,
stride ``s``, left/top padding ``q`` and dilation ``d`` maps ``(r, j, p)`` to::

    r_out = r_in + (k - 1) * d * j_in
    j_out = j_in * s
    p_out = p_in + q * j_in

Pointwise layers (activations, eval-mode batch norm, dropout) keep all three.
When paths merge (a residual ``+``, a channel ``cat``) every path must give the
same jump and the same field centre; the merged field is then the largest one
(Araujo et al., section "Arbitrary computation graphs"). Unaligned paths raise.

:func:`receptive_field` gets these numbers by *tracing*: one forward pass of a
zero image, during which a :class:`~torch.overrides.TorchFunctionMode` follows
every tensor derived from the input and applies the rule of each operation it
meets (``conv2d``, pools, ``pad``, pointwise functions, ``add``/``cat`` merges ...).
Because it watches functions rather than module types, it also understands
functional code: the residual ``out += identity`` of torchvision's ResNet, timm's
``Conv2dSame`` (which pads dynamically with ``F.pad``), squeeze-excitation gates.
An operation it does not understand poisons the tensors it produces, and asking
for the field of a module whose output is poisoned raises a ``ValueError`` that
names the operation. Fully connected layers are not spatial: their units see the
whole image, and such modules are left out of the result.

:func:`empirical_receptive_field` answers the same question with a gradient
probe: the input pixels whose gradient is nonzero for one unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

from ._checks import check_batch, resolve_layer
from .hooks import capture, eval_mode, only_call, record_outputs

__all__ = ["RF", "receptive_field", "empirical_receptive_field"]


@dataclass(frozen=True)
class RF:
    """Receptive field of the units of one feature map, per axis ``(height, width)``.

    ``size``: field size in input pixels. ``stride``: jump between neighbouring
    units, in input pixels; ``0`` along an axis means every unit sees the *same*
    window (after a global pool, or a squeeze-excitation gate that mixes the whole
    map in). ``padding``: effective padding, how far the field of unit ``(0, 0)``
    starts before the first input pixel (it can be negative). ``input_size``: the
    ``(H, W)`` the field was computed for, used to clip boxes.
    """

    size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    input_size: tuple[int, int] | None = None

    @property
    def is_global(self) -> bool:
        """True when every unit sees the same window (stride 0 along both axes)."""
        return self.stride == (0, 0)

    def box(self, i: int, j: int, clip: bool = False) -> tuple[int, int, int, int]:
        """Input rectangle ``(top, left, bottom, right)`` of unit ``(i, j)``, half-open.

        ``top``/``left`` are included and ``bottom``/``right`` excluded, like Python
        slices: ``image[..., top:bottom, left:right]`` is the field, and
        ``bottom - top == size[0]`` when not clipped. Without ``clip`` the box may
        reach outside the image (into the padding); ``clip=True`` intersects it with
        the image (needs ``input_size``), which is what a drawing wants.

        With dilation the field has holes (a dilated kernel skips pixels): the
        box is then its bounding box.
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
        """Centre of the (unclipped) field of unit ``(i, j)``, in input pixel coordinates."""
        top, left, bottom, right = self.box(i, j)
        return (top + bottom - 1) / 2, (left + right - 1) / 2


# --- tracing machinery ----------------------------------------------------------------
#
# Each traced tensor carries one of three states:
#   _Field: a spatial map (last two dims are height, width) with one (r, j, p) per axis,
#   _NON_SPATIAL: the spatial axes are gone (flattened, globally reduced),
#   _Unsupported: made by an operation the tracer cannot describe (the reason says which).


@dataclass(frozen=True)
class _Field:
    h: tuple[int, int, int]  # (r, j, p) along the height
    w: tuple[int, int, int]  # (r, j, p) along the width


@dataclass(frozen=True)
class _Unsupported:
    reason: str


_NON_SPATIAL = object()


class _CannotTrace(Exception):
    pass


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


def _merge_axis(axes, n_out, what):
    """Merge the (r, j, p) of several paths that meet along one axis."""
    moving = [a for a in axes if a[1] != 0]
    constant = [a for a in axes if a[1] == 0]
    if moving:
        jumps = {a[1] for a in moving}
        centres = {a[0] - 1 - 2 * a[2] for a in moving}  # 2 x centre of unit 0
        if len(jumps) > 1 or len(centres) > 1:
            detail = ", ".join(
                f"size {r} jump {j} centre {(r - 1) / 2 - p:g}" for r, j, p in moving
            )
            raise _CannotTrace(
                f"{what} merges paths whose fields are not aligned ({detail}): a unit of "
                "the result has no single rectangular field; make the branches use the "
                "same total stride and centred (symmetric) padding"
            )
        merged = max(moving)  # equal jumps and centres: the largest field holds the others
        if not constant:
            return merged
    start = min(-a[2] for a in constant)
    end = max(-a[2] + a[0] for a in constant)  # exclusive
    if moving:
        r, j, p = merged
        if -p < start or (n_out - 1) * j - p + r > end:
            raise _CannotTrace(
                f"{what} merges a map with a broadcast (global) tensor whose window does not "
                "contain the map's fields"
            )
    return (end - start, 0, -start)


def _merge(states_and_shapes, out_shape, what):
    """Field of an elementwise result (with broadcasting) of several traced tensors."""
    h_out, w_out = out_shape[-2], out_shape[-1]
    h_axes, w_axes = [], []
    for state, shape in states_and_shapes:
        if len(shape) < 2:
            continue
        # a size-1 axis broadcast over the output: every output unit sees its window
        h = state.h if shape[-2] == h_out else (state.h[0], 0, state.h[2])
        w = state.w if shape[-1] == w_out else (state.w[0], 0, state.w[2])
        h_axes.append(h)
        w_axes.append(w)
    return _Field(_merge_axis(h_axes, h_out, what), _merge_axis(w_axes, w_out, what))


# Spatially pointwise functions (matched by ``__name__``: torch.x, Tensor.x and F.x alike).
_POINTWISE = frozenset(
    """relu relu_ relu6 hardtanh hardtanh_ elu elu_ selu selu_ celu leaky_relu leaky_relu_
    prelu rrelu gelu silu mish hardswish hardsigmoid sigmoid sigmoid_ tanh tanh_ softplus
    softsign logsigmoid threshold threshold_ dropout dropout1d dropout2d alpha_dropout
    feature_alpha_dropout batch_norm local_response_norm clone detach contiguous to float
    double half bfloat16 type type_as abs abs_ neg exp log sqrt rsqrt square pow clamp clamp_
    clip clip_ clamp_min clamp_max sign add add_ sub sub_ mul mul_ div div_ true_divide
    where maximum minimum __add__ __radd__ __iadd__ __sub__ __rsub__ __isub__ __mul__
    __rmul__ __imul__ __truediv__ __rtruediv__ __itruediv__ __neg__ __pow__ __abs__""".split()
)
_LOCAL_POOLS = frozenset({"max_pool2d", "max_pool2d_with_indices", "avg_pool2d"})
_ADAPTIVE_POOLS = frozenset(
    {"adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_max_pool2d_with_indices"}
)
_REDUCTIONS = frozenset({"mean", "sum", "amax", "amin", "max", "min", "std", "var", "logsumexp"})
_RESHAPES = frozenset(
    """view reshape flatten squeeze unsqueeze expand expand_as chunk split unbind narrow
    __getitem__ permute transpose""".split()
)
_CONCATS = frozenset({"cat", "concat", "concatenate"})


def _tensors(tree):
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


class _FieldTracer(TorchFunctionMode):
    """Follow every tensor derived from the traced input and give it a receptive field."""

    def __init__(self):
        super().__init__()
        self.states = WeakIdKeyDictionary()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [t for t in _tensors((args, kwargs)) if t in self.states]
        outputs = _tensors(out)
        if not inputs or not outputs:
            return out
        name = getattr(func, "__name__", repr(func))
        try:
            state = self._rule(name, args, kwargs, inputs, out, outputs)
        except _CannotTrace as error:
            state = _Unsupported(str(error))
        if isinstance(state, list):  # one state per output (split/chunk/unbind)
            for tensor, each in zip(outputs, state):
                self.states[tensor] = each
        else:
            for tensor in outputs:
                self.states[tensor] = state
        return out

    def _rule(self, name, args, kwargs, inputs, out, outputs):
        states = [self.states[t] for t in inputs]
        for state in states:
            if isinstance(state, _Unsupported):
                return state
        if all(state is _NON_SPATIAL for state in states):
            return _NON_SPATIAL
        if any(state is _NON_SPATIAL for state in states):
            raise _CannotTrace(f"{name!r} mixes a spatial map with a non-spatial tensor")
        x = args[0] if args and isinstance(args[0], torch.Tensor) else inputs[0]
        first = self.states.get(x, states[0])

        if name in _POINTWISE:
            shaped = [(self.states[t], t.shape) for t in inputs]
            return _merge(shaped, outputs[0].shape, f"{name!r}")
        if name == "conv2d":
            if len(inputs) > 1 or x not in self.states:
                raise _CannotTrace("conv2d whose weights depend on the input")
            kh, kw = args[1].shape[-2:] if len(args) > 1 else kwargs["weight"].shape[-2:]
            stride = _pair(_arg(args, kwargs, 3, "stride", 1))
            dilation = _pair(_arg(args, kwargs, 5, "dilation", 1))
            padding = _arg(args, kwargs, 4, "padding", 0)
            if padding == "valid":
                padding = (0, 0)
            elif padding == "same":  # PyTorch puts the odd pixel on the right/bottom
                padding = ((kh - 1) * dilation[0] // 2, (kw - 1) * dilation[1] // 2)
            padding = _pair(padding)
            return _Field(
                _local(first.h, kh, stride[0], padding[0], dilation[0]),
                _local(first.w, kw, stride[1], padding[1], dilation[1]),
            )
        if name in _LOCAL_POOLS:
            kernel = _pair(_arg(args, kwargs, 1, "kernel_size"))
            stride = _arg(args, kwargs, 2, "stride", None)
            stride = kernel if stride is None or stride == [] or stride == () else _pair(stride)
            padding = _pair(_arg(args, kwargs, 3, "padding", 0))
            dilation = (1, 1) if name == "avg_pool2d" else _pair(_arg(args, kwargs, 4, "dilation", 1))
            # ceil_mode only adds a last unit whose window is cut by the border: same formula.
            return _Field(
                _local(first.h, kernel[0], stride[0], padding[0], dilation[0]),
                _local(first.w, kernel[1], stride[1], padding[1], dilation[1]),
            )
        if name in _ADAPTIVE_POOLS:
            axes = []
            for axis, n_in, n_out in (
                (first.h, x.shape[-2], outputs[0].shape[-2]),
                (first.w, x.shape[-1], outputs[0].shape[-1]),
            ):
                if n_in == n_out:
                    axes.append(axis)
                elif n_in % n_out == 0:  # regular bins: a pool with kernel = stride = n_in/n_out
                    axes.append(_local(axis, n_in // n_out, n_in // n_out, 0, 1))
                else:  # irregular bins: report the window of the whole map (a superset)
                    axes.append(_union_of_all_units(axis, n_in))
            return _Field(*axes)
        if name == "pad":
            pad = [int(v) for v in _arg(args, kwargs, 1, "pad")]
            left, top = pad[0], pad[2] if len(pad) >= 4 else 0
            (rh, jh, ph), (rw, jw, pw) = first.h, first.w
            return _Field((rh, jh, ph + top * jh), (rw, jw, pw + left * jw))
        if name in _CONCATS:
            dim = _arg(args, kwargs, 1, "dim", 0) % outputs[0].ndim
            if dim >= outputs[0].ndim - 2:
                raise _CannotTrace(f"{name!r} along a spatial axis")
            shaped = [(self.states[t], t.shape) for t in inputs]
            return _merge(shaped, outputs[0].shape, f"{name!r}")
        if name in _REDUCTIONS:
            return self._reduction(name, args, kwargs, x, first, outputs)
        if name in _RESHAPES:
            return [self._reshaped(name, args, x, first, t) for t in outputs]
        if name in ("conv_transpose2d", "interpolate", "upsample", "pixel_shuffle", "grid_sample"):
            raise _CannotTrace(
                f"{name!r} upsamples: a unit would sit between input pixels (fractional jump)"
            )
        raise _CannotTrace(f"the receptive-field tracer has no rule for {name!r}")

    def _reduction(self, name, args, kwargs, x, first, outputs):
        dims = _arg(args, kwargs, 1, "dim", None)
        if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
            return _NON_SPATIAL
        dims = {d % x.ndim for d in ((dims,) if isinstance(dims, int) else dims)}
        spatial = {x.ndim - 2, x.ndim - 1}
        out = outputs[0]
        if not dims & spatial:  # e.g. a mean over channels: pointwise in space
            if out.ndim >= 3 and out.shape[-2:] == x.shape[-2:]:
                return first
            return _NON_SPATIAL
        if dims >= spatial and out.ndim == x.ndim:  # keepdim: one window for the whole map
            return _Field(
                _union_of_all_units(first.h, x.shape[-2]), _union_of_all_units(first.w, x.shape[-1])
            )
        if dims >= spatial:
            return _NON_SPATIAL
        raise _CannotTrace(f"{name!r} over one spatial axis only")

    def _reshaped(self, name, args, x, first, out):
        if name == "permute":
            order = args[1:] if len(args) > 2 else args[1]
            order = [d % x.ndim for d in order]
            if order[-2:] != [x.ndim - 2, x.ndim - 1]:
                raise _CannotTrace("permute moves the spatial axes (channels-last layouts)")
        if name == "transpose":
            moved = {args[1] % x.ndim, args[2] % x.ndim}
            if moved & {x.ndim - 2, x.ndim - 1}:
                raise _CannotTrace("transpose moves a spatial axis")
        if name == "__getitem__":
            index = args[1] if isinstance(args[1], tuple) else (args[1],)
            if Ellipsis in index or any(
                not (isinstance(i, slice) and i == slice(None)) for i in index[2:]
            ):
                raise _CannotTrace("indexing along a spatial axis (cropping, flipping)")
        if out.ndim >= 3 and out.shape[-2:] == x.shape[-2:] and out.shape[0] == x.shape[0]:
            return first
        if out.ndim <= 2:
            return _NON_SPATIAL
        raise _CannotTrace(f"{name!r} reshapes the spatial axes")


def _first_conv_channels(model: nn.Module) -> int:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    return 3


def receptive_field(
    model: nn.Module, input_size: tuple[int, int] = (224, 224), in_channels: int | None = None
) -> dict[str, RF]:
    """Receptive field of every module of ``model`` whose output is a spatial map.

    Returns ``{qualified_name: RF}`` in call order, for convolutions, pools,
    activations, norms, dropout/identity and containers (``features``, ``layer4``,
    ``layer4.1``); the root module is ``""`` when the whole model returns a map.
    Modules whose output is not a spatial map (``Linear``, ``Flatten``, a
    classifier head) are left out: a fully connected unit sees the whole image.
    A module called several times whose calls have different fields (ResNet's
    shared ``relu``, used inside and at the end of a block) is left out as
    ambiguous: ask for the block instead.

    The fields are traced (see the module docstring) in one forward pass of a zero
    image ``[1, in_channels, *input_size]`` (``in_channels`` defaults to the first
    convolution's) with the model temporarily in eval mode and under ``no_grad``;
    the model comes back as found. The input size matters only where it changes
    the answer: timm's dynamic "same" padding, and adaptive pooling, which is an
    identity when its output has the input's size, an exact pool when the sizes
    divide, and otherwise (irregular bins) is given the window of the whole map, a
    superset. ``ceil_mode`` pools use the same formula; their extra last unit has a
    field reaching past the image (see ``RF.box(..., clip=True)``).

    Raises ``ValueError`` naming the module and the operation when a module's
    output depends on something the tracer cannot describe (upsampling,
    channels-last permutes, unaligned branches, an unknown function).
    """
    height, width = (int(v) for v in _pair(input_size))
    if height < 1 or width < 1:
        raise ValueError(f"input_size must be positive, got {input_size}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    channels = in_channels if in_channels is not None else _first_conv_channels(model)
    x = torch.zeros(1, channels, height, width, device=device, dtype=dtype)

    tracer = _FieldTracer()
    tracer.states[x] = _Field((1, 1, 0), (1, 1, 0))
    with eval_mode(model), torch.no_grad(), record_outputs(model) as calls:
        with tracer:
            model(x)

    fields: dict[str, RF] = {}
    ambiguous: set[str] = set()
    for name, output in calls:
        if not isinstance(output, torch.Tensor) or output.ndim != 4:
            continue
        state = tracer.states.get(output)
        if state is None or state is _NON_SPATIAL:
            continue  # does not depend on the input, or is not a map
        if isinstance(state, _Unsupported):
            module = dict(model.named_modules())[name]
            raise ValueError(
                f"cannot compute the receptive field of {name or 'the model'!r} "
                f"({type(module).__name__}): {state.reason}"
            )
        field = RF(
            size=(state.h[0], state.w[0]),
            stride=(state.h[1], state.w[1]),
            padding=(state.h[2], state.w[2]),
            input_size=(height, width),
        )
        if name in fields and fields[name] != field:
            ambiguous.add(name)
        fields[name] = field
    for name in ambiguous:
        del fields[name]
    return fields


def empirical_receptive_field(
    model: nn.Module,
    layer: nn.Module | str,
    unit: tuple[int, int, int],
    input_size: tuple[int, int] = (224, 224),
    x: torch.Tensor | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Input pixels whose gradient is nonzero for one unit: a ``BoolTensor [H, W]``.

    ``unit = (channel, i, j)`` of ``layer``'s output; a layer called several times
    per forward pass (ResNet's shared ``relu``) is ambiguous and raises ``ValueError``. The gradient ``d layer(x)[0, channel, i, j] / d x``
    comes from ``torch.autograd.grad`` with the model temporarily in eval mode; a
    pixel is marked when the gradient is nonzero in any colour channel.

    The input defaults to a random positive image ``U[0.5, 1.5)`` of ``input_size``
    (seeded by ``seed``; positive so ReLUs are not all off, random so max pools
    have no ties); pass ``x`` (a ``[1, C, H, W]`` batch) to probe a real image.

    The gradient shows the pixels the unit *actually* depends on at this input,
    which can be smaller than the analytic field of :func:`receptive_field`: a
    ReLU that is off, a saturated ReLU6, a max pool (its gradient goes to one
    element of each window) or a zero weight cuts paths. The analytic box always contains the
    result; on a chain of convolutions without nonlinearity (or with positive
    weights, positive inputs and average pools) the two are equal, up to the
    border, where the analytic box reaches into the padding.
    """
    name, _ = resolve_layer(model, layer)
    if not (isinstance(unit, (tuple, list)) and len(unit) == 3):
        raise TypeError(f"unit must be a (channel, i, j) triple, got {unit!r}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    if x is None:
        height, width = _pair(input_size)
        generator = torch.Generator().manual_seed(seed)
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
