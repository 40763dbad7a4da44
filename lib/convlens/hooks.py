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

from ._checks import check_model, resolve_layer
from .layers import (
    RECTIFIER_FUNCTIONS,
    RECTIFIER_MODULES,
    REFUSED_NAMES,
    rectifier_call,
    refused_activation,
)

__all__ = [
    "RELU_RULES", "capture", "count_hooks", "eval_mode", "only_call", "record_calls",
    "record_outputs", "relu_backward_rule", "stop_after",
]


@contextmanager
def capture(
    model: nn.Module, layers: nn.Module | str | Sequence[nn.Module | str]
) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Record the output of each layer on every call, while the block runs.

    A module called several times in one forward pass (torchvision ResNet's `relu`)
    appends once per call. The recorded tensor is the module's real output, still attached
    to the autograd graph, so `torch.autograd.grad(score, recorded)` gives the gradient with
    respect to it. The hook hands the *rest of the network* a clone instead: an in-place
    operation downstream (`ReLU(inplace=True)`) then modifies the clone and never the
    recorded activation. Without this, the stored map of a conv followed by an in-place ReLU
    silently becomes the post-ReLU map, and autograd raises a version-counter error. The
    hooks are removed when the block ends, also when it raises.

    Args:
        model: the network.
        layers: a module of `model` or its qualified name, or a sequence of them.

    Yields:
        `{qualified_name: [output of call 1, output of call 2, ...]}`, filled as the model
        runs (each output as the layer returns it, e.g. `[N, K, h, w]`).

    Raises:
        TypeError: a layer is neither a module nor a name, or returns something other than
            a tensor (raised during the pass).
        ValueError: a layer is not in `model`.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens.hooks import capture, count_hooks
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True))
        >>> with capture(model, "0") as records:
        ...     out = model(torch.randn(1, 3, 8, 8))
        >>> len(records["0"]), records["0"][0].shape
        (1, torch.Size([1, 4, 6, 6]))
        >>> bool((records["0"][0] < 0).any())  # taken before the in-place ReLU
        True
        >>> count_hooks(model)  # none left behind
        0
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
    """The output of `name` from a [`capture`][convlens.hooks.capture] record, which must hold
    exactly one call.

    Args:
        records: what `capture` yielded.
        name: the qualified name of one of its layers.

    Returns:
        That layer's output tensor (e.g. `[N, K, h, w]`).

    Raises:
        KeyError: `name` was not captured.
        ValueError: the layer was not called, or was called more than once (a shared module
            such as ResNet's `relu`: its output is ambiguous).

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens.hooks import capture, only_call
        >>> relu = nn.ReLU()
        >>> model = nn.Sequential(nn.Conv2d(3, 3, 1), relu, nn.Conv2d(3, 3, 1), relu)
        >>> with capture(model, ["0", "1"]) as records:
        ...     _ = model(torch.randn(1, 3, 4, 4))
        >>> only_call(records, "0").shape
        torch.Size([1, 3, 4, 4])
        >>> only_call(records, "1")
        Traceback (most recent call last):
        ...
        ValueError: layer '1' was called 2 times in one forward pass ...
    """
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
"""The rules [`relu_backward_rule`][convlens.hooks.relu_backward_rule] applies: `"deconvnet"`
(only positive gradients pass) and `"guided"` (the forward gate and a positive gradient).
"""

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


def _unsupported_message(rule: str, found: list[tuple[str, str]]) -> str:
    where = "; ".join(f"{activation} at {name or '<model>'!r}" for name, activation in found[:4])
    more = f" and {len(found) - 4} more" if len(found) > 4 else ""
    return (f"the {rule!r} backward rule is defined for ReLU and ReLU6 only, and this model "
            f"uses another activation: {where}{more}. convlens refuses rather than return a "
            "plain gradient under that name (use convlens.guided.rectifier_support(model) "
            "to ask first)")


