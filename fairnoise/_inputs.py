"""Inputs, validated once at the edge: arrays, tensors, DataFrames, memmaps, lazy images.

Images are read chunk by chunk (``read_rows``), so memmaps and lazy arrays stay lazy and
memory stays bounded by a chunk whatever the data's size; integer images are scaled to
[0, 1] (``as_float_images``). The inner code trusts what leaves this module.
"""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np
import torch
from scipy.sparse import issparse
from sklearn.utils.validation import validate_data

# scanning and transforming go through the data in chunks of at most this many bytes (as
# float32), so memory stays bounded for memmaps and lazy arrays whatever the image size
_CHUNK_BYTES = 64 * 2**20


def chunk_rows(sample_shape: tuple[int, ...], at_least: int = 1) -> int:
    """Rows per chunk: as many float32 samples as fit in ``_CHUNK_BYTES``."""
    per_row = 4 * int(np.prod(sample_shape))
    return max(at_least, _CHUNK_BYTES // max(per_row, 1))


#: the integer image types and what they are divided by: what the type can hold
_INTEGER_IMAGE_TYPES = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}


def check_image_dtype(dtype: Any) -> None:
    """Refuse image dtypes that are not real, and integer types other than uint8/uint16.

    A signed or wider integer type (``int64`` is what ``np.array(image) + 1`` gives) does
    not say what range its pixels use: divided by its own maximum, 0–255 would arrive as
    ~1e-17, and scaling by the data's own maximum would make ``transform`` of a batch
    depend on the rest of the batch. So only the two types with an unambiguous range are
    scaled; for any other the message says what to pass.
    """
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        if dtype not in _INTEGER_IMAGE_TYPES:
            raise TypeError(
                f"X holds integer images of dtype {dtype}; only uint8 (0-255, divided by "
                "255) and uint16 (0-65535, divided by 65535) images are scaled, because a "
                "signed or wider integer type does not say what range its pixels use. Pass "
                "X.astype(np.uint8) for values in 0-255 (X.to(torch.uint8) for a tensor), "
                "X.astype(np.uint16) for 0-65535, or floats in [0, 1] (e.g. X / 255)."
            )
    elif not np.issubdtype(dtype, np.floating):
        raise TypeError(f"X must hold real numbers; got dtype {dtype}.")


def as_float_images(batch: Any) -> np.ndarray:
    """A batch of images as float32; uint8 and uint16 images are scaled to [0, 1].

    ``uint8`` images (0–255) are divided by 255 and ``uint16`` ones (0–65535) by 65535,
    so both arrive in [0, 1], the range float images are expected in; float images pass
    unchanged. Any other integer type (signed, or wider than 16 bits, such as the
    ``int64`` that NumPy arithmetic on a PIL image gives) is refused with a ``TypeError``
    that says what to pass: its range is not known, and guessing it from the data would
    make the scaling of a batch depend on its contents. Put any further normalisation
    (mean/std) into the encoder module. Non-finite values are rejected here, where
    lazily read data is first seen.
    """
    batch = np.asarray(batch)
    check_image_dtype(batch.dtype)
    if np.issubdtype(batch.dtype, np.integer):
        return batch.astype(np.float32) / np.float32(_INTEGER_IMAGE_TYPES[batch.dtype])
    batch = batch.astype(np.float32, copy=False)
    # a NaN or infinity makes the sum non-finite; only then (or on overflow of a huge
    # finite sum) is the slower elementwise check needed
    if not np.isfinite(batch.sum()) and not np.isfinite(batch).all():
        raise ValueError("X contains NaN or infinity.")
    return batch


def read_rows(X: Any, key: Any) -> np.ndarray:
    """Rows ``X[key]`` as float32 images, without letting a memmap grow resident memory.

    A memory-mapped file's pages count towards the process's resident memory once read,
    so a pass over a large memmap would end with the whole file resident. The rows are
    copied out and the mapping's pages released (``MADV_DONTNEED``; they stay in the
    page cache), so memory is bounded by the batch, not the file.
    """
    rows = X[key]
    mapping = getattr(X, "_mmap", None)
    if mapping is None:
        return as_float_images(rows)
    batch = np.array(rows, dtype=np.float32 if rows.dtype.kind == "f" else rows.dtype)
    if hasattr(mapping, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)
    return as_float_images(batch)


