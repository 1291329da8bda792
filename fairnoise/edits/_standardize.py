r"""Per-image intensity standardisation, a fixed input edit: :class:`IntensityStandardization`.

Each image :math:`x` and each of its channels is brought to the training set's typical
intensity and contrast,

.. math:: x' = \frac{x - \bar x}{\max(s_x, \epsilon)}\, s + m,

with :math:`\bar x` and :math:`s_x` the mean and (population) standard deviation of that
channel of that image, and :math:`m`, :math:`s` the average over the training images of
:math:`\bar x` and :math:`s_x` (one per channel), so that edited images stay in the range
the encoder was trained on. A gain and offset that differ between groups (scanner,
exposure, staining) are removed exactly; nothing is learned from the groups or labels.
A constant image (:math:`s_x = 0`) becomes the constant :math:`m`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._arrays import freeze, real_copy

#: images read per step when fitting on an array (a memmap is read chunk by chunk)
_CHUNK = 256


@dataclass(frozen=True, eq=False)
class IntensityStandardization:
    r"""Per-image, per-channel standardisation to the training intensity :math:`(m, s)`.

    Parameters
    ----------
    mean : ndarray of shape (C,)
        :math:`m`, the training images' average per-image mean, per channel (C = 1 for
        single-channel ``(N, H, W)`` batches).
    std : ndarray of shape (C,)
        :math:`s`, their average per-image standard deviation (non-negative).
    eps : float, default=1e-6
        :math:`\epsilon`, the floor of an image's standard deviation, in input units.

    Examples
    --------
    >>> import numpy as np
    >>> from fairnoise.edits import IntensityStandardization
    >>> edit = IntensityStandardization(mean=np.array([0.5]), std=np.array([0.1]))
    >>> X = np.array([[[0.0, 2.0], [0.0, 2.0]]], np.float32)  # one 2x2 image
    >>> edit.apply(X)
    array([[[0.4, 0.6],
            [0.4, 0.6]]], dtype=float32)
    """

    mean: np.ndarray
    std: np.ndarray
    eps: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            array = real_copy(getattr(self, name), "the standardisation's", name, np.float32)
            if array.ndim != 1 or array.size == 0:
                raise ValueError(f"the standardisation's {name} must be a non-empty vector "
                                 f"(one value per channel); got shape {array.shape}.")
            object.__setattr__(self, name, freeze(array, "the standardisation's", name))
        if self.mean.shape != self.std.shape:
            raise ValueError(f"the standardisation's mean {self.mean.shape} and std "
                             f"{self.std.shape} must have one value per channel each.")
        if (self.std < 0).any():
            raise ValueError("the standardisation's std must be non-negative.")
        eps = self.eps
        if isinstance(eps, bool) or not isinstance(eps, (int, float, np.number)) or not (
                np.isfinite(eps) and eps > 0):
            raise ValueError(f"the standardisation's eps must be a positive number; got {eps!r}.")
        object.__setattr__(self, "eps", float(eps))

    @property
    def n_channels(self) -> int:
        """C, the channels the edit expects (1 for ``(N, H, W)`` batches)."""
        return int(self.mean.shape[0])

    def apply(self, X: Any) -> np.ndarray:
        """Standardise a batch ``(N, H, W)`` or ``(N, C, H, W)``: a new array of ``X``'s
        float dtype (float64 for integer input); ``X`` is not changed."""
        X = np.asarray(X)
        self._check_batch(X.shape, X.dtype)
        dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.dtype(np.float64)
        X = X.astype(dtype, copy=False)
        axes = (-2, -1)
        mu = X.mean(axis=axes, keepdims=True, dtype=np.float64)
        sd = X.std(axis=axes, keepdims=True, dtype=np.float64)
        m, s = self._per_channel()
        gain = s / np.maximum(sd, self.eps)  # s / max(s_x, ε), per image and channel
        return (X - mu.astype(dtype)) * gain.astype(dtype) + m.astype(dtype)

    def torch_op(self, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
        """The edit as an out-of-place torch function of a batch on ``device`` (its
        statistics in the batch's dtype; the same values as :meth:`apply` up to rounding)."""
        m, s = (torch.as_tensor(np.array(v), device=device) for v in self._per_channel())
        eps = self.eps

        def standardise(x: torch.Tensor) -> torch.Tensor:
            self._check_batch(tuple(x.shape), None)
            sd, mu = torch.std_mean(x, dim=(-2, -1), keepdim=True, correction=0)
            return (x - mu) * (s.to(x.dtype) / sd.clamp_min(eps)) + m.to(x.dtype)

        return standardise

    def _per_channel(self) -> tuple[np.ndarray, np.ndarray]:
        """:math:`m` and :math:`s` as ``(C, 1, 1)``: they broadcast against ``(N, C, H, W)``
        and, for C = 1, against ``(N, H, W)``."""
        return self.mean.reshape(-1, 1, 1), self.std.reshape(-1, 1, 1)

    def _check_batch(self, shape: tuple[int, ...], dtype: Any) -> None:
        if dtype is not None and not (np.issubdtype(dtype, np.floating)
                                      or np.issubdtype(dtype, np.integer)):
            raise ValueError(f"X must hold real numbers; got dtype {dtype}.")
        channels = shape[1] if len(shape) == 4 else 1
        if len(shape) not in (3, 4) or channels != self.n_channels:
            raise ValueError(
                f"X must be a batch of images (N, H, W) or (N, C, H, W) with "
                f"{self.n_channels} channel(s) (the standardisation's); got shape {shape}.")

    # -- (de)serialisation ---------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays a file stores: ``mean``, ``std`` and ``eps`` (a 0-d array)."""
        return {"mean": self.mean, "std": self.std, "eps": np.asarray(self.eps, np.float64)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> IntensityStandardization:
        """The inverse of :meth:`arrays`; raises ``ValueError`` naming what is wrong."""
        missing = [n for n in ("mean", "std", "eps") if n not in arrays]
        if missing:
            raise ValueError(f"the standardisation's {missing[0]!r} array is missing.")
        eps = np.asarray(arrays["eps"])
        if eps.shape != () or eps.dtype.kind not in "fiu":
            raise ValueError(f"the standardisation's eps must be one number; got shape "
                             f"{eps.shape} of {eps.dtype}.")
        return cls(mean=arrays["mean"], std=arrays["std"], eps=float(eps))


def fit_standardization(X: Any, *, eps: float = 1e-6) -> IntensityStandardization:
    r"""The standardisation to the training images' average per-image mean and std.

    Parameters
    ----------
    X : array-like of shape (N, H, W) or (N, C, H, W), or an iterable of such chunks
        Training images; an array (a memmap included) is read :data:`_CHUNK` images at a
        time, an iterable (a generator of batches) chunk by chunk, in one pass.
    eps : float, default=1e-6
        :math:`\epsilon`, the floor of an image's standard deviation at ``apply``.

    Returns
    -------
    standardization : IntensityStandardization
        With :math:`m_k = \operatorname{mean}_i \bar x_{ik}` and
        :math:`s_k = \operatorname{mean}_i s_{x_{ik}}` per channel :math:`k`.

    Examples
    --------
    >>> import numpy as np
    >>> from fairnoise.edits import fit_standardization
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(size=(10, 3, 8, 8)).astype(np.float32)
    >>> edit = fit_standardization(X)
    >>> edit.mean.shape, edit.std.shape
    ((3,), (3,))
    >>> bright = 0.5 * X + 0.4  # less contrast, brighter
    >>> bool(np.allclose(edit.apply(bright), edit.apply(X), atol=1e-5))
    True
    """
    total_mean, total_std, count, sample_shape = 0.0, 0.0, 0, None
    for chunk in _chunks(X):
        chunk = np.asarray(chunk)
        if chunk.ndim not in (3, 4):
            raise ValueError(f"X must hold images (N, H, W) or (N, C, H, W); got a chunk of "
                             f"shape {chunk.shape}.")
        if not (np.issubdtype(chunk.dtype, np.floating)
                or np.issubdtype(chunk.dtype, np.integer)):
            raise ValueError(f"X must hold real numbers; got dtype {chunk.dtype}.")
        if sample_shape is None:
            sample_shape = chunk.shape[1:]
        elif chunk.shape[1:] != sample_shape:
            raise ValueError(f"every chunk of X must hold images of shape {sample_shape}; "
                             f"got {chunk.shape[1:]}.")
        if len(chunk) == 0:
            continue
        flat = chunk.reshape(len(chunk), 1 if chunk.ndim == 3 else chunk.shape[1], -1)
        mu = flat.mean(axis=-1, dtype=np.float64)  # (n, C)
        sd = flat.std(axis=-1, dtype=np.float64)
        if not (np.isfinite(mu).all() and np.isfinite(sd).all()):
            raise ValueError("X holds NaN or infinity.")
        total_mean, total_std = total_mean + mu.sum(0), total_std + sd.sum(0)
        count += len(chunk)
    if count == 0:
        raise ValueError("X holds no images to fit the standardisation on.")
    return IntensityStandardization(mean=total_mean / count, std=total_std / count, eps=eps)


def _chunks(X: Any) -> Iterable[Any]:
    """``X`` as chunks of images: slices of an array, or the iterable's own items."""
    if hasattr(X, "shape") and hasattr(X, "__getitem__"):
        return (X[start : start + _CHUNK] for start in range(0, max(len(X), 1), _CHUNK))
    try:
        return iter(X)
    except TypeError:
        raise ValueError(f"X must be an array of images or an iterable of batches; got "
                         f"{type(X).__name__}.") from None
