r"""Occlusion sensitivity ([Zeiler & Fergus 2014][ref-zeiler2014], "Visualizing and
Understanding Convolutional Networks", section 4.2).

Slide a square window over the image; at window position $(i, j)$ replace the pixels of
rows $i s \dots i s + w - 1$ and columns $j s \dots j s + w - 1$ ($w$ = `window`,
$s$ = `stride`) of every channel by `fill` to get $x'_{ij}$, and record how much the logit
of class $k$ drops:

$$ D[k, i, j] = y_k(x) - y_k(x'_{ij}), \qquad
i < H' = \lfloor (H - w) / s \rfloor + 1, \quad j < W' \text{ likewise} $$

A large positive $D$ marks a region the class score relies on. `fill` is a value in the
model's *normalised* input space (0.0 is the dataset mean colour after the usual
`Normalize`; it is not black). When $H - w$ is not a multiple of $s$, the last
rows/columns are never occluded.

How it is computed (both paths are exact; they differ from one forward pass per window by
floating-point rounding only):

* ``"batched"``: the occluded copies are built with broadcast masks and sent through a
  private copy of the model whose convolution weights are in ``channels_last`` memory
  format (faster on CPUs with oneDNN and on GPUs), ``batch_size`` copies per pass.
* ``"incremental"`` (Krypton: Nakandala, Kumar & Papakonstantinou, "Incremental and
  Approximate Inference for Faster Occlusion-based Deep CNN Explanations", SIGMOD 2019): an
  occluded copy differs from the image only inside the window, and the output of a *local*
  layer (convolution, batch norm in eval mode, pointwise activation, pooling, residual
  addition) differs only inside the window's projective field. For a convolution with
  kernel k, stride s, dilation d and padding p, input rows [a, b] change output rows

      ceil((a + p - d (k - 1)) / s)  ...  floor((b + p) / s).

  The unoccluded activations are computed once; per copy only the changed rectangle is
  recomputed, from a crop of the layer input (the changed values pasted over the
  unoccluded ones; outside the map the layer's own padding: zeros, or -inf for max
  pooling). The positions are planned in blocks of about ``batch_size`` (side x side, rows
  and columns taken by distance from the nearer edge), and each block's rectangles are
  sized for its own positions: near a border the edge of the map cuts the projective
  field, and such a block recomputes less (AlexNet at window 32, stride 8: 0.40 of a full
  pass instead of 0.50 with one size for all). Once the changed rectangle covers a large
  part of a map (``FULL_FRACTION``), or at the first operation not known to be local
  (global pooling, flatten, anything else), the copies are pasted into full maps and the
  rest of the network runs as usual. The steps after global pooling (the classifier) are
  the same for every block, and copies of several batches go through them together, at
  least ``TAIL_ROWS`` at a time: a fully connected layer reads all of its weights once per
  pass. Batch norms
  in eval mode that alone read a convolution are folded into a private copy of its
  weights (one pass instead of two; the values change by rounding only). Before the first
  batch, three positions are run both ways and compared (a failure warns and uses the
  batched path). On a CPU, each fully connected layer (AlexNet's and VGG's large
  classifiers) runs as the equivalent convolution when the first batch measures that faster
  (``_LinearAsConvolution``), and each convolution on full maps runs on NCHW or
  channels_last tensors, whichever its first calls measure faster (``_ConvolutionFormat``:
  ResNet-18's ``layer4`` takes NCHW on the project's Intel Xeon). The model is traced with
  ``torch.fx``; a model that cannot be traced, or whose first operation is not local, uses
  the batched path.
  [`occlusion_plan`][convlens.occlusion_maps.occlusion_plan] says which path a call takes, why, and the share of the
  multiply-adds it computes per copy; the logger ``convlens.occlusion`` says the same at
  level DEBUG for every call.
"""

from __future__ import annotations

import copy
import logging
import math
import operator
import sys
import time
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_batch, check_positive_int, check_target, select_scores

__all__ = ["occlusion", "occlusion_plan", "OcclusionPlan", "default_batch_size"]

logger = logging.getLogger(__name__)

#: once a layer's changed rectangle covers this fraction of its map, the rest of the network
#: runs on full maps: a convolution with at least ``DENSE_MACS`` multiply-adds per output
#: value ("dense") saves more by cropping than a depthwise convolution, a pooling or an
#: addition ("light"), whose crops cost about what they save. Measured on the project's
#: 2-core CPU (window 32, stride 8, min of 5 alternating runs): 0.5 everywhere vs 0.75 for
#: dense layers, AlexNet 1.40 / 1.32 s, ResNet-18 3.07 / 2.97 s; 0.75 everywhere made
#: EfficientNet-Lite0 1.46 -> 1.69 s, light layers at 0.5 gave 1.39 s.
FULL_FRACTION = {"dense": 0.75, "light": 0.5}
DENSE_MACS = 32
DEFAULT_BATCH_SIZE = {("cpu", "incremental"): 32, ("cpu", "batched"): 16,
                      ("cuda", "incremental"): 128, ("cuda", "batched"): 128}
"""Occluded copies per forward pass when `batch_size=None`, by
`(device type, path)`. On a CPU the incremental path runs blocks of side x side
neighbouring positions (side = isqrt of the batch): 32 gives 5 x 5 blocks, and larger
batches were no faster within run-to-run noise while their rectangles, sized for more
positions, grow; whole copies run best in smaller batches, whose activations stay in the
caches. A GPU wants many copies in flight.
"""
#: the classifier (the steps after global pooling) runs on at least this many copies at once:
#: a fully connected layer reads all its weights once per pass, whatever the number of
#: copies (AlexNet's 58 million). Measured on the project's 2-core CPU (AlexNet, window 32,
#: stride 8; this machine's times moved by up to 15% between runs): 1 (one pass per batch of
#: 32) / 64 / 128 / 256 / 640 copies took 2.67-2.89 / 2.51-2.66 / 2.57 / 2.61-2.71 / 2.73-2.78 s.
TAIL_ROWS = 128
METHODS = ("auto", "incremental", "batched")


