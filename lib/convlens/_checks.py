"""Input validation shared by every technique.

Each check raises ``TypeError`` or ``ValueError`` with a message that names the
argument and what was wrong, so a reader's mistake is reported where it happens
instead of surfacing as a shape error deep inside PyTorch.
"""

from __future__ import annotations

import torch
from torch import nn


def check_model(model, name: str = "model") -> nn.Module:
    """Require an ``nn.Module``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be an nn.Module, got {type(model).__name__}")
    return model


def check_batch(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Require a floating-point image batch ``[N, C, H, W]``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(
            f"{name} must be a batch [N, C, H, W] (4 dimensions), got shape {tuple(x.shape)}; "
            "add a batch dimension with x.unsqueeze(0)"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor (normalized image), got dtype {x.dtype}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch")
    return x


def check_target(target, batch_size: int, num_outputs: int | None = None) -> torch.Tensor:
    """Turn ``target`` (an int, or N class indices) into a LongTensor of shape ``[N]``.

    An int applies to every example of the batch. With ``num_outputs`` the
    indices are checked against the model's output size.
    """
    if isinstance(target, bool):
        raise TypeError("target must be an int or a tensor of class indices, got a bool")
    if isinstance(target, int):
        target = torch.full((batch_size,), target, dtype=torch.long)
    elif isinstance(target, (list, tuple)):
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in target):
            raise TypeError("target list must hold ints")
        target = torch.tensor(target, dtype=torch.long)
    elif isinstance(target, torch.Tensor):
        if target.is_floating_point() or target.dtype == torch.bool or target.is_complex():
            raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
        target = target.detach().to(torch.long).reshape(-1) if target.ndim == 0 else target
        if target.ndim != 1:
            raise ValueError(f"target must be 1-D with one index per example, got {tuple(target.shape)}")
        target = target.to(torch.long).cpu()
    else:
        raise TypeError(f"target must be an int or a tensor of class indices, got {type(target).__name__}")
    if target.numel() == 1 and batch_size > 1:
        target = target.expand(batch_size).clone()
    if target.numel() != batch_size:
        raise ValueError(
            f"target has {target.numel()} entries but the batch has {batch_size} examples; "
            "give one class index per example, or a single int for all"
        )
    if (target < 0).any():
        raise ValueError(f"target holds a negative class index: {target.tolist()}")
    if num_outputs is not None and (target >= num_outputs).any():
        raise ValueError(
            f"target index {int(target.max())} is out of range for a model with "
            f"{num_outputs} outputs (valid: 0..{num_outputs - 1})"
        )
    return target


def select_scores(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``logits[n, target[n]]`` for each n, after checking the indices against the output."""
    if logits.ndim != 2:
        raise ValueError(
            f"the model must return logits of shape [N, classes], got {tuple(logits.shape)}"
        )
    target = check_target(target, logits.shape[0], logits.shape[1]).to(logits.device)
    return logits.gather(1, target[:, None])[:, 0]


def resolve_layer(model: nn.Module, layer: nn.Module | str) -> tuple[str, nn.Module]:
    """Return ``(qualified_name, module)`` for a module object or its name in ``model``."""
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules:
            candidates = [n for n in modules if n and (layer in n or n.endswith(layer))][:8]
            hint = f"; close matches: {candidates}" if candidates else ""
            raise ValueError(
                f"unknown layer name {layer!r}: not in model.named_modules(){hint}"
            )
        return layer, modules[layer]
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name, module
        raise ValueError(f"layer {type(layer).__name__} is not a submodule of the model")
    raise TypeError(f"layer must be an nn.Module or its qualified name, got {type(layer).__name__}")


def model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """The device and floating dtype to build inputs for ``model`` with.

    Taken from the model's first parameter. A model without parameters gives
    ``(cpu, float32)``; a first parameter that is not floating point gives its device
    and ``float32``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    param = next(model.parameters(), None)
    if param is None:
        return torch.device("cpu"), torch.float32
    return param.device, param.dtype if param.is_floating_point() else torch.float32


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value
