"""Statistics of natural photos that feature visualisation uses as a prior.

Two second-order statistics of a set of photos (by default every permissively licensed
photo shipped offline, :func:`convlens.images.photo_pool`, with flips and crops):

- **colour**: the covariance ``Sigma`` of the RGB values of every pixel, and its
  eigendecomposition ``Sigma = U diag(lambda) U^T``. The columns of ``U`` are the
  *decorrelated colour* axes (for photos roughly luminance, then two opponent colours);
  projecting a pixel on them, ``v = U^T (x - mu)``, gives three uncorrelated components
  (Olah, Mordvintsev & Schubert 2017, "Feature visualization", Distill, use ImageNet's
  ``Sigma`` the same way).
- **amplitude spectrum**: the mean, over views (crops) of the photos, of the modulus of
  the 2-D Fourier transform of each decorrelated component,

      m_c(f) = mean_views | F[v_c](f) |          (``torch.fft.rfft2``, ``norm="ortho"``)

  Natural photos have ``m(f)`` falling roughly as ``1/|f|`` (Field 1987, "Relations
  between the statistics of natural images and the response properties of cortical
  cells", JOSA A 4(12)). MACO (Fel et al. 2023, "Unlocking feature visualization for
  deeper networks with magnitude constrained optimization", NeurIPS) fixes an image's
  Fourier magnitude to such an average and optimises only its phase.

A crop is not periodic, while the discrete Fourier transform treats it as if it were: the
jump between opposite borders would add a bright cross along the axes of every spectrum.
Each view is therefore replaced by its *periodic component* (Moisan 2011, "Periodic plus
smooth image decomposition", J. Math. Imaging Vis. 39): the view minus the smooth image
``s`` whose Laplacian is the border jump, ``s_hat(q, r) = b_hat(q, r) / (2 cos(2 pi q/H) +
2 cos(2 pi r/W) - 4)`` with ``b`` the jumps across opposite borders and ``s_hat(0, 0) = 0``.

Spectra are cached on disk under a key that hashes the photos' pixels, the size and the
estimator's version, so a build computes each once; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["ColourBasis", "colour_basis", "natural_spectrum", "periodic_component",
           "photo_views", "pool_images"]

# Bump when the estimator changes: cached spectra of an older version are then ignored.
_SPECTRUM_VERSION = 1


class ColourBasis:
    """``mean [3]`` (RGB, in [0, 1]), ``axes [3, 3]`` (orthonormal columns, the decorrelated
    colour axes, largest variance first) and ``std [3]`` (the standard deviation along each
    axis), all float64 tensors."""

    def __init__(self, mean: torch.Tensor, axes: torch.Tensor, std: torch.Tensor):
        self.mean, self.axes, self.std = mean, axes, std

    def decorrelate(self, pixels: torch.Tensor) -> torch.Tensor:
        """RGB pixels ``[..., 3, H, W]`` -> the components ``U^T (x - mu)``, same shape."""
        centred = pixels - self.mean.to(pixels)[:, None, None]
        return torch.einsum("dc,...dhw->...chw", self.axes.to(pixels), centred)

    def recorrelate(self, components: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`decorrelate`: ``mu + U v``."""
        rgb = torch.einsum("cd,...dhw->...chw", self.axes.to(components), components)
        return rgb + self.mean.to(components)[:, None, None]


def pool_images(colour_only: bool = False) -> list[Image.Image]:
    """The RGB photos of :func:`convlens.images.photo_pool` (grey ones as three equal
    channels, unless ``colour_only``)."""
    from .images import photo_pool

    return [photo.image for photo in photo_pool(colour_only=colour_only)]


def _check_photos(photos) -> list[Image.Image]:
    photos = pool_images() if photos is None else list(photos)
    if not photos or not all(isinstance(p, Image.Image) for p in photos):
        raise TypeError("photos must be a non-empty sequence of PIL images (or None for the pool)")
    return [p.convert("RGB") for p in photos]


def _check_size(size) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) and not isinstance(size, bool) else (
        tuple(size) if isinstance(size, (tuple, list)) else (None, None))
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 8 for v in (height, width)):
        raise ValueError(f"size must be an int or a pair (H, W) of ints >= 8, got {size!r}")
    return height, width


