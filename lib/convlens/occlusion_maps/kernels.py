"""Kernel choice: which PyTorch kernels compute the occluded copies, and how many copies at once.

Every choice here is a fixed function of the model, the shapes and the device, never of a
measurement, so two runs on one machine compute the same numbers in the same order and give
bit-identical maps. (The engine once timed F.linear against an equivalent convolution, and
NCHW against channels_last tensors, at the start of each process and kept the faster: the
kernels differ in rounding, and under load the measured winner changed from run to run.)

* Memory format: the engine's private copy of the model has its 4-D weights in
  ``channels_last`` (:func:`working_copy`) and runs on ``channels_last`` tensors; oneDNN
  (CPU) and cuDNN (GPU) convolve faster in that layout, and the crops are read as
  [N, H, W, C] rectangles, which it makes contiguous per position.
* Fully connected layers run as ``F.linear``.
* Batch norms in eval mode that alone read a convolution are folded into a private copy of
  its weights (:func:`fold_batch_norms`): one pass over the map instead of two, values
  changed by rounding only.
* Copies per pass: :data:`DEFAULT_BATCH_SIZE`.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..layers import is_pointwise_module, timm_class
from .tracing import Traced

DEFAULT_BATCH_SIZE = {("cpu", "incremental"): 32, ("cpu", "batched"): 16,
                      ("cuda", "incremental"): 128, ("cuda", "batched"): 128}
"""Occluded copies per forward pass when `batch_size=None`, by
`(device type, path)`. On a CPU the incremental path runs blocks of side x side
neighbouring positions (side = isqrt of the batch): 32 gives 5 x 5 blocks, and larger
batches were no faster within run-to-run noise while their rectangles, sized for more
positions, grow; whole copies run best in smaller batches, whose activations stay in the
caches. A GPU wants many copies in flight.
"""
#: copies per pass on any other device
OTHER_DEVICES_BATCH_SIZE = 16


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
    return DEFAULT_BATCH_SIZE.get((torch.device(device).type, path), OTHER_DEVICES_BATCH_SIZE)


def channels_last(t: torch.Tensor) -> torch.Tensor:
    """A 4-D tensor in ``channels_last`` memory format; any other tensor as it is."""
    return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t


def working_copy(model: nn.Module) -> nn.Module:
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


def _is_convolution(m: nn.Module) -> bool:
    same = timm_class("Conv2dSame")
    return type(m) is nn.Conv2d or (same is not None and type(m) is same)


def _is_batch_norm(m: nn.Module) -> bool:
    act = timm_class("BatchNormAct2d")
    return type(m) is nn.BatchNorm2d or (act is not None and type(m) is act)


def _fold_pair(traced: Traced, node, calls: dict[str, int]):
    """``(convolution, the batch norm's node)`` if ``node`` is a convolution whose only user
    is an eval-mode batch norm of its channels, each called once in the graph; else None."""
    if node.op != "call_module" or len(node.users) != 1 or calls[node.target] != 1:
        return None
    conv, (user,) = traced.modules[node.target], node.users
    if not _is_convolution(conv) or user.op != "call_module":
        return None
    bn = traced.modules[user.target]
    if calls[user.target] != 1 or len(user.all_input_nodes) != 1 or user.kwargs:
        return None
    if not _is_batch_norm(bn) or not is_pointwise_module(bn) or bn.num_features != conv.out_channels:
        return None
    return conv, user


def _fused(conv: nn.Module, bn: nn.Module) -> nn.Module:
    """A copy of ``conv`` whose weights hold ``bn`` as well (computed in float64):
    w * g / sqrt(v + eps), (b - m) * g / sqrt(v + eps) + beta."""
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
    return fused


def fold_batch_norms(traced: Traced) -> int:
    """Fold each eval-mode batch norm that alone reads a convolution into a copy of the
    convolution's weights, in ``traced.modules`` (the caller's modules are not touched):
    the convolution's node then computes both, the batch norm's node only what comes after
    it (nothing for ``nn.BatchNorm2d``; timm's ``BatchNormAct2d`` keeps its activation).
    Returns the number folded."""
    calls: dict[str, int] = {}
    for node in traced.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    folded = 0
    for node in traced.nodes:
        pair = _fold_pair(traced, node, calls)
        if pair is None:
            continue
        conv, user = pair
        bn = traced.modules[user.target]
        if type(bn) is nn.BatchNorm2d:
            rest = nn.Identity()
        elif type(bn.drop) is nn.Identity:
            rest = bn.act
        else:
            continue  # dropout and activation after the norm: not one module to keep
        with torch.no_grad():
            traced.modules[node.target] = _fused(conv, bn)
        traced.modules[user.target] = rest
        folded += 1
    return folded
