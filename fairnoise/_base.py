"""Estimator plumbing shared by the white-box and black-box noise transformers.

The public classes read top to bottom as the method: validate → probe → optimise → store.
This module holds everything but the optimiser: input validation (NumPy, torch, pandas,
memmaps), group encoding, the sensitive-attribute probe, metadata routing, ``transform``
and feature names.
"""

from __future__ import annotations

import copy
import mmap
import numbers
import warnings
from abc import abstractmethod
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.sparse import issparse
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._groups import encode_groups
from .edits import EDITS, NoiseSpace, apply_numpy, input_mean
from .encoders import CallableEncoder, TorchEncoder, check_encoder
from .objectives import OBJECTIVES, Adversary
from .probe import TorchProbe, check_probe, fit_probe

_NO_GROUPS_WARNING = (
    "{cls}.fit was called without sensitive_features, so no edit was learned (zero noise, "
    "a mask of ones) and transform only applies the encoder. Pass the groups directly as "
    "fit(X, y, sensitive_features=a); through a Pipeline or GridSearchCV as "
    "fit(X, y, <step name>__sensitive_features=a); or with metadata routing on "
    "(sklearn.set_config(enable_metadata_routing=True)) as fit(X, y, sensitive_features=a)."
)

# scanning and transforming go through the data in chunks of at most this many bytes (as
# float32), so memory stays bounded for memmaps and lazy arrays whatever the image size
_CHUNK_BYTES = 64 * 2**20


