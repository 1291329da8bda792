"""Group-fairness metrics, sensitive-attribute leakage, scorers and reports.

Every group metric has the scikit-learn metric signature
``metric(y_true, y_pred_or_score, *, sensitive_features)`` and compares the groups with
each other (*between groups*): a difference is the largest minus the smallest group
value, a ratio the smallest over the largest, over all K >= 2 groups.

``sensitive_features`` is a 1-D array-like of hashable group labels (strings, integers)
or a 2-D array / :class:`pandas.DataFrame` whose columns are combined into
intersectional groups, as in fairlearn. Rates that are undefined for a group (a true
positive rate in a group without positives) follow scikit-learn's ``zero_division``
convention, which is also what fairlearn computes: by default they count as 0 and an
:class:`~sklearn.exceptions.UndefinedMetricWarning` says so; ``zero_division=np.nan``
leaves such groups out of the comparison instead.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.stats import rankdata
from sklearn import config_context
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, UndefinedMetricWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import make_scorer
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_array, check_random_state

from ._groups import Groups, check_groups

__all__ = [
    "FairnessReport",
    "auc_gap",
    "auc_gap_scorer",
    "demographic_parity_difference",
    "disparate_impact_distance",
    "disparate_impact_ratio",
    "equal_opportunity_difference",
    "equal_opportunity_ratio",
    "equal_opportunity_scorer",
    "equalized_odds_difference",
    "equalized_odds_scorer",
    "fairness_report",
    "group_accuracy",
    "group_auc",
    "leakage_auc",
    "make_fairness_scorer",
    "make_utility_fairness_scorer",
    "true_negative_rate_difference",
    "worst_group_auc",
    "worst_group_auc_scorer",
]

ZeroDivision = str | float
RandomState = int | np.random.RandomState | None


# --------------------------------------------------------------------------------------
# Validation at the edge
# --------------------------------------------------------------------------------------


def _check_1d(values, name: str, n_samples: int | None = None, against: str = "y_true"):
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


def _check_binary(values, name: str, n_samples: int | None = None) -> np.ndarray:
    """Validate hard binary labels in {0, 1} (booleans accepted)."""
    array = _check_1d(values, name, n_samples)
    if array.dtype.kind not in "biuf" or not np.isin(array, (0, 1)).all():
        found = pd.unique(array)
        shown = ", ".join(repr(v) for v in found[:5]) + (", ..." if len(found) > 5 else "")
        hint = ""
        if name == "y_pred":
            hint = (
                " Threshold continuous scores first, e.g. (y_score >= 0.5).astype(int), or "
                "use a scorer from make_fairness_scorer(..., threshold=0.5)."
            )
        raise ValueError(f"{name} must contain binary labels 0/1; got values {shown}.{hint}")
    return array.astype(np.int64)


def _check_scores(values, name: str, n_samples: int) -> np.ndarray:
    array = _check_1d(values, name, n_samples)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric scores; got dtype {array.dtype}.")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values; scores must be finite.")
    return array


def _check_zero_division(zero_division) -> float | None:
    """Return the fill value for undefined rates, or None for 'warn' (fill 0, warn)."""
    if isinstance(zero_division, str) and zero_division == "warn":
        return None
    if isinstance(zero_division, numbers.Real) and (
        zero_division in (0, 1) or math.isnan(zero_division)
    ):
        return float(zero_division)
    raise ValueError(f"zero_division must be 'warn', 0.0, 1.0 or np.nan; got {zero_division!r}.")


# --------------------------------------------------------------------------------------
# Per-group statistics
# --------------------------------------------------------------------------------------


def _rate(num, den, zero_division, rate_name: str, condition: str, labels: pd.Index):
    """``num / den`` per group; groups with ``den == 0`` get the zero_division value."""
    fill = _check_zero_division(zero_division)
    undefined = den == 0
    rate = np.divide(num, den, out=np.zeros_like(num, dtype=float), where=~undefined)
    if undefined.any():
        if fill is None:
            warnings.warn(
                f"{rate_name} is undefined for group(s) {list(labels[undefined])} (no "
                f"{condition}); counted as 0.0. Pass zero_division=np.nan to leave these "
                "groups out of the comparison.",
                UndefinedMetricWarning,
                stacklevel=4,
            )
            fill = 0.0
        rate[undefined] = fill
    return rate


def _confusion_by_group(y_true, y_pred, groups: Groups):
    """Per-group counts: samples, positives, true positives, predicted positives."""
    k = groups.n_groups
    n = np.bincount(groups.codes, minlength=k).astype(float)
    pos = np.bincount(groups.codes, weights=y_true, minlength=k)
    tp = np.bincount(groups.codes, weights=y_true * y_pred, minlength=k)
    pred_pos = np.bincount(groups.codes, weights=y_pred, minlength=k)
    return n, pos, tp, pred_pos


def _tpr(y_true, y_pred, groups, zero_division):
    _, pos, tp, _ = _confusion_by_group(y_true, y_pred, groups)
    return _rate(tp, pos, zero_division, "True positive rate", "positives", groups.labels)


def _fpr(y_true, y_pred, groups, zero_division):
    n, pos, tp, pred_pos = _confusion_by_group(y_true, y_pred, groups)
    return _rate(
        pred_pos - tp, n - pos, zero_division, "False positive rate", "negatives", groups.labels
    )


def _selection_rate(y_pred, groups):
    n = np.bincount(groups.codes, minlength=groups.n_groups)
    return np.bincount(groups.codes, weights=y_pred, minlength=groups.n_groups) / n


def _difference(values) -> float:
    """Largest minus smallest defined group value (nan when fewer than two defined)."""
    values = np.asarray(values, dtype=float)
    defined = values[~np.isnan(values)]
    if defined.size < 2:
        return float("nan")
    return float(defined.max() - defined.min())


def _worst_case(tpr_gap: float, fpr_gap: float) -> float:
    """Equalized odds: the larger gap, nan if either is undefined."""
    return float("nan") if math.isnan(tpr_gap) or math.isnan(fpr_gap) else max(tpr_gap, fpr_gap)


def _ratio(values) -> float:
    """Smallest over largest defined group value (nan when undefined, as in fairlearn)."""
    values = np.asarray(values, dtype=float)
    defined = values[~np.isnan(values)]
    if defined.size < 2 or defined.max() == 0:
        return float("nan")
    return float(defined.min() / defined.max())


def _binary_auc(y_true, y_score) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count one half); nan for one class."""
    n_pos = int(y_true.sum())
    n_neg = y_true.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(y_score)
    return float((ranks[y_true == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _auc_by_group(y_true, y_score, groups: Groups, warn: bool = True) -> np.ndarray:
    aucs = np.array([_binary_auc(y_true[m], y_score[m]) for m in groups.members()])
    undefined = np.isnan(aucs)
    if warn and undefined.any():
        warnings.warn(
            f"ROC AUC is undefined for group(s) {list(groups.labels[undefined])} (only one "
            "class of y_true present); reported as nan and left out of AUC gaps.",
            UndefinedMetricWarning,
            stacklevel=3,
        )
    return aucs


# --------------------------------------------------------------------------------------
# Rate metrics on hard predictions
# --------------------------------------------------------------------------------------


def _rate_inputs(y_true, y_pred, sensitive_features):
    y_true = _check_binary(y_true, "y_true")
    y_pred = _check_binary(y_pred, "y_pred", y_true.shape[0])
    groups = check_groups(sensitive_features, y_true.shape[0], against="y_true")
    return y_true, y_pred, groups


def equal_opportunity_difference(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    zero_division: ZeroDivision = "warn",
) -> float:
    r"""Largest gap in true positive rate between groups.

    .. math::

        \max_a \mathrm{TPR}_a - \min_a \mathrm{TPR}_a, \qquad
        \mathrm{TPR}_a = P(\hat y = 1 \mid Y = 1, A = a).

    0 means every group's positives are detected equally often.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True binary labels in {0, 1}.
    y_pred : array-like of shape (n_samples,)
        Predicted binary labels in {0, 1} (threshold scores first).
    sensitive_features : array-like of shape (n_samples,) or (n_samples, n_features)
        Group label per sample; several columns form intersectional groups.
    zero_division : {"warn", 0.0, 1.0, np.nan}, default="warn"
        TPR of a group without positives: ``"warn"`` counts it as 0 and warns (what
        fairlearn and :func:`sklearn.metrics.recall_score` compute), a number sets it,
        ``np.nan`` leaves the group out of the comparison.

    Returns
    -------
    float
        The TPR gap in [0, 1]; nan when fewer than two groups have a defined TPR.

    See Also
    --------
    equalized_odds_difference : The larger of the TPR and FPR gaps.
    equal_opportunity_ratio : Lowest over highest group TPR.

    Examples
    --------
    >>> from fairnoise.metrics import equal_opportunity_difference
    >>> y_true = [1, 1, 0, 1, 1, 0]
    >>> y_pred = [1, 1, 0, 1, 0, 1]
    >>> group = ["a", "a", "a", "b", "b", "b"]
    >>> equal_opportunity_difference(y_true, y_pred, sensitive_features=group)
    0.5
    """
    y_true, y_pred, groups = _rate_inputs(y_true, y_pred, sensitive_features)
    return _difference(_tpr(y_true, y_pred, groups, zero_division))


def true_negative_rate_difference(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    zero_division: ZeroDivision = "warn",
) -> float:
    r"""Largest gap in true negative rate (specificity) between groups.

    .. math::

        \max_a \mathrm{TNR}_a - \min_a \mathrm{TNR}_a, \qquad
        \mathrm{TNR}_a = P(\hat y = 0 \mid Y = 0, A = a).

    It equals the false positive rate gap.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True binary labels in {0, 1}.
    y_pred : array-like of shape (n_samples,)
        Predicted binary labels in {0, 1}.
    sensitive_features : array-like of shape (n_samples,) or (n_samples, n_features)
        Group label per sample; several columns form intersectional groups.
    zero_division : {"warn", 0.0, 1.0, np.nan}, default="warn"
        Rate of a group without negatives; see :func:`equal_opportunity_difference`.

    Returns
    -------
    float
        The TNR gap in [0, 1].

    Examples
    --------
    >>> from fairnoise.metrics import true_negative_rate_difference
    >>> y_true = [0, 0, 1, 0, 0, 1]
    >>> y_pred = [0, 0, 1, 0, 1, 1]
    >>> group = [0, 0, 0, 1, 1, 1]
    >>> true_negative_rate_difference(y_true, y_pred, sensitive_features=group)
    0.5
    """
    y_true, y_pred, groups = _rate_inputs(y_true, y_pred, sensitive_features)
    return _difference(1.0 - _fpr(y_true, y_pred, groups, zero_division))


def equalized_odds_difference(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    zero_division: ZeroDivision = "warn",
) -> float:
    r"""The larger of the true positive rate gap and the false positive rate gap.

    .. math::

        \max\big(\max_a \mathrm{TPR}_a - \min_a \mathrm{TPR}_a,\;
                 \max_a \mathrm{FPR}_a - \min_a \mathrm{FPR}_a\big)

    Identical to ``fairlearn.metrics.equalized_odds_difference(agg="worst_case")``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True binary labels in {0, 1}.
    y_pred : array-like of shape (n_samples,)
        Predicted binary labels in {0, 1}.
    sensitive_features : array-like of shape (n_samples,) or (n_samples, n_features)
        Group label per sample; several columns form intersectional groups.
    zero_division : {"warn", 0.0, 1.0, np.nan}, default="warn"
        Rates of groups without positives or negatives; see
        :func:`equal_opportunity_difference`.

    Returns
    -------
    float
        The equalized odds difference in [0, 1].

    Examples
    --------
    >>> from fairnoise.metrics import equalized_odds_difference
    >>> y_true = [1, 1, 0, 0, 1, 1, 0, 0]
    >>> y_pred = [1, 1, 0, 0, 1, 0, 1, 1]
    >>> group = ["a"] * 4 + ["b"] * 4
    >>> equalized_odds_difference(y_true, y_pred, sensitive_features=group)
    1.0
    """
    y_true, y_pred, groups = _rate_inputs(y_true, y_pred, sensitive_features)
    tpr_gap = _difference(_tpr(y_true, y_pred, groups, zero_division))
    fpr_gap = _difference(_fpr(y_true, y_pred, groups, zero_division))
    return _worst_case(tpr_gap, fpr_gap)


def equal_opportunity_ratio(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    zero_division: ZeroDivision = "warn",
) -> float:
    r"""Lowest over highest group true positive rate.

    .. math:: \min_a \mathrm{TPR}_a \,/\, \max_a \mathrm{TPR}_a

    1 means equal opportunity. This is the quantity the DNE paper's reference code
    reports as "DI"; the standard disparate impact (selection rates) is
    :func:`disparate_impact_ratio`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True binary labels in {0, 1}.
    y_pred : array-like of shape (n_samples,)
        Predicted binary labels in {0, 1}.
    sensitive_features : array-like of shape (n_samples,) or (n_samples, n_features)
        Group label per sample; several columns form intersectional groups.
    zero_division : {"warn", 0.0, 1.0, np.nan}, default="warn"
        TPR of a group without positives; see :func:`equal_opportunity_difference`.

    Returns
    -------
    float
        The ratio in [0, 1]; nan when every group's TPR is 0.

    Examples
    --------
    >>> from fairnoise.metrics import equal_opportunity_ratio
    >>> y_true = [1, 1, 0, 1, 1, 0]
    >>> y_pred = [1, 1, 0, 1, 0, 1]
    >>> equal_opportunity_ratio(y_true, y_pred, sensitive_features=[0, 0, 0, 1, 1, 1])
    0.5
    """
    y_true, y_pred, groups = _rate_inputs(y_true, y_pred, sensitive_features)
    return _ratio(_tpr(y_true, y_pred, groups, zero_division))


def demographic_parity_difference(
    y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike
) -> float:
    r"""Largest gap in selection rate :math:`P(\hat y = 1 \mid A = a)` between groups.

    Identical to ``fairlearn.metrics.demographic_parity_difference``. ``y_true`` is
    only validated (the metric does not depend on it); it is there for the metric
    signature.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True binary labels in {0, 1}.
    y_pred : array-like of shape (n_samples,)
        Predicted binary labels in {0, 1}.
    sensitive_features : array-like of shape (n_samples,) or (n_samples, n_features)
        Group label per sample; several columns form intersectional groups.

    Returns
    -------
    float
        The selection-rate gap in [0, 1].

    Examples
    --------
    >>> from fairnoise.metrics import demographic_parity_difference
    >>> y_pred = [1, 1, 0, 1, 0, 0]
    >>> dpd = demographic_parity_difference(
    ...     [0] * 6, y_pred, sensitive_features=["a"] * 3 + ["b"] * 3
    ... )
    >>> round(dpd, 3)
    0.333
    """
    _, y_pred, groups = _rate_inputs(y_true, y_pred, sensitive_features)
    return _difference(_selection_rate(y_pred, groups))


def disparate_impact_ratio(
    y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike
) -> float:
    r"""Lowest over highest group selection rate (disparate impact).

    .. math:: \min_a P(\hat y = 1 \mid A = a) \,/\, \max_a P(\hat y = 1 \mid A = a)

    Identical to ``fairlearn.metrics.demographic_parity_ratio``; the "four-fifths rule"
    flags values below 0.8. Not to be confused with the DNE reference code's "DI",
    which is :func:`equal_opportunity_ratio`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True binary labels in {0, 1} (validated only).
    y_pred : array-like of shape (n_samples,)
        Predicted binary labels in {0, 1}.
    sensitive_features : array-like of shape (n_samples,) or (n_samples, n_features)
        Group label per sample; several columns form intersectional groups.

    Returns
    -------
    float
        The ratio in [0, 1]; nan when no group is ever selected.

    See Also
    --------
    disparate_impact_distance : :math:`|1 - \mathrm{DI}|`.

    Examples
    --------
    >>> from fairnoise.metrics import disparate_impact_ratio
    >>> y_pred = [1, 1, 0, 1, 0, 0]
    >>> disparate_impact_ratio([0] * 6, y_pred, sensitive_features=[0, 0, 0, 1, 1, 1])
    0.5
    """
    _, y_pred, groups = _rate_inputs(y_true, y_pred, sensitive_features)
    return _ratio(_selection_rate(y_pred, groups))


def disparate_impact_distance(
    y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike
) -> float:
    r"""Distance of the disparate impact ratio from parity, :math:`|1 - \mathrm{DI}|`.

    0 is parity; lower is better, so it can be minimised like the difference metrics.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True binary labels in {0, 1} (validated only).
    y_pred : array-like of shape (n_samples,)
        Predicted binary labels in {0, 1}.
    sensitive_features : array-like of shape (n_samples,) or (n_samples, n_features)
        Group label per sample; several columns form intersectional groups.

    Returns
    -------
    float
        :math:`1 - \mathrm{DI}` in [0, 1].

    Examples
    --------
    >>> from fairnoise.metrics import disparate_impact_distance
    >>> y_pred = [1, 1, 0, 1, 0, 0]
    >>> disparate_impact_distance([0] * 6, y_pred, sensitive_features=[0, 0, 0, 1, 1, 1])
    0.5
    """
    return abs(1.0 - disparate_impact_ratio(y_true, y_pred, sensitive_features=sensitive_features))


def group_accuracy(
    y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike
) -> pd.Series:
    """Accuracy within each group.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels (any classes).
    y_pred : array-like of shape (n_samples,)
        Predicted labels.
    sensitive_features : array-like of shape (n_samples,) or (n_samples, n_features)
        Group label per sample; several columns form intersectional groups.

    Returns
    -------
    pandas.Series
        Accuracy per group, indexed by group label.

    Examples
    --------
    >>> from fairnoise.metrics import group_accuracy
    >>> group_accuracy([1, 0, 1, 1], [1, 0, 0, 0], sensitive_features=["a", "a", "b", "b"])
    sensitive_feature_0
    a    1.0
    b    0.0
    Name: accuracy, dtype: float64
    """
    y_true = _check_1d(y_true, "y_true")
    y_pred = _check_1d(y_pred, "y_pred", y_true.shape[0])
    groups = check_groups(sensitive_features, y_true.shape[0], against="y_true", min_groups=1)
    correct = np.bincount(groups.codes, weights=y_true == y_pred, minlength=groups.n_groups)
    n = np.bincount(groups.codes, minlength=groups.n_groups)
    return pd.Series(correct / n, index=groups.labels, name="accuracy")


# --------------------------------------------------------------------------------------
# Ranking metrics on scores
# --------------------------------------------------------------------------------------


def _score_inputs(y_true, y_score, sensitive_features, min_groups=2):
    y_true = _check_binary(y_true, "y_true")
    y_score = _check_scores(y_score, "y_score", y_true.shape[0])
    groups = check_groups(sensitive_features, y_true.shape[0], against="y_true",
                          min_groups=min_groups)
    return y_true, y_score, groups


def group_auc(y_true: ArrayLike, y_score: ArrayLike, *, sensitive_features: ArrayLike) -> pd.Series:
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
    y_true, y_score, groups = _score_inputs(y_true, y_score, sensitive_features, min_groups=1)
    return pd.Series(_auc_by_group(y_true, y_score, groups), index=groups.labels, name="auc")


def auc_gap(y_true: ArrayLike, y_score: ArrayLike, *, sensitive_features: ArrayLike) -> float:
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
    y_true, y_score, groups = _score_inputs(y_true, y_score, sensitive_features)
    return _difference(_auc_by_group(y_true, y_score, groups))


def worst_group_auc(
    y_true: ArrayLike, y_score: ArrayLike, *, sensitive_features: ArrayLike
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
    y_true, y_score, groups = _score_inputs(y_true, y_score, sensitive_features, min_groups=1)
    aucs = _auc_by_group(y_true, y_score, groups)
    return float(np.nanmin(aucs)) if not np.isnan(aucs).all() else float("nan")


# --------------------------------------------------------------------------------------
# Leakage
# --------------------------------------------------------------------------------------


def _stratified_split(strata: np.ndarray, test_size: float, rng) -> tuple[np.ndarray, ...]:
    """Split every stratum of at least two samples into train and test parts."""
    train, test, dropped = [], [], 0
    for stratum in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == stratum))
        if members.size < 2:
            dropped += members.size
            continue
        n_test = min(max(int(round(test_size * members.size)), 1), members.size - 1)
        test.append(members[:n_test])
        train.append(members[n_test:])
    if dropped:
        warnings.warn(
            f"{dropped} sample(s) left out of the leakage probe: their group (within its "
            "class of y) has a single sample and cannot be split into train and test.",
            UserWarning,
            stacklevel=3,
        )
    if not train:
        return np.array([], dtype=np.intp), np.array([], dtype=np.intp)
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _make_probe(probe, seed: int):
    if isinstance(probe, str):
        if probe == "linear":
            return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        if probe == "mlp":
            mlp = MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, random_state=seed)
            return make_pipeline(StandardScaler(), mlp)
        raise ValueError(f"probe must be 'linear', 'mlp' or a classifier; got {probe!r}.")
    if not hasattr(probe, "fit"):
        raise TypeError(
            f"probe must be 'linear', 'mlp' or a scikit-learn classifier; got {probe!r}."
        )
    return clone(probe)


def _probe_auc(probe, seed, Z_train, a_train, Z_test, a_test) -> float:
    """Fit a fresh probe on the train part; macro one-vs-rest AUC on the test part."""
    estimator = _make_probe(probe, seed)
    with warnings.catch_warnings():
        if isinstance(probe, str):
            # The built-in probes have a fixed training budget; hitting it is expected.
            warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(Z_train, a_train)
    classes = estimator.classes_
    if hasattr(estimator, "predict_proba"):
        scores = estimator.predict_proba(Z_test)
    else:
        scores = estimator.decision_function(Z_test)
    if scores.ndim == 1 or classes.size == 2:
        positive = scores if scores.ndim == 1 else scores[:, 1]
        return _binary_auc((a_test == classes[1]).astype(int), positive)
    aucs = [_binary_auc((a_test == c).astype(int), scores[:, j]) for j, c in enumerate(classes)]
    return float(np.nanmean(aucs))


def leakage_auc(
    Z: ArrayLike,
    sensitive_features: ArrayLike,
    *,
    y: ArrayLike | None = None,
    probe: str | Any = "linear",
    test_size: float = 0.5,
    Z_test: ArrayLike | None = None,
    sensitive_features_test: ArrayLike | None = None,
    y_test: ArrayLike | None = None,
    random_state: RandomState = 0,
) -> float:
    r"""How well a freshly trained probe recovers the sensitive attribute from embeddings.

    A new probe (never one an edit was optimised against) is fitted on training
    embeddings and its ROC AUC for the group is measured on held-out embeddings: binary
    AUC for two groups, macro-averaged one-vs-rest AUC for more. 0.5 means the groups
    cannot be told apart (values slightly below 0.5 are chance), 1.0 means they are
    perfectly decodable.

    Without ``y`` this is the *marginal* leakage :math:`A \mid Z`. When A and Y are
    correlated it cannot reach 0.5 even for shortcut-free embeddings, because the
    disease itself predicts the group. With ``y`` it is the *conditional* leakage
    :math:`A \mid Z, Y`: one probe is fitted and scored within each class of ``y`` and
    the class AUCs are averaged, weighted by the number of held-out samples of the
    class. Shortcut-free embeddings drive this to about 0.5, so it is the number to
    compare against the oracle.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_features)
        Embeddings (or any features) the probe is trained on.
    sensitive_features : array-like of shape (n_samples,) or (n_samples, n_features)
        Group label per sample; several columns form intersectional groups.
    y : array-like of shape (n_samples,), default=None
        Task labels. When given, the leakage is conditional on ``y``.
    probe : {"linear", "mlp"} or classifier, default="linear"
        ``"linear"``: standardisation + logistic regression. ``"mlp"``:
        standardisation + a one-hidden-layer (64 units)
        :class:`~sklearn.neural_network.MLPClassifier` trained for at most 500 epochs.
        A classifier is cloned and fitted afresh; it needs ``predict_proba`` or
        ``decision_function``.
    test_size : float, default=0.5
        Fraction of every group (within every class of ``y``) held out for scoring.
        Ignored when ``Z_test`` is given.
    Z_test : array-like of shape (n_test, n_features), default=None
        Held-out embeddings. When given, the probe is trained on all of ``Z`` and
        scored on ``Z_test`` (no split): the honest protocol when ``Z`` are the
        training embeddings of an edit and ``Z_test`` embeddings of unseen images.
    sensitive_features_test : array-like of shape (n_test,) or (n_test, n_features), \
            default=None
        Groups of ``Z_test``; required with ``Z_test``.
    y_test : array-like of shape (n_test,), default=None
        Task labels of ``Z_test``; required with ``Z_test`` when ``y`` is given.
    random_state : int, RandomState instance or None, default=0
        Seeds the split and the MLP probe; the result is deterministic for an int.

    Returns
    -------
    float
        Leakage AUC.

    Raises
    ------
    ValueError
        If inputs are inconsistent, or, for the conditional leakage, if no class of
        ``y`` holds two groups with enough samples to train and score a probe.

    Notes
    -----
    A (class, group) cell with a single sample cannot be split and is left out with a
    warning; a class of ``y`` in which fewer than two groups remain is skipped with a
    warning.

    Examples
    --------
    >>> import numpy as np
    >>> from fairnoise.metrics import leakage_auc
    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 2, size=400)
    >>> Z = rng.normal(size=(400, 5))
    >>> round(leakage_auc(Z, a), 1)
    0.5
    >>> Z[:, 0] += 3 * a  # now the first feature encodes the group
    >>> round(leakage_auc(Z, a), 1)
    1.0
    """
    Z = check_array(Z, dtype=np.float64, input_name="Z")
    groups = check_groups(sensitive_features, Z.shape[0], against="Z")
    if y is not None:
        y = _check_1d(y, "y", Z.shape[0], against="Z")
    if not (isinstance(test_size, numbers.Real) and 0 < test_size < 1):
        raise ValueError(f"test_size must be a float in (0, 1); got {test_size!r}.")
    rng = check_random_state(random_state)

    if Z_test is None:
        if sensitive_features_test is not None or y_test is not None:
            raise ValueError(
                "sensitive_features_test and y_test are only used together with Z_test."
            )
        strata = groups.codes
        if y is not None:
            strata = pd.factorize(y)[0] * groups.n_groups + groups.codes
        train, test = _stratified_split(strata, test_size, rng)
        Z_train, a_train, Z_te, a_te = Z[train], groups.codes[train], Z[test], groups.codes[test]
        if y is not None:
            y_train, y_te = y[train], y[test]
    else:
        Z_te = check_array(Z_test, dtype=np.float64, input_name="Z_test")
        if Z_te.shape[1] != Z.shape[1]:
            raise ValueError(f"Z_test has {Z_te.shape[1]} features but Z has {Z.shape[1]}.")
        if sensitive_features_test is None:
            raise ValueError("sensitive_features_test is required when Z_test is given.")
        if (y is None) != (y_test is None):
            raise ValueError("Pass y and y_test together (conditional leakage) or neither.")
        test_groups = check_groups(
            sensitive_features_test,
            Z_te.shape[0],
            name="sensitive_features_test",
            against="Z_test",
            min_groups=2 if y is None else 1,
        )
        a_te = groups.labels.get_indexer(test_groups.labels)[test_groups.codes]
        if (a_te < 0).any():
            unseen = sorted(set(test_groups.labels) - set(groups.labels), key=str)
            raise ValueError(
                f"sensitive_features_test contains groups not present in "
                f"sensitive_features: {unseen}."
            )
        Z_train, a_train = Z, groups.codes
        y_train = y
        if y is not None:
            y_te = _check_1d(y_test, "y_test", Z_te.shape[0], against="Z_test")
    if np.unique(a_train).size < 2:
        raise ValueError(
            "Leakage needs at least two groups with two or more samples each; got "
            f"{np.bincount(groups.codes).tolist()} samples per group."
        )
    seed = int(rng.randint(np.iinfo(np.int32).max))

    if y is None:
        return _probe_auc(probe, seed, Z_train, a_train, Z_te, a_te)

    aucs, weights = [], []
    for c in pd.unique(y_train):
        c = c.item() if isinstance(c, np.generic) else c
        tr, te = y_train == c, y_te == c
        shared = np.intersect1d(a_train[tr], a_te[te])
        tr &= np.isin(a_train, shared)
        te &= np.isin(a_te, shared)
        if shared.size < 2:
            warnings.warn(
                f"Class y={c!r} is skipped in the conditional leakage: it has fewer than "
                "two groups with samples on both the train and the test side.",
                UserWarning,
                stacklevel=2,
            )
            continue
        aucs.append(_probe_auc(probe, seed, Z_train[tr], a_train[tr], Z_te[te], a_te[te]))
        weights.append(te.sum())
    if not aucs:
        raise ValueError(
            "Conditional leakage is undefined: no class of y has two or more groups with "
            "samples to train and score a probe."
        )
    return float(np.average(aucs, weights=weights))


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------

_SUMMARY_NAMES = (
    "equal_opportunity_difference",
    "true_negative_rate_difference",
    "equalized_odds_difference",
    "demographic_parity_difference",
    "disparate_impact_ratio",
    "disparate_impact_distance",
    "equal_opportunity_ratio",
    "auc_gap",
    "worst_group_auc",
    "overall_auc",
)


def _by_group_table(y_true, y_score, y_pred, groups, zero_division, warn=True) -> pd.DataFrame:
    with warnings.catch_warnings():
        if not warn:
            warnings.simplefilter("ignore", UndefinedMetricWarning)
        n, pos, tp, pred_pos = _confusion_by_group(y_true, y_pred, groups)
        tpr = _tpr(y_true, y_pred, groups, zero_division)
        fpr = _fpr(y_true, y_pred, groups, zero_division)
        auc = _auc_by_group(y_true, y_score, groups, warn=warn)
    tn = (n - pos) - (pred_pos - tp)
    return pd.DataFrame(
        {
            "n": n.astype(np.int64),
            "prevalence": pos / n,
            "auc": auc,
            "tpr": tpr,
            "tnr": 1.0 - fpr,
            "fpr": fpr,
            "selection_rate": pred_pos / n,
            "accuracy": (tp + tn) / n,
        },
        index=groups.labels,
    )


def _summary_values(table: pd.DataFrame, y_true, y_score) -> np.ndarray:
    tpr_gap = _difference(table["tpr"])
    fpr_gap = _difference(table["fpr"])
    di = _ratio(table["selection_rate"])
    aucs = table["auc"].to_numpy()
    return np.array(
        [
            tpr_gap,
            _difference(table["tnr"]),
            _worst_case(tpr_gap, fpr_gap),
            _difference(table["selection_rate"]),
            di,
            abs(1.0 - di),
            _ratio(table["tpr"]),
            _difference(aucs),
            np.nanmin(aucs) if not np.isnan(aucs).all() else np.nan,
            _binary_auc(y_true, y_score),
        ]
    )


def _format_value(value, digits: int) -> str:
    if isinstance(value, numbers.Integral):
        return str(value)
    if isinstance(value, numbers.Real):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _markdown_table(frame: pd.DataFrame, digits: int) -> str:
    index_names = [name if name is not None else "" for name in frame.index.names]
    header = [*index_names, *map(str, frame.columns)]
    rows = []
    for label, row in zip(frame.index, frame.itertuples(index=False), strict=True):
        label = label if isinstance(label, tuple) else (label,)
        rows.append([*map(str, label), *(_format_value(v, digits) for v in row)])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class FairnessReport:
    """Per-group metrics and between-group summary returned by :func:`fairness_report`.

    Attributes
    ----------
    by_group : pandas.DataFrame
        One row per group: ``n``, ``prevalence``, ``auc``, ``tpr``, ``tnr``, ``fpr``,
        ``selection_rate``, ``accuracy``.
    summary : pandas.Series
        Between-group metrics, named after the functions of :mod:`fairnoise.metrics`
        that compute them, plus ``overall_auc``.
    confidence_intervals : pandas.DataFrame or None
        Bootstrap percentile interval (columns ``lower``, ``upper``) for every summary
        metric; None when ``n_boot=0``.
    threshold : float
        Score threshold at which predictions were made (``y_score >= threshold``).
    confidence_level : float
        Coverage of the intervals.

    Examples
    --------
    >>> import numpy as np
    >>> from fairnoise.metrics import fairness_report
    >>> y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    >>> score = np.array([0.1, 0.9, 0.2, 0.8, 0.6, 0.7, 0.3, 0.4])
    >>> group = np.array(["F", "F", "F", "F", "M", "M", "M", "M"])
    >>> report = fairness_report(y, score, sensitive_features=group)
    >>> report.by_group["tpr"].to_dict()
    {'F': 1.0, 'M': 0.5}
    >>> float(report.summary["equal_opportunity_difference"])
    0.5
    """

    by_group: pd.DataFrame
    summary: pd.Series
    confidence_intervals: pd.DataFrame | None
    threshold: float
    confidence_level: float

    def to_markdown(self, digits: int = 3) -> str:
        """Render both tables as Markdown (no extra dependency).

        Parameters
        ----------
        digits : int, default=3
            Decimals shown for real numbers.

        Returns
        -------
        str
            The per-group table, a blank line, then the summary table (with interval
            bounds when bootstrapped).
        """
        summary = self.summary.to_frame("value")
        if self.confidence_intervals is not None:
            summary = summary.join(self.confidence_intervals)
        summary.index.name = "metric"
        return _markdown_table(self.by_group, digits) + "\n\n" + _markdown_table(summary, digits)


def fairness_report(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    threshold: float = 0.5,
    n_boot: int = 0,
    confidence_level: float = 0.95,
    zero_division: ZeroDivision = "warn",
    random_state: RandomState = None,
) -> FairnessReport:
    """Per-group performance and between-group fairness of a scoring classifier.

    Hard predictions are ``y_score >= threshold``. The summary holds every difference
    and ratio of this module computed on them, the AUC gap and worst-group AUC on the
    scores, and the overall AUC (report task AUC next to fairness).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True binary labels in {0, 1}.
    y_score : array-like of shape (n_samples,)
        Finite scores (e.g. probability of the positive class).
    sensitive_features : array-like of shape (n_samples,) or (n_samples, n_features)
        Group label per sample; several columns form intersectional groups.
    threshold : float, default=0.5
        Decision threshold on ``y_score``.
    n_boot : int, default=0
        Number of bootstrap resamples for percentile confidence intervals of the
        summary; 0 for none. Resampling is stratified by group (each group keeps its
        size), so every group is present in every resample.
    confidence_level : float, default=0.95
        Coverage of the bootstrap intervals.
    zero_division : {"warn", 0.0, 1.0, np.nan}, default="warn"
        Rates of groups without positives or negatives, in the table and the summary;
        see :func:`equal_opportunity_difference`.
    random_state : int, RandomState instance or None, default=None
        Seeds the bootstrap.

    Returns
    -------
    FairnessReport
        ``by_group`` table, ``summary`` series and, with ``n_boot > 0``,
        ``confidence_intervals``.

    Examples
    --------
    >>> import numpy as np
    >>> from fairnoise.metrics import fairness_report
    >>> y_true = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    >>> y_score = np.array([0.2, 0.8, 0.3, 0.6, 0.4, 0.7, 0.6, 0.4])
    >>> group = ["F", "F", "F", "F", "M", "M", "M", "M"]
    >>> report = fairness_report(y_true, y_score, sensitive_features=group)
    >>> float(report.summary["equalized_odds_difference"])
    0.5
    >>> print(report.to_markdown(digits=2))
    | sensitive_feature_0 | n | prevalence | auc | tpr | tnr | fpr | selection_rate | accuracy |
    |---|---|---|---|---|---|---|---|---|
    | F | 4 | 0.50 | 1.00 | 1.00 | 1.00 | 0.00 | 0.50 | 1.00 |
    | M | 4 | 0.50 | 0.62 | 0.50 | 0.50 | 0.50 | 0.50 | 0.50 |
    <BLANKLINE>
    | metric | value |
    |---|---|
    | equal_opportunity_difference | 0.50 |
    | true_negative_rate_difference | 0.50 |
    | equalized_odds_difference | 0.50 |
    | demographic_parity_difference | 0.00 |
    | disparate_impact_ratio | 1.00 |
    | disparate_impact_distance | 0.00 |
    | equal_opportunity_ratio | 0.50 |
    | auc_gap | 0.38 |
    | worst_group_auc | 0.62 |
    | overall_auc | 0.88 |
    """
    y_true, y_score, groups = _score_inputs(y_true, y_score, sensitive_features)
    _check_zero_division(zero_division)
    if not (isinstance(n_boot, numbers.Integral) and n_boot >= 0):
        raise ValueError(f"n_boot must be a non-negative integer; got {n_boot!r}.")
    if not (isinstance(confidence_level, numbers.Real) and 0 < confidence_level < 1):
        raise ValueError(f"confidence_level must be a float in (0, 1); got {confidence_level!r}.")
    _check_threshold(threshold, allow_none=False)
    y_pred = (y_score >= threshold).astype(np.int64)
    table = _by_group_table(y_true, y_score, y_pred, groups, zero_division)
    summary = pd.Series(
        _summary_values(table, y_true, y_score), index=list(_SUMMARY_NAMES), name="value"
    )

    intervals = None
    if n_boot:
        rng = check_random_state(random_state)
        members = groups.members()
        boot = np.empty((n_boot, len(_SUMMARY_NAMES)))
        for b in range(n_boot):
            idx = np.concatenate([rng.choice(m, size=m.size, replace=True) for m in members])
            resampled = Groups(codes=groups.codes[idx], labels=groups.labels)
            boot_table = _by_group_table(
                y_true[idx], y_score[idx], y_pred[idx], resampled, zero_division, warn=False
            )
            boot[b] = _summary_values(boot_table, y_true[idx], y_score[idx])
        tail = 100 * (1 - confidence_level) / 2
        with warnings.catch_warnings():
            # An all-nan column (a metric undefined in every resample) gives a nan bound.
            warnings.simplefilter("ignore", RuntimeWarning)
            bounds = np.nanpercentile(boot, [tail, 100 - tail], axis=0)
        intervals = pd.DataFrame(bounds.T, index=list(_SUMMARY_NAMES), columns=["lower", "upper"])
    return FairnessReport(
        by_group=table,
        summary=summary,
        confidence_intervals=intervals,
        threshold=float(threshold),
        confidence_level=float(confidence_level),
    )


# --------------------------------------------------------------------------------------
# Scorers (metadata routing)
# --------------------------------------------------------------------------------------

_RESPONSE_METHODS = ("predict_proba", "decision_function", "predict")
_ROUTING_HINT = (
    "sensitive_features did not reach the scorer. Enable metadata routing "
    "(sklearn.set_config(enable_metadata_routing=True)) and pass it to fit / "
    "cross_validate, e.g. GridSearchCV(...).fit(X, y, sensitive_features=a)."
)


class _MetricOnResponse:
    """Score function: threshold the estimator's response, then apply a group metric."""

    def __init__(self, metric: Callable):
        self.metric = metric
        self.__name__ = getattr(metric, "__name__", type(metric).__name__)

    def __call__(self, y_true, y_score, *, sensitive_features=None, threshold=None):
        if sensitive_features is None:
            raise ValueError(_ROUTING_HINT)
        if threshold is not None:
            y_score = (np.asarray(y_score) >= threshold).astype(np.int64)
        return self.metric(y_true, y_score, sensitive_features=sensitive_features)


class _UtilityMinusUnfairness:
    """Score function: ROC AUC of the scores minus ``alpha`` x a thresholded metric."""

    def __init__(self, metric: Callable):
        self.metric = metric
        self.__name__ = f"roc_auc_minus_alpha_{getattr(metric, '__name__', 'metric')}"

    def __call__(self, y_true, y_score, *, sensitive_features=None, alpha, threshold):
        if sensitive_features is None:
            raise ValueError(_ROUTING_HINT)
        y_true = _check_binary(y_true, "y_true")
        y_score = _check_scores(y_score, "y_score", y_true.shape[0])
        y_pred = (y_score >= threshold).astype(np.int64)
        unfairness = self.metric(y_true, y_pred, sensitive_features=sensitive_features)
        return _binary_auc(y_true, y_score) - alpha * unfairness


def _request_sensitive_features(scorer):
    # set_score_request is only callable with routing on; the request it stores persists.
    with config_context(enable_metadata_routing=True):
        return scorer.set_score_request(sensitive_features=True)


def _check_threshold(threshold, *, allow_none: bool) -> None:
    if threshold is None and allow_none:
        return
    if not isinstance(threshold, numbers.Real) or isinstance(threshold, bool):
        expected = "a number or None" if allow_none else "a number"
        raise ValueError(f"threshold must be {expected}; got {threshold!r}.")


def _check_response_method(response_method: str) -> None:
    if response_method not in _RESPONSE_METHODS:
        raise ValueError(
            f"response_method must be one of {_RESPONSE_METHODS}; got {response_method!r}."
        )


def make_fairness_scorer(
    metric: Callable,
    *,
    greater_is_better: bool = False,
    response_method: str = "predict_proba",
    threshold: float | None = 0.5,
):
    """Make a scikit-learn scorer from a group metric, requesting ``sensitive_features``.

    The scorer asks for ``sensitive_features`` through metadata routing, so with
    ``sklearn.set_config(enable_metadata_routing=True)`` it works in
    :class:`~sklearn.model_selection.GridSearchCV`, ``cross_validate`` and friends:
    ``search.fit(X, y, sensitive_features=a)`` routes each fold's groups to it.

    Parameters
    ----------
    metric : callable
        ``metric(y_true, y_pred_or_score, *, sensitive_features) -> float``, e.g. any
        metric of this module.
    greater_is_better : bool, default=False
        Whether higher metric values are better. When False (gaps) the scorer returns
        the negated metric, as scikit-learn's ``neg_*`` scorers do.
    response_method : {"predict_proba", "decision_function", "predict"}, \
            default="predict_proba"
        Estimator method whose output is scored; for binary ``predict_proba`` the
        positive-class column.
    threshold : float or None, default=0.5
        Predictions are ``response >= threshold`` before ``metric`` sees them; needed for
        rate metrics on probabilities (use 0.0 with ``"decision_function"``). None passes
        the response unchanged: for score metrics such as :func:`auc_gap`, and required
        with ``response_method="predict"``.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y, sensitive_features=...)``.

    Examples
    --------
    >>> import numpy as np
    >>> import sklearn
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import cross_validate
    >>> from fairnoise.metrics import equal_opportunity_difference, make_fairness_scorer
    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 2, size=200)
    >>> X = rng.normal(size=(200, 3)) + a[:, None]
    >>> y = (X[:, 0] + rng.normal(size=200) > 0.5).astype(int)
    >>> scorer = make_fairness_scorer(equal_opportunity_difference)
    >>> with sklearn.config_context(enable_metadata_routing=True):
    ...     cv = cross_validate(LogisticRegression(), X, y, scoring=scorer, cv=3,
    ...                         params={"sensitive_features": a})
    >>> bool((cv["test_score"] <= 0).all())
    True
    """
    if not callable(metric):
        raise TypeError(f"metric must be callable; got {metric!r}.")
    _check_response_method(response_method)
    _check_threshold(threshold, allow_none=True)
    if response_method == "predict" and threshold is not None:
        raise ValueError(
            "threshold must be None with response_method='predict': predictions are already labels."
        )
    kwargs = {} if threshold is None else {"threshold": threshold}
    scorer = make_scorer(
        _MetricOnResponse(metric),
        response_method=response_method,
        greater_is_better=greater_is_better,
        **kwargs,
    )
    return _request_sensitive_features(scorer)


def make_utility_fairness_scorer(
    alpha: float = 1.0,
    *,
    metric: Callable = equalized_odds_difference,
    response_method: str = "predict_proba",
    threshold: float = 0.5,
):
    """Make a scorer of ``ROC AUC - alpha * metric`` for model selection (refit).

    Greater is better. It trades task performance against a fairness gap in one
    number, for ``GridSearchCV(..., refit="utility")``.

    Parameters
    ----------
    alpha : float, default=1.0
        Weight of the fairness gap; 0 gives plain ROC AUC.
    metric : callable, default=equalized_odds_difference
        Rate metric (lower is better) evaluated on ``response >= threshold``.
    response_method : {"predict_proba", "decision_function"}, default="predict_proba"
        Estimator method giving continuous scores.
    threshold : float, default=0.5
        Decision threshold for the fairness term.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y, sensitive_features=...)``.

    Examples
    --------
    >>> from fairnoise.metrics import make_utility_fairness_scorer
    >>> make_utility_fairness_scorer(alpha=0.5)
    make_scorer(roc_auc_minus_alpha_equalized_odds_difference, \
response_method='predict_proba', alpha=0.5, threshold=0.5)
    """
    if not (isinstance(alpha, numbers.Real) and alpha >= 0):
        raise ValueError(f"alpha must be a non-negative number; got {alpha!r}.")
    if not callable(metric):
        raise TypeError(f"metric must be callable; got {metric!r}.")
    if response_method not in ("predict_proba", "decision_function"):
        raise ValueError(
            "response_method must be 'predict_proba' or 'decision_function' (AUC needs "
            f"scores); got {response_method!r}."
        )
    _check_threshold(threshold, allow_none=False)
    scorer = make_scorer(
        _UtilityMinusUnfairness(metric),
        response_method=response_method,
        alpha=alpha,
        threshold=threshold,
    )
    return _request_sensitive_features(scorer)


#: Negated :func:`equalized_odds_difference` of ``predict_proba >= 0.5``.
equalized_odds_scorer = make_fairness_scorer(equalized_odds_difference)
#: Negated :func:`equal_opportunity_difference` of ``predict_proba >= 0.5``.
equal_opportunity_scorer = make_fairness_scorer(equal_opportunity_difference)
#: :func:`worst_group_auc` of ``predict_proba`` (greater is better).
worst_group_auc_scorer = make_fairness_scorer(
    worst_group_auc, greater_is_better=True, threshold=None
)
#: Negated :func:`auc_gap` of ``predict_proba``.
auc_gap_scorer = make_fairness_scorer(auc_gap, threshold=None)