def default_batch_size(device: torch.device | str, path: str = "incremental") -> int:
    """Occluded copies per forward pass used when `batch_size=None`.

    Args:
        device: the device the model runs on (a `torch.device` or its name).
        path: `"incremental"` or `"batched"`, as
            [`occlusion_plan`][convlens.occlusion_maps.occlusion_plan] reports it.

    Returns:
        On a CPU 32 (incremental) and 16 (batched), on CUDA 128 (see `DEFAULT_BATCH_SIZE`),
        16 elsewhere.

    Raises:
        ValueError: `path` is unknown.

    Examples:
        >>> from convlens.occlusion_maps import default_batch_size
        >>> default_batch_size("cpu"), default_batch_size("cpu", "batched")
        (32, 16)
    """
    if path not in ("incremental", "batched"):
        raise ValueError(f"path must be 'incremental' or 'batched', got {path!r}")
    return DEFAULT_BATCH_SIZE.get((torch.device(device).type, path), 16)


@dataclass(frozen=True)
class OcclusionPlan:
    """Which path [`occlusion`][convlens.occlusion_maps.occlusion] takes for a model and input
    size, and why.

    Attributes:
        path: `"incremental"` or `"batched"`.
        reason: why, in words.
        recomputed_fraction: multiply-adds of convolutions and fully connected layers
            computed per occluded copy, on average over the window positions, as a fraction
            of those of a full forward pass (1.0 for the batched path). At equal speed per
            multiply-add, the incremental path cannot take less than this fraction of the
            time of whole copies.
        local_layers: how many layers run on changed rectangles only (in the block of
            positions that has most).

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens.occlusion_maps import occlusion_plan
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> plan = occlusion_plan(model.eval(), torch.randn(1, 3, 32, 32), window=8, stride=4)
        >>> plan.path, 0 < plan.recomputed_fraction < 1, plan.local_layers
        ('incremental', True, 2)
    """

    path: str
    reason: str
    recomputed_fraction: float
    local_layers: int = 0


def occlusion(
    model: nn.Module,
    x: torch.Tensor,
    target,
    window: int = 32,
    stride: int = 8,
    fill: float = 0.0,
    batch_size: int | None = None,
    *,
    method: str = "auto",
) -> torch.Tensor:
    """The score drop for each window position (see above), one forward pass per occluded copy.

    Runs under `torch.no_grad` on a private copy of the model; the model is not changed.
    Both paths are exact: they differ from one forward pass per window by floating-point
    rounding only.

    Args:
        model: a classifier returning logits `[N, classes]`; left as found.
        x: the input batch `[N, C, H, W]` (floating point, normalised).
        target: an int or one class index per example; None for every class from the same
            passes.
        window: the side $w$ of the square window, in pixels (at most `H` and `W`).
        stride: the step $s$ between window positions, in pixels.
        fill: the value the window's pixels are set to, in the normalised input space.
        batch_size: occluded copies per forward pass; None for the default of the device and
            path ([`default_batch_size`][convlens.occlusion_maps.default_batch_size]).
        method: `"auto"` (incremental where the model allows it, else batched),
            `"incremental"` or `"batched"`.

    Returns:
        $D$ in the logits' dtype: `[N, H', W']` for a target, `[N, classes, H', W']` for
        `target=None`.

    Raises:
        TypeError: `x` is not a floating-point tensor, `target` is not integer, `fill` is
            not a number, or `window`/`stride`/`batch_size` are not ints.
        ValueError: `x` is not `[N, C, H, W]`; `target` does not fit the batch or the
            model's outputs; `window`/`stride`/`batch_size` are below 1; the window is larger
            than the image; `method` is unknown, or `"incremental"` for a model that does not
            allow it (saying why).

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> import convlens
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2)).eval()
        >>> x = torch.randn(1, 3, 16, 16)
        >>> drops = convlens.occlusion(model, x, target=1, window=8, stride=4)
        >>> drops.shape  # (16 - 8) // 4 + 1 = 3 positions per axis
        torch.Size([1, 3, 3])
        >>> every = convlens.occlusion(model, x, target=None, window=8, stride=4)
        >>> every.shape, torch.allclose(every[:, 1], drops, atol=1e-5)
        (torch.Size([1, 2, 3, 3]), True)
    """
    x = check_batch(x)
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")
    window, stride = _check_geometry(x, window, stride)
    if isinstance(fill, bool) or not isinstance(fill, (int, float)):
        raise TypeError(f"fill must be a number, got {type(fill).__name__}")
    n, _, height, width = x.shape
    if target is not None:
        target = check_target(target, n).to(x.device)
    rows = (height - window) // stride + 1
    cols = (width - window) // stride + 1
    positions = rows * cols

    with torch.no_grad():
        runner, plan = _prepare(model, x, window, stride, float(fill), method, batch_size)
        if batch_size is None:
            batch_size = default_batch_size(x.device, plan.path)
        logger.debug("occlusion: path=%s (%s), recomputed fraction %.3f",
                     plan.path, plan.reason, plan.recomputed_fraction)
        base = runner.base_logits  # [N, K]
        if target is not None:
            select_scores(base, target)  # names an out-of-range target before the long loop
        classes = base.shape[1]
        drops = torch.empty(n * positions, classes if target is None else 1,
                            dtype=base.dtype, device=x.device)
        pending, held = [], 0  # batches that wait for the shared tail

        def finish():
            example = torch.cat([p[0] for p in pending])
            diff = base[example] - runner.tail([p[2] for p in pending])
            drops[torch.cat([p[1] for p in pending])] = (
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
    if target is None:
        return drops.view(n, rows, cols, classes).permute(0, 3, 1, 2).contiguous()
    return drops.view(n, rows, cols)


def occlusion_plan(model: nn.Module, x: torch.Tensor, window: int = 32, stride: int = 8,
                   fill: float = 0.0, batch_size: int | None = None, *,
                   method: str = "auto") -> OcclusionPlan:
    """The path [`occlusion`][convlens.occlusion_maps.occlusion] would take for these
    arguments (runs one forward pass).

    Args:
        model: the classifier; left as found.
        x: the input batch `[N, C, H, W]`.
        window: as for `occlusion`.
        stride: as for `occlusion`.
        fill: as for `occlusion`.
        batch_size: as for `occlusion`.
        method: as for `occlusion`.

    Returns:
        An [`OcclusionPlan`][convlens.occlusion_maps.OcclusionPlan].

    Raises:
        TypeError: as for `occlusion`.
        ValueError: as for `occlusion`.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from convlens.occlusion_maps import occlusion_plan
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 14 * 14, 2))
        >>> occlusion_plan(model.eval(), torch.randn(1, 3, 16, 16), window=4,
        ...                method="batched").path
        'batched'
    """
    x = check_batch(x)
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")
    window, stride = _check_geometry(x, window, stride)
    with torch.no_grad():
        return _prepare(model, x, window, stride, float(fill), method, batch_size)[1]


def _check_geometry(x, window, stride):
    window = check_positive_int(window, "window")
    stride = check_positive_int(stride, "stride")
    height, width = x.shape[-2:]
    if window > height or window > width:
        raise ValueError(f"window={window} is larger than the image ({height}x{width})")
    return window, stride


# ---- the private model copy ------------------------------------------------------------


def _working_copy(model: nn.Module) -> nn.Module:
    """A copy whose 4-D weights are channels_last; other parameters and buffers are shared
    with ``model`` (read only, under no_grad), so a large classifier is not duplicated."""
    tensors = [*model.parameters(), *model.buffers()]
    memo = {id(t): t for t in tensors if t.dim() != 4}
    try:
        work = copy.deepcopy(model, memo)
    except Exception:  # noqa: BLE001 - an uncopyable model still runs, without the conversion
        return model
    for module in work.modules():
        for p in list(module._parameters.values()):
            if p is not None and p.dim() == 4 and id(p) not in memo:
                p.data = p.data.contiguous(memory_format=torch.channels_last)
    return work


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t


def _prepare(model, x, window, stride, fill, method, batch_size=None):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    work = _working_copy(model)
    xc = _channels_last(x)
    if method != "batched":
        try:
            runner = _Incremental(work, xc, window, stride, fill, batch_size)
            reason = runner.check()
        except _NotLocal as error:
            runner, reason = None, str(error)
        if runner is not None and reason is None:
            if method == "incremental" or runner.fraction < 0.95:
                return runner, OcclusionPlan("incremental", "traced: local layers up to "
                                             f"{runner.stop}", runner.fraction, runner.local)
            reason = f"incremental would recompute {runner.fraction:.2f} of the work"
        if method == "incremental":
            raise ValueError(f"method='incremental' is not possible for this model: {reason}")
    else:
        reason = "method='batched'"
    runner = _Batched(work, xc, window, stride, fill)
    return runner, OcclusionPlan("batched", reason, 1.0)


class _Batched:
    """Whole occluded copies through the model (broadcast masks, channels_last)."""

    def __init__(self, model, x, window, stride, fill):
        self.model, self.x, self.window, self.stride, self.fill = model, x, window, stride, fill
        self.cols = (x.shape[3] - window) // stride + 1
        self.base_logits = _logits(model(x))
        self.rows_index = torch.arange(x.shape[2], device=x.device)
        self.cols_index = torch.arange(x.shape[3], device=x.device)
        rows = (x.shape[2] - window) // stride + 1
        self.blocks = [_Block(torch.arange(rows * self.cols, device=x.device))]

    def run(self, block, example, index):
        position = block.positions[index]
        top = (position // self.cols * self.stride)[:, None]
        left = (position % self.cols * self.stride)[:, None]
        in_rows = (self.rows_index >= top) & (self.rows_index < top + self.window)  # [B, H]
        in_cols = (self.cols_index >= left) & (self.cols_index < left + self.window)  # [B, W]
        mask = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # [B, 1, H, W]
        occluded = self.x[example].masked_fill(mask, self.fill)
        return _logits(self.model(_channels_last(occluded)))

    def head(self, block, example, index):
        return [self.run(block, example, index)]

    def tail(self, heads):
        return torch.cat([h[0] for h in heads])


def _logits(out):
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the model must return logits of shape [N, classes], got {shape}")
    return out


# ---- incremental inference -------------------------------------------------------------


class _NotLocal(Exception):
    """The model (or part of it) cannot be run incrementally; the message says why."""


def _timm_types() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """timm's ``Conv2dSame`` and ``BatchNormAct2d`` classes, if timm is already imported (a
    model made of them implies it is); convlens never imports timm just to look."""
    layers = sys.modules.get("timm.layers")
    conv, bn = getattr(layers, "Conv2dSame", None), getattr(layers, "BatchNormAct2d", None)
    return (() if conv is None else (conv,)), (() if bn is None else (bn,))


_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
                nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh,
                nn.Softplus, nn.Identity)
_POINTWISE_FUNCTIONS = {F.relu, F.relu_, F.relu6, F.hardtanh, F.leaky_relu, F.elu, F.gelu,
                        F.silu, F.hardswish, F.hardsigmoid, F.mish, F.sigmoid, F.tanh,
                        torch.relu, torch.relu_, torch.sigmoid, torch.tanh, torch.clamp}
_POINTWISE_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "clamp", "clamp_",
                      "clamp_min", "clamp_min_", "contiguous"}