class _FunctionalRectifierAlarm(TorchFunctionMode):
    """Apply the rule to functional rectifier calls (``F.relu``, ``torch.relu_``,
    ``x.relu()``, ``F.relu6``, ``F.hardtanh(x, 0, u)``, ``F.threshold(x, 0, 0)``) made
    outside a hooked rectifier module, and raise (or, in report mode, record) on any
    other activation (SiLU, Hardswish, GELU ...), naming the module that called it."""

    def __init__(self, rule: str, hooked_depth: list[int], module_stack: list[str],
                 counts: dict[str, int], report: list[tuple[str, str]] | None):
        super().__init__()
        self.rule, self.hooked_depth, self.module_stack = rule, hooked_depth, module_stack
        self.counts, self.report = counts, report

    def _refuse(self, activation: str) -> None:
        where = self.module_stack[-1] if self.module_stack else ""
        if self.report is None:
            raise ValueError(_unsupported_message(self.rule, [(where, activation)]))
        if (where, activation) not in self.report and not any(
                name == where for name, _ in self.report):
            self.report.append((where, activation))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if self.hooked_depth[0] == 0:
            if name in RECTIFIER_FUNCTIONS:
                call = rectifier_call(name, args, kwargs)
                if call is None:
                    self._refuse(f"{name} (not a rectifier with these arguments)")
                else:
                    s, upper, inplace = call
                    self.counts["functional"] += 1
                    result = _RectifierWithRule.apply(s, self.rule, upper)
                    if inplace:  # keep the caller's tensor identity: s now holds the result
                        return s.copy_(result)
                    return result
            elif name in REFUSED_NAMES:
                self._refuse(f"functional {name}")
        return func(*args, **kwargs)


def _activation_modules(model: nn.Module) -> list[tuple[str, str]]:
    """``(qualified name, class name)`` of every activation module the rules refuse."""
    found = [(name, refused_activation(module)) for name, module in model.named_modules()]
    return [(name, kind) for name, kind in found if kind is not None]


@contextmanager
def relu_backward_rule(model: nn.Module, rule: str,
                       _report: list[tuple[str, str]] | None = None) -> Iterator[dict]:
    r"""While the block runs, every rectifier of `model` back-propagates by `rule`, on every call.

    With $s$ the rectifier's input and $g$ the incoming gradient, `"deconvnet"` passes
    $\max(0, g)$ and `"guided"` passes $\mathbb{1}[0 < s < u] \max(0, g)$ ($u$ is
    $\infty$ for ReLU, 6 for ReLU6). Rectifiers are `nn.ReLU`/`nn.ReLU6` modules (and
    subclasses, e.g. timm's) and functional calls (`F.relu`, `torch.relu`, `x.relu()`, their
    in-place forms, `F.relu6`, `F.hardtanh(x, 0, u)`, `F.threshold(x, 0, 0)`), as
    torchvision's GoogLeNet, Inception-v3 and DenseNet make.

    - Modules: a forward pre-hook computes the rectifier's output through the rule's
      `autograd.Function` from the module's input *before* the module runs (an in-place ReLU
      then overwrites its input, which the rule no longer needs); the forward hook hands that
      output on instead of the module's own.
    - Functional calls: a `TorchFunctionMode` active during the pass replaces each call by
      the rule's function (an in-place call copies the result into its input, so the caller's
      tensor holds it as before).

    Gating non-linearities (sigmoid, hard-sigmoid, tanh, softmax) and every other layer
    back-propagate as usual, as in the papers' networks. A rectifier written another way
    (`x.clamp(min=0)`, `torch.maximum(x, 0)`) is not seen. Hooks are removed when the block
    ends; nothing else is touched.

    Args:
        model: the network.
        rule: one of [`RELU_RULES`][convlens.hooks.RELU_RULES].

    Yields:
        `{"modules": n, "functional": n}`, the count of rule applications so far.

    Raises:
        ValueError: `rule` is unknown; the model has another activation (an
            `nn.SiLU`/`nn.Hardswish`/`nn.GELU`/... module, timm's own classes, or a
            functional `silu`/`hardswish`/`gelu`/... call), named with the module's qualified
            name, before the pass for modules and during it for functional calls; or no
            rectifier ran in the pass.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens.hooks import relu_backward_rule
        >>> model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
        >>> x = torch.randn(3, 2, requires_grad=True)
        >>> with relu_backward_rule(model, "deconvnet") as counts:
        ...     (g,) = torch.autograd.grad(model(x).sum(), x)
        >>> counts, g.shape
        ({'modules': 1, 'functional': 0}, torch.Size([3, 2]))
        >>> with relu_backward_rule(nn.Sequential(nn.Linear(2, 2), nn.SiLU()), "guided"):
        ...     pass
        Traceback (most recent call last):
        ...
        ValueError: the 'guided' backward rule is defined for ReLU and ReLU6 only, ...
    """
    if rule not in RELU_RULES:
        raise ValueError(f"rule must be one of {RELU_RULES}, got {rule!r}")
    others = _activation_modules(model)
    if others and _report is None:
        raise ValueError(_unsupported_message(rule, others))
    if _report is not None:
        _report.extend(others)
    alarm = _FunctionalRectifierAlarm(rule, [0], [], {"modules": 0, "functional": 0}, _report)
    handles = []
    try:
        for name, module in model.named_modules():
            handles += _track_name(name, module, alarm.module_stack)
        for _, module in model.named_modules():
            if isinstance(module, RECTIFIER_MODULES):
                handles += _apply_rule(module, alarm)
        with alarm:
            yield alarm.counts
        if _report is None and alarm.counts["modules"] + alarm.counts["functional"] == 0:
            raise ValueError(
                f"no nn.ReLU/nn.ReLU6 module or functional relu call ran in the model, so the "
                f"{rule!r} backward rule had nothing to apply to")
    finally:
        for handle in handles:
            handle.remove()


