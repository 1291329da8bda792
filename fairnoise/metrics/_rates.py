"""Per-group rates of hard predictions and the gaps and ratios between groups.

Every rate is a ratio of weighted per-group counts (:class:`Counts`); with unit weights
(no ``sample_weight``) the counts are the plain numbers of samples.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.exceptions import UndefinedMetricWarning

from .._groups import Groups, check_groups, plain
from ._aggregate import difference, ratio, worst_case
from ._validation import (
    ZeroDivision,
    check_1d,
    check_binary,
    check_sample_weight,
    check_zero_division,
)


@dataclass(frozen=True)
class Counts:
    """Weighted counts per group, in code order."""

    #: Weight of the group's samples.
    total: np.ndarray
    #: Weight of its positives (``y_true == 1``).
    pos: np.ndarray
    #: Weight of its true positives.
    tp: np.ndarray
    #: Weight of its predicted positives (``y_pred == 1``).
    pred_pos: np.ndarray

    @classmethod
    def of(cls, y_true: np.ndarray, y_pred: np.ndarray, groups: Groups,
           weights: np.ndarray) -> Counts:
        def total(w):
            return np.bincount(groups.codes, weights=w, minlength=groups.n_groups)

        return cls(total(weights), total(weights * y_true), total(weights * y_true * y_pred),
                   total(weights * y_pred))


def rate(num, den, zero_division, rate_name: str, condition: str, labels: pd.Index):
    """``num / den`` per group; groups with ``den == 0`` get the zero_division value."""
    fill = check_zero_division(zero_division)
    undefined = den == 0
    value = np.divide(num, den, out=np.zeros_like(num, dtype=float), where=~undefined)
    if undefined.any():
        if fill is None:
            warnings.warn(
                f"{rate_name} is undefined for group(s) {[plain(v) for v in labels[undefined]]} "
                f"(no {condition}); counted as 0.0. Pass zero_division=np.nan to leave these "
                "groups out of the comparison.",
                UndefinedMetricWarning,
                stacklevel=4,
            )
            fill = 0.0
        value[undefined] = fill
    return value


def tpr(counts: Counts, labels: pd.Index, zero_division) -> np.ndarray:
    """True positive rate per group, :math:`P(\\hat y = 1 \\mid Y = 1, A = a)`."""
    return rate(counts.tp, counts.pos, zero_division, "True positive rate", "positives", labels)


def fpr(counts: Counts, labels: pd.Index, zero_division) -> np.ndarray:
    """False positive rate per group, :math:`P(\\hat y = 1 \\mid Y = 0, A = a)`."""
    return rate(counts.pred_pos - counts.tp, counts.total - counts.pos, zero_division,
                "False positive rate", "negatives", labels)


def selection_rate(counts: Counts) -> np.ndarray:
    """Selection rate per group, :math:`P(\\hat y = 1 \\mid A = a)`."""
    return counts.pred_pos / counts.total


def _rate_inputs(y_true, y_pred, sensitive_features, sample_weight) -> tuple[Counts, Groups]:
    y_true = check_binary(y_true, "y_true")
    y_pred = check_binary(y_pred, "y_pred", y_true.shape[0])
    groups = check_groups(sensitive_features, y_true.shape[0], against="y_true")
    weights = check_sample_weight(sample_weight, groups)
    return Counts.of(y_true, y_pred, groups, weights), groups


def equal_opportunity_difference(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    zero_division: ZeroDivision = "warn",
    sample_weight: ArrayLike | None = None,
) -> float:
    r"""Largest gap in true positive rate between groups.

    .. math::

        \max_a \mathrm{TPR}_a - \min_a \mathrm{TPR}_a, \qquad
        \mathrm{TPR}_a = P(\hat y = 1 \mid Y = 1, A = a).

    0 means every group's positives are detected equally often. Identical to
    ``fairlearn.metrics.equal_opportunity_difference``.

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
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weight of each sample in the rates; None weighs every sample 1.

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
    counts, groups = _rate_inputs(y_true, y_pred, sensitive_features, sample_weight)
    return difference(tpr(counts, groups.labels, zero_division))


def true_negative_rate_difference(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    zero_division: ZeroDivision = "warn",
    sample_weight: ArrayLike | None = None,
) -> float:
    r"""Largest gap in true negative rate (specificity) between groups.

    .. math::

        \max_a \mathrm{TNR}_a - \min_a \mathrm{TNR}_a, \qquad
        \mathrm{TNR}_a = P(\hat y = 0 \mid Y = 0, A = a).

    It equals the false positive rate gap. Identical to
    ``fairlearn.metrics.true_negative_rate_difference``.

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
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weight of each sample in the rates; None weighs every sample 1.

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
    counts, groups = _rate_inputs(y_true, y_pred, sensitive_features, sample_weight)
    return difference(1.0 - fpr(counts, groups.labels, zero_division))


def equalized_odds_difference(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    zero_division: ZeroDivision = "warn",
    sample_weight: ArrayLike | None = None,
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
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weight of each sample in the rates; None weighs every sample 1.

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
    counts, groups = _rate_inputs(y_true, y_pred, sensitive_features, sample_weight)
    tpr_gap = difference(tpr(counts, groups.labels, zero_division))
    fpr_gap = difference(fpr(counts, groups.labels, zero_division))
    return worst_case(tpr_gap, fpr_gap)


def equal_opportunity_ratio(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    zero_division: ZeroDivision = "warn",
    sample_weight: ArrayLike | None = None,
) -> float:
    r"""Lowest over highest group true positive rate.

    .. math:: \min_a \mathrm{TPR}_a \,/\, \max_a \mathrm{TPR}_a

    1 means equal opportunity. Identical to
    ``fairlearn.metrics.equal_opportunity_ratio``. This is the quantity the DNE paper's
    reference code reports as "DI"; the standard disparate impact (selection rates) is
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
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weight of each sample in the rates; None weighs every sample 1.

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
    counts, groups = _rate_inputs(y_true, y_pred, sensitive_features, sample_weight)
    return ratio(tpr(counts, groups.labels, zero_division))


