"""The course's photographs, and the way back from a model's input to a picture.

Named images are scikit-image's bundled public-domain photos, so the course
needs no download. ``cat_and_coffee`` puts two of them side by side for the
class-discriminative lessons (Grad-CAM must find the cat for "tabby" and the
cup for "espresso" in the same input).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = ["EVIDENCE_CLASSES", "KNOWN_IMAGES", "OBJECT_CLASSES", "OBJECT_SIZE", "POOL", "GroundTruthImage",
           "PoolPhoto", "evidence_set", "ground_truth_set", "load", "photo_pool", "prepare", "to_display"]

_SKIMAGE_PHOTOS = {
    "chelsea": "chelsea",  # a tabby cat
    "coffee": "coffee",  # a cup of espresso on a saucer
    "astronaut": "astronaut",
    "rocket": "rocket",
}
KNOWN_IMAGES: tuple[str, ...] = (*_SKIMAGE_PHOTOS, "cat_and_coffee")
"""The names [`load`][convlens.images.load] knows: scikit-image's bundled photos
(`chelsea`, a tabby cat; `coffee`, a cup of espresso; `astronaut`; `rocket`) and
`cat_and_coffee`, the first two side by side.
"""


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


# ---- every permissively licensed photo available offline ------------------------------

@dataclass(frozen=True)
class PoolPhoto:
    """One photo of [`photo_pool`][convlens.images.photo_pool].

    Attributes:
        name: its name in [`POOL`][convlens.images.POOL].
        image: the RGB PIL image.
        source: where it comes from.
        licence: under which terms, as its distributor states them.
        colour: False for a grey-level photo, given as RGB with three equal channels.

    Examples:
        >>> from convlens import images
        >>> photo = images.photo_pool()[0]
        >>> photo.name, photo.image.mode, photo.colour
        ('astronaut', 'RGB', True)
    """

    name: str
    image: Image.Image = field(repr=False)
    source: str
    licence: str
    colour: bool  # False: a grey-level photo, given as RGB with three equal channels


# name -> (loader, source, licence, colour). The licences are those stated in the docstrings
# of scikit-image's ``skimage.data`` functions; matplotlib's Grace Hopper portrait is a
# U.S. Navy photograph (a work of the U.S. government, public domain). Photos whose terms
# the distributor does not state (skimage's moon, the motorcycle stereo pair) are left out,
# and so are drawings, documents and microscopy slides that are not photographs of scenes.
_SKIMAGE = "scikit-image (skimage.data)"
POOL: dict[str, tuple[str, str, bool]] = {
    "astronaut": (_SKIMAGE, "public domain (NASA)", True),
    "chelsea": (_SKIMAGE, "CC0 (Stefan van der Walt)", True),
    "coffee": (_SKIMAGE, "CC0 (Rachel Michetti)", True),
    "rocket": (_SKIMAGE, "public domain (SpaceX)", True),
    "hubble_deep_field": (_SKIMAGE, "public domain (NASA)", True),
    "retina": (_SKIMAGE, "CC0 1.0", True),
    "camera": (_SKIMAGE, "CC0 (Lav Varshney)", False),
    "coins": (_SKIMAGE, "no known copyright restrictions", False),
    "clock": (_SKIMAGE, "public domain (Stefan van der Walt)", False),
    "brick": (_SKIMAGE, "CC0 (CC0Textures)", False),
    "grass": (_SKIMAGE, "CC0 (CC0Textures)", False),
    "gravel": (_SKIMAGE, "CC0 (CC0Textures)", False),
    "grace_hopper": ("matplotlib (sample_data/grace_hopper.jpg)",
                     "public domain (U.S. Navy photograph)", True),
}
"""The photo pool: name -> `(source, licence, colour)` of every permissively licensed photo
the installed packages ship (the licences those distributors state); see
[`photo_pool`][convlens.images.photo_pool].
"""


def _pool_image(name: str) -> Image.Image:
    if name == "grace_hopper":
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as handle:
            return Image.open(handle).convert("RGB")
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def photo_pool(colour_only: bool = False) -> list[PoolPhoto]:
    """Every permissively licensed photograph that ships with the installed packages
    (scikit-image's data and matplotlib's samples), in a fixed order, each with its source and
    licence ([`POOL`][convlens.images.POOL]).

    Use it for statistics over photos (a spectrum, dataset examples, a claim meant to
    generalise) rather than one or two pictures.

    Args:
        colour_only: leave out the grey-level photos.

    Returns:
        A list of [`PoolPhoto`][convlens.images.PoolPhoto].

    Raises:
        TypeError: `colour_only` is not a bool.

    Examples:
        >>> from convlens import images
        >>> pool = images.photo_pool(colour_only=True)
        >>> len(pool) < len(images.POOL), all(p.colour for p in pool)
        (True, True)
    """
    if not isinstance(colour_only, bool):
        raise TypeError(f"colour_only must be a bool, got {type(colour_only).__name__}")
    return [PoolPhoto(name, _pool_image(name), source, licence, colour)
            for name, (source, licence, colour) in POOL.items() if colour or not colour_only]


def load(name_or_path: str | os.PathLike) -> Image.Image:
    """A PIL RGB image: a bundled photo by name, or an image file.

    Args:
        name_or_path: a name from [`KNOWN_IMAGES`][convlens.images.KNOWN_IMAGES], or the
            path of an image file.

    Returns:
        The image, converted to RGB.

    Raises:
        TypeError: `name_or_path` is neither a string nor a path.
        FileNotFoundError: it is no bundled photo and no file.
        IsADirectoryError: it is a folder.
        ValueError: the file is not an image PIL can read.

    Examples:
        >>> from convlens import images
        >>> cat = images.load("chelsea")
        >>> cat.size, cat.mode
        ((451, 300), 'RGB')
    """
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
    """A one-image batch in the model's input space.

    Without `size` the model's own transform runs (resize, centre crop). With `size=(H, W)`
    the whole image is resized to exactly that, no crop: use it for wide pictures such as
    `cat_and_coffee` whose sides a centre crop would cut off.

    Args:
        image: a PIL image.
        preprocess: the model's [`Preprocess`][convlens.models.Preprocess].
        size: `(H, W)` to resize to, or None for the model's transform.

    Returns:
        `[1, 3, H, W]`, normalised.

    Raises:
        TypeError: `image` is not a PIL image.

    Examples:
        >>> from convlens import images
        >>> from convlens.models import Preprocess
        >>> preprocess = Preprocess(resize=64, crop=56, mean=(0.485, 0.456, 0.406),
        ...                         std=(0.229, 0.224, 0.225))
        >>> cat = images.load("chelsea")
        >>> images.prepare(cat, preprocess).shape
        torch.Size([1, 3, 56, 56])
        >>> images.prepare(cat, preprocess, size=(40, 60)).shape
        torch.Size([1, 3, 40, 60])
    """
    if size is None:
        return preprocess(image)[None]
    height, width = size
    resized = image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return preprocess.normalize(pixels)[None]


def to_display(x: torch.Tensor, preprocess) -> np.ndarray:
    """A normalised image as a picture: the way back from the model's input.

    Args:
        x: an image `[3, H, W]` or a one-image batch `[1, 3, H, W]` in the model's input
            space.
        preprocess: the model's [`Preprocess`][convlens.models.Preprocess] (its mean and
            standard deviation).

    Returns:
        A numpy array `[H, W, 3]` in [0, 1], ready for `imshow`.

    Raises:
        TypeError: `x` is not a tensor.
        ValueError: `x` is not one `[3, H, W]` image.

    Examples:
        >>> from convlens import images
        >>> from convlens.models import Preprocess
        >>> preprocess = Preprocess(resize=64, crop=56, mean=(0.485, 0.456, 0.406),
        ...                         std=(0.229, 0.224, 0.225))
        >>> x = images.prepare(images.load("coffee"), preprocess)
        >>> picture = images.to_display(x, preprocess)
        >>> picture.shape, float(picture.min()) >= 0, float(picture.max()) <= 1
        ((56, 56, 3), True, True)
    """
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


# ---- a ground-truth set for the pointing game -------------------------------------------

OBJECT_CLASSES: dict[str, tuple[str, ...]] = {
    "cat": ("tabby", "tiger cat", "Egyptian cat"),
    "cup": ("espresso", "cup", "coffee mug"),
}
"""The ImageNet classes that name each object of
[`ground_truth_set`][convlens.images.ground_truth_set] (a lesson points at the one its
model scores highest).
"""
# Where each object lies in its photo (x0, y0, x1, y1), drawn by hand on the bundled files:
# chelsea is 451x300 (the cat's head and chest), coffee is 600x400 (cup, spoon and saucer).
_OBJECT_BOXES = {"cat": ("chelsea", (40, 0, 370, 300)), "cup": ("coffee", (75, 15, 480, 390))}


@dataclass(frozen=True)
class GroundTruthImage:
    """An RGB image and the box of each object in it.

    Attributes:
        image: the PIL image.
        boxes: `{object: (x0, y0, x1, y1)}` in its pixels: columns `x0 <= c < x1` and rows
            `y0 <= r < y1` (PIL's crop box).
        background: `"photo"` (the composite), `"neutral"` or `"textured"`.

    Examples:
        >>> from convlens import images
        >>> item = images.ground_truth_set(n=1, size=64, composite=False)[0]
        >>> sorted(item.boxes), item.background, item.image.size
        (['cat', 'cup'], 'neutral', (64, 64))
    """

    image: Image.Image = field(repr=False)
    boxes: dict[str, tuple[int, int, int, int]]
    background: str  # "photo" (the composite), "neutral" or "textured"


def _composite_truth(size: int) -> GroundTruthImage:
    """``cat_and_coffee`` resized to ``size x 2 size``, boxes mapped through its square crops."""
    image = _cat_and_coffee().resize((2 * size, size), Image.Resampling.BICUBIC)
    boxes = {}
    for half, name in enumerate(("cat", "cup")):
        photo, (x0, y0, x1, y1) = _OBJECT_BOXES[name]
        width, height = _skimage_photo(photo).size
        edge = min(width, height)
        left, top = (width - edge) // 2, (height - edge) // 2
        scale = size / edge

        def place(value, offset, shift=0, edge=edge, scale=scale):
            return int(round(min(max(value - offset, 0), edge) * scale)) + shift

        boxes[name] = (place(x0, left, half * size), place(y0, top),
                       place(x1, left, half * size), place(y1, top))
    return GroundTruthImage(image, boxes, "photo")


def _background(kind: str, size: int, generator: torch.Generator) -> Image.Image:
    if kind == "neutral":  # one grey level, 0.35..0.65
        level = 0.35 + 0.3 * torch.rand((), generator=generator)
        pixels = level.expand(size, size, 3)
    else:  # smooth colour blobs plus fine grain
        coarse = torch.rand(1, 3, 6, 6, generator=generator)
        blobs = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic",
                                                align_corners=False)[0].permute(1, 2, 0)
        grain = torch.rand(size, size, 3, generator=generator) - 0.5
        pixels = (0.3 + 0.4 * blobs + 0.15 * grain).clamp(0, 1)
    return Image.fromarray((pixels.numpy() * 255).round().astype(np.uint8), "RGB")


OBJECT_SIZE = (0.18, 0.32)
"""The longer side of each pasted object of
[`ground_truth_set`][convlens.images.ground_truth_set], as a fraction of the image side
`(low, high)`: small enough that most objects lie away from the centre, so that a map
peaking at the centre (the pointing game's centre baseline) is strong but far from
perfect.
"""


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def ground_truth_set(n: int = 8, size: int = 224, generator: torch.Generator | None = None,
                     composite: bool = True,
                     object_size: tuple[float, float] = OBJECT_SIZE) -> list[GroundTruthImage]:
    """Images with known object boxes, the same for the same seed.

    With `composite` the first item is `cat_and_coffee` at `size x 2 size` with a box for
    each object. Then `n` square `size x size` images, alternately on a neutral grey and a
    textured background, each holding the cat and the cup cropped from their photos, each
    scaled so its longer side is a uniformly drawn fraction of `size` between
    `object_size[0]` and `object_size[1]` and pasted at a place drawn uniformly among all
    those where it fits inside the frame, the two never overlapping (the second object is
    redrawn until it does not overlap the first).

    Args:
        n: the number of square images.
        size: their side, in pixels (at least 32).
        generator: a CPU `torch.Generator` drawing every random choice (None: seed 0).
        composite: put `cat_and_coffee` first.
        object_size: `(low, high)` fractions of `size` (default
            [`OBJECT_SIZE`][convlens.images.OBJECT_SIZE], 18-32%).

    Returns:
        A list of [`GroundTruthImage`][convlens.images.GroundTruthImage].

    Raises:
        TypeError: `object_size` is not a pair of numbers, or `generator` not a
            `torch.Generator`.
        ValueError: `n` is negative, `size` below 32, or `object_size` not within
            `0 < low <= high <= 0.5`.

    Examples:
        >>> from convlens import images
        >>> items = images.ground_truth_set(n=2, size=64)
        >>> [(item.background, item.image.size) for item in items]
        [('photo', (128, 64)), ('neutral', (64, 64)), ('textured', (64, 64))]
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 32:
        raise ValueError(f"size must be an int >= 32 pixels, got {size!r}")
    if (not isinstance(object_size, (tuple, list)) or len(object_size) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                       for v in object_size)):
        raise TypeError(f"object_size must be a pair of fractions (low, high), got "
                        f"{object_size!r}")
    low, high = (float(v) for v in object_size)
    if not 0 < low <= high <= 0.5:
        raise ValueError(f"object_size must satisfy 0 < low <= high <= 0.5 (two objects must "
                         f"fit side by side), got {object_size!r}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    elif not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    crops = {name: _skimage_photo(photo).crop(box) for name, (photo, box) in _OBJECT_BOXES.items()}

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    items = [_composite_truth(size)] if composite else []
    for i in range(n):
        kind = ("neutral", "textured")[i % 2]
        canvas = _background(kind, size, generator)
        boxes: dict[str, tuple[int, int, int, int]] = {}
        for name, crop in crops.items():
            longer = uniform(low, high) * size
            scale = longer / max(crop.size)
            w, h = max(1, round(crop.width * scale)), max(1, round(crop.height * scale))
            for _ in range(100):  # rejection sampling of a place that overlaps nothing
                left = int(uniform(0, size - w + 1 - 1e-9))
                top = int(uniform(0, size - h + 1 - 1e-9))
                box = (left, top, left + w, top + h)
                if not any(_overlap(box, other) for other in boxes.values()):
                    break
            else:  # rare: the corner diagonally opposite the first object's centre
                (x0, y0, x1, y1), = boxes.values()
                left = 0 if x0 + x1 > size else size - w
                top = 0 if y0 + y1 > size else size - h
                box = (left, top, left + w, top + h)
            canvas.paste(crop.resize((w, h), Image.Resampling.BICUBIC), box[:2])
            boxes[name] = box
        items.append(GroundTruthImage(canvas, boxes, kind))
    return items


# ---- a data set whose evidence we place ourselves ---------------------------------------

EVIDENCE_CLASSES: tuple[str, ...] = ("plus", "cross", "ring", "corner")
"""The classes of [`evidence_set`][convlens.images.evidence_set], in label order: the shape
of the one *target* each image holds. A plus and a cross are two bars crossing at their
middles (upright and diagonal), a ring is a hollow square, and a corner is two bars meeting
at their ends (turned any of four ways).
"""


@functools.cache
def _target_shape(kind: str, side: int, stroke: int, turn: int) -> np.ndarray:
    """The stroke pixels of one target, a bool ``[side, side]`` array (read-only)."""
    r, c = np.mgrid[:side, :side]
    low, high = (side - stroke) // 2, (side - stroke) // 2 + stroke
    if kind == "plus":
        shape = ((r >= low) & (r < high)) | ((c >= low) & (c < high))
    elif kind == "cross":
        width = 0.71 * stroke
        shape = (np.abs(r - c) < width) | (np.abs(r + c - (side - 1)) < width)
    elif kind == "ring":
        shape = (r < stroke) | (r >= side - stroke) | (c < stroke) | (c >= side - stroke)
    else:  # corner: a bar along the top and one down the left side, turned
        shape = np.rot90((r < stroke) | (c < stroke), turn)
    shape = np.ascontiguousarray(shape)
    shape.flags.writeable = False
    return shape


@functools.cache
def _distractor_pixels(kind: int, extent: int, stroke: int) -> np.ndarray:
    """A filled disc (kind 0, ``extent`` = twice the radius, in tenths of a pixel), a filled
    square (1), or a horizontal, vertical, diagonal or anti-diagonal bar (2-5)."""
    if kind == 0:
        radius = extent / 20
        side = int(2 * radius) + 1
        r, c = np.mgrid[:side, :side] - (side - 1) / 2
        shape = r**2 + c**2 <= radius**2
    elif kind == 1:
        shape = np.ones((extent, extent), bool)
    else:
        r, c = np.mgrid[:extent, :extent]
        low, high = (extent - stroke) // 2, (extent - stroke) // 2 + stroke
        shape = [(r >= low) & (r < high), (c >= low) & (c < high),
                 np.abs(r - c) < 0.71 * stroke, np.abs(r + c - (extent - 1)) < 0.71 * stroke
                 ][kind - 2]
    shape = np.ascontiguousarray(shape)
    shape.flags.writeable = False
    return shape


def _distractor_shape(rng: np.random.Generator, unit: float) -> np.ndarray:
    """A filled disc, a filled square or one straight bar (never two bars: no target)."""
    kind = int(rng.integers(3))
    if kind == 0:
        return _distractor_pixels(0, int(rng.uniform(30, 90) * unit), 0)
    if kind == 1:
        return _distractor_pixels(1, max(int(rng.integers(3, 9) * unit), 2), 0)
    length, stroke = max(int(rng.integers(7, 14) * unit), 4), max(int(round(2 * unit)), 1)
    return _distractor_pixels(2 + int(rng.integers(4)), length, stroke)


def _place(rng: np.random.Generator, shape: np.ndarray, size: int, taken: np.ndarray,
           margin: int) -> tuple[int, int] | None:
    """A top-left corner where ``shape`` fits inside the frame and its box, grown by
    ``margin``, covers no taken pixel (``None`` after 50 tries)."""
    h, w = shape.shape
    for _ in range(50):
        top, left = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
        if not taken[max(top - margin, 0):top + h + margin,
                     max(left - margin, 0):left + w + margin].any():
            return top, left
    return None


def _item_colour(rng: np.random.Generator) -> np.ndarray:
    """Light or dark, with equal chance, for targets and distractors alike."""
    return rng.uniform(0.65, 1.0, 3) if rng.random() < 0.5 else rng.uniform(0.0, 0.35, 3)


def _evidence_image(rng: np.random.Generator, size: int, label: int, blobs: np.ndarray):
    """One image ``[size, size, 3]`` in [0, 1] and its evidence box (a bool mask)."""
    unit = size / 64
    pixels = 0.3 + 0.4 * blobs  # smooth background colours in [0.3, 0.7]
    taken = np.zeros((size, size), bool)
    side = int(rng.integers(9, 14) * unit)
    stroke = max(int(round(2 * unit)), 1)
    target = _target_shape(EVIDENCE_CLASSES[label], side, stroke, int(rng.integers(4)))
    top, left = int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1))
    pixels[top:top + side, left:left + side][target] = _item_colour(rng)
    evidence = np.zeros((size, size), bool)
    evidence[top:top + side, left:left + side] = True
    taken |= evidence
    for _ in range(int(rng.integers(3, 7))):
        shape = _distractor_shape(rng, unit)
        corner = _place(rng, shape, size, taken, margin=max(int(3 * unit), 2))
        if corner is None:
            continue
        y, x = corner
        pixels[y:y + shape.shape[0], x:x + shape.shape[1]][shape] = _item_colour(rng)
        taken[y:y + shape.shape[0], x:x + shape.shape[1]] = True
    pixels += rng.uniform(-0.06, 0.06, (size, size, 3))  # grain
    return np.clip(pixels, 0, 1, out=pixels), evidence


