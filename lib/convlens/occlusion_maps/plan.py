"""The plan: for one block of window positions, what each node of the graph computes per copy.

Each node gets one typed step (the classes below). A *local* step holds the :class:`Region`
its output recomputes for every position; a node is local when all it does is pointwise or
slides a window over maps whose changed rectangles are known. The first node that is not
(global pooling, flatten, a layer whose changed rectangle covers most of its map) runs on full
maps, and so does every node after it that reads it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ACTIVATION_FUNCTIONS, is_pointwise_module
from . import crops
from .crops import Reader
from .tracing import NotLocal, Traced
from .windows import Region, projected, union

#: once a layer's changed rectangle covers this fraction of its map, that layer and the rest of
#: the network run on full maps. A convolution with at least ``DENSE_MACS`` multiply-adds per
#: output value ("dense") saves more by cropping than a depthwise convolution, a pooling or an
#: addition ("light"), whose crops cost about what they save: dense layers stay local longer.
FULL_FRACTION = {"dense": 0.75, "light": 0.5}
DENSE_MACS = 32

# Functions and methods the engine runs on patches: activations (convlens.layers), clamping
# and layout no-ops; and the arithmetic that combines two local maps.
_POINTWISE_FUNCTIONS = {f for name in ACTIVATION_FUNCTIONS for f in
                        (getattr(F, name, None), getattr(torch, name, None)) if f is not None}
_POINTWISE_FUNCTIONS.add(torch.clamp)
_POINTWISE_METHODS = {name for name in ACTIVATION_FUNCTIONS if hasattr(torch.Tensor, name)} | {
    "clamp", "clamp_", "clamp_min", "clamp_min_", "contiguous"}
_BINARY = {operator.add, operator.iadd, operator.mul, operator.imul, operator.sub,
           torch.add, torch.mul, torch.sub}
_BINARY_METHODS = {"add", "add_", "mul", "mul_", "sub"}


# ---- steps -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Step:
    """What ``node`` computes for the occluded copies."""

    node: torch.fx.Node


class ConstantStep(Step):
    """Does not depend on the input: its unoccluded value serves every copy."""


class FullStep(Step):
    """Runs on the full maps of the copies (patches pasted into the unoccluded maps)."""


class OutputStep(Step):
    """The graph's output: the logits of the copies."""


@dataclass(frozen=True, eq=False)
class InputStep(Step):
    """The image: ``region`` is the window, filled with the fill value."""

    region: Region


@dataclass(frozen=True, eq=False)
class PointwiseStep(Step):
    """Pointwise on its one local input (other inputs constant scalars): the same region."""

    region: Region


@dataclass(frozen=True, eq=False)
class SlidingStep(Step):
    """A convolution or pooling: ``run`` on the crop that ``reader`` takes of its input."""

    region: Region
    run: Callable[[torch.Tensor], torch.Tensor]
    reader: Reader


@dataclass(frozen=True, eq=False)
class BinaryStep(Step):
    """Adds, subtracts or multiplies two local maps over the union of their regions, read
    by one :class:`Reader` per input node."""

    region: Region
    readers: dict


#: layers that recompute a region (the local layers a plan counts)
LAYER_STEPS = (PointwiseStep, SlidingStep, BinaryStep)
#: steps whose output differs from the unoccluded one inside a known region
LOCAL_STEPS = (InputStep, *LAYER_STEPS)


@dataclass(eq=False)
class Block:
    """Window positions (indices into the row-major grid) planned together, with their
    ``steps`` (one per node), ``fraction``: the share of a full pass's multiply-adds they
    compute per copy, ``local``: how many layers run locally, ``stop``: the last of them."""

    positions: torch.Tensor
    steps: list[Step]
    fraction: float
    local: int
    stop: str