def demographic_parity_difference(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    sample_weight: ArrayLike | None = None,
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
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weight of each sample in the rates; None weighs every sample 1.

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
    counts, _ = _rate_inputs(y_true, y_pred, sensitive_features, sample_weight)
    return difference(selection_rate(counts))


def disparate_impact_ratio(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    sample_weight: ArrayLike | None = None,
) -> float:
    r"""Lowest over highest group selection rate (disparate impact).

    .. math:: \min_a P(\hat y = 1 \mid A = a) \,/\, \max_a P(\hat y = 1 \mid A = a)

    Identical to ``fairlearn.metrics.demographic_parity_ratio``, and available under
    that name too (:func:`demographic_parity_ratio`); the "four-fifths rule" flags
    values below 0.8. Not to be confused with the DNE reference code's "DI", which is
    :func:`equal_opportunity_ratio`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True binary labels in {0, 1} (validated only).
    y_pred : array-like of shape (n_samples,)
        Predicted binary labels in {0, 1}.
    sensitive_features : array-like of shape (n_samples,) or (n_samples, n_features)
        Group label per sample; several columns form intersectional groups.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weight of each sample in the rates; None weighs every sample 1.

    Returns
    -------
    float
        The ratio in [0, 1]; nan when no group is ever selected.

    See Also
    --------
    demographic_parity_ratio : The same function under fairlearn's name.
    disparate_impact_distance : :math:`|1 - \mathrm{DI}|`.

    Examples
    --------
    >>> from fairnoise.metrics import disparate_impact_ratio
    >>> y_pred = [1, 1, 0, 1, 0, 0]
    >>> disparate_impact_ratio([0] * 6, y_pred, sensitive_features=[0, 0, 0, 1, 1, 1])
    0.5
    """
    counts, _ = _rate_inputs(y_true, y_pred, sensitive_features, sample_weight)
    return ratio(selection_rate(counts))


def demographic_parity_ratio(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    sample_weight: ArrayLike | None = None,
) -> float:
    r"""Alias of :func:`disparate_impact_ratio` under fairlearn's name.

    Lowest over highest group selection rate,
    :math:`\min_a P(\hat y = 1 \mid A = a) \,/\, \max_a P(\hat y = 1 \mid A = a)`: the
    same number as ``fairlearn.metrics.demographic_parity_ratio`` and as
    :func:`disparate_impact_ratio`, which the report's summary lists it under.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True binary labels in {0, 1} (validated only).
    y_pred : array-like of shape (n_samples,)
        Predicted binary labels in {0, 1}.
    sensitive_features : array-like of shape (n_samples,) or (n_samples, n_features)
        Group label per sample; several columns form intersectional groups.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weight of each sample in the rates; None weighs every sample 1.

    Returns
    -------
    float
        The ratio in [0, 1]; nan when no group is ever selected.

    Examples
    --------
    >>> from fairnoise.metrics import demographic_parity_ratio
    >>> y_pred = [1, 1, 0, 1, 0, 0]
    >>> demographic_parity_ratio([0] * 6, y_pred, sensitive_features=[0, 0, 0, 1, 1, 1])
    0.5
    """
    return disparate_impact_ratio(
        y_true, y_pred, sensitive_features=sensitive_features, sample_weight=sample_weight
    )


def disparate_impact_distance(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    sample_weight: ArrayLike | None = None,
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
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weight of each sample in the rates; None weighs every sample 1.

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
    return abs(1.0 - disparate_impact_ratio(
        y_true, y_pred, sensitive_features=sensitive_features, sample_weight=sample_weight
    ))


def group_accuracy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    sample_weight: ArrayLike | None = None,
) -> pd.Series:
    """Accuracy within each group.

    The same numbers as ``MetricFrame(metrics=accuracy_score, ...).by_group`` in
    fairlearn.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels (any classes).
    y_pred : array-like of shape (n_samples,)
        Predicted labels.
    sensitive_features : array-like of shape (n_samples,) or (n_samples, n_features)
        Group label per sample; several columns form intersectional groups.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weight of each sample; None weighs every sample 1.

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
    y_true = check_1d(y_true, "y_true")
    y_pred = check_1d(y_pred, "y_pred", y_true.shape[0])
    groups = check_groups(sensitive_features, y_true.shape[0], against="y_true", min_groups=1)
    weights = check_sample_weight(sample_weight, groups)
    correct = np.bincount(groups.codes, weights=weights * (y_true == y_pred),
                          minlength=groups.n_groups)
    total = np.bincount(groups.codes, weights=weights, minlength=groups.n_groups)
    return pd.Series(correct / total, index=groups.labels, name="accuracy")

