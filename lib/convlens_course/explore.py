"""Interactive figures for the static course site: the build computes, the page draws.

Each ``*_explorer`` function runs the library's own method over a small grid of settings
(layers, classes, windows, noise levels ...) and returns an :class:`Explorer`: data for one
interactive figure. Displayed in a notebook it becomes one HTML output::

    <div class="convlens-explorer" data-convlens-explorer="gradcam" data-convlens-data="{...}">
      <p class="convlens-explorer-fallback">...what the explorer shows; needs JavaScript...</p>
    </div>

The data is JSON in an attribute, not in a ``<script type="application/json">``: Material's
instant navigation re-creates every inline script of the new page without its ``type`` and
runs it as JavaScript (a JSON object is a syntax error there, and the data is lost), and an
attribute is also left out of the search index.

The site-wide modules under ``site_assets/javascripts/explorers/`` find these roots on every
page (Material's instant navigation included) and draw them on canvases: no kernel, no CDN.
Without JavaScript (or in Jupyter, where the script is not loaded) only the fallback
sentence shows, and the lesson's static figure beside it still tells the story.

The data's layout is described once, in ``explorer_schema.json`` (JSON Schema; see
:mod:`convlens_course.protocol`): ``VERSION`` and ``KINDS`` are read from it, the page
refuses data of another version, and the tests validate every explorer against it.

Encoding. Every map is quantised to ``uint8`` over its own range ``[lo, hi]``
(``value = lo + q * (hi - lo) / 255``, so the error is at most half a step), compressed with
zlib and base64-encoded: ``{"shape": [...], "lo": ..., "hi": ..., "z": "..."}``; a stack
``[K, ...]`` has one ``lo``/``hi`` per leading index. The browser inflates it with
``DecompressionStream("deflate")``. Colour maps are matplotlib's, shipped as 256-entry RGB
tables (``"luts"``), applied the way ``imshow`` does (index ``floor(256 * v)``, clipped).
Photos are JPEG data URIs. :func:`decode` reads a map back (the tests compare it with the
library).
"""

from __future__ import annotations

import base64
import html
import io
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

# The technique modules are imported inside the explorer that uses each, so that a lesson's
# depfile lists only what it draws with (an edit to occlusion_maps re-runs the lessons that
# use occlusion, not every lesson with an explorer).
from convlens._checks import check_batch, check_positive_int, check_target, resolve_layer
from convlens.hooks import capture, only_call
from convlens.layers import forward_calls, stride_of
from convlens_course.protocol import EXPLORER_KINDS, EXPLORER_VERSION

__all__ = [
    "Explorer",
    "KINDS",
    "channels_explorer",
    "decode",
    "gradcam_explorer",
    "occlusion_explorer",
    "receptive_field_explorer",
    "saliency_display",
    "smoothgrad_explorer",
    "stage_layers",
    "strided_layers",
]

VERSION = EXPLORER_VERSION
KINDS = EXPLORER_KINDS


# --- encoding -------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _numpy(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().to("cpu", torch.float64).numpy()
    return np.asarray(t, dtype=np.float64)


