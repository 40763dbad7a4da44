"""Tracing: the model as a ``torch.fx`` graph, and the unoccluded value of every node.

The engine runs the graph node by node, so it must know each node's operation; ``torch.fx``
records them without running the model. timm's ``Conv2dSame`` and ``BatchNormAct2d`` stay
whole (leaf modules): the engine knows them as a sliding layer and a pointwise one. A model
that cannot be traced (data-dependent control flow, say) cannot be proven local:
:class:`NotLocal` says why, and the caller uses whole copies instead.
"""

from __future__ import annotations

import operator

import torch
from torch import nn

from ..layers import timm_class


class NotLocal(Exception):
    """The model (or part of it) cannot be run incrementally; the message says why."""


class _Tracer(torch.fx.Tracer):
    def is_leaf_module(self, m, qualname):
        whole = (timm_class("Conv2dSame"), timm_class("BatchNormAct2d"))
        return any(type(m) is kind for kind in whole if kind is not None) or (
            super().is_leaf_module(m, qualname))


#: in-place functions whose name does not end with "_"
_INPLACE_OPERATORS = (operator.iadd, operator.imul)


def logits(out) -> torch.Tensor:
    """``out`` if it is a logits tensor [N, classes]; else a ``ValueError`` naming its shape."""
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the model must return logits of shape [N, classes], got {shape}")
    return out


class Traced:
    """A model's graph (``nodes``), the module each ``call_module`` node runs (``modules``,
    a private table: the kernel choice may put a folded copy in place of a module, the
    model's own modules are never changed) and, after :meth:`run_base`, the unoccluded value
    of every node (``base``) and the logits (``base_logits``)."""

    def __init__(self, model: nn.Module):
        try:
            graph = _Tracer().trace(model)
            self.gm = torch.fx.GraphModule(model, graph)
        except Exception as error:  # noqa: BLE001 - any tracing failure means: not provable
            message = str(error).splitlines()[0] if str(error) else ""
            raise NotLocal(f"torch.fx cannot trace the model ({type(error).__name__}: "
                           f"{message})") from None
        self.modules = dict(self.gm.named_modules())
        self.nodes = list(graph.nodes)
        self.base: dict = {}
        self.base_logits: torch.Tensor | None = None

    def call(self, node, args, kwargs):
        """Run the operation of ``node`` on ``args`` and ``kwargs``."""
        if node.op == "call_module":
            return self.modules[node.target](*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        return getattr(args[0], node.target)(*args[1:], **kwargs)

    def is_inplace(self, node) -> bool:
        """Whether ``node`` writes over its first input."""
        if node.op == "call_module":
            return bool(getattr(self.modules[node.target], "inplace", False))
        if node.op == "call_method":
            return node.target.endswith("_")
        if node.op == "call_function":
            return bool(node.kwargs.get("inplace", False)) or node.target in (
                _INPLACE_OPERATORS) or getattr(node.target, "__name__", "").endswith("_")
        return False

    def is_map(self, node, batch: int) -> bool:
        """Whether the unoccluded value of ``node`` is a batch of ``batch`` maps [N, C, H, W]."""
        value = self.base.get(node)
        return isinstance(value, torch.Tensor) and value.dim() == 4 and value.shape[0] == batch

    def run_base(self, x: torch.Tensor) -> None:
        """The unoccluded value of every node, from one pass of ``x`` through the graph (an
        in-place operation gets a copy of its input, so every stored value stays as it was)."""
        placeholders = [n for n in self.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise NotLocal(f"the traced forward takes {len(placeholders)} inputs, not 1")
        env = {}
        for node in self.nodes:
            if node.op == "placeholder":
                env[node] = x
            elif node.op == "get_attr":
                env[node] = _fetch(self.gm, node.target)
            elif node.op == "output":
                self.base_logits = logits(torch.fx.node.map_arg(node.args[0], env.get))
            else:
                args = torch.fx.node.map_arg(node.args, env.get)
                kwargs = torch.fx.node.map_arg(node.kwargs, env.get)
                if self.is_inplace(node):
                    args = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)
                env[node] = self.call(node, args, kwargs)
        self.base = env

    def last_uses(self) -> dict[int, list]:
        """Step index -> the nodes whose values are not read after that step (to free them)."""
        last = {}
        for index, node in enumerate(self.nodes):
            for a in node.all_input_nodes:
                last[a] = index
        free: dict[int, list] = {}
        for a, index in last.items():
            free.setdefault(index, []).append(a)
        return free


def _fetch(gm: nn.Module, target: str):
    """The attribute ``target`` ("a.b.c") of ``gm``: a parameter, buffer or constant."""
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj
