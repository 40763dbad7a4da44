"""What a lesson calls: :func:`setup` first, :func:`show` for every figure, and
:func:`record` / :func:`expect` for every number and claim its prose states.

The build sets ``CONVLENS_MODEL``, ``CONVLENS_WEIGHTS``, ``CONVLENS_LABELS``,
``CONVLENS_LAYERS``, ``CONVLENS_DEVICE`` and ``CONVLENS_SEED``
(``CONVLENS_FIGURE_DIR``, when set, also receives each figure as a PNG file);
run by hand in Jupyter, a lesson gets the defaults (the embedded
EfficientNet-Lite0, CUDA when available, seed 0). :func:`show` renders every
figure the same way (fixed size and dpi, white background, no PNG metadata) so
two builds on one machine give byte-identical pictures, and it states under the
figure which model and device made it.

Values and claims in prose (read by ``coursebuild.prose`` after the lesson ran):

- ``record(name, value, fmt=None)`` in a code cell makes ``{{ name }}`` in any
  markdown cell of the same lesson show the formatted value, in the executed
  notebook and on the page.
- ``expect(condition, claim, value=None)`` states the condition of a sentence.
  In strict mode (:func:`strict`) a false condition raises :class:`ClaimFailed`,
  which fails the build at that cell; otherwise the cell shows a warning box
  saying that the statement does not hold for this model, with ``value``.
"""

from __future__ import annotations

import base64
import html
import io
import os
import random
import re
from dataclasses import dataclass, field

import numpy as np
import torch

from convlens import images, models

from .protocol import (
    CUBLAS_WORKSPACE_CONFIG,
    EXPECT_MIME,
    FIGURE_METADATA,
    NONDETERMINISTIC_MIME,
    RECORD_MIME,
)

# The classes the lessons explain on the photos of a cat and of a cup of coffee.
CAT_CLASSES = ("tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat", "cat")
COFFEE_CLASSES = ("espresso", "cup", "coffee mug")

__all__ = ["CAT_CLASSES", "COFFEE_CLASSES", "DPI", "ClaimFailed", "LessonContext", "and_list", "expect",
           "load_from_environment", "load_model", "nondeterministic_operations", "record", "setup", "show",
           "strict"]

DPI = 100
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_figure_count = 0
_current: LessonContext | None = None