def _quantise(a: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.clip(np.rint((a - lo) / span * 255), 0, 255).astype(np.uint8)


def _pack(values, lo: float | None = None, hi: float | None = None) -> dict:
    """One map as uint8 over ``[lo, hi]`` (its own range by default), zlib, base64."""
    a = _numpy(values)
    lo = float(a.min()) if lo is None else float(lo)
    hi = float(a.max()) if hi is None else float(hi)
    q = _quantise(a, np.float64(lo), np.float64(hi))
    return {"shape": list(a.shape), "lo": lo, "hi": hi, "z": _b64(zlib.compress(q.tobytes(), 9))}


def _pack_stack(values, symmetric: bool = False) -> dict:
    """A stack ``[K, ...]`` of maps, each quantised over its own range (``[-m, m]`` with
    ``symmetric``, m its largest magnitude)."""
    a = _numpy(values)
    flat = a.reshape(a.shape[0], -1)
    if symmetric:
        hi = np.abs(flat).max(axis=1)
        lo = -hi
    else:
        lo, hi = flat.min(axis=1), flat.max(axis=1)
    shape = (-1,) + (1,) * (a.ndim - 1)
    q = _quantise(a, lo.reshape(shape), hi.reshape(shape))
    return {"shape": list(a.shape), "lo": [float(v) for v in lo], "hi": [float(v) for v in hi],
            "z": _b64(zlib.compress(q.tobytes(), 9))}


def decode(entry: Mapping, quantised: bool = False) -> np.ndarray:
    """A packed map back as float64 values (or its raw ``uint8`` codes with ``quantised``)."""
    if not isinstance(entry, Mapping) or "z" not in entry:
        raise TypeError("entry must be a packed map (a dict with 'shape', 'lo', 'hi', 'z')")
    q = np.frombuffer(zlib.decompress(base64.b64decode(entry["z"])), dtype=np.uint8)
    q = q.reshape(entry["shape"])
    if quantised:
        return q
    lo, hi = np.asarray(entry["lo"], np.float64), np.asarray(entry["hi"], np.float64)
    if lo.ndim:
        lo = lo.reshape((-1,) + (1,) * (q.ndim - 1))
        hi = hi.reshape((-1,) + (1,) * (q.ndim - 1))
    return lo + q * (hi - lo) / 255


def _lut(name: str) -> str:
    """matplotlib's colour map ``name`` as 256 RGB triples (768 bytes, base64)."""
    from matplotlib import colormaps

    table = colormaps[name].resampled(256)(np.arange(256))[:, :3]
    return _b64(np.rint(table * 255).astype(np.uint8).tobytes())


def _photo(image, quality: int = 90) -> dict:
    """A display image ``[H, W, 3]`` in [0, 1] as a JPEG data URI."""
    from PIL import Image

    a = _numpy(image)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"image must be a display array [H, W, 3], got shape {a.shape}")
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.rint(a * 255), 0, 255).astype(np.uint8)).save(
        buffer, format="JPEG", quality=quality)
    return {"src": "data:image/jpeg;base64," + _b64(buffer.getvalue()),
            "height": int(a.shape[0]), "width": int(a.shape[1])}


def _check_image(image, x: torch.Tensor) -> None:
    shape = tuple(_numpy(image).shape)
    if shape[:2] != tuple(x.shape[-2:]):
        raise ValueError(f"image has shape {shape}, but x is {tuple(x.shape[-2:])} pixels: "
                         "pass the display version of x (e.g. ctx.to_display(x))")


def _one_image(x) -> torch.Tensor:
    x = check_batch(x)
    if x.shape[0] != 1:
        raise ValueError(f"x must hold one image [1, C, H, W], got {tuple(x.shape)}")
    return x


def _names(model: nn.Module, layers, argument: str = "layers") -> list[str]:
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    if not isinstance(layers, (Sequence, tuple)) or isinstance(layers, str) or not layers:
        raise TypeError(f"{argument} must be a non-empty list of layers (names or modules)")
    return [resolve_layer(model, layer)[0] for layer in layers]


@dataclass
class Explorer:
    """Data for one interactive figure; displays as an HTML output in a notebook."""

    kind: str
    data: dict
    fallback: str
    title: str = ""
    _html: str | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    def to_html(self) -> str:
        if self._html is None:
            payload = json.dumps({"version": VERSION, "kind": self.kind, "title": self.title,
                                  **self.data}, separators=(",", ":"), allow_nan=False)
            self._html = (
                f'<div class="convlens-explorer" data-convlens-explorer="{self.kind}" '
                f'data-convlens-data="{html.escape(payload, quote=True)}">'
                f'<p class="convlens-explorer-fallback"><strong>Interactive figure'
                f'{": " + html.escape(self.title) if self.title else ""}.</strong> '
                f'{html.escape(self.fallback)} It is drawn by JavaScript on the course '
                'website; here, the static figure above shows the same method.</p>'
                '<noscript><p class="convlens-explorer-noscript">(JavaScript is off: the '
                'interactive version is not shown.)</p></noscript></div>')
        return self._html

    @property
    def nbytes(self) -> int:
        """Size of the HTML output in bytes (what the page carries)."""
        return len(self.to_html().encode())

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return f"<convlens {self.kind} explorer: {self.nbytes / 1024:.0f} KiB of data>"


