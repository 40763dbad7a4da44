r"""Kernel maps: what each 2-D kernel of a filter does, before the channel sum.

A convolution's output channel $o$ is a sum over the input channels $c$ of its group, plus
a bias ([Dumoulin & Visin 2016][ref-dumoulin2016], "A guide to convolution arithmetic for
deep learning"; the grouped form is [Krizhevsky et al. 2012][ref-krizhevsky2012]):

$$ y[n, o] = b[o] + \sum_{c \,\in\, \mathrm{group}(o)} w[o, c] \star x[n, c] $$

where $\star$ is a single-channel 2-D cross-correlation with the layer's stride, padding
and dilation. A *kernel map* is one term of that sum, $m[n, o, c] = w[o, c] \star x[n, c]$:
the feature map a filter would show if it had only its $c$-th slice.
[`kernel_maps`][convlens.kernel_decomposition.kernel_maps] returns all of them with shape
`[N, C_out, C_in/groups, H_out, W_out]`, so that

    kernel_maps(conv, x).sum(dim=2) + conv.bias[:, None, None] == conv(x)

**Where the bias goes.** The maps exclude the bias: it is added once, after the channel
sum. Two alternatives are correct too: add it to the summed maps, or put
$b[o] / (C_\mathrm{in}/\mathrm{groups})$ inside every map so the sum already holds it.
Putting the whole $b[o]$ in every map (what a grouped convolution with the copied bias
does) is wrong: the sum then holds $C_\mathrm{in}/\mathrm{groups}$ copies of the bias.

**How.** One depthwise (grouped) convolution computes every term at once: each input
channel becomes its own group, and the group of input channel $c$ holds the 2-D slices
$w[o, c]$ of every output channel $o$ that reads $c$. The result is reordered to
`[N, C_out, C_in/groups, ...]`. `out_channels` keeps only some filters (a VGG layer's full
$C_\mathrm{out} \times C_\mathrm{in}$ maps are large), and the work is done a few filters
at a time so the temporary copy stays small.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_batch
from .layers import same_padding, tf_same_padding, timm_class

__all__ = ["kernel_maps", "KernelMapConv2d", "convert_convs"]

def _is_timm_conv2d_same(conv: nn.Module) -> bool:
    """timm's TensorFlow-style "same" convolution, which pads by the input size at run time
    (looked up without importing timm: :func:`convlens.layers.timm_class`)."""
    same = timm_class("Conv2dSame")
    return same is not None and isinstance(conv, same)


def _pads_like_tensorflow(conv: nn.Conv2d) -> bool:
    return isinstance(conv, KernelMapConv2d) and conv.dynamic_same_padding or (
        _is_timm_conv2d_same(conv)
    )


def _check_conv(conv) -> None:
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
    if isinstance(conv, KernelMapConv2d) or _pads_like_tensorflow(conv):
        return
    if type(conv).forward is not nn.Conv2d.forward:
        raise TypeError(
            f"{type(conv).__name__} overrides nn.Conv2d.forward, so its output is not the plain "
            "convolution of its weight; kernel maps cannot be computed for it"
        )


def _padded_input(conv: nn.Conv2d, x: torch.Tensor) -> tuple[torch.Tensor, tuple | str]:
    """Pad ``x`` the way ``conv`` would; return it with the padding left for ``F.conv2d``."""
    kh, kw = conv.kernel_size
    if _pads_like_tensorflow(conv):
        top, bottom = tf_same_padding(x.shape[-2], kh, conv.stride[0], conv.dilation[0])
        left, right = tf_same_padding(x.shape[-1], kw, conv.stride[1], conv.dilation[1])
        return F.pad(x, (left, right, top, bottom)), (0, 0)
    if conv.padding_mode == "zeros":
        return x, conv.padding
    if conv.padding == "valid":
        return x, (0, 0)
    if conv.padding == "same":  # as nn.Conv2d: the odd pixel goes after
        pads = [*same_padding(kw, conv.dilation[1]), *same_padding(kh, conv.dilation[0])]
    else:
        ph, pw = conv.padding
        pads = [pw, pw, ph, ph]
    return F.pad(x, pads, mode=conv.padding_mode), (0, 0)


def _selected_channels(out_channels, total: int) -> torch.Tensor:
    if out_channels is None:
        return torch.arange(total)
    if isinstance(out_channels, bool):
        raise TypeError("out_channels must be an int, a sequence of ints or a tensor")
    if isinstance(out_channels, int):
        out_channels = [out_channels]
    if isinstance(out_channels, torch.Tensor):
        if out_channels.is_floating_point() or out_channels.dtype == torch.bool:
            raise TypeError(f"out_channels must hold integer indices, got {out_channels.dtype}")
        selected = out_channels.detach().cpu().reshape(-1).to(torch.long)
    else:
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in out_channels):
            raise TypeError("out_channels must be an int, a sequence of ints or a tensor")
        selected = torch.tensor(list(out_channels), dtype=torch.long)
    if selected.numel() == 0:
        raise ValueError("out_channels is empty")
    if (selected < 0).any() or (selected >= total).any():
        raise ValueError(
            f"out_channels {selected.tolist()} out of range for a conv with {total} output channels"
        )
    return selected


def _maps_of_some_filters(conv, weight, x, padding, selected):
    """Kernel maps of the filters ``selected`` (a LongTensor), in that order."""
    groups = conv.groups
    per_group_in = weight.shape[1]
    per_group_out = weight.shape[0] // groups
    group_of = selected // per_group_out
    # Each conv group gets the same number m of filters (padded by repeating one of its own
    # filters, dropped after), so one depthwise conv with groups = C_in does all of them.
    counts = torch.bincount(group_of, minlength=groups)
    m = int(counts.max())
    table = torch.arange(groups)[:, None] * per_group_out + torch.zeros(1, m, dtype=torch.long)
    slot = torch.empty_like(selected)
    for g in range(groups):
        mine = (group_of == g).nonzero().flatten()
        table[g, : mine.numel()] = selected[mine]
        slot[mine] = g * m + torch.arange(mine.numel())
    kh, kw = weight.shape[-2:]
    # depthwise weight: row (g, c, t) is the slice w[table[g, t], c] of input channel g*C_g + c
    depthwise = weight[table.flatten().to(weight.device)].reshape(groups, m, per_group_in, kh, kw)
    depthwise = depthwise.transpose(1, 2).reshape(groups * per_group_in * m, 1, kh, kw)
    out = F.conv2d(
        x, depthwise, None, conv.stride, padding, conv.dilation, groups * per_group_in
    )
    n, _, h_out, w_out = out.shape
    out = out.reshape(n, groups, per_group_in, m, h_out, w_out).transpose(2, 3)
    out = out.reshape(n, groups * m, per_group_in, h_out, w_out)
    return out[:, slot.to(out.device)]


def kernel_maps(
    conv: nn.Conv2d,
    x: torch.Tensor,
    out_channels: int | Sequence[int] | torch.Tensor | None = None,
    chunk: int = 64,
) -> torch.Tensor:
    """Per-kernel responses of `conv` to `x`, before the sum over input channels.

    Any `nn.Conv2d` works: stride, dilation, groups, string padding (`"same"`/`"valid"`),
    `padding_mode` (`reflect`, `replicate`, `circular`), and timm's `Conv2dSame`.
    Differentiable in `x` and in the weight.

    Args:
        conv: the convolution (not modified).
        x: its input `[N, C_in, H, W]`, in the dtype of its weight.
        out_channels: the filters to decompose: an int, a sequence or a tensor of
            indices (in that order); None for all `C_out`.
        chunk: filters computed per depthwise convolution, to bound the temporary memory.

    Returns:
        `[N, len(out_channels), C_in/groups, H_out, W_out]`: entry `[n, k, c]` is the 2-D
        slice `c` of filter `out_channels[k]` applied to input channel
        `group * C_in/groups + c`. The bias is excluded (see above), so
        `maps.sum(2) + bias[:, None, None]` is `conv(x)`.

    Raises:
        TypeError: `conv` is not an `nn.Conv2d` (or overrides its `forward`), `x` is not
            a floating-point tensor or not in the weight's dtype, or `out_channels` holds
            no integers.
        ValueError: `x` is not `[N, C, H, W]` or has the wrong number of channels,
            `out_channels` is empty or out of range, or `chunk` is below 1.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> import convlens
        >>> conv = nn.Conv2d(3, 4, 3, padding=1)
        >>> x = torch.randn(2, 3, 8, 8)
        >>> maps = convlens.kernel_maps(conv, x)
        >>> maps.shape
        torch.Size([2, 4, 3, 8, 8])
        >>> summed = maps.sum(dim=2) + conv.bias[:, None, None]
        >>> torch.allclose(summed, conv(x), atol=1e-6)
        True
        >>> convlens.kernel_maps(conv, x, out_channels=[2]).shape
        torch.Size([2, 1, 3, 8, 8])
    """
    _check_conv(conv)
    check_batch(x)
    if x.shape[1] != conv.in_channels:
        raise ValueError(
            f"x has {x.shape[1]} channels but the conv expects in_channels={conv.in_channels}"
        )
    if x.dtype != conv.weight.dtype:
        raise TypeError(f"x has dtype {x.dtype} but the conv's weight is {conv.weight.dtype}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    selected = _selected_channels(out_channels, conv.out_channels)
    x, padding = _padded_input(conv, x)
    if selected.numel() <= chunk:
        return _maps_of_some_filters(conv, conv.weight, x, padding, selected)
    maps = None  # filled chunk by chunk: peak memory = result + one chunk's temporaries
    for start in range(0, selected.numel(), chunk):
        piece = _maps_of_some_filters(conv, conv.weight, x, padding, selected[start : start + chunk])
        if maps is None:
            maps = piece.new_empty((piece.shape[0], selected.numel(), *piece.shape[2:]))
        maps[:, start : start + piece.shape[1]] = piece  # autograd records the copy
    return maps


class KernelMapConv2d(nn.Conv2d):
    """An `nn.Conv2d` that can also keep the kernel maps of its last input.

    Build it from an existing convolution with
    [`from_conv`][convlens.kernel_decomposition.KernelMapConv2d.from_conv] (its weight and
    bias are copied into this module's own Parameters, with their `requires_grad` flags).
    `forward` returns the ordinary convolution, equal to the source's, and stays
    trainable. With `keep_maps=True` it also stores `kernel_maps(self, x, map_channels)`
    of its last input in `last_kernel_maps` (detached, to save memory: call
    [`kernel_maps`][convlens.kernel_decomposition.kernel_maps] for a differentiable
    version); with `keep_maps=False` (the default) `last_kernel_maps` stays None and
    nothing extra is computed.

    Args:
        *args: the arguments of `nn.Conv2d` (`in_channels`, `out_channels`,
            `kernel_size`, ...).
        keep_maps: store the kernel maps of each input in `last_kernel_maps`.
        map_channels: the filters whose maps are kept (None: all).
        dynamic_same_padding: pad like TensorFlow's "SAME" by the input size at run time,
            as timm's `Conv2dSame` does.
        **kwargs: the keyword arguments of `nn.Conv2d` (`stride`, `padding`, ...).

    Attributes:
        last_kernel_maps: `[N, len(map_channels), C_in/groups, H_out, W_out]` of the last
            input when `keep_maps` is set, else None.

    Examples:
        >>> import torch
        >>> from convlens.kernel_decomposition import KernelMapConv2d
        >>> conv = KernelMapConv2d(3, 4, 3, keep_maps=True)
        >>> y = conv(torch.randn(1, 3, 8, 8))
        >>> y.shape, conv.last_kernel_maps.shape
        (torch.Size([1, 4, 6, 6]), torch.Size([1, 4, 3, 6, 6]))
    """

    def __init__(
        self,
        *args,
        keep_maps: bool = False,
        map_channels: Sequence[int] | torch.Tensor | None = None,
        dynamic_same_padding: bool = False,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.keep_maps = keep_maps
        self.map_channels = map_channels
        self.dynamic_same_padding = dynamic_same_padding
        self.last_kernel_maps: torch.Tensor | None = None

    @classmethod
    def from_conv(
        cls,
        conv: nn.Conv2d,
        keep_maps: bool = False,
        map_channels: Sequence[int] | torch.Tensor | None = None,
    ) -> KernelMapConv2d:
        """A `KernelMapConv2d` that computes what `conv` computes, with copies of its
        parameters (and their `requires_grad` flags) and its training mode.

        Args:
            conv: the convolution to copy (an `nn.Conv2d`, a `KernelMapConv2d` or timm's
                `Conv2dSame`); not modified.
            keep_maps: store the kernel maps of each input in `last_kernel_maps`.
            map_channels: the filters whose maps are kept (None: all).

        Returns:
            The new module, on the device and in the dtype of `conv`'s weight.

        Raises:
            TypeError: `conv` is not an `nn.Conv2d`, or overrides its `forward`.

        Examples:
            >>> import torch
            >>> from torch import nn
            >>> from convlens.kernel_decomposition import KernelMapConv2d
            >>> conv = nn.Conv2d(3, 4, 3, stride=2)
            >>> copy = KernelMapConv2d.from_conv(conv, keep_maps=True, map_channels=[0])
            >>> x = torch.randn(1, 3, 9, 9)
            >>> torch.equal(copy(x), conv(x)), copy.last_kernel_maps.shape
            (True, torch.Size([1, 1, 3, 4, 4]))
        """
        _check_conv(conv)
        new = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=conv.bias is not None,
            padding_mode=conv.padding_mode,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
            keep_maps=keep_maps,
            map_channels=map_channels,
            dynamic_same_padding=_pads_like_tensorflow(conv),
        )
        with torch.no_grad():
            new.weight.copy_(conv.weight)
            new.weight.requires_grad_(conv.weight.requires_grad)
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
                new.bias.requires_grad_(conv.bias.requires_grad)
        new.train(conv.training)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.keep_maps:
            with torch.no_grad():
                self.last_kernel_maps = kernel_maps(self, x, self.map_channels).detach()
        if self.dynamic_same_padding:
            x, padding = _padded_input(self, x)
            return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)
        return super().forward(x)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", keep_maps={self.keep_maps}"


def convert_convs(model: nn.Module, keep_maps: bool = False) -> nn.Module:
    """A deep copy of `model` with every `nn.Conv2d` replaced by a
    [`KernelMapConv2d`][convlens.kernel_decomposition.KernelMapConv2d].

    The copy computes the same outputs; `model` itself is left exactly as found. A
    convolution used at two places stays one (shared) module in the copy.

    Args:
        model: the network to copy (a convolution alone works too).
        keep_maps: make every converted convolution keep the kernel maps of its input.

    Returns:
        The converted copy, an `nn.Module` of the same structure.

    Raises:
        TypeError: `model` is not an `nn.Module`, or holds a `Conv2d` subclass whose
            `forward` is not the plain convolution (other than timm's `Conv2dSame`, which
            is reproduced); the error names that module.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> import convlens
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
        >>> copy = convlens.convert_convs(model, keep_maps=True)
        >>> [type(m).__name__ for m in copy]
        ['KernelMapConv2d', 'ReLU', 'KernelMapConv2d']
        >>> x = torch.randn(1, 3, 8, 8)
        >>> torch.allclose(copy(x), model(x)), copy[2].last_kernel_maps.shape
        (True, torch.Size([1, 2, 4, 4, 4]))
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            try:
                _check_conv(module)
            except TypeError as error:
                raise TypeError(f"cannot convert {name!r}: {error}") from None
    converted = copy.deepcopy(model)
    replacements: dict[int, KernelMapConv2d] = {}
    for parent in list(converted.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d):
                if id(child) not in replacements:
                    replacements[id(child)] = KernelMapConv2d.from_conv(child, keep_maps=keep_maps)
                setattr(parent, child_name, replacements[id(child)])
    if isinstance(converted, nn.Conv2d):
        return KernelMapConv2d.from_conv(converted, keep_maps=keep_maps)
    return converted