@dataclass
class LessonContext:
    """The model a lesson works on, where it runs, and small conveniences."""

    name: str
    model: torch.nn.Module
    preprocess: models.Preprocess
    labels: list[str]
    layers: dict[str, str]
    device: torch.device
    seed: int
    generator: torch.Generator = field(repr=False, default=None)
    stages: tuple[str, ...] = ()  # the stages lesson 08 walks through, in forward order

    def image(self, name_or_path: str, size: tuple[int, int] | None = None) -> torch.Tensor:
        """A photo as a one-image batch on the lesson's device."""
        return images.prepare(images.load(name_or_path), self.preprocess, size).to(self.device)

    def class_index(self, label: str, x: torch.Tensor | None = None) -> int:
        """The index of class ``label``. When the model's labels lack it (another model,
        your own labels file), pass the photo ``x``: its top class is used instead, and
        one line says so. Without ``x`` a missing label is a ``ValueError``."""
        if not isinstance(label, str):
            raise TypeError(f"label must be a class name (str), got {type(label).__name__}")
        if label in self.labels:
            return self.labels.index(label)
        if x is None:
            raise ValueError(f"{label!r} is not a class name of model {self.name!r} "
                             "(pass the photo x to fall back to its top class)")
        with torch.no_grad():
            top = int(self.model(x.to(self.device)[:1]).argmax(dim=1)[0])
        print(f"{label!r} is not a class of this model; using its top class "
              f"{self.labels[top]!r} for this photo")
        return top

    def most_probable(self, candidates, x: torch.Tensor, exclude=()) -> int:
        """The most probable class of the photo ``x`` among the names ``candidates`` that
        the model has, other than the indices in ``exclude``. If the model has none of them,
        :meth:`class_index` falls back to the photo's top class (and says so); if that one
        is excluded, the next most probable class is taken, and one line says so."""
        with torch.no_grad():
            logits = self.model(x.to(self.device)[:1])[0]
        present = [self.labels.index(c) for c in candidates if c in self.labels]
        present = [c for c in present if c not in exclude]
        if present:
            return max(present, key=lambda c: logits[c].item())
        chosen = self.class_index(candidates[0], x)
        if chosen in exclude:
            chosen = next(c for c in logits.argsort(descending=True).tolist() if c not in exclude)
            print(f"... already used; taking {self.labels[chosen]!r} instead")
        return chosen

    @torch.no_grad()
    def top_classes(self, x: torch.Tensor, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most probable classes of the first image of ``x`` (all of them when the
        model has fewer, e.g. the four of ``evidence_net``)."""
        probabilities = self.model(x).softmax(dim=1)[0]
        values, indices = probabilities.topk(min(k, probabilities.numel()))
        return [(self.labels[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]

    def to_display(self, x: torch.Tensor) -> np.ndarray:
        return images.to_display(x, self.preprocess)


def _pick_device(requested: str) -> torch.device:
    if requested in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CONVLENS_DEVICE asks for CUDA but torch.cuda.is_available() is False")
    return device


def _environment_value(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def load_from_environment(download: bool = True) -> models.LoadedModel:
    """:func:`convlens.models.load` with its arguments from the environment the build sets:

    - ``CONVLENS_MODEL``: the spec (default: the course model ``efficientnet_lite0``),
    - ``CONVLENS_WEIGHTS``: a checkpoint file,
    - ``CONVLENS_LABELS``: a labels file, one class name per line,
    - ``CONVLENS_LAYERS``: ``"role=name,role=name"``, e.g. ``last_spatial=features.28``,
    - ``CONVLENS_PREPROCESS``: ``"resize=256,crop=224,mean=A/B/C,std=A/B/C,
      interpolation=bicubic"`` (any subset; the rest from the weights' metadata),
    - ``CONVLENS_CACHE_DIR``: where a network convlens trains itself (``evidence_net``)
      keeps its weights (default: the torch hub cache).

    Unset or empty variables take the defaults.
    """
    spec = _environment_value("CONVLENS_MODEL") or models.DEFAULT_MODEL
    models.check_spec(spec)  # a bad spec is named before anything else
    layers = _environment_value("CONVLENS_LAYERS")
    return models.load(spec, weights=_environment_value("CONVLENS_WEIGHTS"),
                       labels=_environment_value("CONVLENS_LABELS"),
                       layers=models.parse_layers(layers) if layers else None,
                       preprocess=_environment_value("CONVLENS_PREPROCESS"), download=download,
                       cache_dir=_environment_value("CONVLENS_CACHE_DIR"))


def load_model(spec: str) -> models.LoadedModel:
    """A second model for a lesson (``"evidence_net"``, the network with a known answer),
    on the lesson's device, with the build's cache folder (``CONVLENS_CACHE_DIR``). Call
    :func:`setup` first."""
    if _current is None:
        raise RuntimeError("call lesson.setup() before lesson.load_model()")
    loaded = models.load(spec, cache_dir=_environment_value("CONVLENS_CACHE_DIR"))
    return loaded._replace(model=loaded.model.to(_current.device))


def _deterministic() -> None:
    """PyTorch's documented switches for reproducible results (see its "Reproducibility"
    notes): cuBLAS's fixed workspace (read at its first use, so the build also sets it in
    the kernel's environment), no TF32 in matrix products and convolutions, cuDNN's
    deterministic algorithms without autotuning, and deterministic kernels everywhere. An
    operation with no deterministic CUDA kernel (some backward passes of adaptive pooling
    and interpolation) warns instead of failing; :func:`nondeterministic_operations` lists
    what warned, and the build reports it per lesson."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
    _watch_nondeterminism()


_NONDETERMINISTIC = re.compile(r"^(\S+) does not have a deterministic implementation")
_nondeterministic: list[str] = []


def _watch_nondeterminism() -> None:
    """Remember each operation PyTorch reports as having no deterministic implementation
    (the warning of ``use_deterministic_algorithms(True, warn_only=True)``): the current
    ``warnings.showwarning`` is wrapped once (a wrapper is recognised by its marker, so a
    second setup, or a test harness that restored the original, is handled)."""
    import warnings

    _nondeterministic.clear()
    shown = warnings.showwarning
    if getattr(shown, "_convlens_watch", False):
        return

    def showwarning(message, category, filename, lineno, file=None, line=None):
        found = _NONDETERMINISTIC.match(str(message))
        if found:
            if found.group(1) not in _nondeterministic:
                _nondeterministic.append(found.group(1))
                _emit({NONDETERMINISTIC_MIME: {"operation": found.group(1)},
                       "text/plain": f"no deterministic kernel: {found.group(1)}"})
            return
        shown(message, category, filename, lineno, file, line)

    showwarning._convlens_watch = True
    warnings.showwarning = showwarning


