"""The one place where convlens touches a model's hooks (public: lessons use it too).

Every technique that needs a layer's output goes through :func:`capture` (and
:func:`only_call` to read the one call of one layer). Every context manager here
promises to leave the model exactly as it found it: every hook handle is removed in
``finally`` (also when the forward pass raises), and no attribute is ever set on a
module. :func:`count_hooks` checks that promise from outside.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ._checks import resolve_layer

__all__ = [
    "RELU_RULES", "capture", "count_hooks", "eval_mode", "only_call", "record_outputs",
    "relu_backward_rule", "stop_after",
]


@contextmanager
def capture(
    model: nn.Module, layers: nn.Module | str | Sequence[nn.Module | str]
) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Record the output of each layer on every call, while the block runs.

    Yields a dict ``{qualified_name: [output of call 1, output of call 2, ...]}``;
    a module called several times in one forward pass (torchvision ResNet's
    ``relu``) appends once per call.

    The recorded tensor is the module's real output, still attached to the
    autograd graph, so ``torch.autograd.grad(score, recorded)`` gives the
    gradient with respect to it. The hook hands the *rest of the network* a
    clone instead: an in-place operation downstream (``ReLU(inplace=True)``)
    then modifies the clone and never the recorded activation. Without this, the
    stored map of a conv followed by an in-place ReLU silently becomes the
    post-ReLU map, and autograd raises a version-counter error.
    """
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    resolved = [resolve_layer(model, layer) for layer in layers]
    records: dict[str, list[torch.Tensor]] = {name: [] for name, _ in resolved}
    handles = []

    def make_hook(name: str):
        def hook(module, inputs, output):
            if not isinstance(output, torch.Tensor):
                raise TypeError(
                    f"layer {name!r} returns {type(output).__name__}, not a tensor; "
                    "choose a layer whose output is a feature map"
                )
            records[name].append(output)
            return output.clone()

        return hook

    try:
        for name, module in resolved:
            handles.append(module.register_forward_hook(make_hook(name)))
        yield records
    finally:
        for handle in handles:
            handle.remove()


def only_call(records: dict[str, list[torch.Tensor]], name: str) -> torch.Tensor:
    """The output of ``name`` from a :func:`capture` record, which must hold exactly one call."""
    calls = records[name]
    if len(calls) == 0:
        raise ValueError(f"layer {name!r} was not called during the forward pass")
    if len(calls) > 1:
        raise ValueError(
            f"layer {name!r} was called {len(calls)} times in one forward pass (a shared "
            "module, e.g. ResNet's relu), so its output is ambiguous; choose a layer "
            "called once, e.g. the block that contains it"
        )
    return calls[0]


# --- ReLU backward-rule swap (deconvnet, guided backprop) -------------------------------

RELU_RULES = ("deconvnet", "guided")

# Names under which a rectifier reaches PyTorch when called as a function
# (F.relu, torch.relu_, x.relu(), F.relu6, F.hardtanh, F.threshold ...).
_FUNCTIONAL_RECTIFIER_NAMES = frozenset(
    {"relu", "relu_", "relu6", "hardtanh", "hardtanh_", "threshold", "threshold_"}
)


class _RectifierWithRule(torch.autograd.Function):
    """Forward: ``clamp(s, 0, upper)``. Backward by ``rule``, with g the incoming gradient:

    - ``"deconvnet"``: ``max(0, g)`` (the forward input is ignored),
    - ``"guided"``: ``1{0 < s < upper} * max(0, g)`` (``upper`` is None for ReLU, 6 for ReLU6).
    """

    @staticmethod
    def forward(ctx, s, rule, upper):
        ctx.rule = rule
        if rule == "guided":
            open_gate = s > 0 if upper is None else (s > 0) & (s < upper)
            ctx.save_for_backward(open_gate)
        return s.clamp(min=0) if upper is None else s.clamp(0, upper)

    @staticmethod
    def backward(ctx, grad):
        passed = grad.clamp(min=0)
        if ctx.rule == "guided":
            (open_gate,) = ctx.saved_tensors
            passed = passed.masked_fill(~open_gate, 0)
        return passed, None, None


class _FunctionalRectifierAlarm(TorchFunctionMode):
    """Raise when a rectifier runs outside a hooked module: its rule could not be swapped."""

    def __init__(self, hooked_depth: list[int]):
        super().__init__()
        self.hooked_depth = hooked_depth

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in _FUNCTIONAL_RECTIFIER_NAMES and self.hooked_depth[0] == 0:
            raise ValueError(
                f"model calls the functional rectifier {name!r} (F.relu / torch.relu / "
                "x.relu() / F.relu6 ...) outside an nn.ReLU or nn.ReLU6 module; its backward "
                "rule cannot be swapped, so deconvnet/guided backprop would silently be the "
                "plain gradient there. Use nn.ReLU modules in the model."
            )
        return func(*args, **(kwargs or {}))


