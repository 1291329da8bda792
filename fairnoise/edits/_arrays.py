"""Read-only copies of the arrays a frozen edit part holds, checked once, at construction."""

from __future__ import annotations

from typing import Any

import numpy as np


def real_copy(value: Any, owner: str, name: str, dtype: type) -> np.ndarray:
    """A copy of ``value`` as ``dtype`` (never the caller's array); real numbers only."""
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{owner} {name} must hold real numbers; got dtype {array.dtype}.")
    return array.astype(dtype)


def freeze(array: np.ndarray, owner: str, name: str) -> np.ndarray:
    """``array`` checked to be finite and made read-only (in place)."""
    if not np.isfinite(array).all():
        raise ValueError(f"{owner} {name} holds NaN or infinity.")
    array.flags.writeable = False
    return array
