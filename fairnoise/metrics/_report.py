"""The fairness report: per-group table, between-group summary, bootstrap intervals.

Its columns and summary entries are those of :mod:`._registry`.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.utils import check_random_state

from .._groups import Groups
from .._markdown import markdown_table
from ._ranking import binary_auc, score_inputs
from ._registry import SUMMARY_METRICS, GroupStats, group_table, summary_values
from ._validation import RandomState, ZeroDivision, check_threshold, check_zero_division


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

    See Also
    --------
    fairness_report : Compute one.

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
        return markdown_table(self.by_group, digits) + "\n\n" + markdown_table(summary, digits)


def _bootstrap(y_true, y_score, y_pred, groups: Groups, zero_division, n_boot: int,
               confidence_level: float, rng) -> pd.DataFrame:
    """Percentile intervals of every summary metric, resampling within each group."""
    members = groups.members()
    boot = np.empty((n_boot, len(SUMMARY_METRICS)))
    for b in range(n_boot):
        idx = np.concatenate([rng.choice(m, size=m.size, replace=True) for m in members])
        resampled = Groups(codes=groups.codes[idx], labels=groups.labels)
        stats = GroupStats(y_true[idx], y_score[idx], y_pred[idx], resampled, zero_division,
                           warn=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            table = group_table(stats)
        boot[b] = summary_values(table, {"auc": binary_auc(y_true[idx], y_score[idx])})
    tail = 100 * (1 - confidence_level) / 2
    with warnings.catch_warnings():
        # An all-nan column (a metric undefined in every resample) gives a nan bound.
        warnings.simplefilter("ignore", RuntimeWarning)
        bounds = np.nanpercentile(boot, [tail, 100 - tail], axis=0)
    return pd.DataFrame(bounds.T, index=[m.name for m in SUMMARY_METRICS],
                        columns=["lower", "upper"])


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
    y_true, y_score, groups = score_inputs(y_true, y_score, sensitive_features)
    check_zero_division(zero_division)
    if not (isinstance(n_boot, numbers.Integral) and n_boot >= 0):
        raise ValueError(f"n_boot must be a non-negative integer; got {n_boot!r}.")
    if not (isinstance(confidence_level, numbers.Real) and 0 < confidence_level < 1):
        raise ValueError(f"confidence_level must be a float in (0, 1); got {confidence_level!r}.")
    check_threshold(threshold, allow_none=False)
    y_pred = (y_score >= threshold).astype(np.int64)
    table = group_table(GroupStats(y_true, y_score, y_pred, groups, zero_division))
    summary = pd.Series(
        summary_values(table, {"auc": binary_auc(y_true, y_score)}),
        index=[m.name for m in SUMMARY_METRICS], name="value",
    )
    intervals = None
    if n_boot:
        intervals = _bootstrap(y_true, y_score, y_pred, groups, zero_division, n_boot,
                               confidence_level, check_random_state(random_state))
    return FairnessReport(
        by_group=table,
        summary=summary,
        confidence_intervals=intervals,
        threshold=float(threshold),
        confidence_level=float(confidence_level),
    )