def _track_name(name: str, module: nn.Module, module_stack: list[str]) -> list:
    """Hooks that keep ``name`` on ``module_stack`` while ``module`` runs (so a functional
    call can be reported with the module that made it); their handles."""

    def enter(module, args):
        module_stack.append(name)

    def leave(module, args, output):
        module_stack.pop()

    return [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]


def _apply_rule(module: nn.Module, alarm: _FunctionalRectifierAlarm) -> list:
    """Hooks that make the rectifier ``module`` compute through ``alarm.rule`` on every
    call: the pre-hook computes the output from the input before the module runs (an
    in-place ReLU then overwrites an input the rule no longer needs), the hook hands it on
    instead of the module's own. While it runs, functional calls inside are left alone."""
    upper = float(module.max_val) if isinstance(module, nn.ReLU6) else None
    outputs: list[torch.Tensor] = []  # one per call in flight

    def pre_hook(module, args):
        outputs.append(_RectifierWithRule.apply(args[0], alarm.rule, upper))
        alarm.counts["modules"] += 1
        alarm.hooked_depth[0] += 1

    def hook(module, args, output):
        alarm.hooked_depth[0] -= 1
        return outputs.pop()

    return [module.register_forward_pre_hook(pre_hook), module.register_forward_hook(hook)]


# --- Bookkeeping for shape/identity analyses (receptive fields) -------------------------