def evidence_set(n: int, size: int = 64, generator: torch.Generator | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Generated images whose class is decided by known pixels only.

    Each image holds exactly one *target*, a small stroked shape whose kind is the class
    ([`EVIDENCE_CLASSES`][convlens.images.EVIDENCE_CLASSES]: plus, cross, ring, corner; its
    side 9-13 px at `size` 64, strokes 2 px, both scaled with `size`), placed uniformly
    anywhere in the frame, on a smooth random background with 3-6 *distractors*: filled
    discs, filled squares and single straight bars (horizontal, vertical or diagonal).
    Distractors keep a margin from the target and from each other, so they never touch it
    or make up a target between them; their number, kinds, places and colours are drawn
    independently of the class, as is every colour (targets and distractors alike are light
    or dark at random). Fine grain noise covers the whole image. So the class is decided by
    the target's square patch alone: `evidence` marks that patch (its strokes and its hollow
    parts), and no pixel outside it carries information about the class. Labels cycle
    through the classes in order (`i % 4`), so every class has `n / 4` images. The network
    of [`convlens.evidence_net`][convlens.evidence_net] is trained on them, and
    [`evidence_mass`][convlens.evaluate.evidence_mass] scores a map against `evidence`.

    Args:
        n: the number of images (at least 1).
        size: their side, in pixels (at least 32).
        generator: a CPU `torch.Generator` (None: seed 0); it draws one seed for NumPy's
            PCG64, which draws everything else, so the same generator state gives the same
            set.

    Returns:
        `(x, labels, evidence)`: the pixels `x` `[n, 3, size, size]` in [0, 1] (normalise
        them for a model: `preprocess.normalize`, or
        [`evidence_net.normalize`][convlens.evidence_net.normalize]), the class indices
        `labels` `[n]`, and the bool mask `evidence` `[n, size, size]` of each target's
        patch.

    Raises:
        TypeError: `generator` is not a CPU `torch.Generator`.
        ValueError: `n` is not an int >= 1, or `size` not an int >= 32.

    Examples:
        >>> import torch
        >>> from convlens import images
        >>> x, labels, evidence = images.evidence_set(
        ...     4, size=32, generator=torch.Generator().manual_seed(0))
        >>> x.shape, evidence.shape
        (torch.Size([4, 3, 32, 32]), torch.Size([4, 32, 32]))
        >>> [images.EVIDENCE_CLASSES[k] for k in labels]
        ['plus', 'cross', 'ring', 'corner']
        >>> rows, cols = evidence[0].nonzero().T
        >>> height, width = int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1
        >>> height == width and int(evidence[0].sum()) == height * width  # one full square
        True
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 32:
        raise ValueError(f"size must be an int >= 32 pixels, got {size!r}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    elif not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise TypeError(f"generator must be a CPU torch.Generator, got {generator!r}")
    rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator)))
    coarse = torch.from_numpy(rng.random((n, 3, 4, 4), dtype=np.float32))
    blobs = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic",
                                            align_corners=False).clamp_(0, 1)
    blobs = blobs.permute(0, 2, 3, 1).numpy()
    labels = torch.arange(n) % len(EVIDENCE_CLASSES)
    x = np.empty((n, size, size, 3), np.float32)
    evidence = np.empty((n, size, size), bool)
    for i in range(n):
        x[i], evidence[i] = _evidence_image(rng, size, int(labels[i]), blobs[i].copy())
    return (torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), labels,
            torch.from_numpy(evidence))