# --- layer helpers --------------------------------------------------------------------------

def _call_order(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Modules called exactly once with a 4-D output, in the order they return."""
    calls = forward_calls(model, x)
    counts: dict[str, int] = {}
    for call in calls:
        counts[call.name] = counts.get(call.name, 0) + 1
    return [c.name for c in calls if c.name and counts[c.name] == 1
            and isinstance(c.output, torch.Tensor) and c.output.ndim == 4]


def strided_layers(model: nn.Module, x: torch.Tensor, include=()) -> list[str]:
    """Convolutions and pools that change the jump (stride > 1), plus ``include``, in the
    order the forward pass reaches them (the layers a receptive-field explorer offers)."""
    x = check_batch(x)
    order = _call_order(model, x[:1])
    modules = dict(model.named_modules())
    wanted = {resolve_layer(model, layer)[0] for layer in include}
    wanted.update(name for name in order if stride_of(modules[name]) not in (None, (1, 1)))
    return [name for name in order if name in wanted]


def stage_layers(model: nn.Module, x: torch.Tensor, first, last, count: int = 4) -> list[str]:
    """About ``count`` layers from ``first`` to ``last`` (both kept) for a layer slider.

    Candidates are the modules called once with a map output that come between the two in
    the forward pass and are siblings of ``first`` (same parent: the blocks of a stage
    list, the layers of a ``features`` Sequential); ``count`` of them are taken evenly spaced.
    """
    count = check_positive_int(count, "count")
    first, last = resolve_layer(model, first)[0], resolve_layer(model, last)[0]
    order = _call_order(model, check_batch(x)[:1])
    for name, argument in ((first, "first"), (last, "last")):
        if name not in order:
            raise ValueError(f"{argument}={name!r} is not called once with a map output")
    start, stop = order.index(first), order.index(last)
    if start > stop:
        raise ValueError(f"first={first!r} comes after last={last!r} in the forward pass")
    parent = first.rpartition(".")[0]
    between = [n for n in order[start:stop] if n.rpartition(".")[0] == parent] + [last]
    if len(between) <= count:
        return between
    picks = np.unique(np.rint(np.linspace(0, len(between) - 1, count)).astype(int))
    return [between[i] for i in picks]


def _top_classes(model: nn.Module, x: torch.Tensor, labels, k: int) -> list[dict]:
    with torch.no_grad():
        probabilities = model(x).softmax(dim=1)[0]
    values, indices = probabilities.topk(k)
    return [{"index": int(i), "label": str(labels[int(i)]) if labels is not None else str(int(i)),
             "p": round(float(v), 4)} for v, i in zip(values.tolist(), indices.tolist())]


# --- the explorers --------------------------------------------------------------------------

def _footprint(model: nn.Module, x: torch.Tensor, name: str, activation: torch.Tensor,
               unit: tuple[int, int], tries: int) -> tuple[int, int, np.ndarray]:
    """(channel, skipped, mask): the most active channel at ``unit`` whose gradient reaches
    the input, how many more active ones had none, and its footprint (the most active
    channel's empty one when none of the first ``tries`` has a gradient)."""
    from convlens.receptive_fields import empirical_receptive_field
    i, j = unit
    order = activation[:, i, j].argsort(descending=True, stable=True)[:tries].tolist()
    first = None
    for skipped, channel in enumerate(order):
        mask = empirical_receptive_field(model, name, (channel, i, j), x=x).cpu().numpy()
        if mask.any():
            return channel, skipped, mask
        first = first or (channel, 0, mask)
    return first


def receptive_field_explorer(model: nn.Module, x: torch.Tensor, image, layers,
                             probes: int = 3, margin: int | None = None,
                             tries: int = 16) -> Explorer:
    """Hover a unit of a layer: its theoretical box (:func:`receptive_field`) on the photo.

    For a ``probes x probes`` grid of units per layer (first, middle and last rows and
    columns for 3; the middle one is ``h // 2``, the unit the page starts on) it also ships the measured footprint, the pixels with a nonzero gradient
    (:func:`empirical_receptive_field` on this photo), for the unit's most active channel
    whose gradient reaches the input: a more active channel held at a clamp's bound (ReLU6
    at 6) has a zero gradient and an empty footprint, and is skipped (``skipped`` counts
    them; at most ``tries`` channels are tried, the most active first).
    ``margin`` pixels of padding are drawn around the photo (default: an eighth of its side)
    so that boxes reaching into the padding stay visible.
    """
    from convlens.receptive_fields import receptive_field
    x = _one_image(x)
    _check_image(image, x)
    probes = check_positive_int(probes, "probes")
    tries = check_positive_int(tries, "tries")
    names = _names(model, layers)
    height, width = x.shape[-2:]
    fields = receptive_field(model, (height, width))
    missing = [n for n in names if n not in fields]
    if missing:
        raise ValueError(f"layers {missing} have no receptive field (not spatial maps)")
    with torch.no_grad(), capture(model, names) as records:
        model(x)
    entries = []
    for name in names:
        activation = only_call(records, name)[0]
        if activation.ndim != 3:
            raise ValueError(f"layer {name!r} outputs shape {tuple(activation.shape)}: it has "
                             "no receptive field map (choose a layer with a spatial output)")
        _, h, w = activation.shape
        # evenly spaced, rounded half up: with 3 probes the middle one is unit h // 2, the
        # unit the page shows first
        rows = sorted({int(v) for v in np.floor(np.linspace(0, h - 1, probes) + 0.5)})
        cols = sorted({int(v) for v in np.floor(np.linspace(0, w - 1, probes) + 0.5)})
        measured = []
        for i in rows:
            for j in cols:
                channel, skipped, mask = _footprint(model, x, name, activation, (i, j), tries)
                ys, xs = np.nonzero(mask)
                if ys.size == 0:
                    box, bits = [0, 0, 0, 0], ""
                else:
                    box = [int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1]
                    crop = mask[box[0]:box[2], box[1]:box[3]]
                    bits = _b64(zlib.compress(np.packbits(crop.ravel()).tobytes(), 9))
                measured.append({"unit": [i, j], "channel": channel, "skipped": skipped,
                                 "box": box, "pixels": int(mask.sum()), "z": bits})
        f = fields[name]
        entries.append({"name": name, "size": list(f.size), "stride": list(f.stride),
                        "padding": list(f.padding), "map": [int(h), int(w)],
                        "measured": measured})
    margin = max(height, width) // 8 if margin is None else int(margin)
    return Explorer(
        "receptive-field",
        {"image": _photo(image), "margin": margin, "layers": entries},
        "Point at any unit of a chosen layer to see its theoretical receptive field (size, "
        "jump and offset) and, for a grid of units, the pixels its gradient actually reaches.",
        title="receptive fields")


def gradcam_explorer(model: nn.Module, photos: Mapping, layers, labels=None, top: int = 5,
                     alpha: float = 0.5, cmap: str = "jet") -> Explorer:
    """Grad-CAM for each of the ``top`` classes of each photo, at each layer.

    ``photos`` maps a name to ``(x, image)``: a one-image batch and its display array.
    Maps are shipped at the layer's resolution (``gradcam(..., upsample=False)``); the page
    upsamples them bilinearly like ``F.interpolate(align_corners=False)`` and divides each by
    its own maximum, as the lesson's figures do.
    """
    from convlens.cam import gradcam
    if not isinstance(photos, Mapping) or not photos:
        raise TypeError("photos must be a non-empty dict {name: (x, image)}")
    top = check_positive_int(top, "top")
    entries = []
    for title, pair in photos.items():
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise TypeError(f"photos[{title!r}] must be a pair (x, image)")
        x, image = pair
        x = _one_image(x)
        _check_image(image, x)
        names = _names(model, layers)
        classes = _top_classes(model, x, labels, top)
        targets = torch.tensor([c["index"] for c in classes], device=x.device)
        maps, sizes = [], []
        for name in names:
            cams = gradcam(model, x.expand(len(classes), -1, -1, -1), targets, name,
                           upsample=False)[:, 0]  # [top, h, w]
            sizes.append(list(cams.shape[-2:]))
            maps.append(_pack_stack(cams))
        entries.append({"name": str(title), "image": _photo(image), "classes": classes,
                        "layers": [{"name": n, "map": s} for n, s in zip(names, sizes)],
                        "maps": maps})
    return Explorer(
        "gradcam",
        {"photos": entries, "alpha": float(alpha), "cmap": cmap, "luts": {cmap: _lut(cmap)}},
        f"Choose a photo, one of its top {top} classes and a layer to see the Grad-CAM map "
        "for that choice.", title="Grad-CAM by class and layer")


def occlusion_explorer(model: nn.Module, x: torch.Tensor, image, labels=None,
                       windows: Sequence[int] = (32, 64), strides: Sequence[int] = (16, 32),
                       top: int = 3, fill: float = 0.0, batch_size: int | None = None) -> Explorer:
    """Occlusion maps (:func:`occlusion`) for every window x stride, for the ``top`` classes.

    All classes come from the same occluded passes (``occlusion(..., target=None)``);
    ``batch_size`` None is the device's default. On the page every map shares one
    symmetric colour scale (``RdBu_r``, red = hiding the window lowers the logit) and each
    cell is centred on its window, as in the lesson's figures. Every window must tile the
    image at every stride (no window narrower than the stride, no uncovered border), so
    that each painted cell stands for pixels that were really hidden.
    """
    from convlens.occlusion_maps import occlusion
    x = _one_image(x)
    _check_image(image, x)
    windows = [check_positive_int(w, "windows") for w in windows]
    strides = [check_positive_int(s, "strides") for s in strides]
    for w in windows:
        for s in strides:
            if w < s or any((size - w) % s for size in x.shape[-2:]):
                raise ValueError(
                    f"windows {w} at stride {s} do not tile the {x.shape[-2]}x{x.shape[-1]} "
                    "image: " + ("gaps between the windows" if w < s else "an uncovered border")
                    + " would never be occluded (choose windows >= strides with (size - window) "
                    "divisible by the stride)")
    classes = _top_classes(model, x, labels, check_positive_int(top, "top"))
    indices = [c["index"] for c in classes]
    maps = []
    limit = 0.0
    for window in windows:
        row = []
        for stride in strides:
            drops = occlusion(model, x, None, window, stride, fill, batch_size)[0, indices]
            limit = max(limit, float(drops.abs().max()))
            row.append(_pack_stack(drops))
        maps.append(row)
    return Explorer(
        "occlusion",
        {"image": _photo(image), "classes": classes, "windows": windows, "strides": strides,
         "fill": float(fill), "maps": maps, "limit": limit, "cmap": "RdBu_r",
         "luts": {"RdBu_r": _lut("RdBu_r")}},
        "Choose the occluding window, the stride and one of the top classes to see how much "
        "the class's logit drops when each part of the photo is hidden.",
        title="occlusion: window, stride, class")


def saliency_display(attribution, percentile: float = 99.0) -> np.ndarray:
    """max |g| over colour channels, divided by its ``percentile`` and clipped to [0, 1]:
    the per-pixel picture of the saliency lesson, ``[H, W]``."""
    a = _numpy(attribution)
    if a.ndim == 4:
        a = a[0]
    if a.ndim != 3:
        raise ValueError(f"attribution must be [C, H, W] or [1, C, H, W], got {a.shape}")
    m = np.abs(a).max(axis=0)
    m = m / max(float(m.max()), 1e-12)
    return np.clip(m / max(float(np.percentile(m, percentile)), 1e-12), 0, 1)


def smoothgrad_explorer(model: nn.Module, x: torch.Tensor, image, target,
                        noise: Sequence[float] = (0.05, 0.1, 0.2, 0.3),
                        samples: Sequence[int] = (1, 4, 16), seed: int = 0,
                        label: str | None = None, percentile: float = 99.0) -> Explorer:
    """SmoothGrad (:func:`smoothgrad`) for every noise level x sample count, plus the plain
    gradient (noise 0).

    For each level the noise comes from one generator seeded with ``seed``, so the map for
    ``N`` samples equals ``smoothgrad(..., samples=N, generator=Generator().manual_seed(seed))``;
    the larger counts reuse the smaller ones' samples (the library draws sample m m-th).
    Shown as in the lesson: max |g| over colours, clipped at the ``percentile``, grey.
    """
    from convlens.saliency import gradient, smoothgrad
    x = _one_image(x)
    _check_image(image, x)
    target = int(check_target(target, 1)[0])
    counts = sorted({check_positive_int(n, "samples") for n in samples})
    levels = [float(v) for v in noise]
    if any(v <= 0 for v in levels):
        raise ValueError("noise levels must be > 0 (noise 0, the plain gradient, is included)")
    maps = [[_pack(saliency_display(gradient(model, x, target), percentile))]]
    device = x.device
    for level in levels:
        generator = torch.Generator(device=device).manual_seed(seed)
        total, done, row = torch.zeros_like(x), 0, []
        for n in counts:
            total += (n - done) * smoothgrad(model, x, target, samples=n - done, noise=level,
                                             generator=generator)
            done = n
            row.append(_pack(saliency_display(total / n, percentile)))
        maps.append(row)
    return Explorer(
        "smoothgrad",
        {"image": _photo(image), "target": target, "label": label or str(target),
         "noise": [0.0, *levels], "samples": counts, "seed": seed, "percentile": percentile,
         "maps": maps, "cmap": "gray", "luts": {"gray": _lut("gray")}},
        "Move the noise level and the number of samples to see how the SmoothGrad map of the "
        "class changes.", title="SmoothGrad: noise and samples")


def channels_explorer(model: nn.Module, x: torch.Tensor, image, layers, first_conv=None,
                      filters: int | Sequence[int] = 8) -> Explorer:
    """Pick a channel of a layer (its feature map), or a filter of the first convolution
    (its per-kernel maps, :func:`kernel_maps`, and their sum).

    Feature maps use ``viridis`` with each map's own range; kernel maps ``RdBu_r`` on one
    symmetric scale per filter, as in the lessons. ``filters`` is a count (the strongest
    filters by weight norm) or a list of filter indices of ``first_conv``.
    """
    from convlens.features import feature_maps
    from convlens.kernel_decomposition import kernel_maps
    x = _one_image(x)
    _check_image(image, x)
    names = _names(model, layers)
    entries = []
    for name in names:
        maps = feature_maps(model, x, name)[0]
        if maps.ndim != 3:
            raise ValueError(f"layer {name!r} outputs {tuple(maps.shape)}, not feature maps")
        entries.append({"name": name, "maps": _pack_stack(maps)})
    data = {"image": _photo(image), "layers": entries, "luts": {
        "viridis": _lut("viridis"), "RdBu_r": _lut("RdBu_r")}}
    if first_conv is not None:
        conv_name, conv = resolve_layer(model, first_conv)
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"first_conv={conv_name!r} is a {type(conv).__name__}, not a Conv2d")
        weight = conv.weight.detach()
        if isinstance(filters, int):
            count = min(check_positive_int(filters, "filters"), conv.out_channels)
            strength = weight.flatten(1).norm(dim=1)
            chosen = sorted(int(o) for o in strength.argsort(descending=True)[:count])
        else:
            chosen = [int(o) for o in filters]
            if not chosen or any(not 0 <= o < conv.out_channels for o in chosen):
                raise ValueError(f"filters must index the {conv.out_channels} filters of "
                                 f"{conv_name!r}, got {filters!r}")
        if conv.in_channels != x.shape[1]:
            raise ValueError(f"first_conv={conv_name!r} reads {conv.in_channels} channels, "
                             f"but x has {x.shape[1]}: pass the convolution that reads the image")
        with torch.no_grad():  # the first convolution reads the image itself
            km = kernel_maps(conv, x, out_channels=chosen)[0]  # [F, C_in, h, w]
            total = km.sum(dim=1, keepdim=True)
            if conv.bias is not None:
                total = total + conv.bias.detach()[chosen].view(-1, 1, 1, 1)
        panels = torch.cat([km, total], dim=1)  # [F, C_in + 1, h, w]
        w = weight[chosen]
        data["conv"] = {"name": conv_name, "filters": chosen, "in_channels": conv.in_channels,
                        "kernel": list(w.shape[-2:]), "maps": _pack_stack(panels, symmetric=True),
                        "weights": _pack_stack(w)}
    return Explorer(
        "channels", data,
        "Pick a layer and one of its channels to see that feature map"
        + (", or a filter of the first convolution to see its per-kernel maps"
           if first_conv is not None else "") + ".", title="channels and filters")
