"""Synthetic shortcut images with their shortcut-free twins, and on-disk image loaders.

:func:`make_spurious_images` draws medical-style images in which a group-linked
shortcut (a corner marker, burned-in text, a global contrast or brightness change, a
scanner's texture) is spuriously correlated with a faint disease lesion, and returns
the *oracle* twin of every image: the same image with the shortcut removed, i.e. what
a perfectly debiased input looks like. Shortcuts come
in two families: *localized* ones that a universal mask can blank (a corner marker, a
burned-in text stripe) and *non-local* ones spread over every pixel (a contrast gain, a
brightness offset, a scanner site's blur and noise).

:func:`load_chexpert_style` and :func:`load_image_csv` read a CSV that lists image files
and return a :class:`LazyImageArray`, which reads (and resizes) images from disk only
when it is indexed, together with labels and groups.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch, check_random_state

from ._deprecation import UNSET, RenamedKeyBunch, renamed_argument

__all__ = [
    "LazyImageArray",
    "load_chexpert_style",
    "load_image_csv",
    "make_spurious_images",
]

_SHORTCUTS = ("marker", "contrast", "text", "intensity", "texture")
_CHUNK = 512  # images generated at once
# "text": glyphs of _GLYPH_ROWS x _GLYPH_COLS cells, one pixel per cell per 32 px of image
_GLYPH_ROWS, _GLYPH_COLS = 5, 3
_INTENSITY_SPAN = 0.2  # "intensity": offset of the extreme groups per unit strength
_TEXTURE_NOISE = 0.2  # "texture": extra pixel-noise std of the last group per unit strength


# --------------------------------------------------------------------------------------
# Synthetic generator
# --------------------------------------------------------------------------------------


def _check_int(value, name: str, minimum: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _check_real(value, name: str, low: float, high: float) -> float:
    if not isinstance(value, numbers.Real) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}]; got {value!r}.")
    return float(value)


def _interpolation_matrix(size: int, n_knots: int) -> np.ndarray:
    """Linear interpolation from ``n_knots`` evenly spaced knots onto ``size`` pixels."""
    position = np.linspace(0, n_knots - 1, size)
    left = np.minimum(np.floor(position).astype(int), n_knots - 2)
    weight = position - left
    matrix = np.zeros((size, n_knots))
    matrix[np.arange(size), left] = 1 - weight
    matrix[np.arange(size), left + 1] = weight
    return matrix


def _graded_levels(n_groups: int) -> np.ndarray:
    """Group grade :math:`u_a = a / (K - 1)`, from 0 (group 0) to 1 (the last group)."""
    return np.linspace(0.0, 1.0, n_groups)


def _text_layout(size: int) -> tuple[int, int]:
    """Glyph cell side (pixels) and number of characters of the ``"text"`` stripe."""
    cell = max(1, size // 32)
    return cell, max(2, (size // 2) // ((_GLYPH_COLS + 1) * cell))


def _text_mask(size: int, glyphs: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Pixels lit by each image's pseudo-random characters, in a stripe near the bottom.

    ``glyphs`` is a boolean (n, n_chars, rows, cols) array of lit cells, ``offsets`` the
    (n, 2) jitter of the stripe (up from the bottom edge, right from the left edge).
    """
    n, n_chars = glyphs.shape[:2]
    cell, _ = _text_layout(size)
    # one character = its cells and a blank column of cells as spacing
    padded = np.concatenate([glyphs, np.zeros((n, n_chars, _GLYPH_ROWS, 1), bool)], axis=3)
    stripe = padded.transpose(0, 2, 1, 3).reshape(n, _GLYPH_ROWS, -1)
    stripe = stripe.repeat(cell, axis=1).repeat(cell, axis=2)
    height, width = stripe.shape[1:]
    mask = np.zeros((n, size, size), dtype=bool)
    for i in range(n):
        top = size - 1 - height - offsets[i, 0]
        left = 1 + offsets[i, 1]
        mask[i, top:top + height, left:left + width] = stripe[i]
    return mask


def _gaussian_blur_matrix(size: int, sigma: float) -> np.ndarray:
    """Row-normalised Gaussian kernel as a (size, size) matrix; the identity for sigma 0."""
    if sigma <= 0:
        return np.eye(size)
    offset = np.arange(size)[:, None] - np.arange(size)[None, :]
    kernel = np.exp(-0.5 * (offset / sigma) ** 2) * (np.abs(offset) <= 4 * sigma)
    return kernel / kernel.sum(axis=1, keepdims=True)  # renormalised at the border


