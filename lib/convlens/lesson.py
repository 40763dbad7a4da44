"""What a lesson calls first and for every figure.

The build sets ``CONVLENS_MODEL``, ``CONVLENS_DEVICE`` and ``CONVLENS_SEED``
(``CONVLENS_FIGURE_DIR``, when set, also receives each figure as a PNG file);
run by hand in Jupyter, a lesson gets the defaults (the embedded
EfficientNet-Lite0, CUDA when available, seed 0). :func:`show` renders every
figure the same way (fixed size and dpi, white background, no PNG metadata) so
two builds on one machine give byte-identical pictures, and it states under the
figure which model and device made it.
"""

from __future__ import annotations

import html
import io
import os
import random
from dataclasses import dataclass, field

import numpy as np
import torch

from . import images, models

__all__ = ["LessonContext", "setup", "show", "DPI"]

DPI = 100
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

    def image(self, name_or_path: str, size: tuple[int, int] | None = None) -> torch.Tensor:
        """A photo as a one-image batch on the lesson's device."""
        return images.prepare(images.load(name_or_path), self.preprocess, size).to(self.device)

    def class_index(self, label: str) -> int:
        if label not in self.labels:
            raise ValueError(f"{label!r} is not an ImageNet class name")
        return self.labels.index(label)

    @torch.no_grad()
    def top_classes(self, x: torch.Tensor, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most probable classes of the first image of ``x``."""
        probabilities = self.model(x).softmax(dim=1)[0]
        values, indices = probabilities.topk(k)
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
    """Seed everything, fix plotting defaults, and load the lesson's model on its device."""
    global _figure_count, _current
    _figure_count = 0
    model = model or os.environ.get("CONVLENS_MODEL", models.DEFAULT_MODEL)
    weights = weights or os.environ.get("CONVLENS_WEIGHTS") or None
    device_ = _pick_device(device or os.environ.get("CONVLENS_DEVICE", "auto"))
    seed = int(seed if seed is not None else os.environ.get("CONVLENS_SEED", 0))

    # cuBLAS needs this before its first use to be deterministic.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    _fix_matplotlib()

    loaded = models.load(model, weights=weights)
    generator = torch.Generator(device=device_).manual_seed(seed)
    _current = LessonContext(loaded.name, loaded.model.to(device_), loaded.preprocess,
                             loaded.labels, loaded.layers, device_, seed, generator)
    return _current


def render_png(fig) -> bytes:
    """The figure as PNG bytes: fixed dpi, opaque white background, no metadata."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white",
                metadata={"Software": None}, bbox_inches="tight", pad_inches=0.1)
    return buffer.getvalue()


def show(fig, caption: str) -> None:
    """Display ``fig`` with a numbered caption naming the model and device; close it.

    Returns nothing, so a cell ending in ``show(...)`` prints nothing more; set
    ``CONVLENS_FIGURE_DIR`` to also get each figure as a file.
    """
    import matplotlib.pyplot as plt

    global _figure_count
    _figure_count += 1
    png = render_png(fig)
    plt.close(fig)
    folder = os.environ.get("CONVLENS_FIGURE_DIR")
    if folder:  # optional copy of every figure as a file, for review
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"figure-{_figure_count:02d}.png"), "wb") as handle:
            handle.write(png)
    if _current is not None:
        model, device = _current.name, str(_current.device)
    else:
        model, device = "none", "cpu"
    text = (f"<p class=\"convlens-caption\"><strong>Figure {_figure_count}.</strong> "
            f"{html.escape(caption)} <em>(model: {html.escape(model)}; device: "
            f"{html.escape(device)})</em></p>")
    try:
        from IPython import get_ipython
        from IPython.display import HTML, Image, display

        if get_ipython() is not None:
            display(Image(data=png, format="png"))
            display(HTML(text))
    except ImportError:  # plain Python: nothing to display on
        pass
