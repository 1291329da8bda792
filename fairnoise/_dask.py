"""``transform`` of a Dask array: lazily, block by block, on the workers of a cluster.

The fitted edit and the encoder travel to the workers once, as one task of the graph
(:class:`ShippedTransform`) that every block's task depends on: each worker receives them
once, not once per block. Each block holds whole samples (the array is rechunked along
the sample axis only) and is transformed by the NumPy ``transform``, so the result equals
it block for block. Dask is imported only when a Dask array arrives (the ``distributed``
extra); nothing here runs otherwise.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from typing import Any

import numpy as np


def is_dask_array(X: Any) -> bool:
    """Whether ``X`` is a Dask array (told apart without importing dask)."""
    return type(X).__module__.partition(".")[0] == "dask" and hasattr(X, "map_blocks") \
        and hasattr(X, "chunks")


class ShippedTransform:
    """What every block's task calls: a lean copy of a fitted transformer.

    The copy holds the edit, the wrapped encoder and what ``transform`` validates, not the
    probe. Blocks of a torch encoder are transformed one at a time per process (its
    ``frozen`` context toggles the module's flags, and torch uses its own threads for each
    block); a black-box encoder's calls may overlap, as they do with ``n_jobs``.
    """

    def __init__(self, transformer: Any) -> None:
        shipped = copy.copy(transformer)  # the estimator's own state (no torch adversary)
        shipped.sa_probe_ = None  # not needed to transform: do not ship it
        shipped._encoder = shipped._check_encoder()
        self.transformer = shipped
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"transformer": self.transformer}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.transformer = state["transformer"]
        self._lock = threading.Lock()

    @property
    def _serial(self) -> bool:
        encoder = self.transformer._encoder
        return encoder is not None and encoder.differentiable

    def __call__(self, block: np.ndarray) -> np.ndarray:
        t = self.transformer
        with self._lock if self._serial else contextlib.nullcontext():
            return t._transform_validated(t._validate_X(block, reset=False))

    def output_dtype(self, input_dtype: np.dtype) -> np.dtype:
        """The dtype of the blocks ``transform`` returns, known before any is computed."""
        t = self.transformer
        if t.output == "images" or t._encoder is None:
            if len(t.input_shape_) > 1:  # images are read as float32
                return np.dtype(np.float32)
            # feature matrices are validated to float64, or kept as float32
            return np.dtype(np.float32 if input_dtype == np.float32 else np.float64)
        from .encoders import _ModuleFunction

        if t._encoder.differentiable or isinstance(getattr(t._encoder, "fn", None),
                                                   _ModuleFunction):
            return np.dtype(np.float32)  # a torch module's embeddings
        # a black box says what it returns only when called: one zero input, one query
        return self(np.zeros((1, *t.input_shape_), np.float32)).dtype


def transform_dask(transformer: Any, X: Any) -> Any:
    """``transformer.transform`` of the Dask array ``X``, as a Dask array (lazy)."""
    import dask

    _check_samples(transformer, X)
    X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})  # whole samples in each block
    shipped = ShippedTransform(transformer)
    dtype = shipped.output_dtype(np.dtype(X.dtype))
    # one task of the graph holds the edit and the encoder; every block depends on it
    edit = dask.delayed(shipped, pure=False, traverse=False)
    if transformer.output == "images":
        return X.map_blocks(_transform_block, edit, dtype=dtype,
                            meta=np.empty((0,) * X.ndim, dtype))
    return X.map_blocks(_transform_block, edit, dtype=dtype,
                        chunks=(X.chunks[0], (transformer.n_features_out_,)),
                        drop_axis=list(range(2, X.ndim)), meta=np.empty((0, 0), dtype))


def _transform_block(block: np.ndarray, shipped: ShippedTransform) -> np.ndarray:
    return shipped(block)


def _check_samples(transformer: Any, X: Any) -> None:
    """The checks ``transform`` makes of a NumPy array, made on the Dask array's metadata
    (the values, NaN included, are checked block by block when computed)."""
    dtype = np.dtype(X.dtype)
    if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise TypeError(f"X must hold real numbers; got dtype {dtype}.")
    if X.ndim not in (2, 3, 4):
        raise ValueError(
            "X must be 2-D (n_samples, n_features) or images (n_samples, H, W) / "
            f"(n_samples, C, H, W); got a Dask array of shape {X.shape}."
        )
    if tuple(X.shape[1:]) != tuple(transformer.input_shape_):
        raise ValueError(
            f"X has samples of shape {tuple(X.shape[1:])}, but {type(transformer).__name__} "
            f"was fitted on samples of shape {tuple(transformer.input_shape_)}."
        )