def chunk_rows(sample_shape: tuple[int, ...], at_least: int = 1) -> int:
    """Rows per chunk: as many float32 samples as fit in ``_CHUNK_BYTES``."""
    per_row = 4 * int(np.prod(sample_shape))
    return max(at_least, _CHUNK_BYTES // max(per_row, 1))


def as_float_images(batch: Any) -> np.ndarray:
    """A batch of images as float32; integer images are divided by their dtype's maximum.

    So ``uint8`` images (0–255) and ``uint16`` ones (0–65535) both arrive in [0, 1], the
    range float images are expected in; float images pass unchanged. Put any further
    normalisation (mean/std) into the encoder module. Non-finite values are rejected here,
    where lazily read data is first seen.
    """
    batch = np.asarray(batch)
    if np.issubdtype(batch.dtype, np.integer):
        return batch.astype(np.float32) / np.float32(np.iinfo(batch.dtype).max)
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


def codes_in(labels: Any, classes: np.ndarray, name: str, n_samples: int) -> np.ndarray:
    """Codes of ``labels`` among ``classes`` fixed earlier (for ``partial_fit``)."""
    codes, seen = (encode_groups(labels, n_samples, min_groups=1)
                   if name == "sensitive_features"
                   else _check_y_classes(labels, n_samples, return_classes=True))
    index = pd.Index(list(classes), tupleize_cols=False)
    mapping = index.get_indexer(pd.Index(list(seen), tupleize_cols=False))
    if (mapping < 0).any():
        unseen = [label for label, m in zip(seen, mapping, strict=True) if m < 0]
        raise ValueError(
            f"{name} holds labels {unseen!r} that the first partial_fit call did not see "
            f"(known: {list(classes)!r}); the first batch must contain every label."
        )
    return mapping[codes].astype(np.int64)


def _check_y_classes(y: Any, n_samples: int, return_classes: bool = False) -> Any:
    """Class codes of ``y`` for the class-conditional adversary."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n_samples:
        raise ValueError(
            f"y must be 1-D with one label per sample ({n_samples}); got shape {y.shape}."
        )
    codes, classes = pd.factorize(pd.Series(y), sort=True)
    if (codes < 0).any():
        raise ValueError("y contains missing values.")
    if len(classes) > max(20, n_samples // 10):
        raise ValueError(
            f"y has {len(classes)} distinct values; the class-conditional adversary needs "
            "class labels. Pass conditional=False (or no y) for a continuous target."
        )
    if return_classes:
        return codes.astype(np.int64), np.asarray(classes)
    return codes.astype(np.int64)


class BaseNoiseTransformer(TransformerMixin, BaseEstimator):
    """Shared base of :class:`DebiasedNoiseTransformer` and :class:`GeZONoiseTransformer`.

    Subclasses implement :meth:`_optimise`, which learns the edit's parameter against the
    fitted probe, and list their own parameters in ``__init__``.
    """

    # the class requests sensitive_features by default: routing works without
    # set_fit_request(sensitive_features=True)
    __metadata_request__fit = {"sensitive_features": True}

    _parameter_constraints: dict = {
        "encoder": [None, callable, TorchEncoder, CallableEncoder],
        "output": [StrOptions({"embeddings", "images"})],
        "edit": [StrOptions(set(EDITS))],
        "objective": [StrOptions(set(OBJECTIVES))],
        "lambda_reg": [Interval(numbers.Real, 0, None, closed="left")],
        "noise_resolution": [None, Interval(numbers.Integral, 1, None, closed="left"), tuple],
        "channel_shared": ["boolean"],
        "max_norm": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "sa_probe": [None, object],
        "conditional": ["boolean"],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # -- fit ------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None, *, sensitive_features: Any = None) -> BaseNoiseTransformer:
        """Learn the universal edit that hides ``sensitive_features`` from the encoder.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, [C,] H, W)
            Feature vectors (``encoder=None``) or images; NumPy arrays, memmaps (read in
            batches), torch tensors, or a pandas DataFrame of features.
        y : array-like of shape (n_samples,), default=None
            Task labels. Optional; with ``conditional=True`` they make the adversary
            class-conditional (hide the group information beyond what ``y`` explains).
        sensitive_features : array-like of shape (n_samples,) or (n_samples, n_attributes)
            Group labels of any hashable type; several columns are combined into their
            intersection. Without them no edit is learned and a warning says how to pass them.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        self._validate_params()
        X = self._validate_X(X, reset=True)
        self._encoder = self._check_encoder()
        n_samples = len(X)
        self._seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self._space = self._noise_space()
        self._fill = self._compute_fill(X)

        if sensitive_features is None:
            warnings.warn(_NO_GROUPS_WARNING.format(cls=type(self).__name__), UserWarning,
                          stacklevel=2)
            self._store_identity(X)
            return self

        a, self.classes_sensitive_ = encode_groups(sensitive_features, n_samples)
        ycode = self._class_codes(y, n_samples, reset=True)
        self._adversary = self._fit_adversary(X, a, ycode)
        self._optimise(X, self._adversary)
        return self

    def _class_codes(self, y: Any, n_samples: int, *, reset: bool) -> np.ndarray:
        """Class codes of ``y`` for the conditional adversary (all zero when unused)."""
        if reset:
            self._y_classes = None
            if y is None or not self.conditional:
                return np.zeros(n_samples, np.int64)
            codes, self._y_classes = _check_y_classes(y, n_samples, return_classes=True)
            return codes
        if self._y_classes is None:
            return np.zeros(n_samples, np.int64)
        if y is None:
            raise ValueError("y was given to the first partial_fit call (conditional=True), "
                             "so every later call needs it too.")
        return codes_in(y, self._y_classes, "y", n_samples)

    def _fit_adversary(self, X: np.ndarray, a: np.ndarray, ycode: np.ndarray) -> Adversary:
        """Step 1: embed the clean inputs, fit the probe on them, build the loss of step 2."""
        Z = self._embed(X)
        self.n_features_out_ = Z.shape[1]
        probe = self._fit_probes(Z, a, ycode)
        return Adversary(self.objective, probe, a, ycode, Z, self._torch_device())

    def _fit_probes(self, Z: np.ndarray, a: np.ndarray, ycode: np.ndarray) -> TorchProbe:
        """Step 1: the probe g on clean embeddings, one per class of ``y`` when conditional."""
        base = check_probe(self.sa_probe)
        K = len(self.classes_sensitive_)
        n_classes = int(ycode.max()) + 1
        probes, present = [], np.zeros((n_classes, K), bool)
        for j in range(n_classes):
            sel = ycode == j
            present[j, np.unique(a[sel])] = True
            probes.append(fit_probe(base, Z[sel], a[sel]) if present[j].sum() > 1 else None)
        self.sa_probe_ = probes[0] if n_classes == 1 else dict(enumerate(probes))
        return TorchProbe(probes, K, present, self._torch_device())

    @abstractmethod
    def _optimise(self, X: np.ndarray, adversary: Adversary) -> None:
        """Step 2: learn the edit; set ``noise_``, ``mask_``, ``loss_curve_``, ``n_iter_``."""

    def _store(self, theta: torch.Tensor) -> None:
        """Store the learned parameter and its full-resolution NumPy form."""
        self.noise_param_ = theta.detach().cpu().numpy().copy()
        self.noise_, self.mask_ = self._space.full_arrays(theta, self._fill)

    def _store_identity(self, X: np.ndarray) -> None:
        self._adversary = None
        self._store(self._space.init_param())
        self.sa_probe_ = None
        self.classes_sensitive_ = None
        self.loss_curve_ = []
        self.n_iter_ = 0
        self.n_features_out_ = (
            self.n_features_in_ if self._encoder is None
            else self._encoder_embed(self._read(X, np.arange(min(1, len(X))))).shape[1]
        )

    # -- validation -------------------------------------------------------------------------
    def _check_encoder(self) -> TorchEncoder | CallableEncoder | None:
        return check_encoder(self.encoder)

    def _resolution(self) -> Any:
        """``noise_resolution`` as given; a subclass may resolve a default that depends on X."""
        return self.noise_resolution

    def _noise_space(self) -> NoiseSpace:
        shape = self.input_shape_
        res = self._resolution()
        if res is not None:
            if len(shape) < 2:
                raise ValueError(
                    "noise_resolution applies to images; the inputs are feature vectors "
                    f"of shape {shape}. Leave noise_resolution=None."
                )
            res = (res, res) if isinstance(res, numbers.Integral) else tuple(res)
            if len(res) != 2 or not all(isinstance(r, numbers.Integral) and r >= 1 for r in res):
                raise ValueError(
                    f"noise_resolution must be an int or an (h, w) pair of ints; got {res!r}."
                )
            res = (min(res[0], shape[-2]), min(res[1], shape[-1]))
        if self.max_norm is not None and self.edit != "additive":
            raise ValueError(
                f"max_norm bounds the additive noise; it has no meaning for edit={self.edit!r}."
            )
        return NoiseSpace(tuple(shape), self.edit, res, self.channel_shared)

    def _validate_X(self, X: Any, *, reset: bool) -> Any:
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
            X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])
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
            if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
                raise TypeError(f"X must hold real numbers; got dtype {dtype}.")
            if len(X) == 0:
                raise ValueError("X has 0 samples; at least one is required.")
            shape = X.shape[1:]
            if np.issubdtype(dtype, np.floating) and not lazy:  # lazy files: checked on read
                rows = chunk_rows(shape)
                for start in range(0, len(X), rows):
                    read_rows(X, slice(start, start + rows))  # raises on NaN or inf
            if reset:
                self.n_features_in_ = int(np.prod(shape))
        if self.encoder is None and len(shape) != 1:
            raise ValueError(
                "With encoder=None the inputs are feature vectors and X must be 2-D; got "
                f"shape {(len(X), *shape)}. Pass an encoder for images (torch.nn.Flatten() "
                "works on raw pixels)."
            )
        if reset:
            self.input_shape_ = tuple(int(s) for s in shape)
        elif tuple(shape) != self.input_shape_:
            raise ValueError(
                f"X has samples of shape {tuple(shape)}, but {type(self).__name__} was fitted "
                f"on samples of shape {self.input_shape_}."
            )
        return X

    # -- helpers used by the optimisers ----------------------------------------------------------
    def _torch_device(self) -> torch.device:
        enc = getattr(self, "_encoder", None)
        return enc.torch_device if isinstance(enc, TorchEncoder) else torch.device("cpu")

    @staticmethod
    def _read(X: Any, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` of ``X`` as float32 (memmaps and lazy arrays are read only here)."""
        return read_rows(X, idx)

    def _iter_chunks(self, X: Any, size: int | None = None) -> Iterator[np.ndarray]:
        """Consecutive row blocks: float32 images (scaled, see ``as_float_images``), or
        the validated feature matrix's own rows."""
        size = size or chunk_rows(self.input_shape_, at_least=self.batch_size)
        for start in range(0, len(X), size):
            key = slice(start, start + size)
            yield X[key] if len(self.input_shape_) == 1 else read_rows(X, key)

    def _compute_fill(self, X: np.ndarray) -> np.ndarray:
        """Mean training input (only the masked edit uses it as its fixed fill)."""
        if self.edit != "masked":
            return np.zeros((1,) * len(self.input_shape_), np.float32)
        total = np.zeros(self.input_shape_, np.float64)
        for chunk in self._iter_chunks(X):
            total += chunk.sum(axis=0, dtype=np.float64)
        return input_mean(total / len(X), self.input_shape_)

    def _encoder_embed(self, Xb: np.ndarray) -> np.ndarray:
        if self._encoder is None:
            return Xb
        return self._encoder.embed(Xb)

    def _embed(self, X: np.ndarray, noise: np.ndarray | None = None,
               mask: np.ndarray | None = None) -> np.ndarray:
        """φ(edit(X)) chunk by chunk (φ(X) when ``noise`` is None)."""
        out = []
        fused = noise is not None and isinstance(self._encoder, TorchEncoder)
        edit = self._torch_edit(noise, mask) if fused else None
        for xb in self._iter_chunks(X):
            if fused:
                out.append(self._encoder.embed(xb, edit=edit))
                continue
            if noise is not None:
                xb = apply_numpy(xb, noise, mask)
            out.append(self._encoder_embed(xb))
        return np.concatenate(out)

    def _torch_edit(self, noise: np.ndarray,
                    mask: np.ndarray | None) -> Callable[[torch.Tensor], torch.Tensor]:
        """The fitted edit as one fused, out-of-place torch op per batch on the device.

        ``m ⊙ x + (1 − m) ⊙ f`` is ``addcmul((1 − m) ⊙ f, x, m)`` with the first term
        precomputed; the additive edit is ``x + ε``. Same values as :func:`apply_numpy`
        up to float rounding.
        """
        device = self._encoder.torch_device
        eps = torch.as_tensor(np.ascontiguousarray(noise, np.float32), device=device)
        if mask is None:
            return lambda x: x + eps
        m = torch.as_tensor(np.ascontiguousarray(mask, np.float32), device=device)
        base = (1.0 - m) * eps
        return lambda x: torch.addcmul(base, x, m)

    def __sklearn_clone__(self) -> BaseNoiseTransformer:
        """Clone parameters as scikit-learn does, but share the frozen encoder.

        ``GridSearchCV`` clones once per candidate and split; deep-copying a foundation
        model each time would cost memory and break caching (``Pipeline(memory=...)``
        hashes the step, and copies of a module hash differently). fairnoise never
        modifies the encoder, so sharing it is safe.
        """
        params = self.get_params(deep=False)
        encoder = params.pop("encoder")
        new = type(self)(encoder=encoder,
                         **{k: clone(v, safe=False) for k, v in params.items()})
        if hasattr(self, "_metadata_request"):
            new._metadata_request = copy.deepcopy(self._metadata_request)
        return new

    def export_noise(self, path: Any) -> str:
        """Write the learned edit to a safe ``.npz`` file; see :func:`fairnoise.export_noise`.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        path : str
            The file written (``.npz`` appended if missing).
        """
        from .persistence import export_noise

        return export_noise(self, path)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # a copy: object's is the live __dict__
        state.pop("_adversary", None)  # torch state, rebuilt by partial_fit when needed
        return state

    # -- transform ------------------------------------------------------------------------------
    def transform(self, X: Any) -> np.ndarray:
        """Apply the learned edit, then the encoder (``output="embeddings"``).

        Parameters
        ----------
        X : array-like of the same per-sample shape as in ``fit``

        Returns
        -------
        Xt : ndarray
            ``φ(edit(X))`` of shape (n_samples, n_features_out_) for ``output="embeddings"``,
            or ``edit(X)`` with the shape of ``X`` for ``output="images"``.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        self._encoder = self._check_encoder()
        if self.output == "images":
            return np.concatenate([apply_numpy(c, self.noise_, self.mask_)
                                   for c in self._iter_chunks(X)])
        return self._embed(X, self.noise_, self.mask_)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output feature names: the input names in feature mode, else ``<class>0..``."""
        check_is_fitted(self)
        if self.output == "images":
            raise ValueError("output='images' returns images, which have no feature names.")
        if self.encoder is None:
            from sklearn.utils.validation import _check_feature_names_in

            return _check_feature_names_in(self, input_features)
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self.n_features_out_)], dtype=object)

    def __sklearn_tags__(self):  # noqa: ANN204
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.allow_nan = False
        return tags