def nondeterministic_operations() -> list[str]:
    """The operations that ran without a deterministic kernel since :func:`setup`."""
    return list(_nondeterministic)


def _fix_matplotlib() -> None:
    import matplotlib

    matplotlib.rcdefaults()
    matplotlib.rcParams.update({
        "figure.dpi": DPI,
        "savefig.dpi": DPI,
        "figure.facecolor": "white",
        "savefig.facecolor": "white",
        "axes.facecolor": "white",
        "font.size": 10,
        "image.interpolation": "nearest",
        "svg.hashsalt": "convlens",
    })


def setup(model: str | None = None, device: str | None = None, seed: int | None = None,
          weights: str | None = None) -> LessonContext:
    """Seed everything, fix plotting defaults, and load the lesson's model on its device.

    Arguments override the environment the build sets (``CONVLENS_MODEL``,
    ``CONVLENS_WEIGHTS``, ``CONVLENS_DEVICE``, ``CONVLENS_SEED``; labels and layer
    overrides come from ``CONVLENS_LABELS`` and ``CONVLENS_LAYERS`` only).

    Side effects, on purpose and process-wide (a lesson is one kernel): seeds Python's,
    NumPy's and torch's global generators; PyTorch's reproducibility switches
    (:func:`_deterministic`: deterministic algorithms, no TF32, deterministic cuDNN, and
    ``os.environ["CUBLAS_WORKSPACE_CONFIG"]`` when unset); resets matplotlib's rcParams to
    the course's; restarts figure numbering and forgets values recorded with
    :func:`record`.
    """
    global _figure_count, _current
    _figure_count = 0
    _recorded.clear()
    device_ = _pick_device(device or os.environ.get("CONVLENS_DEVICE", "auto"))
    seed = int(seed if seed is not None else os.environ.get("CONVLENS_SEED", 0))

    _deterministic()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    _fix_matplotlib()

    if model is not None or weights is not None:  # explicit arguments: a hand-run notebook
        loaded = models.load(model or os.environ.get("CONVLENS_MODEL", models.DEFAULT_MODEL),
                             weights=weights or os.environ.get("CONVLENS_WEIGHTS") or None,
                             cache_dir=_environment_value("CONVLENS_CACHE_DIR"))
    else:
        loaded = load_from_environment()
    generator = torch.Generator(device=device_).manual_seed(seed)
    _current = LessonContext(loaded.name, loaded.model.to(device_), loaded.preprocess,
                             loaded.labels, loaded.layers, device_, seed, generator,
                             tuple(loaded.stages))
    return _current


# ---------------------------------------------------------------------------------------
# Values and claims in prose

_recorded: dict[str, str] = {}


class ClaimFailed(AssertionError):
    """A statement of the lesson's text does not hold (raised in strict mode only)."""


def strict() -> bool:
    """Whether a failed :func:`expect` fails the lesson (else it becomes a note on the page).

    Strict is the configuration the lesson text was written for: the default model
    (``efficientnet_lite0`` with its embedded weights, labels, layer roles and
    preprocessing: none of ``CONVLENS_WEIGHTS``, ``CONVLENS_LABELS``, ``CONVLENS_LAYERS``,
    ``CONVLENS_PREPROCESS`` set), on any device: a claim on the default model must hold on a
    GPU as on the CPU (claims whose measurement rounds differently on a GPU state their
    tolerance). Any other model or setting is lenient. ``CONVLENS_STRICT=1`` or ``=0``
    overrides the rule.
    """
    override = os.environ.get("CONVLENS_STRICT", "").strip()
    if override in ("0", "1"):
        return override == "1"
    if override:
        raise ValueError(f"CONVLENS_STRICT must be 0 or 1, got {override!r}")
    model, _ = _model_and_device()
    overridden = any(os.environ.get(name, "").strip() for name in (
        "CONVLENS_WEIGHTS", "CONVLENS_LABELS", "CONVLENS_LAYERS", "CONVLENS_PREPROCESS"))
    return model == models.DEFAULT_MODEL and not overridden