def photo_views(photos, size: tuple[int, int], crops: int = 3) -> torch.Tensor:
    """Views of each photo as a float64 batch ``[N, 3, H, W]`` in [0, 1].

    Each photo is resized so that its shorter side is ``1.25 * max(size)``; the views are
    ``crops`` crops of ``size`` (the centre, then the corners in turn) and the horizontal
    flip of each: ``2 * crops`` views per photo.
    """
    height, width = _check_size(size)
    views = []
    for photo in _check_photos(photos):
        scale = 1.25 * max(height, width) / min(photo.size)
        resized = photo.resize((max(width, round(photo.width * scale)),
                                max(height, round(photo.height * scale))),
                               Image.Resampling.BICUBIC)
        pixels = torch.from_numpy(np.asarray(resized, dtype=np.float64) / 255.0).permute(2, 0, 1)
        rows, cols = pixels.shape[1] - height, pixels.shape[2] - width
        corners = [(rows // 2, cols // 2), (0, 0), (rows, cols), (0, cols), (rows, 0)]
        for k in range(crops):
            top, left = corners[k % len(corners)]
            view = pixels[:, top:top + height, left:left + width]
            views += [view, view.flip(-1)]
    return torch.stack(views)


def colour_basis(photos=None) -> ColourBasis:
    """The decorrelated colour axes of ``photos`` (PIL images; default: the pool's colour
    photos, since a grey photo has no colour to correlate): the eigenvectors of the
    covariance of their RGB pixels, largest variance first, each with the sign that makes
    its entries sum to a positive number (the first axis is then luminance, all positive).

    Every photo weighs the same, whatever its size: the mean and the covariance are those
    of the mixture of the photos' pixel distributions (each photo's first and second
    moments averaged), read on a grid of at most about 256 x 256 of its pixels.
    """
    photos = pool_images(colour_only=True) if photos is None else _check_photos(photos)
    means, moments = [], []
    for photo in photos:
        pixels = np.asarray(photo, dtype=np.float64) / 255.0
        step = max(1, min(pixels.shape[:2]) // 256)
        pixels = pixels[::step, ::step].reshape(-1, 3)
        means.append(pixels.mean(axis=0))
        moments.append(pixels.T @ pixels / len(pixels))
    mean = np.mean(means, axis=0)
    covariance = np.mean(moments, axis=0) - np.outer(mean, mean)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    axes = eigenvectors[:, order]
    axes = axes * np.sign(axes.sum(axis=0, keepdims=True) + 1e-12)  # a fixed sign per axis
    return ColourBasis(torch.from_numpy(mean), torch.from_numpy(axes.copy()),
                       torch.from_numpy(np.sqrt(np.clip(eigenvalues[order], 0, None))))


def periodic_component(image: torch.Tensor) -> torch.Tensor:
    """Moisan's periodic component of ``image [..., H, W]``: the image minus the smooth
    image that carries its border discontinuities (see the module docstring)."""
    height, width = image.shape[-2:]
    jumps = torch.zeros_like(image)
    jumps[..., 0, :] += image[..., -1, :] - image[..., 0, :]
    jumps[..., -1, :] += image[..., 0, :] - image[..., -1, :]
    jumps[..., :, 0] += image[..., :, -1] - image[..., :, 0]
    jumps[..., :, -1] += image[..., :, 0] - image[..., :, -1]
    q = torch.arange(height, dtype=image.dtype, device=image.device)[:, None]
    r = torch.arange(width, dtype=image.dtype, device=image.device)[None, :]
    denominator = 2 * torch.cos(2 * torch.pi * q / height) + 2 * torch.cos(2 * torch.pi * r / width) - 4
    denominator[0, 0] = 1.0  # the mean of the smooth part is 0
    smooth_hat = torch.fft.fft2(jumps) / denominator
    smooth_hat[..., 0, 0] = 0
    return image - torch.fft.ifft2(smooth_hat).real


def _cache_key(photos: list[Image.Image], size: tuple[int, int], crops: int, default: bool) -> str:
    digest = hashlib.sha256(f"spectrum v{_SPECTRUM_VERSION} {size} {crops} {default}".encode())
    for photo in photos:
        digest.update(f"{photo.size}".encode())
        digest.update(photo.tobytes())
    return digest.hexdigest()[:24]


def _estimate(photos, size, crops, default) -> tuple[torch.Tensor, ColourBasis]:
    basis = colour_basis(None if default else photos)
    views = basis.decorrelate(photo_views(photos, size, crops))
    amplitude = torch.fft.rfft2(periodic_component(views), norm="ortho").abs().mean(dim=0)
    amplitude[:, 0, 0] = 0.0  # the mean colour is the pool's: only structure goes in the phase
    return amplitude, basis


def natural_spectrum(size: int | tuple[int, int], photos=None, *, crops: int = 3,
                     cache_dir: str | os.PathLike | None = None,
                     cache: bool = True) -> tuple[torch.Tensor, ColourBasis]:
    """``(magnitude, basis)``: the mean Fourier amplitude ``[3, H, W // 2 + 1]`` (float64,
    ``rfft2`` layout, ``norm="ortho"``, zero at frequency 0) of the decorrelated colour
    components of the views of ``photos`` (:func:`photo_views`; default: every photo of the
    pool), and the :class:`ColourBasis` those components are taken in (:func:`colour_basis`
    of ``photos``; default: of the pool's colour photos).

    With ``cache`` the pair is stored in ``cache_dir`` (default ``~/.cache/convlens``) under
    a key hashing the photos' pixels, ``size``, ``crops`` and the estimator's version, and
    read from there the next time.
    """
    size = _check_size(size)
    if isinstance(crops, bool) or not isinstance(crops, int) or not 1 <= crops <= 5:
        raise ValueError(f"crops must be an int from 1 to 5, got {crops!r}")
    default = photos is None
    photos = _check_photos(photos)
    if not cache:
        return _estimate(photos, size, crops, default)
    folder = Path(cache_dir) if cache_dir is not None else Path.home() / ".cache" / "convlens"
    path = folder / f"spectrum-{_cache_key(photos, size, crops, default)}.pt"
    if path.is_file():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        return stored["magnitude"], ColourBasis(stored["mean"], stored["axes"], stored["std"])
    magnitude, basis = _estimate(photos, size, crops, default)
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".tmp-{os.getpid()}")
    torch.save({"magnitude": magnitude, "mean": basis.mean, "axes": basis.axes,
                "std": basis.std}, partial)
    partial.replace(path)  # atomic: a reader never sees half a file
    return magnitude, basis
