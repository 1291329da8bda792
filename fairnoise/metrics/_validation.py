"""Validation at the edge: labels, scores, weights and options, checked once per call."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import pandas as pd

from .._groups import Groups, plain

ZeroDivision = str | float
RandomState = int | np.random.RandomState | None


def check_1d(values: Any, name: str, n_samples: int | None = None,
             against: str = "y_true") -> np.ndarray:
    """A non-empty 1-D array without missing values, as long as ``against`` if given."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got an array of shape {array.shape}.")
    if n_samples is not None and array.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {array.shape[0]} samples but {against} has {n_samples}; they must "
            "have the same length."
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty.")
    if np.asarray(pd.isna(array)).any():
        raise ValueError(f"{name} contains missing values (NaN/None).")
    return array


def check_binary(values: Any, name: str, n_samples: int | None = None) -> np.ndarray:
    """Validate hard binary labels in {0, 1} (booleans accepted)."""
    array = check_1d(values, name, n_samples)
    if array.dtype.kind not in "biuf" or not np.isin(array, (0, 1)).all():
        found = pd.unique(array)
        shown = ", ".join(repr(plain(v)) for v in found[:5]) + (", ..." if len(found) > 5 else "")
        hint = ""
        if name == "y_pred":
            hint = (
                " Threshold continuous scores first, e.g. (y_score >= 0.5).astype(int), or "
                "use a scorer from make_fairness_scorer(..., threshold=0.5)."
            )
        raise ValueError(f"{name} must contain binary labels 0/1; got values {shown}.{hint}")
    return array.astype(np.int64)


def check_scores(values: Any, name: str, n_samples: int) -> np.ndarray:
    """Finite numeric scores, as float64."""
    array = check_1d(values, name, n_samples)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric scores; got dtype {array.dtype}.")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values; scores must be finite.")
    return array


def check_sample_weight(sample_weight: Any, groups: Groups) -> np.ndarray:
    """Finite non-negative weights, one per sample, with positive total in every group.

    ``None`` gives unit weights: every count is then the plain number of samples, so
    weighted and unweighted results are the same numbers to the last bit.
    """
    if sample_weight is None:
        return np.ones(groups.codes.shape[0])
    weights = check_1d(sample_weight, "sample_weight", groups.codes.shape[0])
    if weights.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight must be numeric; got dtype {weights.dtype}.")
    weights = weights.astype(np.float64)
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("sample_weight must be finite and non-negative.")
    total = np.bincount(groups.codes, weights=weights, minlength=groups.n_groups)
    if (total == 0).any():
        empty = [plain(v) for v in groups.labels[total == 0]]
        raise ValueError(
            f"sample_weight is 0 for every sample of group(s) {empty}; such a group has no "
            "rates. Drop its samples or give them positive weight."
        )
    return weights


def check_zero_division(zero_division: Any) -> float | None:
    """Return the fill value for undefined rates, or None for 'warn' (fill 0, warn)."""
    if isinstance(zero_division, str) and zero_division == "warn":
        return None
    if isinstance(zero_division, numbers.Real) and (
        zero_division in (0, 1) or math.isnan(zero_division)
    ):
        return float(zero_division)
    raise ValueError(f"zero_division must be 'warn', 0.0, 1.0 or np.nan; got {zero_division!r}.")


def check_threshold(threshold: Any, *, allow_none: bool) -> None:
    """A real number (not a bool), or None where ``allow_none``."""
    if threshold is None and allow_none:
        return
    if not isinstance(threshold, numbers.Real) or isinstance(threshold, bool):
        expected = "a number or None" if allow_none else "a number"
        raise ValueError(f"threshold must be {expected}; got {threshold!r}.")