@contextmanager
def relu_backward_rule(model: nn.Module, rule: str) -> Iterator[None]:
    """While the block runs, every ``nn.ReLU``/``nn.ReLU6`` of ``model`` (and subclasses,
    e.g. timm's) back-propagates by ``rule`` (``"deconvnet"`` or ``"guided"``, see
    :class:`_RectifierWithRule`), on every call of the module.

    A forward pre-hook computes the rectifier's output through the rule's
    ``autograd.Function`` from the module's input *before* the module runs (an
    in-place ReLU then overwrites its input, which the rule no longer needs); the
    forward hook hands that output on instead of the module's own. A module called
    several times (ResNet's shared ``relu``) gets the rule on each call. Functional
    rectifier calls (``F.relu``) cannot be hooked: they raise ``ValueError`` during
    the forward pass. Hooks are removed in ``finally``; nothing else is touched.
    """
    if rule not in RELU_RULES:
        raise ValueError(f"rule must be one of {RELU_RULES}, got {rule!r}")
    rectifiers = [m for _, m in model.named_modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    if not rectifiers:
        raise ValueError(
            f"model has no nn.ReLU or nn.ReLU6 module, so the {rule!r} backward rule has "
            "nothing to apply to (functional F.relu calls cannot be hooked)"
        )
    hooked_depth = [0]  # > 0 while a hooked rectifier module is running
    handles = []

    def make_hooks(module: nn.Module):
        upper = float(module.max_val) if isinstance(module, nn.ReLU6) else None
        outputs: list[torch.Tensor] = []  # one per call in flight

        def pre_hook(module, args):
            outputs.append(_RectifierWithRule.apply(args[0], rule, upper))
            hooked_depth[0] += 1

        def hook(module, args, output):
            hooked_depth[0] -= 1
            return outputs.pop()

        return pre_hook, hook

    try:
        for module in rectifiers:
            pre_hook, hook = make_hooks(module)
            handles.append(module.register_forward_pre_hook(pre_hook))
            handles.append(module.register_forward_hook(hook))
        with _FunctionalRectifierAlarm(hooked_depth):
            yield
    finally:
        for handle in handles:
            handle.remove()


# --- Bookkeeping for shape/identity analyses (receptive fields) -------------------------


@contextmanager
def record_outputs(model: nn.Module) -> Iterator[list[tuple[str, object]]]:
    """Record ``(qualified_name, output)`` of every call of every module, while the block runs.

    Yields a list that fills in the order the calls *return* (children before the
    container that holds them; the root module, name ``""``, last). Outputs are the
    real objects, not clones, so an in-place operation downstream may still change
    their values: this is meant for bookkeeping on identities and shapes (which
    tensor came out of which module), not for reading activations, which is
    :func:`capture`'s job. Hooks are removed in ``finally``.
    """
    calls: list[tuple[str, object]] = []
    handles = []

    def make_hook(name: str):
        def hook(module, inputs, output):
            calls.append((name, output))

        return hook

    try:
        for name, module in model.named_modules():
            handles.append(module.register_forward_hook(make_hook(name)))
        yield calls
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode while the block runs; restore each flag after.

    Batch norm then uses its running statistics (a pointwise affine map) and does
    not update them, and dropout is off. Each module's own ``training`` flag is
    restored in ``finally``, so a model that mixes modes comes back exactly as it was.
    """
    flags = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


class _StopForward(Exception):
    """Raised by :func:`stop_after`'s hook; never escapes the ``with`` block."""


@contextmanager
def stop_after(model: nn.Module, layer: nn.Module | str) -> Iterator[None]:
    """End the forward pass as soon as ``layer`` has returned (its first call).

    For techniques that need only a layer's activation: the rest of the network
    is not computed. Combine with :func:`capture` entered *first* (its hook then
    runs before this one)::

        with capture(model, name) as records, stop_after(model, name):
            model(x)          # stops right after `name`; the with block ends here

    The statements after ``model(x)`` inside the block do not run. The hook is
    removed in ``finally``.
    """
    _, module = resolve_layer(model, layer)

    def hook(module, inputs, output):
        raise _StopForward

    handle = module.register_forward_hook(hook)
    try:
        yield
    except _StopForward:
        pass
    finally:
        handle.remove()


def count_hooks(model: nn.Module) -> int:
    """The number of hooks registered on ``model`` and all its submodules.

    Counts forward hooks, forward pre-hooks, backward hooks and backward pre-hooks of
    every module (``model.modules()``; a module shared by two parents is counted once).
    Global hooks (``torch.nn.modules.module.register_module_forward_hook``) belong to no
    model and are not counted. Use it to check that a technique left a model as found:
    the count is the same before and after the call.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return sum(
        len(module._forward_hooks) + len(module._forward_pre_hooks)
        + len(module._backward_hooks) + len(module._backward_pre_hooks)
        for module in model.modules()
    )