def make_spurious_images(
    n_samples: int = 1000,
    *,
    image_size: int = 32,
    n_channels: int = 1,
    n_groups: int = 2,
    correlation: float = 0.8,
    shortcut: str = "marker",
    shortcut_strength: float = 0.5,
    marker_size: int | None = None,
    marker_jitter: int = 0,
    disease_strength: float = 0.3,
    noise_std: float = 0.05,
    random_state=None,
) -> Bunch:
    r"""Generate medical-style images with a group shortcut spuriously tied to the label.

    Every image is drawn in two layers. The *clean* layer, shared with its oracle twin:

    * a smooth background, :math:`0.25 + 0.08\,F` with :math:`F` a standard normal
      4 x 4 field interpolated bilinearly to full size;
    * a soft elliptical "organ" of intensity 0.3 with random centre and radii;
    * for ``y = 1``, a Gaussian lesion (standard deviation ``image_size / 16`` pixels,
      peak ``disease_strength``) at a random position inside the organ;
    * Gaussian pixel noise of standard deviation ``noise_std``; clipped to [0, 1].

    The *shortcut* layer encodes the group :math:`a \in \{0, \dots, K-1\}`:

    * ``"marker"``: a bright square of side ``marker_size`` added in the corner of the
      group (top-left, top-right, bottom-left, bottom-right for groups 0-3). For more
      than four groups, groups sharing a corner differ in brightness: group :math:`a`
      adds ``shortcut_strength * (1 + a // 4) / ceil(K / 4)``. ``marker_jitter``
      shifts each marker by up to that many pixels away from the corner.
    * ``"contrast"``: a global intensity gain, the image times
      :math:`1 + \text{shortcut\_strength} \cdot s_a` with :math:`s_a` evenly spaced in
      [-0.5, 0.5] (a non-local shortcut, like scanner-dependent windowing).
    * ``"text"``: a burned-in text stripe (a localized shortcut, like a hospital's
      annotation). Each image gets its own pseudo-random "characters": blocks of 5 x 3
      cells, each lit with probability 1/2, of ``max(1, image_size // 32)`` pixels per
      cell and one blank column between characters, spanning about half the width, in
      a stripe near the bottom-left edge that jitters by up to ``image_size // 16``
      pixels up and ``image_size // 8`` pixels right. The lit pixels get
      :math:`\text{shortcut\_strength} \cdot u_a` added, with the grade
      :math:`u_a = a / (K - 1)`: group 0 carries no text, the last group the brightest.
    * ``"intensity"``: a global brightness offset (non-local, like a scanner's
      calibration), :math:`x + 0.2 \cdot \text{shortcut\_strength} \cdot t_a` with
      :math:`t_a` evenly spaced in [-1, 1].
    * ``"texture"``: a scanner-site texture (non-local): the clean image is blurred by
      a Gaussian of standard deviation
      :math:`\sigma_a = \text{shortcut\_strength} \cdot u_a \cdot \text{image\_size} / 16`
      pixels and gets extra Gaussian pixel noise of standard deviation
      :math:`0.2 \cdot \text{shortcut\_strength} \cdot u_a`: group 0 is the sharp site,
      the last group the blurriest and noisiest.

    Every shortcut is applied to the clean layer and the result clipped to [0, 1].

    Groups are uniform. The label depends on the group: with :math:`t_a` evenly spaced
    in [-1, 1] over the groups,

    .. math:: P(y = 1 \mid a) = \tfrac12 \,(1 + \text{correlation} \cdot t_a),

    so for two groups :math:`P(y = a) = (1 + \text{correlation}) / 2`. ``correlation=0``
    makes y independent of the group (an unconfounded test set) and a negative value
    reverses the training correlation (a shortcut-adversarial test set).

    The random draws are ordered so that the same ``random_state`` gives the same
    groups, backgrounds, organs, lesion positions and noise whatever the shortcut,
    its strength or the correlation: ``oracle_images`` then agree across such calls
    wherever ``y`` does. The shortcut's own draws (marker jitter, text, extra noise)
    come from a separate stream.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of images.
    image_size : int, default=32
        Height and width in pixels (at least 16).
    n_channels : int, default=1
        1 for grayscale; 3 repeats the image over RGB channels (for encoders that
        expect colour input).
    n_groups : int, default=2
        Number of sensitive groups K.
    correlation : float, default=0.8
        Group-label correlation in [-1, 1], as defined above.
    shortcut : {"marker", "contrast", "text", "intensity", "texture"}, default="marker"
        Kind of group shortcut: localized (``"marker"``, ``"text"``) or non-local
        (``"contrast"``, ``"intensity"``, ``"texture"``), as defined above.
    shortcut_strength : float, default=0.5
        Scale of the shortcut, in [0, 1]: marker or text brightness added, gain spread
        for ``"contrast"``, offset spread for ``"intensity"``, blur and extra noise for
        ``"texture"``. 0 makes ``images`` equal ``oracle_images``.
    marker_size : int, default=None
        Side of the marker square in pixels (``"marker"`` only); ``None`` means
        ``max(2, image_size // 8)``.
    marker_jitter : int, default=0
        Maximum random shift of the marker, in pixels, along each axis (``"marker"``
        only; the text stripe always jitters).
    disease_strength : float, default=0.3
        Peak intensity of the lesion in positive images.
    noise_std : float, default=0.05
        Standard deviation of the pixel noise.
    random_state : int, RandomState instance or None, default=None
        Seeds every random draw.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        images : ndarray of shape (n_samples, n_channels, image_size, image_size)
            float32 images in [0, 1], with the shortcut.
        oracle_images : ndarray of the same shape
            The same images without the shortcut (the clean layer).
        y : ndarray of shape (n_samples,)
            Disease label (int64, 1 = lesion present).
        sensitive_features : ndarray of shape (n_samples,)
            Group (int64 in ``0..n_groups-1``). Also readable as ``sensitive``, deprecated
            (a ``FutureWarning``; removed in fairnoise 0.3).
        shortcut_mask : ndarray of shape (n_samples, image_size, image_size)
            True where the shortcut touches the image (the marker square, the lit
            text pixels, or every pixel for the non-local kinds); ``images`` equal
            ``oracle_images`` elsewhere.
        DESCR : str
            Description of the generating process and its parameters.

    Examples
    --------
    >>> from fairnoise.datasets import make_spurious_images
    >>> data = make_spurious_images(200, correlation=0.9, random_state=0)
    >>> data.images.shape, data.images.dtype
    ((200, 1, 32, 32), dtype('float32'))
    >>> bool(((data.images != data.oracle_images).any(axis=1) <= data.shortcut_mask).all())
    True
    >>> test = make_spurious_images(200, correlation=0.0, random_state=1)
    """
    n_samples = _check_int(n_samples, "n_samples", 1)
    image_size = _check_int(image_size, "image_size", 16)
    if n_channels not in (1, 3):
        raise ValueError(f"n_channels must be 1 or 3; got {n_channels!r}.")
    n_groups = _check_int(n_groups, "n_groups", 2)
    correlation = _check_real(correlation, "correlation", -1.0, 1.0)
    if shortcut not in _SHORTCUTS:
        raise ValueError(f"shortcut must be one of {_SHORTCUTS}; got {shortcut!r}.")
    shortcut_strength = _check_real(shortcut_strength, "shortcut_strength", 0.0, 1.0)
    if marker_size is None:
        marker_size = max(2, image_size // 8)
    marker_size = _check_int(marker_size, "marker_size", 1)
    marker_jitter = _check_int(marker_jitter, "marker_jitter", 0)
    if 1 + marker_jitter + marker_size > image_size // 2:
        raise ValueError(
            f"marker_size + marker_jitter + 1 must fit in half the image ({image_size // 2} "
            f"pixels); got marker_size={marker_size}, marker_jitter={marker_jitter}."
        )
    disease_strength = _check_real(disease_strength, "disease_strength", 0.0, 1.0)
    noise_std = _check_real(noise_std, "noise_std", 0.0, 1.0)
    rng = check_random_state(random_state)
    # The shortcut has its own stream, so its parameters never shift the clean layer's draws.
    shortcut_rng = np.random.RandomState(rng.randint(np.iinfo(np.int32).max))
    n, size = n_samples, image_size

    # Groups and labels: a fixed uniform draw per sample keeps y coupled across correlations.
    sensitive = rng.randint(n_groups, size=n)
    tilt = np.linspace(-1.0, 1.0, n_groups)
    y = (rng.uniform(size=n) < 0.5 * (1 + correlation * tilt[sensitive])).astype(np.int64)

    # Per-image geometry, drawn for every image so that nothing depends on y.
    centre = size / 2 + rng.uniform(-0.05, 0.05, size=(n, 2)) * size
    radii = np.column_stack([rng.uniform(0.30, 0.38, n), rng.uniform(0.22, 0.30, n)]) * size
    angle = rng.uniform(0, 2 * np.pi, size=n)
    reach = 0.5 * np.sqrt(rng.uniform(size=n))  # uniform over the inner half-ellipse
    lesion_centre = (
        centre + reach[:, None] * np.column_stack([np.sin(angle), np.cos(angle)]) * radii
    )
    knots = rng.standard_normal((n, 4, 4))
    jitter = shortcut_rng.randint(marker_jitter + 1, size=(n, 2))
    grade = _graded_levels(n_groups)
    if shortcut == "text":
        _, n_chars = _text_layout(size)
        glyphs = shortcut_rng.uniform(size=(n, n_chars, _GLYPH_ROWS, _GLYPH_COLS)) < 0.5
        text_offsets = np.column_stack([shortcut_rng.randint(size // 16 + 1, size=n),
                                        shortcut_rng.randint(size // 8 + 1, size=n)])
    elif shortcut == "texture":
        blurs = [_gaussian_blur_matrix(size, shortcut_strength * u * size / 16) for u in grade]

    interp = _interpolation_matrix(size, 4)
    grid = np.arange(size, dtype=np.float64)
    rows, cols = grid[None, :, None], grid[None, None, :]
    images = np.empty((n, n_channels, size, size), dtype=np.float32)
    oracle_images = np.empty_like(images)
    shortcut_mask = np.empty((n, size, size), dtype=bool)

    # Pixels are drawn in chunks to bound the float64 working memory.
    for start in range(0, n, _CHUNK):
        part = slice(start, min(start + _CHUNK, n))
        a = sensitive[part]
        cy, cx = (c[:, None, None] for c in centre[part].T)
        ry, rx = (r[:, None, None] for r in radii[part].T)
        radius = np.sqrt(((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2)
        organ = 0.3 / (1 + np.exp(-(1 - radius) / 0.08))
        ly, lx = (c[:, None, None] for c in lesion_centre[part].T)
        lesion = np.exp(-((rows - ly) ** 2 + (cols - lx) ** 2) / (2 * (size / 16) ** 2))
        lesion *= (disease_strength * y[part])[:, None, None]
        field = np.einsum("hi,nij,wj->nhw", interp, knots[part], interp)
        noise = noise_std * rng.standard_normal(organ.shape)
        clean = np.clip(0.25 + 0.08 * field + organ + lesion + noise, 0.0, 1.0)

        if shortcut == "marker":
            corner = a % 4
            top, left = 1 + jitter[part, 0], 1 + jitter[part, 1]
            top = np.where(corner >= 2, size - top - marker_size, top)[:, None, None]
            left = np.where(corner % 2 == 1, size - left - marker_size, left)[:, None, None]
            mask = (
                (rows >= top)
                & (rows < top + marker_size)
                & (cols >= left)
                & (cols < left + marker_size)
            )
            level = shortcut_strength * (1 + a // 4) / math.ceil(n_groups / 4)
            shifted = clean + mask * level[:, None, None]
        elif shortcut == "contrast":
            mask = np.ones(clean.shape, dtype=bool)
            gain = 1 + shortcut_strength * np.linspace(-0.5, 0.5, n_groups)[a]
            shifted = clean * gain[:, None, None]
        elif shortcut == "text":
            mask = _text_mask(size, glyphs[part], text_offsets[part])
            mask &= (grade[a] > 0)[:, None, None]  # group 0 carries no text
            shifted = clean + mask * (shortcut_strength * grade[a])[:, None, None]
        elif shortcut == "intensity":
            mask = np.ones(clean.shape, dtype=bool)
            offset = _INTENSITY_SPAN * shortcut_strength * tilt[a]
            shifted = clean + offset[:, None, None]
        else:  # texture
            mask = np.ones(clean.shape, dtype=bool)
            shifted = np.empty_like(clean)
            for group in np.unique(a):
                chosen = a == group
                blur = blurs[group]
                shifted[chosen] = np.einsum("hi,nij,wj->nhw", blur, clean[chosen], blur)
            extra = shortcut_rng.standard_normal(clean.shape)
            shifted += extra * (_TEXTURE_NOISE * shortcut_strength * grade[a])[:, None, None]
        images[part] = np.clip(shifted, 0.0, 1.0)[:, None]
        oracle_images[part] = clean[:, None]
        shortcut_mask[part] = mask

    description = (
        f"Synthetic shortcut images: {n} samples, {n_channels}x{size}x{size}, "
        f"{n_groups} groups, P(y=1 | a) = 0.5 * (1 + {correlation:g} * t_a) with t_a evenly "
        f"spaced in [-1, 1]. Disease: Gaussian lesion of peak {disease_strength:g} inside "
        f"a soft elliptical organ. Shortcut: {shortcut!r} of strength {shortcut_strength:g}"
        + (f" (marker {marker_size} px, jitter {marker_jitter} px)" if shortcut == "marker" else "")
        + f". Pixel noise std {noise_std:g}. oracle_images are the images without the "
        "shortcut."
    )
    return RenamedKeyBunch(
        images=images,
        oracle_images=oracle_images,
        y=y,
        sensitive_features=sensitive.astype(np.int64),
        shortcut_mask=shortcut_mask,
        DESCR=description,
    )


# --------------------------------------------------------------------------------------
# Lazy image array
# --------------------------------------------------------------------------------------


def _read_image(path: str, size: tuple[int, int], n_channels: int) -> np.ndarray:
    """Read one image file as a float32 (C, H, W) array in [0, 1], resized."""
    try:
        from PIL import Image  # Pillow is only needed when images are read
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Reading image files needs Pillow: pip install 'fairnoise[images]'"
        ) from exc

    with Image.open(path) as image:
        if image.mode.startswith("I;16") or image.mode == "I":
            # 16-bit scans: scale by the 16-bit range instead of clipping to 8 bits.
            gray = np.asarray(image, dtype=np.float32) / 65535.0
            resized = Image.fromarray(gray).resize(size[::-1], Image.Resampling.BILINEAR)
            pixels = np.asarray(resized, dtype=np.float32)
            pixels = np.repeat(pixels[None], n_channels, axis=0)
        else:
            converted = image.convert("L" if n_channels == 1 else "RGB")
            resized = converted.resize(size[::-1], Image.Resampling.BILINEAR)
            pixels = np.asarray(resized, dtype=np.float32) / 255.0
            pixels = pixels[None] if n_channels == 1 else pixels.transpose(2, 0, 1)
    return np.clip(pixels, 0.0, 1.0)


class LazyImageArray:
    """Array-like of image files, read from disk and resized only when indexed.

    Indexing follows NumPy: an integer gives one ``(C, H, W)`` image, a slice, an
    integer array or a boolean mask gives an ``(N, C, H, W)`` batch, all float32 in
    [0, 1]. Nothing is held in memory between calls; ``to_numpy()`` (or
    ``np.asarray``) reads everything at once, ``iter_batches`` streams it.

    Parameters
    ----------
    paths : sequence of str or path-like
        Image files (any format Pillow reads; 16-bit grayscale is scaled by 65535).
        All must exist.
    image_size : int or (int, int), default=224
        Output height and width (a single int for square images). Images are resized
        with bilinear interpolation, without preserving the aspect ratio.
    n_channels : {1, 3}, default=1
        1 reads grayscale, 3 reads RGB (grayscale files are replicated).

    Attributes
    ----------
    paths : list of str
        The files, in order.
    shape : tuple of int
        ``(n_images, n_channels, height, width)``.
    dtype : numpy.dtype
        Always float32.
    ndim : int
        Always 4.

    Examples
    --------
    >>> import numpy as np
    >>> from PIL import Image
    >>> from fairnoise.datasets import LazyImageArray
    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> for i in range(3):
    ...     Image.fromarray(np.full((8, 8), 60 * i, dtype=np.uint8)).save(
    ...         os.path.join(folder, f"{i}.png"))
    >>> images = LazyImageArray([os.path.join(folder, f"{i}.png") for i in range(3)],
    ...                         image_size=4)
    >>> images.shape
    (3, 1, 4, 4)
    >>> images[1:].mean(axis=(1, 2, 3)).round(3)
    array([0.235, 0.471], dtype=float32)
    """

    dtype = np.dtype(np.float32)
    ndim = 4

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        *,
        image_size: int | tuple[int, int] = 224,
        n_channels: int = 1,
    ):
        self.paths = [os.fspath(p) for p in paths]
        if isinstance(image_size, numbers.Integral):
            image_size = (int(image_size), int(image_size))
        if (
            not isinstance(image_size, tuple)
            or len(image_size) != 2
            or not all(isinstance(s, numbers.Integral) and s >= 1 for s in image_size)
        ):
            raise ValueError(
                f"image_size must be a positive int or a (height, width) pair; got {image_size!r}."
            )
        if n_channels not in (1, 3):
            raise ValueError(f"n_channels must be 1 or 3; got {n_channels!r}.")
        self.image_size = tuple(int(s) for s in image_size)
        self.n_channels = n_channels
        missing = [p for p in self.paths if not os.path.isfile(p)]
        if missing:
            shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
            raise FileNotFoundError(f"{len(missing)} image file(s) not found: {shown}")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), self.n_channels, *self.image_size)

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"LazyImageArray(<{len(self)} files>, shape={self.shape})"

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, numbers.Integral):
            index = int(np.arange(len(self))[key])
            return _read_image(self.paths[index], self.image_size, self.n_channels)
        indices = np.arange(len(self))[key]
        if indices.ndim != 1:
            raise IndexError(
                f"LazyImageArray supports an int, a slice, a 1-D index array or a boolean "
                f"mask; got {key!r}."
            )
        batch = np.empty((indices.size, self.n_channels, *self.image_size), dtype=np.float32)
        for position, index in enumerate(indices):
            batch[position] = _read_image(self.paths[index], self.image_size, self.n_channels)
        return batch

    def iter_batches(self, batch_size: int = 64) -> Iterator[np.ndarray]:
        """Yield consecutive ``(N, C, H, W)`` batches of at most ``batch_size`` images.

        Parameters
        ----------
        batch_size : int, default=64
            Images per batch.

        Yields
        ------
        ndarray of shape (N, C, H, W)
            The next batch.
        """
        batch_size = _check_int(batch_size, "batch_size", 1)
        for start in range(0, len(self), batch_size):
            yield self[start : start + batch_size]

    def to_numpy(self) -> np.ndarray:
        """Read every image into one ``(n_images, C, H, W)`` float32 array."""
        return self[:]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = self.to_numpy()
        return array if dtype is None else array.astype(dtype, copy=False)


# --------------------------------------------------------------------------------------
# CSV loaders
# --------------------------------------------------------------------------------------


_ROWS_NOTE = "(rows count from 0 after the header)"


def _read_csv(csv_path, required: Sequence[str], text: Sequence[str] = ()) -> pd.DataFrame:
    """The CSV with its ``required`` columns checked; ``text`` columns read as strings."""
    name = os.fspath(csv_path)
    try:
        # paths stay text: a file named 007 must not be read as the number 7
        frame = pd.read_csv(csv_path, dtype={c: str for c in text})
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"{name} is empty: expected a header row with the column(s) {list(required)}."
        ) from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(
            f"Column(s) {missing} not found in {name}; available columns: "
            f"{list(frame.columns)}."
        )
    if frame.empty:
        raise ValueError(f"{name} has a header but no rows.")
    return frame


def _blank(values: pd.Series) -> pd.Series:
    """Cells that hold nothing: missing, or text of whitespace only."""
    spaces = values.map(lambda v: isinstance(v, str) and not v.strip()).astype(bool)
    return values.isna() | spaces


def _rows(mask: pd.Series) -> str:
    """``"row 3 (...)"`` or ``"rows 1, 4, ... (...)"``: where ``mask`` holds, by CSV row."""
    rows = [str(r) for r in mask.index[mask.to_numpy(dtype=bool)]]
    shown = ", ".join(rows[:5]) + (", ..." if len(rows) > 5 else "")
    return f"row{'s' if len(rows) > 1 else ''} {shown} {_ROWS_NOTE}"


def _first_bad(values: pd.Series, bad: pd.Series) -> str:
    """``"got 'x' in row 4 (...)"`` for the first offending cell, and how many others."""
    first = int(np.argmax(bad.to_numpy(dtype=bool)))
    value = values.iloc[first]
    value = value.item() if isinstance(value, np.generic) else value
    others = int(bad.sum()) - 1
    more = f" and {others} other row(s)" if others else ""
    return f"got {value!r} in row {values.index[first]}{more} {_ROWS_NOTE}"


def _resolve_paths(relative: pd.Series, csv_path, image_root) -> list[str]:
    """Absolute image paths of the rows of ``relative`` (a CSV column, original index)."""
    blank = _blank(relative)
    if blank.any():
        raise ValueError(
            f"Column {relative.name!r} is blank in {int(blank.sum())} row(s): {_rows(blank)}; "
            "every row needs an image path."
        )
    if image_root is not None and not Path(image_root).is_dir():
        raise FileNotFoundError(
            f"image_root {os.fspath(image_root)!r} is not an existing directory; the "
            f"{relative.name!r} column's paths are read relative to it."
        )
    root = Path(csv_path).parent if image_root is None else Path(image_root)
    return [str(root / p) for p in relative.astype(str)]


def _check_uncertain(uncertain: str) -> None:
    if uncertain not in ("zeros", "ones", "ignore"):
        raise ValueError(f"uncertain must be 'zeros', 'ones' or 'ignore'; got {uncertain!r}.")


def _age_groups(age: pd.Series, age_bins: Sequence[float]) -> pd.Series:
    edges = [float(e) for e in age_bins]
    if not edges or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"age_bins must be increasing and non-empty; got {age_bins!r}.")

    def fmt(x: float) -> str:
        return f"{x:g}"

    labels = [f"<{fmt(edges[0])}"]
    labels += [f"[{fmt(a)}, {fmt(b)})" for a, b in zip(edges, edges[1:], strict=False)]
    labels.append(f">={fmt(edges[-1])}")
    codes = np.searchsorted(edges, age.to_numpy(dtype=float), side="right")
    return pd.Series(np.array(labels, dtype=object)[codes], index=age.index)


def _age_years(age: pd.Series) -> pd.Series:
    """The ``Age`` column as float years, NaN where blank; text or non-finite refused."""
    blank = _blank(age)
    years = pd.to_numeric(age.where(~blank), errors="coerce").astype(float)
    bad = ~blank & ~np.isfinite(years)
    if bad.any():
        raise ValueError(
            f"Column 'Age' must hold finite numbers (years) or be blank; {_first_bad(age, bad)}."
        )
    return years


def _finding_labels(label: pd.Series) -> pd.Series:
    """A finding column as 1 / 0 / -1 / NaN (blank); any other value refused."""
    blank = _blank(label)
    codes = pd.to_numeric(label.where(~blank), errors="coerce").astype(float)
    bad = ~blank & ~codes.isin([1, 0, -1])
    if bad.any():
        raise ValueError(
            f"Column {label.name!r} must hold 1, 0, -1 or blank; {_first_bad(label, bad)}."
        )
    return codes


def _nothing_left(csv_path, n_rows: int, reasons: list[str]) -> ValueError:
    """The error for a table whose rows were all dropped, naming the filters that did it."""
    said = ", ".join(reasons[:-1]) + " and " + reasons[-1] if len(reasons) > 1 else reasons[0]
    name = os.fspath(csv_path)
    return ValueError(f"No row of {name} is left (of {n_rows}): {said} were dropped.")


def load_chexpert_style(
    csv_path: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    *,
    finding: str = "Pleural Effusion",
    uncertain: str = "zeros",
    sensitive_column: str = "Sex",
    age_bins: Sequence[float] = (60,),
    frontal_only: bool = False,
    image_size: int | tuple[int, int] = 224,
    n_channels: int = 1,
    sensitive: str = UNSET,
) -> Bunch:
    """Load a CheXpert-style chest X-ray table and its images (read lazily).

    The CSV has a ``Path`` column (image file, relative to ``image_root``), ``Sex``,
    ``Age``, ``Frontal/Lateral`` and one column per finding holding 1 (positive),
    0 (negative), -1 (uncertain) or blank (not mentioned). Blank counts as negative, the
    usual CheXpert convention; -1 follows ``uncertain``.

    Parameters
    ----------
    csv_path : str or path-like
        The CSV file (e.g. CheXpert's ``train.csv``).
    image_root : str or path-like, default=None
        Directory the ``Path`` entries are relative to; None means the CSV's directory.
        For CheXpert, whose paths start with ``CheXpert-v1.0-small/``, that is the
        directory above the dataset folder.
    finding : str, default="Pleural Effusion"
        Finding column used as the label ``y``.
    uncertain : {"zeros", "ones", "ignore"}, default="zeros"
        Uncertain (-1) labels: mapped to 0 (U-Zeros), mapped to 1 (U-Ones), or their
        rows dropped.
    sensitive_column : str, default="Sex"
        Column giving the group. ``"Sex"``: its values (e.g. "Female", "Male"), rows with
        missing or "Unknown" sex dropped. ``"Age"``: binned by ``age_bins`` into labels
        "<60" and ">=60" (middle bins of more edges read like "[40, 60)"). Any other
        column: its values as they are.
    age_bins : sequence of float, default=(60,)
        Increasing bin edges for ``sensitive_column="Age"``; an age equal to an edge goes
        to the upper bin.
    frontal_only : bool, default=False
        Keep only rows whose ``Frontal/Lateral`` is "Frontal".
    image_size : int or (int, int), default=224
        Output height and width of the images.
    n_channels : {1, 3}, default=1
        Grayscale or RGB images.
    sensitive : str
        Deprecated name of ``sensitive_column`` (a ``FutureWarning``; removed in
        fairnoise 0.3).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        images : LazyImageArray
            The kept rows' images, read on indexing.
        y : ndarray of shape (n_kept,)
            Binary label (int64) of ``finding``.
        sensitive_features : ndarray of shape (n_kept,)
            Group label per image (object array of strings). Also readable as
            ``sensitive``, deprecated.
        frame : pandas.DataFrame
            The kept rows of the CSV, in the same order, with a fresh index.

    Raises
    ------
    ValueError
        If the CSV is empty or has no rows, a needed column is missing, a finding value is
        not 1, 0, -1 or blank, an age is not a finite number (``sensitive_column="Age"``), a kept
        row's ``Path`` is blank, or the filters leave no row. The message names the column
        and the first offending row (counted from 0 after the header) and value.
    FileNotFoundError
        If ``image_root`` is not a directory or an image file of a kept row does not exist.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from fairnoise.datasets import load_chexpert_style
    >>> root = tempfile.mkdtemp()
    >>> for i in range(3):
    ...     Image.fromarray(np.zeros((16, 16), np.uint8)).save(os.path.join(root, f"{i}.jpg"))
    >>> with open(os.path.join(root, "train.csv"), "w") as f:
    ...     _ = f.write("Path,Sex,Age,Pleural Effusion\\n0.jpg,Female,70,1\\n"
    ...                 "1.jpg,Male,40,-1\\n2.jpg,Male,65,\\n")
    >>> data = load_chexpert_style(os.path.join(root, "train.csv"), image_size=8)
    >>> data.images.shape, data.y.tolist(), data.sensitive_features.tolist()
    ((3, 1, 8, 8), [1, 0, 0], ['Female', 'Male', 'Male'])
    """
    column = renamed_argument(sensitive_column, sensitive, new="sensitive_column",
                              old="sensitive", func="load_chexpert_style", default="Sex")
    _check_uncertain(uncertain)
    required = ["Path", finding, column] + (["Frontal/Lateral"] if frontal_only else [])
    frame = _read_csv(csv_path, required, text=["Path"])

    filters = []  # (what a filter drops, the rows it keeps)
    if column == "Age":
        age = _age_years(frame["Age"])
        group = _age_groups(age.fillna(0), age_bins)
        filters.append(("rows with a blank 'Age'", age.notna()))
    else:
        group = frame[column]
        if column == "Sex":
            filters.append(("rows with a blank or 'Unknown' 'Sex'",
                            ~_blank(group) & (group != "Unknown")))
        else:
            filters.append((f"rows with a blank {column!r}", ~_blank(group)))
    if frontal_only:
        filters.append(("rows whose 'Frontal/Lateral' is not 'Frontal'",
                        frame["Frontal/Lateral"] == "Frontal"))
    label = _finding_labels(frame[finding])
    if uncertain == "ignore":
        filters.append((f"rows with an uncertain (-1) {finding!r}", label != -1))
    label = label.fillna(0).replace(-1, 1 if uncertain == "ones" else 0)
    keep = pd.Series(True, index=frame.index)
    for _, kept in filters:
        keep &= kept
    if not keep.any():
        raise _nothing_left(csv_path, len(frame), [r for r, kept in filters if not kept.all()])

    paths = _resolve_paths(frame.loc[keep, "Path"], csv_path, image_root)
    frame = frame[keep].reset_index(drop=True)
    return RenamedKeyBunch(
        images=LazyImageArray(paths, image_size=image_size, n_channels=n_channels),
        y=label[keep].to_numpy(dtype=np.int64),
        sensitive_features=group[keep].to_numpy(dtype=object),
        frame=frame,
    )


def load_image_csv(
    csv_path: str | os.PathLike,
    *,
    path_column: str = "path",
    label_column: str = "label",
    sensitive_column: str = "group",
    image_root: str | os.PathLike | None = None,
    image_size: int | tuple[int, int] = 224,
    n_channels: int = 1,
    group_column: str = UNSET,
) -> Bunch:
    """Load a generic CSV of image path, label and group (images read lazily).

    Parameters
    ----------
    csv_path : str or path-like
        CSV with one row per image.
    path_column : str, default="path"
        Column of image file paths, relative to ``image_root`` (or absolute).
    label_column : str, default="label"
        Column of task labels (returned as they are).
    sensitive_column : str, default="group"
        Column of sensitive group labels (returned as they are).
    image_root : str or path-like, default=None
        Directory relative paths start from; None means the CSV's directory.
    image_size : int or (int, int), default=224
        Output height and width of the images.
    n_channels : {1, 3}, default=1
        Grayscale or RGB images.
    group_column : str
        Deprecated name of ``sensitive_column`` (a ``FutureWarning``; removed in
        fairnoise 0.3).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        images : LazyImageArray
            The images, read on indexing.
        y : ndarray of shape (n_rows,)
            Values of ``label_column``.
        sensitive_features : ndarray of shape (n_rows,)
            Values of ``sensitive_column``. Also readable as ``sensitive``, deprecated.
        frame : pandas.DataFrame
            The CSV.

    Raises
    ------
    ValueError
        If the CSV is empty or has no rows, a column is missing, or the path, label or group
        column has blank values (the message names the column and the rows).
    FileNotFoundError
        If ``image_root`` is not a directory or an image file does not exist.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from fairnoise.datasets import load_image_csv
    >>> root = tempfile.mkdtemp()
    >>> Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(os.path.join(root, "a.png"))
    >>> with open(os.path.join(root, "index.csv"), "w") as f:
    ...     _ = f.write("path,label,group\\na.png,1,site-A\\n")
    >>> data = load_image_csv(os.path.join(root, "index.csv"), image_size=8, n_channels=3)
    >>> data.images[0].shape, data.y.tolist(), data.sensitive_features.tolist()
    ((3, 8, 8), [1], ['site-A'])
    """
    group_column = renamed_argument(sensitive_column, group_column, new="sensitive_column",
                                    old="group_column", func="load_image_csv", default="group")
    frame = _read_csv(csv_path, [path_column, label_column, group_column], text=[path_column])
    for column in (label_column, group_column):
        missing = _blank(frame[column])
        if missing.any():
            raise ValueError(
                f"Column {column!r} has {int(missing.sum())} missing value(s): {_rows(missing)}."
            )
    return RenamedKeyBunch(
        images=LazyImageArray(
            _resolve_paths(frame[path_column], csv_path, image_root),
            image_size=image_size,
            n_channels=n_channels,
        ),
        y=frame[label_column].to_numpy(),
        sensitive_features=frame[group_column].to_numpy(),
        frame=frame,
    )