_BINARY = {operator.add, operator.iadd, operator.mul, operator.imul, operator.sub,
           torch.add, torch.mul, torch.sub}
_BINARY_METHODS = {"add", "add_", "mul", "mul_", "sub"}


def _is_pointwise_module(m: nn.Module) -> bool:
    if type(m) in _ACTIVATIONS:
        return True
    if type(m) in (nn.Dropout, nn.Dropout2d):
        return not m.training
    if type(m) is nn.BatchNorm2d or type(m) in _timm_types()[1]:
        stats = m.running_mean is not None and m.running_var is not None
        if not (stats and not m.training):
            return False
        return type(m) is nn.BatchNorm2d or (_is_pointwise_module(m.drop)
                                             and _is_pointwise_module(m.act))
    return False


@dataclass
class _Window:
    """Geometry of a sliding-window layer along one axis."""

    kernel: int
    stride: int
    dilation: int
    before: int  # zero (or -inf) padding before index 0


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _sliding(m: nn.Module, in_size):
    """(rows, cols geometry, pad value, function of a crop) for a local sliding layer, or
    None if ``m`` is not one we can prove local."""
    if type(m) is nn.Conv2d or type(m) in _timm_types()[0]:
        if m.padding_mode != "zeros":
            return None
        k, s, d = _pair(m.kernel_size), _pair(m.stride), _pair(m.dilation)
        if type(m) is nn.Conv2d:
            if m.padding == "valid":
                before = (0, 0)
            elif m.padding == "same":
                before = tuple(d[i] * (k[i] - 1) // 2 for i in range(2))
            else:
                before = _pair(m.padding)
        else:  # timm's TensorFlow "same": total padding from the input size, half before
            if _pair(m.padding) != (0, 0):
                return None
            before = tuple(max((math.ceil(in_size[i] / s[i]) - 1) * s[i] + (k[i] - 1) * d[i]
                               + 1 - in_size[i], 0) // 2 for i in range(2))

        def run(crop, m=m):
            return F.conv2d(crop, m.weight, m.bias, m.stride, 0, m.dilation, m.groups)

        geometry = tuple(_Window(k[i], s[i], d[i], before[i]) for i in range(2))
        flops = m.in_channels // m.groups * m.out_channels * k[0] * k[1]
        return geometry, 0.0, run, flops
    if type(m) is nn.MaxPool2d and not m.ceil_mode and not m.return_indices:
        k, s, d, p = (_pair(v) for v in (m.kernel_size, m.stride or m.kernel_size,
                                         m.dilation, m.padding))

        def run(crop, k=k, s=s, d=d):
            return F.max_pool2d(crop, k, s, 0, d)

        return tuple(_Window(k[i], s[i], d[i], p[i]) for i in range(2)), -math.inf, run, 0
    if type(m) is nn.AvgPool2d and not m.ceil_mode and m.divisor_override is None:
        k, s, p = (_pair(v) for v in (m.kernel_size, m.stride or m.kernel_size, m.padding))
        if p != (0, 0) and not m.count_include_pad:
            return None

        def run(crop, k=k, s=s):
            return F.avg_pool2d(crop, k, s, 0)

        return tuple(_Window(k[i], s[i], 1, p[i]) for i in range(2)), 0.0, run, 0
    return None


#: (in, out, dtype) -> whether a convolution was measured faster than ``F.linear``
_LINEAR_CHOICE: dict = {}


class _LinearAsConvolution(nn.Module):
    """``nn.Linear`` on a CPU, computed as a convolution when that is measured faster.

    y = x W^T + b is the same sum of products as a convolution of x viewed as
    [B, K / s^2, s, s] with W viewed the same way, [out, K / s^2, s, s] (an s x s kernel, one
    output position), so the result differs by rounding only. PyTorch sends ``F.linear`` on a CPU
    to MKL's sgemm and convolutions to oneDNN; on the project's AMD EPYC the convolution
    (channels_last, s = 8) ran AlexNet's and VGG16's large classifier layers 1.5 to 2.6x
    faster (9216 -> 4096 at 64 rows: 174 vs 73 GMAC/s) and small layers no faster. So the
    first batch of 8 or more rows times both, once per process and shape, and the faster
    one serves every later batch (fewer rows: ``F.linear``).
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.linear, self.kernel = linear, None
        self.side = next((s for s in (8, 7, 6) if linear.in_features % (s * s) == 0), None)

    def _convolve(self, x):
        # feature f = (i * s + j) * C + c of x and of each weight row becomes channel c at
        # (i, j): both views are channels_last as they lie in memory, nothing is copied
        s = self.side
        if self.kernel is None:
            self.kernel = self.linear.weight.view(-1, s, s, self.linear.in_features // s ** 2)
            self.kernel = self.kernel.permute(0, 3, 1, 2)
        view = x.reshape(x.shape[0], s, s, -1).permute(0, 3, 1, 2)
        return F.conv2d(view, self.kernel, self.linear.bias).view(x.shape[0], -1)

    def forward(self, x):
        w = self.linear.weight
        if self.side is None or x.dim() != 2 or x.shape[0] < 8 or torch.is_grad_enabled():
            return self.linear(x)
        key = (*w.shape, w.dtype)
        if key not in _LINEAR_CHOICE:
            _LINEAR_CHOICE[key] = _faster(lambda: self._convolve(x), lambda: self.linear(x))
        return self._convolve(x) if _LINEAR_CHOICE[key] else self.linear(x)


def _faster(first, second, margin=0.8) -> bool:
    """Whether ``first`` takes less than ``margin`` times ``second`` (best of two each,
    after one warm-up call each)."""
    times = []
    for function in (first, second):
        function()
        best = math.inf
        for _ in range(2):
            start = time.perf_counter()
            function()
            best = min(best, time.perf_counter() - start)
        times.append(best)
    return times[0] < margin * times[1]


#: (weight shape, input shape, stride, padding, dilation, groups, dtype, input is NCHW) ->
#: whether a convolution on full maps runs faster on NCHW tensors than on channels_last ones
_FORMAT_CHOICE: dict = {}
#: calls of one shape run in each memory format before the choice (the first of each warms
#: up), and how much faster NCHW must be to be chosen
FORMAT_TRIALS, FORMAT_MARGIN = 3, 0.9


class _ConvolutionFormat:
    """A convolution on full maps (CPU), run in the memory format measured faster for its shapes.

    channels_last is not the faster layout for every shape: on the project's Intel Xeon,
    ResNet-18's ``layer4`` 3x3 convolution (25 copies of 7x7x512) ran at 107 GMAC/s on NCHW
    tensors and 92 on channels_last ones, and the whole map (window 32, stride 8) took 0.93x
    as long with ``layer4`` in NCHW, while AlexNet's 13x13 layers in NCHW took 1.07x as long.
    So the first ``2 * FORMAT_TRIALS`` calls of each shape alternate the two (every result is
    used, none is computed twice), and NCHW serves the later calls of that shape in this
    process only if its best time after the first call is under ``FORMAT_MARGIN`` times
    channels_last's. The values differ by rounding only.
    """

    def __init__(self, conv: nn.Conv2d):
        self.conv = conv
        self.weights = {True: conv.weight.contiguous(),
                        False: conv.weight.contiguous(memory_format=torch.channels_last)}
        self.times: dict = {}

    def __call__(self, x):
        c = self.conv
        key = (tuple(c.weight.shape), tuple(x.shape), c.stride, c.padding, c.dilation,
               c.groups, x.dtype, x.is_contiguous())
        choice = _FORMAT_CHOICE.get(key)
        if choice is not None:
            return self._run(x, choice)
        times = self.times.setdefault(key, {True: [], False: []})
        nchw = len(times[True]) < len(times[False])
        start = time.perf_counter()
        out = self._run(x, nchw)
        times[nchw].append(time.perf_counter() - start)
        if len(times[True]) == FORMAT_TRIALS:
            _FORMAT_CHOICE[key] = min(times[True][1:]) < FORMAT_MARGIN * min(times[False][1:])
        return out

    def _run(self, x, nchw):
        c = self.conv
        x = x.contiguous() if nchw else _channels_last(x)
        return F.conv2d(x, self.weights[nchw], c.bias, c.stride, c.padding, c.dilation,
                        c.groups)


class _Tracer(torch.fx.Tracer):
    def is_leaf_module(self, m, qualname):
        return (type(m) in _timm_types()[0] or type(m) in _timm_types()[1]
                or super().is_leaf_module(m, qualname))


class _Local:
    """An activation of the occluded copies: the unoccluded map ``base`` [N, C, H, W] and, per
    copy, the values ``patch`` [B, C, h, w] of the rectangle at (``top``, ``left``)."""

    __slots__ = ("base", "patch", "top", "left")

    def __init__(self, base, patch, top, left):
        self.base, self.patch, self.top, self.left = base, patch, top, left


@dataclass
class _Region:
    """The rectangle a node recomputes for every window position: size and offsets [P]."""

    height: int
    width: int
    top: torch.Tensor
    left: torch.Tensor


@dataclass
class _Block:
    """Window positions (indices into the row-major grid) planned together.

    Each layer's rectangle is sized for these positions only, so a block near the edges,
    where the edge of the map cuts off the projective field, recomputes less than one in the
    middle. ``steps`` is the plan (None on the batched path), ``fraction`` its share of the
    multiply-adds of a full pass, ``local`` its count of local layers, ``stop`` the last."""

    positions: torch.Tensor
    steps: list | None = None
    fraction: float = 1.0
    local: int = 0
    stop: str = "the input"


def _mirrored(n: int) -> list[int]:
    """0, n-1, 1, n-2, ...: rows (or columns) ordered by distance from the nearer edge, so
    that neighbours in the list have projective fields of about the same size."""
    return [i // 2 if i % 2 == 0 else n - 1 - i // 2 for i in range(n)]


def _chunks(order: list[int], side: int) -> list[list[int]]:
    """``order`` cut into as few runs of at most ``side`` as possible, of near-equal length
    (25 by 6: 5, 5, 5, 5, 5, not 6, 6, 6, 6, 1)."""
    count = -(-len(order) // side)
    bounds = [round(i * len(order) / count) for i in range(count + 1)]
    return [order[a:b] for a, b in zip(bounds, bounds[1:])]


def _position_blocks(rows: int, cols: int, side: int, device) -> list[torch.Tensor]:
    """The grid of window positions (row-major indices) cut into blocks of at most ``side``
    rows by ``side`` columns, rows and columns taken in ``_mirrored`` order: a block holds
    positions at about the same distances from the edges."""
    grid = torch.arange(rows * cols, device=device).view(rows, cols)
    return [grid[r][:, c].flatten() for r in _chunks(_mirrored(rows), side)
            for c in _chunks(_mirrored(cols), side)]


def _cover(lo, hi, size):
    """Offsets and length of a fixed-size run of indices that holds [lo, hi] (per position)
    inside [0, size): shifted inwards at the borders, never shrunk."""
    lo, hi = lo.clamp(0, size - 1), hi.clamp(0, size - 1)
    length = int((hi - lo + 1).clamp(min=1).max())
    return lo.clamp(max=size - length), length


class _Reader:
    """Crops of one local input for one layer: for window position p, rows
    ``starts_r[p] ... starts_r[p] + length_r - 1`` (likewise columns) of the occluded copy,
    that is the patch where it is, the unoccluded map elsewhere and the layer's padding
    outside the map. ``padded`` is the unoccluded map with that padding, [N, H, W, C] (one
    per layer, shared by every block), ``before`` its (rows, cols) before index 0. The patch
    is written into each crop (``inside``: it always fits), else merged element by element."""

    def __init__(self, padded, before, source: _Region, starts_r, starts_c, length_r, length_c):
        self.windows = _windows(padded, length_r, length_c)
        self.starts_r, self.starts_c = starts_r + before[0], starts_c + before[1]
        self.steps_r = torch.arange(length_r, device=padded.device)
        self.steps_c = torch.arange(length_c, device=padded.device)
        self.rel_r, self.rel_c = source.top - starts_r, source.left - starts_c
        self.inside = bool(((self.rel_r >= 0) & (self.rel_r + source.height <= length_r)).all()
                           and ((self.rel_c >= 0) & (self.rel_c + source.width <= length_c)).all())

    def __call__(self, value: _Local, example, position):
        out = self.windows[example, self.starts_r[position], self.starts_c[position]]  # [B,L,M,C]
        patch = value.patch.permute(0, 2, 3, 1)
        h, w = patch.shape[1:3]
        if self.inside:
            copies = torch.arange(patch.shape[0], device=patch.device)
            _windows(out, h, w)[copies, self.rel_r[position], self.rel_c[position]] = patch
        else:  # crop row i holds patch row i - rel_r where that is in [0, h)
            copies = torch.arange(patch.shape[0], device=patch.device)[:, None, None]
            ir = self.steps_r - self.rel_r[position][:, None]  # [B, L]
            ic = self.steps_c - self.rel_c[position][:, None]
            keep = ((ir >= 0) & (ir < h))[:, :, None] & ((ic >= 0) & (ic < w))[:, None, :]
            inside = patch[copies, ir.clamp(0, h - 1)[:, :, None], ic.clamp(0, w - 1)[:, None, :]]
            out = torch.where(keep[..., None], inside, out)
        return out.permute(0, 3, 1, 2)  # channels_last memory


def _materialize(value, example):
    """The full maps [B, C, H, W] of the occluded copies."""
    if not isinstance(value, _Local):
        return value
    base, patch = value.base, value.patch
    h, w = patch.shape[-2:]
    if (h, w) == tuple(base.shape[-2:]):
        return patch
    full = base.permute(0, 2, 3, 1)[example]  # a copy [B, H, W, C]
    copies = torch.arange(patch.shape[0], device=patch.device)
    _windows(full, h, w)[copies, value.top, value.left] = patch.permute(0, 2, 3, 1)
    return full.permute(0, 3, 1, 2)


def _windows(maps, h, w):
    """A view [B, H - h + 1, W - w + 1, h, w, C] of ``maps`` [B, H, W, C] (any strides): the
    h x w rectangle at every offset. Indexing its first three dimensions with one (copy,
    top, left) per copy reads or writes whole rectangles: about 1.5x faster on a CPU than
    indexing every row and column (B x h x w index triples)."""
    b, height, width, c = maps.shape
    sb, sh, sw, sc = maps.stride()
    return maps.as_strided((b, height - h + 1, width - w + 1, h, w, c), (sb, sh, sw, sh, sw, sc))


def _fetch(gm, target):
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _is_inplace(node, modules):
    if node.op == "call_module":
        return bool(getattr(modules[node.target], "inplace", False))
    if node.op == "call_method":
        return node.target.endswith("_")
    if node.op == "call_function":
        return bool(node.kwargs.get("inplace", False)) or node.target in (
            F.relu_, torch.relu_, operator.iadd, operator.imul)
    return False


class _Incremental:
    """Runs the traced model on occluded copies, recomputing changed rectangles only."""

    def __init__(self, model, x, window, stride, fill, batch_size=None):
        try:
            graph = _Tracer().trace(model)
            self.gm = torch.fx.GraphModule(model, graph)
        except Exception as error:  # noqa: BLE001 - any tracing failure means: not provable
            raise _NotLocal(f"torch.fx cannot trace the model ({type(error).__name__}: "
                            f"{str(error).splitlines()[0] if str(error) else ''})") from None
        self.modules = dict(self.gm.named_modules())
        self.nodes = list(graph.nodes)
        self.folded = self._fold_batch_norms()
        for name, m in self.modules.items():
            if type(m) is nn.Linear and x.device.type == "cpu":
                self.modules[name] = _LinearAsConvolution(m)
        # the dense k x k convolutions that run on full maps choose their memory format by
        # measurement (1 x 1 and depthwise ones were faster channels_last in every case
        # measured, and trying NCHW on EfficientNet-Lite0's 33 shapes cost about 2 s at stride 2)
        self.formats = {name: _ConvolutionFormat(m) for name, m in self.modules.items()
                        if type(m) is nn.Conv2d and m.padding_mode == "zeros" and m.groups == 1
                        and math.prod(m.kernel_size) > 1 and x.device.type == "cpu"}
        self.window, self.fill, self.x = window, fill, x
        rows = (x.shape[2] - window) // stride + 1
        cols = (x.shape[3] - window) // stride + 1
        position = torch.arange(rows * cols, device=x.device)
        self.input_region = _Region(window, window, position // cols * stride,
                                    position % cols * stride)
        self._base_pass(x)
        self._padded_maps = {}
        last = {}  # free each value after its last use
        for index, node in enumerate(self.nodes):
            for a in node.all_input_nodes:
                last[a] = index
        self.free_after = {}
        for a, index in last.items():
            self.free_after.setdefault(index, []).append(a)
        # a block of side x side neighbours fills one batch
        side = math.isqrt(batch_size or default_batch_size(x.device, "incremental"))
        self.blocks = [self._plan(p) for p in _position_blocks(rows, cols, side, x.device)]
        self.fraction = sum(b.fraction * b.positions.numel() for b in self.blocks) / (
            rows * cols)
        widest = max(self.blocks, key=lambda b: b.local)
        self.local, self.stop = widest.local, widest.stop
        # the shared tail: the steps after the last local layer of every block and the first
        # value that is no longer a map (global pooling, flatten), the same for all blocks,
        # so copies of several batches go through it together. Full maps stay per batch:
        # many copies of a large map run slower per copy (caches: EfficientNet-Lite0 sharing
        # its last 78 steps, from 14 x 14 maps, at 128 copies took 1.44x as long), but a fully connected
        # layer reads its weights once per pass however many copies it holds.
        kinds = {node: kind for node, kind, _ in self.blocks[0].steps}
        full = 1 + max(i for b in self.blocks for i, (_, kind, _) in enumerate(b.steps)
                       if kind not in ("full", "const", "output"))
        self.tail_start = next((i for i in range(full, len(self.nodes) - 1)
                                if kinds[self.nodes[i]] != "const"
                                and not self._spatial(self.nodes[i])), len(self.nodes) - 1)
        order = {node: i for i, node in enumerate(self.nodes)}
        self.boundary = [node for node in self.nodes[:self.tail_start] if kinds[node] != "const"
                         and any(order[u] >= self.tail_start for u in node.users)]

    def _fold_batch_norms(self):
        """Fold each eval-mode batch norm that alone reads a convolution into the
        convolution's weights (w * g / sqrt(v + eps), (b - m) * g / sqrt(v + eps) + beta):
        one pass over the map instead of two. The caller's modules are not touched: the
        folded convolution is a new module in this runner's table. Returns the count."""
        calls = {}
        for node in self.nodes:
            if node.op == "call_module":
                calls[node.target] = calls.get(node.target, 0) + 1
        folded = 0
        for node in self.nodes:
            if node.op != "call_module" or len(node.users) != 1 or calls[node.target] != 1:
                continue
            conv, (user,) = self.modules[node.target], node.users
            if type(conv) not in (nn.Conv2d, *_timm_types()[0]) or user.op != "call_module":
                continue
            bn = self.modules[user.target]
            if calls[user.target] != 1 or len(user.all_input_nodes) != 1 or user.kwargs:
                continue
            if not (type(bn) is nn.BatchNorm2d or type(bn) in _timm_types()[1]):
                continue
            if not _is_pointwise_module(bn) or bn.num_features != conv.out_channels:
                continue
            rest = nn.Identity() if type(bn) is nn.BatchNorm2d else (
                bn.act if type(bn.drop) is nn.Identity else nn.Sequential(bn.drop, bn.act))
            if type(rest) is nn.Sequential:
                continue
            with torch.no_grad():
                var, mean = bn.running_var.double(), bn.running_mean.double()
                scale = torch.rsqrt(var + bn.eps)
                if bn.weight is not None:
                    scale = scale * bn.weight.double()
                shift = -mean * scale
                if bn.bias is not None:
                    shift = shift + bn.bias.double()
                if conv.bias is not None:
                    shift = shift + conv.bias.double() * scale
                weight = conv.weight.double() * scale[:, None, None, None]
                fused = copy.copy(conv)
                fused._parameters = dict(conv._parameters)
                fused.weight = nn.Parameter(weight.to(conv.weight.dtype).contiguous(
                    memory_format=torch.channels_last), requires_grad=False)
                fused.bias = nn.Parameter(shift.to(conv.weight.dtype), requires_grad=False)
            self.modules[node.target], self.modules[user.target] = fused, rest
            folded += 1
        return folded

    # the unoccluded activations of every node
    def _base_pass(self, x):
        placeholders = [n for n in self.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise _NotLocal(f"the traced forward takes {len(placeholders)} inputs, not 1")
        env = {}
        for node in self.nodes:
            if node.op == "placeholder":
                env[node] = x
            elif node.op == "get_attr":
                env[node] = _fetch(self.gm, node.target)
            elif node.op == "output":
                self.base_logits = _logits(torch.fx.node.map_arg(node.args[0], env.get))
            else:
                args = torch.fx.node.map_arg(node.args, env.get)
                kwargs = torch.fx.node.map_arg(node.kwargs, env.get)
                if _is_inplace(node, self.modules):  # keep the stored input as it was
                    args = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)
                env[node] = self._call(node, args, kwargs)
        self.base = env

    def _call(self, node, args, kwargs):
        if node.op == "call_module":
            return self.modules[node.target](*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        return getattr(args[0], node.target)(*args[1:], **kwargs)

    def _spatial(self, node):
        value = self.base.get(node)
        return (isinstance(value, torch.Tensor) and value.dim() == 4
                and value.shape[0] == self.x.shape[0])

    def _padded(self, node, pads, value):
        """The unoccluded map of ``node`` padded by ``pads`` (left, right, top, bottom) with
        ``value``, as [N, H, W, C]; made once per node and padding."""
        key = (node, pads, value)
        if key not in self._padded_maps:
            base = self.base[node]
            if any(pads):
                base = F.pad(base, pads, value=value)
            self._padded_maps[key] = base.permute(0, 2, 3, 1).contiguous()
        return self._padded_maps[key]

    # which node is local, and the rectangle it recomputes, for one block of positions
    def _plan(self, positions) -> _Block:
        r = self.input_region
        region = {}  # node -> _Region for local nodes
        steps = []  # (node, kind, info)
        flops_total = flops_done = 0.0
        local, stop = 0, "the input"
        kinds = {}
        for node in self.nodes:
            inputs = node.all_input_nodes
            local_inputs = [a for a in inputs if a in region]
            kind, info = "full", None
            if node.op == "placeholder":
                kind, info = "input", _Region(r.height, r.width, r.top[positions],
                                              r.left[positions])
            elif node.op == "get_attr" or (node.op != "output" and all(
                    kinds[a] == "const" for a in inputs)):
                kind = "const"  # does not depend on the input: its unoccluded value serves
            elif node.op == "output":
                kind = "output"
            elif local_inputs and _is_inplace(node, self.modules) and any(
                    len(a.users) > 1 for a in inputs):
                raise _NotLocal(f"in-place {node.name} writes over a value used elsewhere")
            elif local_inputs and self._spatial(node):
                kind, info = self._local_step(node, local_inputs, region, kinds)
            if node.op == "call_module" and type(self.modules[node.target]) in (
                    (nn.Conv2d, *_timm_types()[0])):
                m, out = self.modules[node.target], self.base[node]
                flops = (m.in_channels // m.groups * m.out_channels * math.prod(m.kernel_size)
                         * out.shape[2] * out.shape[3])
                flops_total += flops
                done = info[0] if kind in ("slide", "binary") else info
                flops_done += flops * (done.height * done.width / (out.shape[2] * out.shape[3])
                                       if kind in ("slide", "pointwise") else 1.0)
            elif node.op == "call_module" and isinstance(self.modules[node.target],
                                                         (nn.Linear, _LinearAsConvolution)):
                m = self.modules[node.target]
                m = m.linear if isinstance(m, _LinearAsConvolution) else m
                flops = m.in_features * m.out_features * (
                    self.base[node].numel() // self.base[node].shape[-1] // self.x.shape[0])
                flops_total += flops
                flops_done += flops  # after the spatial part: every copy in full
            if kind in ("input", "slide", "pointwise", "binary"):
                region[node] = info[0] if kind in ("slide", "binary") else info
                if kind != "input":
                    local += 1
                    stop = node.name
            steps.append((node, kind, info))
            kinds[node] = kind
        if local == 0:
            raise _NotLocal("no local layer at the input")
        return _Block(positions, steps, flops_done / flops_total if flops_total else 1.0,
                      local, stop)

    def _local_step(self, node, local_inputs, region, kinds):
        out = self.base[node]
        height, width = out.shape[-2:]
        args = [a for a in node.args if isinstance(a, torch.fx.Node)]
        others = [a for a in node.all_input_nodes if a not in region]
        if node.op == "call_module":
            m = self.modules[node.target]
            if len(node.all_input_nodes) != 1 or node.kwargs:
                return "full", None
            source = region[local_inputs[0]]
            if _is_pointwise_module(m):
                return "pointwise", source
            found = _sliding(m, self.base[local_inputs[0]].shape[-2:])
            if found is None:
                return "full", None
            geometry, pad, run, _ = found
            if all(g.kernel == 1 and g.stride == 1 and g.before == 0 for g in geometry):
                return "pointwise", source
            spans = []
            for g, top, size, length in ((geometry[0], source.top, height, source.height),
                                         (geometry[1], source.left, width, source.width)):
                reach = g.dilation * (g.kernel - 1)
                lo = -((reach - top - g.before) // g.stride)  # ceil((top + before - reach) / s)
                hi = (top + length - 1 + g.before) // g.stride
                spans.append(_cover(lo, hi, size))
            (top, rh), (left, rw) = spans
            if rh * rw >= _full_fraction(m) * height * width:
                return "full", None
            # pad as the layer does: its crops never reach further (start >= -before; the
            # last output's window ends inside the padded map)
            (in_h, in_w), (gr, gc) = self.base[local_inputs[0]].shape[-2:], geometry
            pads = (gc.before, _after(gc, in_w, width), gr.before, _after(gr, in_h, height))
            reader = _Reader(self._padded(local_inputs[0], pads, pad), (gr.before, gc.before),
                             source, top * gr.stride - gr.before, left * gc.stride - gc.before,
                             (rh - 1) * gr.stride + gr.dilation * (gr.kernel - 1) + 1,
                             (rw - 1) * gc.stride + gc.dilation * (gc.kernel - 1) + 1)
            return "slide", (_Region(rh, rw, top, left), geometry, pad, run, reader)
        pointwise = (node.op == "call_function" and node.target in _POINTWISE_FUNCTIONS) or (
            node.op == "call_method" and node.target in _POINTWISE_METHODS)
        binary = (node.op == "call_function" and node.target in _BINARY) or (
            node.op == "call_method" and node.target in _BINARY_METHODS)
        if (pointwise or binary) and len(local_inputs) == 1 and args and args[0] is local_inputs[0]:
            constants = [self.base[a] for a in others]
            if all(kinds[a] == "const" for a in others) and all(
                    not isinstance(c, torch.Tensor) or c.numel() == 1 for c in constants):
                return "pointwise", region[local_inputs[0]]
            return "full", None
        if binary and len(local_inputs) == 2 and not others and len(args) == 2:
            a, b = (region[n] for n in args)
            if any(self.base[n].shape != out.shape for n in args):
                return "full", None
            top, rh = _cover(torch.minimum(a.top, b.top),
                             torch.maximum(a.top + a.height, b.top + b.height) - 1, height)
            left, rw = _cover(torch.minimum(a.left, b.left),
                              torch.maximum(a.left + a.width, b.left + b.width) - 1, width)
            if rh * rw >= _full_fraction(None) * height * width:
                return "full", None
            union = _Region(rh, rw, top, left)
            readers = {n: _Reader(self._padded(n, (0, 0, 0, 0), 0.0), (0, 0), region[n], top,
                                  left, rh, rw) for n in args}
            return "binary", (union, readers)
        return "full", None

    def check(self):
        """Compare with whole copies through the model at three positions; None if equal."""
        positions = self.input_region.top.numel()
        position = torch.tensor(sorted({0, positions // 2, positions - 1}), device=self.x.device)
        example = torch.zeros_like(position)
        heads = []
        for p in position.tolist():  # each in its own block, one pass through the tail
            block = next(b for b in self.blocks if bool((b.positions == p).any()))
            index = (block.positions == p).nonzero()[0]
            heads.append(self.head(block, example[:1], index))
        ours = self.tail(heads)
        r = self.input_region
        tops, lefts = r.top[position], r.left[position]
        occluded = self.x[example].clone()
        for i in range(position.numel()):
            t, left = int(tops[i]), int(lefts[i])
            occluded[i, :, t:t + self.window, left:left + self.window] = self.fill
        expected = _logits(self.gm(_channels_last(occluded)))
        # rounding differs (other convolution shapes, folded batch norms); a wrong crop
        # or padding changes the logits by a part of the drop itself
        scale = float((self.base_logits[example] - expected).abs().max()) + float(
            self.base_logits.abs().max())
        error = float((ours - expected).abs().max())
        if not error <= torch.finfo(expected.dtype).eps ** 0.5 * scale:
            warnings.warn(f"occlusion: the incremental path failed its self-check (error "
                          f"{error:.3g}, scale {scale:.3g}); using whole copies", stacklevel=4)
            return f"self-check failed (error {error:.3g} of {scale:.3g})"
        return None

    def run(self, block, example, position):
        """Logits of the occluded copies at ``block.positions[position]`` of ``example``."""
        return self.tail([self.head(block, example, position)])

    def head(self, block, example, position):
        """Run ``block``'s steps up to the shared tail; the tail's inputs, full maps."""
        env = self._steps(block.steps, 0, self.tail_start, {}, example, position)
        return [_materialize(env[node], example) for node in self.boundary]

    def tail(self, heads):
        """Logits of the copies whose :meth:`head` outputs are ``heads``, in one pass."""
        env = {node: torch.cat([h[i] for h in heads]) if len(heads) > 1 else heads[0][i]
               for i, node in enumerate(self.boundary)}
        return self._steps(self.blocks[0].steps, self.tail_start, len(self.nodes), env,
                           None, None)

    def _steps(self, steps, start, stop, env, example, position):
        """Run ``steps[start:stop]`` on ``env``; the logits at the output, else ``env``."""
        free_after = self.free_after
        for index in range(start, stop):
            node, kind, info = steps[index]
            if kind == "input":
                r = info
                patch = torch.full((example.numel(), self.x.shape[1], r.height, r.width),
                                   self.fill, dtype=self.x.dtype, device=self.x.device)
                env[node] = _Local(self.x, _channels_last(patch), r.top[position],
                                   r.left[position])
            elif kind == "const":
                env[node] = self.base[node]
            elif kind == "pointwise":
                args = torch.fx.node.map_arg(node.args, lambda a: _patch_of(env[a]))
                kwargs = torch.fx.node.map_arg(node.kwargs, lambda a: _patch_of(env[a]))
                source = next(env[a] for a in node.all_input_nodes if isinstance(env[a], _Local))
                env[node] = _Local(self.base[node], self._call(node, args, kwargs),
                                   source.top, source.left)
            elif kind == "slide":
                r, _, _, run, reader = info
                crop = reader(env[node.all_input_nodes[0]], example, position)
                env[node] = _Local(self.base[node], run(crop), r.top[position], r.left[position])
            elif kind == "binary":
                r, readers = info
                crops = {a: readers[a](env[a], example, position) for a in node.all_input_nodes}
                args = torch.fx.node.map_arg(node.args, crops.get)
                kwargs = torch.fx.node.map_arg(node.kwargs, crops.get)
                env[node] = _Local(self.base[node], self._call(node, args, kwargs),
                                   r.top[position], r.left[position])
            elif kind == "output":
                return _logits(torch.fx.node.map_arg(node.args[0], env.get))
            else:  # full
                args = torch.fx.node.map_arg(node.args, lambda a: _materialize(env[a], example))
                kwargs = torch.fx.node.map_arg(node.kwargs,
                                               lambda a: _materialize(env[a], example))
                convolve = self.formats.get(node.target) if node.op == "call_module" else None
                if convolve is not None and len(args) == 1 and not kwargs:
                    env[node] = convolve(args[0])
                else:
                    env[node] = self._call(node, args, kwargs)
            for a in free_after.get(index, ()):
                env.pop(a, None)
        if stop == len(steps):
            raise _NotLocal("the traced graph has no output")
        return env


def _after(g: _Window, size_in: int, size_out: int) -> int:
    """Padding after the last index that a sliding layer's last output window reads."""
    reach = (size_out - 1) * g.stride + g.dilation * (g.kernel - 1) + 1
    return max(0, reach - size_in - g.before)


def _full_fraction(m) -> float:
    """``FULL_FRACTION`` for layer ``m`` (None: an addition or multiplication)."""
    dense = isinstance(m, nn.Conv2d) and (
        m.in_channels // m.groups * math.prod(m.kernel_size) >= DENSE_MACS)
    return FULL_FRACTION["dense" if dense else "light"]


def _patch_of(value):
    return value.patch if isinstance(value, _Local) else value
