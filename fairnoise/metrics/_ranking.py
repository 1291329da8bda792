"""Ranking metrics on scores: ROC AUC per group, its gap and the worst group's AUC."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.stats import rankdata
from sklearn.exceptions import UndefinedMetricWarning

from .._groups import Groups, check_groups, plain
from ._aggregate import difference, group_min
from ._validation import check_binary, check_scores


def binary_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count one half); nan for one class."""
    n_pos = int(y_true.sum())
    n_neg = y_true.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(y_score)
    return float((ranks[y_true == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_by_group(y_true, y_score, groups: Groups, warn: bool = True) -> np.ndarray:
    """ROC AUC of each group, nan (with a warning) where a group lacks a class."""
    aucs = np.array([binary_auc(y_true[m], y_score[m]) for m in groups.members()])
    undefined = np.isnan(aucs)
    if warn and undefined.any():
        warnings.warn(
            f"ROC AUC is undefined for group(s) {[plain(v) for v in groups.labels[undefined]]} "
            "(only one class of y_true present); reported as nan and left out of AUC gaps.",
            UndefinedMetricWarning,
            stacklevel=3,
        )
    return aucs


def score_inputs(y_true, y_score, sensitive_features, min_groups=2):
    """Validated labels, scores and groups of a score metric."""
    y_true = check_binary(y_true, "y_true")
    y_score = check_scores(y_score, "y_score", y_true.shape[0])
    groups = check_groups(sensitive_features, y_true.shape[0], against="y_true",
                          min_groups=min_groups)
    return y_true, y_score, groups


def group_auc(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    sensitive_features: ArrayLike,
) -> pd.Series:
    """ROC AUC within each group.

    A group with only one class of ``y_true`` has no AUC: it is reported as nan with an
    :class:`~sklearn.exceptions.UndefinedMetricWarning`, as
    :func:`sklearn.metrics.roc_auc_score` does.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True binary labels in {0, 1}.
    y_score : array-like of shape (n_samples,)
        Finite scores, higher meaning more likely positive (probabilities or decision
        values).
    sensitive_features : array-like of shape (n_samples,) or (n_samples, n_features)
        Group label per sample; several columns form intersectional groups.

    Returns
    -------
    pandas.Series
        AUC per group, indexed by group label (a MultiIndex for intersectional groups).

    Examples
    --------
    >>> from fairnoise.metrics import group_auc
    >>> y_true = [0, 1, 0, 1, 0, 1]
    >>> y_score = [0.1, 0.9, 0.2, 0.4, 0.6, 0.5]
    >>> group_auc(y_true, y_score, sensitive_features=["a", "a", "b", "b", "b", "b"])
    sensitive_feature_0
    a    1.0
    b    0.5
    Name: auc, dtype: float64
    """
    y_true, y_score, groups = score_inputs(y_true, y_score, sensitive_features, min_groups=1)
    aucs = auc_by_group(y_true, y_score, groups)
    return pd.Series(aucs, index=groups.labels, name="auc")


def auc_gap(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    sensitive_features: ArrayLike,
) -> float:
    """Largest minus smallest group ROC AUC.

    Groups whose AUC is undefined (one class only) are left out, with a warning.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True binary labels in {0, 1}.
    y_score : array-like of shape (n_samples,)
        Finite scores, higher meaning more likely positive.
    sensitive_features : array-like of shape (n_samples,) or (n_samples, n_features)
        Group label per sample; several columns form intersectional groups.

    Returns
    -------
    float
        The AUC gap in [0, 1]; nan when fewer than two groups have an AUC.

    Examples
    --------
    >>> from fairnoise.metrics import auc_gap
    >>> y_true = [0, 1, 0, 1, 0, 1]
    >>> y_score = [0.1, 0.9, 0.2, 0.4, 0.6, 0.5]
    >>> auc_gap(y_true, y_score, sensitive_features=["a", "a", "b", "b", "b", "b"])
    0.5
    """
    y_true, y_score, groups = score_inputs(y_true, y_score, sensitive_features)
    return difference(auc_by_group(y_true, y_score, groups))


def worst_group_auc(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    sensitive_features: ArrayLike,
) -> float:
    """Lowest group ROC AUC (groups with undefined AUC left out, with a warning).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True binary labels in {0, 1}.
    y_score : array-like of shape (n_samples,)
        Finite scores, higher meaning more likely positive.
    sensitive_features : array-like of shape (n_samples,) or (n_samples, n_features)
        Group label per sample; several columns form intersectional groups.

    Returns
    -------
    float
        The worst group's AUC; nan when no group has an AUC.

    Examples
    --------
    >>> from fairnoise.metrics import worst_group_auc
    >>> y_true = [0, 1, 0, 1, 0, 1]
    >>> y_score = [0.1, 0.9, 0.2, 0.4, 0.6, 0.5]
    >>> worst_group_auc(y_true, y_score, sensitive_features=["a", "a", "b", "b", "b", "b"])
    0.5
    """
    y_true, y_score, groups = score_inputs(y_true, y_score, sensitive_features, min_groups=1)
    return group_min(auc_by_group(y_true, y_score, groups))