@contextmanager
def record_outputs(model: nn.Module) -> Iterator[list[tuple[str, object]]]:
    """Record `(qualified_name, output)` of every call of every module, while the block runs.

    Outputs are the real objects, not clones, so an in-place operation downstream may
    still change their values: this is meant for bookkeeping on identities and shapes
    (which tensor came out of which module), not for reading activations, which is
    [`capture`][convlens.hooks.capture]'s job. Hooks are removed when the block ends.

    Args:
        model: the network.

    Yields:
        A list that fills in the order the calls *return* (children before the container
        that holds them; the root module, name `""`, last).

    Raises:
        TypeError: `model` is not an `nn.Module`.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens.hooks import record_outputs
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> with record_outputs(model) as calls:
        ...     _ = model(torch.randn(1, 3, 8, 8))
        >>> [(name, tuple(output.shape)) for name, output in calls]
        [('0', (1, 4, 6, 6)), ('1', (1, 4, 6, 6)), ('', (1, 4, 6, 6))]
    """
    check_model(model)
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
def record_calls(model: nn.Module) -> Iterator[list[tuple[str, int, object]]]:
    """Record every call of every module with the rank at which it started, while the block runs.

    Like [`record_outputs`][convlens.hooks.record_outputs], and for the same bookkeeping
    (outputs are the real objects, not clones), but each entry also says when its call
    *started*: a container starts before the children it calls and returns after them, so
    the start ranks give the nesting that the return order alone does not.
    [`forward_calls`][convlens.layers.forward_calls] reads a forward pass with it. Hooks are
    removed when the block ends, also when it raises.

    Args:
        model: the network.

    Yields:
        A list of `(qualified_name, start rank, output)` that fills in the order the calls
        *return*; start ranks count from 0 (the first call to start, usually the root
        module, name `""`).

    Raises no exception of its own.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens.hooks import record_calls
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.ReLU()))
        >>> with record_calls(model) as calls:
        ...     _ = model(torch.randn(1, 3, 8, 8))
        >>> [(name, started) for name, started, _ in calls]
        [('0', 1), ('1.0', 3), ('1', 2), ('', 0)]
    """
    calls: list[tuple[str, int, object]] = []
    running: list[int] = []  # start ranks of the calls in flight, innermost last
    started = [0]
    handles = []

    def make_hooks(name: str):
        def enter(module, inputs):
            running.append(started[0])
            started[0] += 1

        def leave(module, inputs, output):
            calls.append((name, running.pop(), output))

        return enter, leave

    try:
        for name, module in model.named_modules():
            enter, leave = make_hooks(name)
            handles.append(module.register_forward_pre_hook(enter))
            handles.append(module.register_forward_hook(leave))
        yield calls
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode while the block runs; restore each flag after.

    Batch norm then uses its running statistics (a pointwise affine map) and does not update
    them, and dropout is off. Each module's own `training` flag is restored when the block
    ends, so a model that mixes modes comes back exactly as it was.

    Args:
        model: the network.

    Yields:
        `model` itself, in eval mode.

    Raises:
        TypeError: `model` is not an `nn.Module`.

    Examples:
        >>> from torch import nn
        >>> from convlens.hooks import eval_mode
        >>> model = nn.Sequential(nn.BatchNorm2d(3), nn.Dropout()).train()
        >>> _ = model[1].eval()  # a model that mixes modes
        >>> with eval_mode(model):
        ...     print([m.training for m in model.modules()])
        [False, False, False]
        >>> [m.training for m in model.modules()]
        [True, True, False]
    """
    check_model(model)
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
    """End the forward pass as soon as `layer` has returned (its first call).

    For techniques that need only a layer's activation: the rest of the network is not
    computed. Combine with [`capture`][convlens.hooks.capture] entered *first* (its hook then
    runs before this one). The statements after `model(x)` inside the block do not run. The
    hook is removed when the block ends.

    Args:
        model: the network.
        layer: a module of `model` or its qualified name.

    Yields:
        None; the block ends right after `layer` returns.

    Raises:
        TypeError: `layer` is neither a module nor a name.
        ValueError: `layer` is not in `model`.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens.hooks import capture, stop_after
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(),
        ...                       nn.Linear(1, 2))  # never runs: it would fail on these maps
        >>> with capture(model, "0") as records, stop_after(model, "0"):
        ...     model(torch.randn(1, 3, 8, 8))
        >>> records["0"][0].shape
        torch.Size([1, 4, 6, 6])
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
    """The number of hooks registered on `model` and all its submodules.

    Counts forward hooks, forward pre-hooks, backward hooks and backward pre-hooks of every
    module (`model.modules()`; a module shared by two parents is counted once). Global hooks
    (`torch.nn.modules.module.register_module_forward_hook`) belong to no model and are not
    counted. Use it to check that a technique left a model as found: the count is the same
    before and after the call.

    Args:
        model: the network.

    Returns:
        The count, an int.

    Raises:
        TypeError: `model` is not an `nn.Module`.

    Examples:
        >>> from torch import nn
        >>> from convlens.hooks import count_hooks
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3))
        >>> handle = model[0].register_forward_hook(lambda module, args, output: None)
        >>> count_hooks(model)
        1
        >>> handle.remove()
        >>> count_hooks(model)
        0
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return sum(
        len(module._forward_hooks) + len(module._forward_pre_hooks)
        + len(module._backward_hooks) + len(module._backward_pre_hooks)
        for module in model.modules()
    )