def _model_and_device() -> tuple[str, str]:
    if _current is not None:
        return _current.name, str(_current.device)
    return (os.environ.get("CONVLENS_MODEL", models.DEFAULT_MODEL),
            str(_pick_device(os.environ.get("CONVLENS_DEVICE", "auto"))))


def and_list(items) -> str:
    """Items joined for a sentence: ``'a'``, ``'a and b'``, ``'a, b and c'`` (each item as
    ``str``; no items: ``''``).

    >>> and_list([2, 4])
    '2 and 4'
    >>> and_list(["occlusion", "Grad-CAM", "SmoothGrad"])
    'occlusion, Grad-CAM and SmoothGrad'
    """
    words = [str(item) for item in items]
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


def _format(value, fmt: str | None) -> str:
    if fmt is None:
        return str(value)
    if not isinstance(fmt, str):
        raise TypeError(f"fmt must be a format string such as '.1%' or '{{:.1%}}', "
                        f"got {type(fmt).__name__}")
    value = _scalar(value)
    try:
        return fmt.format(value) if "{" in fmt else format(value, fmt)
    except (ValueError, TypeError, IndexError, KeyError) as error:
        raise ValueError(f"fmt {fmt!r} cannot format {value!r}: {error}") from None


def _emit(bundle: dict, metadata: dict | None = None) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # plain Python: nothing to display on
        return
    if get_ipython() is not None:
        display(bundle, raw=True, metadata=metadata)


def record(name: str, value, fmt: str | None = None, *, timing: bool = False):
    """Make ``{{ name }}`` in this lesson's markdown show ``value``; return ``value``.

    ``fmt`` is a format spec: ``".1%"`` (as in ``format(value, ".1%")``) or a template
    with braces, ``"{:.1%}"`` or ``"{:.2f} ms"`` (as in ``fmt.format(value)``); ``None``
    gives ``str(value)``. One-element tensors and arrays are formatted as their number.
    The text is inserted into the markdown as it is (it may contain markdown). Recording a
    name again is allowed only with the same text; the build fails otherwise. By hand in
    Jupyter the cell shows ``name = text``; the build removes that output.

    ``timing=True`` marks a value that depends on the machine's speed (a measured time, or
    anything computed from one): the build lists such names in the manifest (``timings``),
    so that two builds can be compared on everything else.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"record: name must be an identifier (letters, digits, _), got {name!r}")
    if not isinstance(timing, bool):
        raise TypeError(f"record: timing must be True or False, got {timing!r}")
    text = _format(value, fmt)
    _recorded[name] = text
    payload = {"name": name, "text": text} | ({"timing": True} if timing else {})
    _emit({RECORD_MIME: payload, "text/plain": f"{name} = {text}"})
    return value


def _as_bool(condition) -> bool:
    if isinstance(condition, bool | np.bool_):
        return bool(condition)
    if isinstance(condition, torch.Tensor) and condition.dtype == torch.bool \
            and condition.numel() == 1:
        return bool(condition.item())
    raise TypeError("expect: condition must be a bool (or a one-element bool tensor), got "
                    f"{type(condition).__name__}: compare the value with a bound")


def _scalar(value):
    """A one-element tensor or array as its Python number; anything else unchanged."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, np.ndarray | np.generic) and value.size == 1:
        return value.item()
    return value


