"""Ranking metrics on scores: ROC AUC per group, its gap and the worst group's AUC.

fairlearn has the per-group numbers only through ``MetricFrame(roc_auc_score)``; these
are one function each, with sklearn's convention for a group without both classes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.exceptions import UndefinedMetricWarning

from .._groups import Groups, check_groups, plain
from ._aggregate import difference, group_min
from ._validation import check_binary, check_sample_weight, check_scores


def binary_auc(y_true: np.ndarray, y_score: np.ndarray,
               weights: np.ndarray | None = None) -> float:
    r"""ROC AUC as the weighted Mann-Whitney statistic; nan without both classes.

    .. math::

        \mathrm{AUC} = \frac{\sum_{i: y_i = 1} \sum_{j: y_j = 0} w_i w_j
        \left([s_i > s_j] + \tfrac12 [s_i = s_j]\right)}{W_+ W_-}

    the chance that a positive outscores a negative, ties counting one half. With unit
    weights every partial sum is a whole or half number, so the value is exactly the
    rank-sum statistic.
    """
    weights = np.ones(y_true.shape[0]) if weights is None else weights
    pos = weights * y_true
    neg = weights - pos
    w_pos, w_neg = pos.sum(), neg.sum()
    if w_pos == 0 or w_neg == 0:
        return float("nan")
    _, level = np.unique(y_score, return_inverse=True)
    pos_at = np.bincount(level, weights=pos)
    neg_at = np.bincount(level, weights=neg)
    neg_below = np.cumsum(neg_at) - neg_at
    return float(np.sum(pos_at * (neg_below + 0.5 * neg_at)) / (w_pos * w_neg))


def auc_by_group(y_true, y_score, groups: Groups, weights: np.ndarray,
                 warn: bool = True) -> np.ndarray:
    """ROC AUC of each group, nan (with a warning) where a group lacks a class."""
    aucs = np.array([binary_auc(y_true[m], y_score[m], weights[m]) for m in groups.members()])
    undefined = np.isnan(aucs)
    if warn and undefined.any():
        warnings.warn(
            f"ROC AUC is undefined for group(s) {[plain(v) for v in groups.labels[undefined]]} "
            "(only one class of y_true present); reported as nan and left out of AUC gaps.",
            UndefinedMetricWarning,
            stacklevel=3,
        )
    return aucs


def score_inputs(y_true, y_score, sensitive_features, sample_weight, min_groups=2):
    """Validated labels, scores, groups and weights of a score metric."""
    y_true = check_binary(y_true, "y_true")
    y_score = check_scores(y_score, "y_score", y_true.shape[0])
    groups = check_groups(sensitive_features, y_true.shape[0], against="y_true",
                          min_groups=min_groups)
    return y_true, y_score, groups, check_sample_weight(sample_weight, groups)


def group_auc(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    sample_weight: ArrayLike | None = None,
) -> pd.Series:
    """ROC AUC within each group.

    A group with only one class of ``y_true`` has no AUC: it is reported as nan with an
    :class:`~sklearn.exceptions.UndefinedMetricWarning`, as
    :func:`sklearn.metrics.roc_auc_score` does. The same numbers as
    ``MetricFrame(metrics=roc_auc_score, ...).by_group`` in fairlearn.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True binary labels in {0, 1}.
    y_score : array-like of shape (n_samples,)
        Finite scores, higher meaning more likely positive (probabilities or decision
        values).
    sensitive_features : array-like of shape (n_samples,) or (n_samples, n_features)
        Group label per sample; several columns form intersectional groups.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weight of each sample, as in
        ``roc_auc_score(..., sample_weight=)``; None weighs every sample 1.

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
    y_true, y_score, groups, weights = score_inputs(
        y_true, y_score, sensitive_features, sample_weight, min_groups=1
    )
    aucs = auc_by_group(y_true, y_score, groups, weights)
    return pd.Series(aucs, index=groups.labels, name="auc")


def auc_gap(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    sample_weight: ArrayLike | None = None,
) -> float:
    """Largest minus smallest group ROC AUC.

    Groups whose AUC is undefined (one class only) are left out, with a warning. The
    same number as ``MetricFrame(metrics=roc_auc_score, ...).difference()``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True binary labels in {0, 1}.
    y_score : array-like of shape (n_samples,)
        Finite scores, higher meaning more likely positive.
    sensitive_features : array-like of shape (n_samples,) or (n_samples, n_features)
        Group label per sample; several columns form intersectional groups.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weight of each sample; None weighs every sample 1.

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
    y_true, y_score, groups, weights = score_inputs(
        y_true, y_score, sensitive_features, sample_weight
    )
    return difference(auc_by_group(y_true, y_score, groups, weights))


def worst_group_auc(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    sample_weight: ArrayLike | None = None,
) -> float:
    """Lowest group ROC AUC (groups with undefined AUC left out, with a warning).

    The same number as ``fairlearn.metrics.roc_auc_score_group_min``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True binary labels in {0, 1}.
    y_score : array-like of shape (n_samples,)
        Finite scores, higher meaning more likely positive.
    sensitive_features : array-like of shape (n_samples,) or (n_samples, n_features)
        Group label per sample; several columns form intersectional groups.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weight of each sample; None weighs every sample 1.

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
    y_true, y_score, groups, weights = score_inputs(
        y_true, y_score, sensitive_features, sample_weight, min_groups=1
    )
    return group_min(auc_by_group(y_true, y_score, groups, weights))
