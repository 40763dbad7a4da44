"""The course's photographs, and the way back from a model's input to a picture.

Named images are scikit-image's bundled public-domain photos, so the course
needs no download. ``cat_and_coffee`` puts two of them side by side for the
class-discriminative lessons (Grad-CAM must find the cat for "tabby" and the
cup for "espresso" in the same input).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = ["KNOWN_IMAGES", "load", "prepare", "to_display"]

_SKIMAGE_PHOTOS = {
    "chelsea": "chelsea",  # a tabby cat
    "coffee": "coffee",  # a cup of espresso on a saucer
    "astronaut": "astronaut",
    "rocket": "rocket",
}
KNOWN_IMAGES: tuple[str, ...] = (*_SKIMAGE_PHOTOS, "cat_and_coffee")


def _skimage_photo(name: str) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, _SKIMAGE_PHOTOS[name])()).convert("RGB")


def _square(image: Image.Image, side: int) -> Image.Image:
    width, height = image.size
    edge = min(width, height)
    left, top = (width - edge) // 2, (height - edge) // 2
    box = (left, top, left + edge, top + edge)
    return image.crop(box).resize((side, side), Image.Resampling.BICUBIC)


def _cat_and_coffee(side: int = 320) -> Image.Image:
    """The cat (left) and the coffee cup (right), each a centred square: ``side x 2*side``."""
    canvas = Image.new("RGB", (2 * side, side))
    canvas.paste(_square(_skimage_photo("chelsea"), side), (0, 0))
    canvas.paste(_square(_skimage_photo("coffee"), side), (side, 0))
    return canvas


def load(name_or_path: str | os.PathLike) -> Image.Image:
    """A PIL RGB image: a name from :data:`KNOWN_IMAGES`, or the path of an image file."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"expected an image name or a path, got {type(name_or_path).__name__}")
    if name_or_path in _SKIMAGE_PHOTOS:
        return _skimage_photo(str(name_or_path))
    if name_or_path == "cat_and_coffee":
        return _cat_and_coffee()
    path = Path(name_or_path)
    if not path.exists():
        raise FileNotFoundError(
            f"no image named {str(name_or_path)!r}: not a file, and not one of the "
            f"bundled photos ({', '.join(KNOWN_IMAGES)})"
        )
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a folder, not an image file")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except UnidentifiedImageError:
        raise ValueError(f"{str(path)!r} is not an image file PIL can read") from None


def prepare(image: Image.Image, preprocess, size: tuple[int, int] | None = None) -> torch.Tensor:
    """A one-image batch ``[1, 3, H, W]`` in the model's input space.

    Without ``size`` the model's own transform runs (resize, centre crop).
    With ``size=(H, W)`` the whole image is resized to exactly that, no crop:
    use it for wide pictures such as ``cat_and_coffee`` whose sides a centre
    crop would cut off.
    """
    if size is None:
        return preprocess(image)[None]
    height, width = size
    resized = image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return preprocess.normalize(pixels)[None]


def to_display(x: torch.Tensor, preprocess) -> np.ndarray:
    """A normalized image ``[3, H, W]`` (or a one-image batch) as ``[H, W, 3]`` in [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a tensor, got {type(x).__name__}")
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError(f"to_display takes one image, got a batch of {x.shape[0]}")
        x = x[0]
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected an image [3, H, W], got shape {tuple(x.shape)}")
    pixels = preprocess.denormalize(x.detach().float().cpu()).clamp(0, 1)
    return pixels.permute(1, 2, 0).numpy()
