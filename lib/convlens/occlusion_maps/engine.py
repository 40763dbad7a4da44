"""The two runners (incremental and whole copies), the choice between them, and the loop that
fills the map batch by batch.

A runner has ``base_logits`` (the unoccluded logits), ``blocks`` (the window positions,
planned together), ``head(block, example, index)`` (the copies of ``example`` with the
window at ``block.positions[index]``, run up to the shared tail) and ``tail(heads)`` (the
logits of the copies of several heads, in one pass).
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from .crops import LocalValue, materialize, patch_of
from .kernels import channels_last, default_batch_size, fold_batch_norms, working_copy
from .plan import (
    BinaryStep,
    Block,
    ConstantStep,
    InputStep,
    OutputStep,
    Planner,
    PointwiseStep,
    SlidingStep,
    shared_tail,
)
from .tracing import NotLocal, Traced, logits
from .windows import grid, position_blocks, window_region

METHODS = ("auto", "incremental", "batched")
#: ``method="auto"`` takes the incremental path when it computes less than this share of the
#: multiply-adds of whole copies: near 1 its crops, pastes and per-step work cost more than
#: the arithmetic it saves
WORTH_IT = 0.95
#: the steps after global pooling (the classifier) run on at least this many copies at once:
#: a fully connected layer reads all its weights once per pass, whatever the number of copies
TAIL_ROWS = 128


def _check_tolerance(dtype: torch.dtype) -> float:
    """The self-check's largest accepted error, relative to the logits' scale: the square
    root of the dtype's precision. Rounding differs between the two paths (other convolution
    shapes, folded batch norms) by far less; a wrong crop or padding changes the logits by a
    part of the drop itself, far more."""
    return torch.finfo(dtype).eps ** 0.5


class Batched:
    """Whole occluded copies through the model (broadcast masks, channels_last)."""

    def __init__(self, model, x, window, stride, fill):
        self.model, self.x, self.window, self.stride, self.fill = model, x, window, stride, fill
        rows, self.cols = grid(x.shape[2], x.shape[3], window, stride)
        self.base_logits = logits(model(x))
        self.rows_index = torch.arange(x.shape[2], device=x.device)
        self.cols_index = torch.arange(x.shape[3], device=x.device)
        self.blocks = [Block(torch.arange(rows * self.cols, device=x.device), [], 1.0, 0,
                             "the input")]

    def head(self, block, example, index):
        position = block.positions[index]
        top = (position // self.cols * self.stride)[:, None]
        left = (position % self.cols * self.stride)[:, None]
        in_rows = (self.rows_index >= top) & (self.rows_index < top + self.window)  # [B, H]
        in_cols = (self.cols_index >= left) & (self.cols_index < left + self.window)  # [B, W]
        mask = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # [B, 1, H, W]
        occluded = self.x[example].masked_fill(mask, self.fill)
        return [logits(self.model(channels_last(occluded)))]

    def tail(self, heads):
        return torch.cat([h[0] for h in heads])


class Incremental:
    """Runs the traced model on occluded copies, recomputing changed rectangles only."""

    def __init__(self, model, x, window, stride, fill, batch_size=None):
        self.traced = Traced(model)
        self.folded = fold_batch_norms(self.traced)
        self.traced.run_base(x)
        self.base_logits, self.modules = self.traced.base_logits, self.traced.modules
        self.nodes, self.window, self.fill, self.x = self.traced.nodes, window, fill, x
        self.free_after = self.traced.last_uses()
        self.input_region = window_region(x.shape[2], x.shape[3], window, stride, x.device)
        planner = Planner(self.traced, x, self.input_region)
        # a block of side x side neighbours fills one batch
        side = math.isqrt(batch_size or default_batch_size(x.device, "incremental"))
        rows, cols = grid(x.shape[2], x.shape[3], window, stride)
        self.blocks = [planner.plan(p) for p in position_blocks(rows, cols, side, x.device)]
        self.fraction = sum(b.fraction * b.positions.numel() for b in self.blocks) / (rows * cols)
        widest = max(self.blocks, key=lambda b: b.local)
        self.local, self.stop = widest.local, widest.stop
        self.tail_start, self.boundary = shared_tail(self.traced, self.blocks, x.shape[0])
        self._run = {InputStep: self._input, ConstantStep: self._constant,
                     PointwiseStep: self._pointwise, SlidingStep: self._sliding,
                     BinaryStep: self._binary}

    def head(self, block, example, position):
        """Run ``block``'s steps up to the shared tail; the tail's inputs, full maps."""
        env = self._steps(block.steps, 0, self.tail_start, {}, example, position)
        return [materialize(env[node], example) for node in self.boundary]

    def tail(self, heads):
        """Logits of the copies whose :meth:`head` outputs are ``heads``, in one pass."""
        env = {node: torch.cat([h[i] for h in heads]) if len(heads) > 1 else heads[0][i]
               for i, node in enumerate(self.boundary)}
        return self._steps(self.blocks[0].steps, self.tail_start, len(self.nodes), env,
                           None, None)

    def _steps(self, steps, start, stop, env, example, position):
        """Run ``steps[start:stop]`` on ``env``; the logits at the output, else ``env``."""
        for index in range(start, stop):
            step = steps[index]
            if isinstance(step, OutputStep):
                return logits(torch.fx.node.map_arg(step.node.args[0], env.get))
            run = self._run.get(type(step), self._full)
            env[step.node] = run(step, env, example, position)
            for a in self.free_after.get(index, ()):
                env.pop(a, None)
        if stop == len(steps):
            raise NotLocal("the traced graph has no output")
        return env

    def _input(self, step, env, example, position):
        r = step.region
        patch = torch.full((example.numel(), self.x.shape[1], r.height, r.width), self.fill,
                           dtype=self.x.dtype, device=self.x.device)
        return LocalValue(self.x, channels_last(patch), r.top[position], r.left[position])

    def _constant(self, step, env, example, position):
        return self.traced.base[step.node]

    def _pointwise(self, step, env, example, position):
        node = step.node
        args = torch.fx.node.map_arg(node.args, lambda a: patch_of(env[a]))
        kwargs = torch.fx.node.map_arg(node.kwargs, lambda a: patch_of(env[a]))
        source = next(env[a] for a in node.all_input_nodes if isinstance(env[a], LocalValue))
        return LocalValue(self.traced.base[node], self.traced.call(node, args, kwargs),
                          source.top, source.left)

    def _sliding(self, step, env, example, position):
        crop = step.reader(env[step.node.all_input_nodes[0]], example, position)
        r = step.region
        return LocalValue(self.traced.base[step.node], step.run(crop), r.top[position],
                          r.left[position])

    def _binary(self, step, env, example, position):
        node, r = step.node, step.region
        crops = {a: step.readers[a](env[a], example, position) for a in node.all_input_nodes}
        args = torch.fx.node.map_arg(node.args, crops.get)
        kwargs = torch.fx.node.map_arg(node.kwargs, crops.get)
        return LocalValue(self.traced.base[node], self.traced.call(node, args, kwargs),
                          r.top[position], r.left[position])

    def _full(self, step, env, example, position):
        node = step.node
        args = torch.fx.node.map_arg(node.args, lambda a: materialize(env[a], example))
        kwargs = torch.fx.node.map_arg(node.kwargs, lambda a: materialize(env[a], example))
        return self.traced.call(node, args, kwargs)

    def check(self):
        """Compare with whole copies through the model at three window positions (the first,
        the middle and the last); None if they agree, else the reason (and a warning)."""
        count = self.input_region.top.numel()
        position = torch.tensor(sorted({0, count // 2, count - 1}), device=self.x.device)
        example = torch.zeros_like(position)
        heads = []
        for p in position.tolist():  # each in its own block, one pass through the tail
            block = next(b for b in self.blocks if bool((b.positions == p).any()))
            index = (block.positions == p).nonzero()[0]
            heads.append(self.head(block, example[:1], index))
        ours = self.tail(heads)
        occluded = self.x[example].clone()
        for i, (t, left) in enumerate(zip(self.input_region.top[position].tolist(),
                                          self.input_region.left[position].tolist())):
            occluded[i, :, t:t + self.window, left:left + self.window] = self.fill
        expected = logits(self.traced.gm(channels_last(occluded)))
        scale = float((self.base_logits[example] - expected).abs().max()) + float(
            self.base_logits.abs().max())
        error = float((ours - expected).abs().max())
        if not error <= _check_tolerance(expected.dtype) * scale:
            warnings.warn(f"occlusion: the incremental path failed its self-check (error "
                          f"{error:.3g}, scale {scale:.3g}); using whole copies", stacklevel=4)
            return f"self-check failed (error {error:.3g} of {scale:.3g})"
        return None


def prepare(model: nn.Module, x, window, stride, fill, method, batch_size=None):
    """The runner for these arguments and the plan that says which and why."""
    from . import OcclusionPlan

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    work, xc = working_copy(model), channels_last(x)
    reason = "method='batched'"
    if method != "batched":
        try:
            runner = Incremental(work, xc, window, stride, fill, batch_size)
            reason = runner.check()
        except NotLocal as error:
            runner, reason = None, str(error)
        if runner is not None and reason is None:
            if method == "incremental" or runner.fraction < WORTH_IT:
                return runner, OcclusionPlan("incremental", "traced: local layers up to "
                                             f"{runner.stop}", runner.fraction, runner.local)
            reason = f"incremental would recompute {runner.fraction:.2f} of the work"
        if method == "incremental":
            raise ValueError(f"method='incremental' is not possible for this model: {reason}")
    return Batched(work, xc, window, stride, fill), OcclusionPlan("batched", reason, 1.0)


def drops(runner, x, target, batch_size: int) -> torch.Tensor:
    """Score drops ``[N * positions, classes or 1]`` (example-major) of every window position,
    ``batch_size`` copies per head pass, at least ``TAIL_ROWS`` per tail pass."""
    base = runner.base_logits  # [N, K]
    n, positions = x.shape[0], sum(b.positions.numel() for b in runner.blocks)
    out = torch.empty(n * positions, base.shape[1] if target is None else 1,
                      dtype=base.dtype, device=x.device)
    pending, held = [], 0  # batches that wait for the shared tail

    def finish():
        example = torch.cat([p[0] for p in pending])
        diff = base[example] - runner.tail([p[2] for p in pending])
        out[torch.cat([p[1] for p in pending])] = (
            diff if target is None else diff.gather(1, target[example][:, None]))
        pending.clear()

    tail_rows = max(batch_size, TAIL_ROWS)
    for block in runner.blocks:
        size = block.positions.numel()
        for start in range(0, n * size, batch_size):
            job = torch.arange(start, min(start + batch_size, n * size), device=x.device)
            example, index = job // size, job % size
            pending.append((example, example * positions + block.positions[index],
                            runner.head(block, example, index)))
            held += job.numel()
            if held >= tail_rows:
                finish()
                held = 0
    if pending:
        finish()
    return out