def _describe(value) -> str:
    value = _scalar(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def expect(condition, claim: str, value=None) -> bool:
    """State the condition under which a sentence of the lesson's text holds.

    ``claim`` is the sentence (or its gist) as the reader sees it; ``value`` is what was
    measured (shown when the claim fails; a float is shown with 4 significant digits).
    Returns whether the condition holds. When it does not: in strict mode (:func:`strict`)
    raise :class:`ClaimFailed` naming the claim and the value, which fails the lesson at
    this cell; otherwise show a warning box in this cell's output saying that the
    statement does not hold for this model, and the build lists it in its summary.
    """
    if not isinstance(claim, str) or not claim.strip():
        raise ValueError("expect: claim must be the non-empty sentence being checked")
    holds = _as_bool(condition)
    model, device = _model_and_device()
    measured = None if value is None else _describe(value)
    is_strict = strict()
    payload = {"claim": claim, "holds": holds, "value": measured, "strict": is_strict,
               "model": model, "device": device}
    if holds:
        _emit({EXPECT_MIME: payload, "text/plain": f"holds: {claim}"})
        return True
    where = f"model {model}, device {device}"
    if is_strict:
        raise ClaimFailed(f"the text says {claim!r}, which does not hold on {where}"
                          + (f": measured {measured}" if measured is not None else ""))
    note = (f"The text says: {claim}. This does not hold for this model ({where})"
            + (f": measured {measured}." if measured is not None else "."))
    box = ('<div class="admonition warning convlens-claim"><p class="admonition-title">'
           f'Not on this model</p><p>{html.escape(note)}</p></div>')
    _emit({EXPECT_MIME: payload, "text/html": box, "text/plain": note})
    return False


def render_png(fig) -> bytes:
    """The figure as PNG bytes: fixed dpi, opaque white background, no metadata."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white",
                metadata={"Software": None}, bbox_inches="tight", pad_inches=0.1)
    return buffer.getvalue()


# A figure whose PNG exceeds this is mostly photograph (overlays, heat maps on photos): it is
# shown as a JPEG when that is under half the size, so a lesson page stays under its 3 MB
# budget. Quality 90 without chroma subsampling keeps axis labels and titles sharp.
PHOTO_PNG_BYTES = 120_000
JPEG_QUALITY = 90


def encode_figure(png: bytes) -> tuple[bytes, str]:
    """``(data, format)`` to display: the PNG, or a JPEG of it when the PNG is large and the
    JPEG under half its size. Deterministic for the same PNG and Pillow version."""
    if len(png) <= PHOTO_PNG_BYTES:
        return png, "png"
    from PIL import Image

    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(
        buffer, format="jpeg", quality=JPEG_QUALITY, subsampling=0)
    jpeg = buffer.getvalue()
    return (jpeg, "jpeg") if 2 * len(jpeg) < len(png) else (png, "png")


def show(fig, caption: str, *, model: str | None = None) -> None:
    """Display ``fig`` with a numbered caption naming the model and device; close it.

    ``model`` names the network the figure was computed on when it is not the lesson's
    (a second model from :func:`load_model`, e.g. ``"evidence_net"``).

    ``caption`` says what the figure shows, in a sentence: it is printed under the figure
    and is the image's alt text on the site. Returns nothing, so a cell ending in
    ``show(...)`` prints nothing more; set ``CONVLENS_FIGURE_DIR`` to also get each figure
    as a PNG file. A large, mostly photographic figure is displayed as a JPEG
    (:func:`encode_figure`). Both outputs carry ``FIGURE_METADATA`` (number, caption), which
    the build reads to publish the figure as a file with the anchor ``#figure-N``.
    """
    import matplotlib.pyplot as plt

    global _figure_count
    if not isinstance(caption, str) or not caption.strip():
        plt.close(fig)
        raise ValueError("show: caption must say what the figure shows (a non-empty str): "
                         "it is printed under the figure and is its alt text on the site")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        plt.close(fig)
        raise ValueError(f"show: model must name the network the figure shows, got {model!r}")
    _figure_count += 1
    number = _figure_count
    png = render_png(fig)
    plt.close(fig)
    data, kind = encode_figure(png)
    folder = os.environ.get("CONVLENS_FIGURE_DIR")
    if folder:  # optional copy of every figure as a file, for review
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"figure-{number:02d}.png"), "wb") as handle:
            handle.write(png)
    if _current is not None:
        model, device = model or _current.name, str(_current.device)
    else:
        model, device = model or "none", "cpu"
    text = (f"<p class=\"convlens-caption\" id=\"figure-{number}\"><strong>Figure {number}.</strong> "
            f"{html.escape(caption)} <em>(model: {html.escape(model)}; device: "
            f"{html.escape(device)})</em></p>")
    about = {"number": number, "caption": caption, "model": model, "device": device}
    _emit({f"image/{kind}": base64.b64encode(data).decode("ascii"),
           "text/plain": f"<Figure {number}: {caption}>"},
          metadata={FIGURE_METADATA: about})
    _emit({"text/html": text, "text/plain": f"Figure {number}. {caption}"},
          metadata={FIGURE_METADATA: {"number": number, "role": "caption"}})
