r"""Statistics of natural photos that feature visualisation uses as a prior.

Two second-order statistics of a set of photos (by default every permissively licensed
photo shipped offline, [`photo_pool`][convlens.images.photo_pool], with flips and crops):

- **Colour**: the covariance $\Sigma$ of the RGB values of all pixels, and its
  eigendecomposition $\Sigma = U \,\mathrm{diag}(\lambda)\, U^\top$. The columns of $U$
  are the *decorrelated colour* axes (for photos roughly luminance, then two opponent
  colours); projecting a pixel on them, $v = U^\top (x - \mu)$, gives three uncorrelated
  components ([`ColourBasis`][convlens.natural_statistics.ColourBasis]).
  [Olah, Mordvintsev & Schubert 2017][ref-olah2017] use ImageNet's $\Sigma$ the same way.
- **Amplitude spectrum**: the mean, over views (crops) of the photos, of the modulus of the
  2-D Fourier transform of each decorrelated component,

    $$ m_c(f) = \mathrm{mean}_\text{views} \, \big|\mathcal{F}[v_c](f)\big| $$

  (`torch.fft.rfft2`, `norm="ortho"`). The amplitude of natural photos falls roughly as
  $1/|f|$ (Field 1987, "Relations between the statistics of natural images and the response
  properties of cortical cells", JOSA A 4(12)). MACO ([Fel et al. 2023][ref-fel2023])
  holds a picture's Fourier magnitude at such an average and optimises only its phase
  ([`convlens.feature_visualization`][convlens.feature_visualization]).

A crop is not periodic, but the discrete Fourier transform treats it as if it were: the
jump between opposite borders would add a bright cross along the axes of every spectrum.
Each view is therefore replaced by its *periodic component* (Moisan 2011, "Periodic plus
smooth image decomposition", J. Math. Imaging Vis. 39): the view minus the smooth image $s$
whose Laplacian is the border jump $b$,

$$ \hat s(q, r) = \frac{\hat b(q, r)}{2 \cos(2 \pi q / H) + 2 \cos(2 \pi r / W) - 4},
\qquad \hat s(0, 0) = 0 $$

with $b$ the differences across opposite borders
([`periodic_component`][convlens.natural_statistics.periodic_component]).

Spectra are cached on disk under a key that hashes the photos' pixels, the size and the
estimator's version, so that a build computes each one once; nothing is downloaded.
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
    r"""The decorrelated colour axes of a set of photos, as
    [`colour_basis`][convlens.natural_statistics.colour_basis] measures them: the mean colour
    $\mu$, the axes $U$ and the standard deviation $\sqrt{\lambda}$ along each (module
    docstring).

    Args:
        mean: the mean RGB colour $\mu$, `[3]`, in [0, 1].
        axes: $U$, `[3, 3]`: orthonormal columns, the decorrelated colour axes, largest
            variance first.
        std: the standard deviation of the pixels along each axis, `[3]`.

    Raises no exception of its own (the tensors are stored as given; float64 from
    [`colour_basis`][convlens.natural_statistics.colour_basis]).

    Examples:
        >>> import torch
        >>> from convlens.natural_statistics import ColourBasis
        >>> axes = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, -1.0], [1.0, -2.0, 1.0]]).T
        >>> axes = axes / axes.norm(dim=0)  # luminance, red-blue, green-magenta
        >>> basis = ColourBasis(torch.full((3,), 0.5), axes, torch.tensor([0.3, 0.1, 0.05]))
        >>> grey = torch.full((1, 3, 2, 2), 0.8)  # a grey brighter than the mean
        >>> v = basis.decorrelate(grey)[0, :, 0, 0]
        >>> round(v[0].item(), 4), bool(v[1:].abs().max() < 1e-6)  # luminance only
        (0.5196, True)
    """

    def __init__(self, mean: torch.Tensor, axes: torch.Tensor, std: torch.Tensor):
        self.mean, self.axes, self.std = mean, axes, std

    def decorrelate(self, pixels: torch.Tensor) -> torch.Tensor:
        r"""The decorrelated colour components $v = U^\top (x - \mu)$ of RGB pixels.

        Args:
            pixels: RGB pixels $x$, `[..., 3, H, W]` (any number of leading dimensions).

        Returns:
            The components, the shape of `pixels` (component $c$ along axis $c$), in the
            dtype and on the device of `pixels`.

        Raises no exception of its own.

        Examples:
            >>> import torch
            >>> from PIL import Image
            >>> from convlens.natural_statistics import colour_basis
            >>> noise = torch.rand(24, 24, 3, generator=torch.Generator().manual_seed(0))
            >>> photo = Image.fromarray((255 * noise).byte().numpy())  # a stand-in photo
            >>> basis = colour_basis([photo])
            >>> v = basis.decorrelate(torch.rand(4, 3, 8, 8, dtype=torch.float64))
            >>> v.shape
            torch.Size([4, 3, 8, 8])
        """
        centred = pixels - self.mean.to(pixels)[:, None, None]
        return torch.einsum("dc,...dhw->...chw", self.axes.to(pixels), centred)

    def recorrelate(self, components: torch.Tensor) -> torch.Tensor:
        r"""RGB pixels $x = \mu + U v$ from decorrelated colour components: the inverse of
        [`decorrelate`][convlens.natural_statistics.ColourBasis.decorrelate].

        Args:
            components: the components $v$, `[..., 3, H, W]`.

        Returns:
            RGB pixels, the shape of `components`, in its dtype and on its device.

        Raises no exception of its own.

        Examples:
            >>> import torch
            >>> from PIL import Image
            >>> from convlens.natural_statistics import colour_basis
            >>> noise = torch.rand(24, 24, 3, generator=torch.Generator().manual_seed(0))
            >>> photo = Image.fromarray((255 * noise).byte().numpy())  # a stand-in photo
            >>> basis = colour_basis([photo])
            >>> x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
            >>> torch.allclose(basis.recorrelate(basis.decorrelate(x)), x)
            True
        """
        rgb = torch.einsum("cd,...dhw->...chw", self.axes.to(components), components)
        return rgb + self.mean.to(components)[:, None, None]


def pool_images(colour_only: bool = False) -> list[Image.Image]:
    """The photos of the offline pool, [`photo_pool`][convlens.images.photo_pool], as PIL
    images: the default photos of every statistic of this module.

    Args:
        colour_only: leave out the grey-level photos (else each is three equal channels).

    Returns:
        A list of RGB `PIL.Image.Image`, in the pool's order.

    Raises:
        TypeError: `colour_only` is not a bool.

    Examples:
        >>> from convlens.natural_statistics import pool_images
        >>> photos = pool_images(colour_only=True)
        >>> len(photos) > 0, {photo.mode for photo in photos}
        (True, {'RGB'})
    """
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
    """Crops of each photo, and their mirror images, as one batch: the views
    [`natural_spectrum`][convlens.natural_statistics.natural_spectrum] averages over.

    Each photo is resized (bicubic) so that its shorter side is `1.25 * max(size)`; its
    views are `crops` crops of `size`, the centre first and then the corners in turn
    (top-left, bottom-right, top-right, bottom-left, so more than 5 repeat), each followed
    by its horizontal flip.

    Args:
        photos: PIL images (None: [`pool_images`][convlens.natural_statistics.pool_images]).
        size: the views' `(H, W)` or one side, at least 8 pixels.
        crops: crops per photo.

    Returns:
        `[2 * crops * len(photos), 3, H, W]`, float64 pixels in [0, 1]: photo by photo,
        crop by crop, each crop followed by its flip.

    Raises:
        TypeError: `photos` is not a non-empty sequence of PIL images.
        ValueError: `size` is not an int or pair of ints `>= 8`.

    Examples:
        >>> import torch
        >>> from PIL import Image
        >>> from convlens.natural_statistics import photo_views
        >>> photo = Image.new("RGB", (40, 30), (200, 120, 40))
        >>> views = photo_views([photo, photo], (16, 16), crops=3)
        >>> views.shape, views.dtype
        (torch.Size([12, 3, 16, 16]), torch.float64)
        >>> torch.equal(views[1], views[0].flip(-1))
        True
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
    r"""The decorrelated colour axes of a set of photos: the eigenvectors of the covariance
    $\Sigma$ of their RGB pixels (module docstring), largest variance first.

    Each axis has the sign that makes its entries sum to a positive number, so the first
    axis, luminance for photos, is all positive. Every photo weighs the same whatever its
    size: the mean and the covariance are those of the mixture of the photos' pixel
    distributions (each photo's first and second moments averaged), each read on a grid of
    at most about 256 x 256 of its pixels.

    Args:
        photos: PIL images (None: the pool's colour photos, since a grey photo has no
            colour to correlate).

    Returns:
        A [`ColourBasis`][convlens.natural_statistics.ColourBasis] of float64 tensors.

    Raises:
        TypeError: `photos` is not a non-empty sequence of PIL images.

    Examples:
        >>> from PIL import Image
        >>> from convlens.natural_statistics import colour_basis
        >>> grey = Image.linear_gradient("L").convert("RGB")  # a grey ramp
        >>> basis = colour_basis([grey])
        >>> basis.axes[:, 0]  # all its variance is luminance: R, G and B in equal parts
        tensor([0.5774, 0.5774, 0.5774], dtype=torch.float64)
        >>> bool(basis.std[1:].max() < 1e-6)  # and none along the two colour axes
        True
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
    r"""Moisan's periodic component of an image: the image minus the smooth image $s$ that
    carries the jumps between its opposite borders (module docstring).

    The result has the image's mean, and its periodic discrete Laplacian is the image's
    Laplacian inside the borders, so its Fourier spectrum has no cross along the axes.

    Args:
        image: one or more images, `[..., H, W]` (the Fourier transform runs over the last
            two dimensions), floating point.

    Returns:
        The periodic component, the shape and dtype of `image`.

    Raises no exception of its own.

    Examples:
        >>> import torch
        >>> from convlens.natural_statistics import periodic_component
        >>> ramp = torch.arange(16, dtype=torch.float64).repeat(16, 1)  # columns 0 .. 15
        >>> periodic = periodic_component(ramp)
        >>> periodic.shape, round(periodic.mean().item(), 6)
        (torch.Size([16, 16]), 7.5)
        >>> jump = lambda u: (u[:, -1] - u[:, 0]).abs().mean().item()
        >>> jump(ramp), round(jump(periodic), 4)  # left-right jump: 15, then 15/16
        (15.0, 0.9375)
    """
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
    r"""The mean Fourier amplitude $m_c(f)$ of natural photos, per decorrelated colour
    component (module docstring): the magnitude that
    [`maco`][convlens.feature_visualization.maco] holds fixed.

    The views are those of [`photo_views`][convlens.natural_statistics.photo_views], each
    replaced by its [`periodic_component`][convlens.natural_statistics.periodic_component]
    before the transform. The amplitude at frequency 0 is set to zero: the mean colour is
    the basis's, and only structure is left to the phase.

    Args:
        size: the pictures' `(H, W)` or one side, at least 8 pixels.
        photos: PIL images (None: every photo of the pool, with the basis of its colour
            photos).
        crops: crops per photo, 1 to 5.
        cache_dir: where the result is cached (None: `~/.cache/convlens`).
        cache: store the result under a key hashing the photos' pixels, `size`, `crops` and
            the estimator's version, and read it from there the next time (False: compute
            it and write nothing).

    Returns:
        `(magnitude, basis)`: the amplitude `[3, H, W // 2 + 1]`, float64 (`rfft2` layout,
        `norm="ortho"`, zero at frequency 0), and the
        [`ColourBasis`][convlens.natural_statistics.ColourBasis] the components are taken
        in ([`colour_basis`][convlens.natural_statistics.colour_basis] of `photos`).

    Raises:
        TypeError: `photos` is not a non-empty sequence of PIL images.
        ValueError: `size` is not an int or pair of ints `>= 8`, or `crops` not an int from
            1 to 5.

    Examples:
        >>> import torch
        >>> from PIL import Image
        >>> from convlens.natural_statistics import natural_spectrum
        >>> noise = torch.rand(24, 24, 3, generator=torch.Generator().manual_seed(0))
        >>> photo = Image.fromarray((255 * noise).byte().numpy())  # a stand-in photo
        >>> magnitude, basis = natural_spectrum((16, 20), [photo], cache=False)
        >>> magnitude.shape, magnitude.dtype
        (torch.Size([3, 16, 11]), torch.float64)
        >>> magnitude[:, 0, 0].tolist(), bool((magnitude >= 0).all())
        ([0.0, 0.0, 0.0], True)
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