def full_fraction(m: nn.Module | None) -> float:
    """``FULL_FRACTION`` for layer ``m`` (None: an addition or multiplication)."""
    dense = isinstance(m, nn.Conv2d) and (
        m.in_channels // m.groups * math.prod(m.kernel_size) >= DENSE_MACS)
    return FULL_FRACTION["dense" if dense else "light"]


# ---- planning ----------------------------------------------------------------------------


class Planner:
    """Plans blocks of positions for one traced model (after its unoccluded pass), one image
    batch ``x`` and the occluding window at every position (``window``)."""

    def __init__(self, traced: Traced, x: torch.Tensor, window: Region):
        self.traced, self.batch, self.window = traced, x.shape[0], window
        self._padded_maps: dict = {}  # (node, pads, value) -> padded map, shared by blocks

    def plan(self, positions: torch.Tensor) -> Block:
        """The steps of every node for the window at ``positions``."""
        steps: dict = {}
        macs_total = macs_done = 0.0
        for node in self.traced.nodes:
            step = steps[node] = self._step(node, positions, steps)
            macs = self._macs(node)
            if macs:
                macs_total += macs
                macs_done += macs * self._share(node, step)
        local = [s for s in steps.values() if isinstance(s, LAYER_STEPS)]
        if not local:
            raise NotLocal("no local layer at the input")
        return Block(positions, list(steps.values()),
                     macs_done / macs_total if macs_total else 1.0, len(local), local[-1].node.name)

    def _step(self, node, positions, steps: dict) -> Step:
        inputs = node.all_input_nodes
        local_inputs = [a for a in inputs if isinstance(steps[a], LOCAL_STEPS)]
        if node.op == "placeholder":
            return InputStep(node, self.window.at(positions))
        if node.op == "get_attr" or (node.op != "output" and all(
                isinstance(steps[a], ConstantStep) for a in inputs)):
            return ConstantStep(node)
        if node.op == "output":
            return OutputStep(node)
        if local_inputs and self.traced.is_inplace(node) and any(len(a.users) > 1 for a in inputs):
            raise NotLocal(f"in-place {node.name} writes over a value used elsewhere")
        if not local_inputs or not self.traced.is_map(node, self.batch):
            return FullStep(node)
        if node.op == "call_module":
            return self._module_step(node, steps)
        return self._function_step(node, local_inputs, steps)

    def _module_step(self, node, steps: dict) -> Step:
        """A module reading one local input: pointwise, sliding, or full."""
        if len(node.all_input_nodes) != 1 or node.kwargs:
            return FullStep(node)
        m, (source_node,) = self.traced.modules[node.target], node.all_input_nodes
        source = steps[source_node].region
        if is_pointwise_module(m):
            return PointwiseStep(node, source)
        in_h, in_w = self.traced.base[source_node].shape[-2:]
        sliding = crops.sliding_kernel(m, (in_h, in_w))
        if sliding is None:
            return FullStep(node)
        rows, cols = sliding.geometry
        if all(g.kernel == 1 and g.stride == 1 and g.before == 0 for g in (rows, cols)):
            return PointwiseStep(node, source)
        height, width = self.traced.base[node].shape[-2:]
        top, rh = projected(rows, source.top, source.height, height)
        left, rw = projected(cols, source.left, source.width, width)
        if rh * rw >= full_fraction(m) * height * width:
            return FullStep(node)
        # pad as the layer does: its crops never reach further (start >= -before; the last
        # output's window ends inside the padded map)
        pads = (cols.before, cols.after(in_w, width), rows.before, rows.after(in_h, height))
        reader = Reader(self._padded(source_node, pads, sliding.pad), (rows.before, cols.before),
                        source, top * rows.stride - rows.before, left * cols.stride - cols.before,
                        (rh - 1) * rows.stride + rows.reach, (rw - 1) * cols.stride + cols.reach)
        return SlidingStep(node, Region(rh, rw, top, left), sliding.run, reader)

    def _function_step(self, node, local_inputs: list, steps: dict) -> Step:
        """A function or method of local maps: pointwise with constant scalars, the
        arithmetic of two local maps of one shape, or full."""
        args = [a for a in node.args if isinstance(a, torch.fx.Node)]
        others = [a for a in node.all_input_nodes if a not in local_inputs]
        function = node.op == "call_function"
        pointwise = node.target in (_POINTWISE_FUNCTIONS if function else _POINTWISE_METHODS)
        binary = node.target in (_BINARY if function else _BINARY_METHODS)
        base = self.traced.base
        if (pointwise or binary) and len(local_inputs) == 1 and args and args[0] is local_inputs[0]:
            if all(isinstance(steps[a], ConstantStep) for a in others) and all(
                    not isinstance(base[a], torch.Tensor) or base[a].numel() == 1 for a in others):
                return PointwiseStep(node, steps[local_inputs[0]].region)
            return FullStep(node)
        if not (binary and len(local_inputs) == 2 and not others and len(args) == 2):
            return FullStep(node)
        height, width = base[node].shape[-2:]
        if any(base[a].shape != base[node].shape for a in args):
            return FullStep(node)
        region = union(steps[args[0]].region, steps[args[1]].region, height, width)
        if region.height * region.width >= full_fraction(None) * height * width:
            return FullStep(node)
        readers = {a: Reader(self._padded(a, (0, 0, 0, 0), 0.0), (0, 0), steps[a].region,
                             region.top, region.left, region.height, region.width) for a in args}
        return BinaryStep(node, region, readers)

    def _padded(self, node, pads, value):
        """The unoccluded map of ``node`` padded by ``pads`` (left, right, top, bottom) with
        ``value``, as [N, H, W, C]; made once per node and padding."""
        key = (node, pads, value)
        if key not in self._padded_maps:
            base = self.traced.base[node]
            if any(pads):
                base = F.pad(base, pads, value=value)
            self._padded_maps[key] = base.permute(0, 2, 3, 1).contiguous()
        return self._padded_maps[key]

    def _macs(self, node) -> int:
        """Multiply-adds per example of a convolution or fully connected node, else 0."""
        if node.op != "call_module":
            return 0
        m, out = self.traced.modules[node.target], self.traced.base[node]
        if isinstance(m, nn.Conv2d):
            return (m.in_channels // m.groups * m.out_channels * math.prod(m.kernel_size)
                    * out.shape[2] * out.shape[3])
        if isinstance(m, nn.Linear):
            return m.in_features * m.out_features * (out.numel() // out.shape[-1] // self.batch)
        return 0

    def _share(self, node, step: Step) -> float:
        """The share of ``node``'s output that ``step`` computes per copy."""
        if not isinstance(step, (SlidingStep, PointwiseStep)):
            return 1.0
        height, width = self.traced.base[node].shape[-2:]
        return step.region.height * step.region.width / (height * width)


def shared_tail(traced: Traced, blocks: list[Block], batch: int) -> tuple[int, list]:
    """Where the steps shared by every block begin, and the values they read from before.

    The tail starts after the last local step of every block, at the first value that is no
    longer a map (global pooling, flatten): from there on every block runs the same steps,
    so the copies of several batches go through them together (a fully connected layer reads
    its weights once per pass, however many copies it holds). Full maps before it stay per
    batch: many copies of a large map run slower per copy (caches)."""
    nodes = traced.nodes
    constant = {s.node for s in blocks[0].steps if isinstance(s, ConstantStep)}
    full = 1 + max(i for b in blocks for i, s in enumerate(b.steps)
                   if not isinstance(s, (FullStep, ConstantStep, OutputStep)))
    start = next((i for i in range(full, len(nodes) - 1) if nodes[i] not in constant
                  and not traced.is_map(nodes[i], batch)), len(nodes) - 1)
    order = {node: i for i, node in enumerate(nodes)}
    boundary = [node for node in nodes[:start] if node not in constant
                and any(order[u] >= start for u in node.users)]
    return start, boundary