def validate_inputs(estimator: Any, X: Any, *, reset: bool) -> Any:
    """Validate inputs once, at the edge. Memmaps and lazy image arrays stay lazy.

    Feature matrices go through scikit-learn's ``validate_data``. Images (and any
    array-like exposing ``shape``, ``dtype`` and NumPy-style indexing, such as a
    memmap or :class:`fairnoise.datasets.LazyImageArray`) are checked chunk by chunk.
    """
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    lazy = not isinstance(X, np.ndarray) and all(
        hasattr(X, attr) for attr in ("shape", "dtype", "__getitem__", "__len__"))
    if not lazy and not isinstance(X, np.ndarray) and not hasattr(X, "iloc"):
        X = X if issparse(X) else np.asarray(X)
    if issparse(X) or len(X.shape) == 2:
        X = validate_data(estimator, X, reset=reset, dtype=[np.float64, np.float32])
        shape = X.shape[1:]
    else:
        if len(X.shape) == 1:
            raise ValueError(
                f"X must be 2-D or images; got a 1-D array of shape {X.shape}. Reshape "
                "your data with X.reshape(-1, 1) for one feature, or X.reshape(1, -1) "
                "for one sample."
            )
        if len(X.shape) not in (3, 4):
            raise ValueError(
                "X must be 2-D (n_samples, n_features) or images (n_samples, H, W) / "
                f"(n_samples, C, H, W); got an array of shape {X.shape}."
            )
        dtype = np.dtype(X.dtype)
        check_image_dtype(dtype)
        if len(X.shape) == 4:
            _check_channels_first(X.shape)
        if len(X) == 0:
            raise ValueError("X has 0 samples; at least one is required.")
        shape = X.shape[1:]
        if np.issubdtype(dtype, np.floating) and not lazy:  # lazy files: checked on read
            rows = chunk_rows(shape)
            for start in range(0, len(X), rows):
                read_rows(X, slice(start, start + rows))  # raises on NaN or inf
        if reset:
            estimator.n_features_in_ = int(np.prod(shape))
    if estimator.encoder is None and len(shape) != 1:
        raise ValueError(
            "With encoder=None the inputs are feature vectors and X must be 2-D; got "
            f"shape {(len(X), *shape)}. Pass an encoder for images (torch.nn.Flatten() "
            "works on raw pixels)."
        )
    if reset:
        estimator.input_shape_ = tuple(int(s) for s in shape)
    elif tuple(shape) != estimator.input_shape_:
        one = (len(X), *shape) == estimator.input_shape_  # one sample, without its batch axis
        raise ValueError(
            f"X has samples of shape {tuple(shape)}, but {type(estimator).__name__} was fitted "
            f"on samples of shape {estimator.input_shape_}."
            + (" For a single sample, add the batch axis: X[None] (or X.unsqueeze(0) for a "
               "tensor)." if one else "")
        )
    return X


#: the channel counts of images as people store them (grey, RGB, RGBA)
_CHANNEL_COUNTS = (1, 3, 4)


def _check_channels_first(shape: tuple[int, ...]) -> None:
    """Refuse channels-last images ``N×H×W×C``: the edit works on ``N×C×H×W``.

    Detected when the last axis holds 1, 3 or 4 channels, the second does not, and both
    spatial axes are larger than the channel count: a channels-first image only this wide
    (a width of 1, 3 or 4 pixels) does not occur in practice.
    """
    _, c, h, w = shape
    if w in _CHANNEL_COUNTS and c not in _CHANNEL_COUNTS and c > w and h > w:
        raise ValueError(
            f"X looks like channels-last images (N, H, W, C) = {tuple(shape)}; fairnoise "
            "edits images channels-first, (N, C, H, W) or (N, H, W). Pass "
            "X.transpose(0, 3, 1, 2) (a view, memmaps stay lazy); an encoder that needs "
            "channels-last can transpose its batch back with batch.transpose(0, 2, 3, 1)."
        )


class RowSubset:
    """Rows ``rows`` of a validated input, read lazily (a memmap stays a memmap).

    Exposes what the optimisers use: ``len``, ``shape``, ``dtype`` and indexing by an
    index array or a slice, which reads only the rows asked for.
    """

    def __init__(self, X: Any, rows: np.ndarray) -> None:
        self.X, self.rows = X, np.asarray(rows)
        self.shape = (len(self.rows), *X.shape[1:])
        self.dtype = X.dtype

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def _mmap(self) -> Any:  # read_rows releases a memmap's pages through it
        return getattr(self.X, "_mmap", None)

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.X[self.rows[key]]
