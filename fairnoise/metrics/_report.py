"""The fairness report: per-group table, between-group summary, bootstrap intervals.

Its columns and summary entries are those of :mod:`._registry`; it converts to and from
fairlearn's :class:`~fairlearn.metrics.MetricFrame` (fairlearn is imported only there).
"""

from __future__ import annotations

import importlib
import numbers
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.utils import check_random_state

from .._groups import Groups
from .._markdown import markdown_table
from ._ranking import binary_auc, score_inputs
from ._registry import (
    GROUP_COLUMNS,
    SUMMARY_METRICS,
    GroupStats,
    group_table,
    rename_fairlearn_columns,
    summary_values,
)
from ._validation import RandomState, ZeroDivision, check_threshold, check_zero_division


@dataclass(frozen=True)
class _Samples:
    """What a report was computed from, for :meth:`FairnessReport.to_metric_frame`."""

    y_true: np.ndarray
    y_score: np.ndarray
    groups: Groups
    sample_weight: np.ndarray | None

    def sensitive_features(self) -> pd.Series | pd.DataFrame:
        labels = self.groups.labels[self.groups.codes]
        if isinstance(labels, pd.MultiIndex):
            return labels.to_frame(index=False)
        return pd.Series(np.asarray(labels), name=labels.name)


class _AtThreshold:
    """A metric of hard predictions, called on scores: ``metric(y, score >= threshold)``."""

    def __init__(self, metric: Any, threshold: float):
        self.metric, self.threshold = metric, threshold

    def __call__(self, y_true, y_score, **kwargs):
        return self.metric(y_true, (np.asarray(y_score) >= self.threshold).astype(int), **kwargs)


def _resolve(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


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
    threshold : float or None
        Score threshold at which predictions were made (``y_score >= threshold``); None
        for a report made from a MetricFrame without one.
    confidence_level : float
        Coverage of the intervals; nan for a report made from a MetricFrame.

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
    threshold: float | None
    confidence_level: float
    _samples: _Samples | None = field(default=None, repr=False)

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

    def to_metric_frame(self, **kwargs: Any) -> Any:
        """The same per-group table as a fairlearn :class:`~fairlearn.metrics.MetricFrame`.

        Each column is computed by fairlearn from the report's samples with the
        function fairlearn (or scikit-learn) has for it (``true_positive_rate``,
        ``selection_rate``, ``roc_auc_score``, ...), under the report's column names, at
        the report's threshold and with its ``sample_weight``. Its ``by_group`` equals
        :attr:`by_group` (fairlearn counts an undefined rate as 0, the report's
        ``zero_division="warn"``), and the rest of fairlearn (``difference(method=
        "to_overall")``, ``control_features``, its plots) applies. Needs fairlearn.

        Parameters
        ----------
        **kwargs
            Further arguments of ``MetricFrame``: ``control_features``, ``n_boot``,
            ``ci_quantiles``, ``random_state``.

        Returns
        -------
        fairlearn.metrics.MetricFrame

        Raises
        ------
        ValueError
            If the report was itself made from a MetricFrame (it has no samples).

        Examples
        --------
        >>> from fairnoise.metrics import fairness_report
        >>> y = [0, 1, 0, 1, 0, 1, 0, 1]
        >>> score = [0.1, 0.9, 0.2, 0.8, 0.6, 0.7, 0.3, 0.4]
        >>> group = ["F", "F", "F", "F", "M", "M", "M", "M"]
        >>> frame = fairness_report(y, score, sensitive_features=group).to_metric_frame()
        >>> frame.by_group["tpr"].to_dict()
        {'F': 1.0, 'M': 0.5}
        >>> float(frame.difference()["tpr"])
        0.5
        """
        if self._samples is None:
            raise ValueError(
                "This report was made from a MetricFrame and holds no samples to build "
                "one from; use that MetricFrame."
            )
        try:
            from fairlearn.metrics import MetricFrame
        except ImportError as exc:  # pragma: no cover - fairlearn is a test dependency
            raise ImportError(
                "FairnessReport.to_metric_frame needs fairlearn: pip install fairlearn."
            ) from exc
        s = self._samples
        metrics = {}
        for column in GROUP_COLUMNS:
            function = _resolve(column.metric_frame_function)
            metrics[column.name] = (function if column.on_scores
                                    else _AtThreshold(function, self.threshold))
        sample_params = None
        if s.sample_weight is not None:
            sample_params = {c.name: {"sample_weight": s.sample_weight}
                             for c in GROUP_COLUMNS if c.weighted}
        return MetricFrame(metrics=metrics, y_true=s.y_true, y_pred=s.y_score,
                           sensitive_features=s.sensitive_features(),
                           sample_params=sample_params, **kwargs)

    @classmethod
    def from_metric_frame(cls, frame: Any, *, threshold: float | None = None) -> FairnessReport:
        """A report from a fairlearn :class:`~fairlearn.metrics.MetricFrame`.

        The frame's ``by_group`` becomes :attr:`by_group`, with columns named after a
        fairlearn function renamed to the report's names (``true_positive_rate`` →
        ``tpr``, ``false_positive_rate`` → ``fpr``, ``selection_rate``,
        ``roc_auc_score`` → ``auc``, ``accuracy_score`` → ``accuracy``, ``count`` →
        ``n``); the summary holds every metric of :func:`fairness_report` whose columns
        the frame has (``overall_auc`` from the frame's ``overall``). The frame's own
        bootstrap is not carried over: its intervals are per group, the report's are of
        the summary.

        Parameters
        ----------
        frame : fairlearn.metrics.MetricFrame
            A frame without ``control_features``, e.g. one made by
            :meth:`to_metric_frame`.
        threshold : float or None, default=None
            The threshold the frame's predictions were made at, if known.

        Returns
        -------
        FairnessReport
            With ``confidence_intervals=None``; it cannot make a MetricFrame again.

        Examples
        --------
        >>> from fairlearn.metrics import MetricFrame, selection_rate, true_positive_rate
        >>> from fairnoise.metrics import FairnessReport
        >>> metrics = {"true_positive_rate": true_positive_rate, "selection_rate": selection_rate}
        >>> frame = MetricFrame(
        ...     metrics=metrics,
        ...     y_true=[1, 1, 0, 1, 1, 0], y_pred=[1, 1, 0, 1, 0, 1],
        ...     sensitive_features=["a", "a", "a", "b", "b", "b"])
        >>> report = FairnessReport.from_metric_frame(frame, threshold=0.5)
        >>> report.summary.to_dict()
        {'equal_opportunity_difference': 0.5, 'demographic_parity_difference': 0.0, \
'disparate_impact_ratio': 1.0, 'disparate_impact_distance': 0.0, \
'equal_opportunity_ratio': 0.5}
        """
        if not (hasattr(frame, "by_group") and hasattr(frame, "overall")):
            raise TypeError(
                f"frame must be a fairlearn MetricFrame; got {type(frame).__name__}."
            )
        if getattr(frame, "control_levels", None):
            raise ValueError(
                "frame has control_features; a FairnessReport compares the groups over all "
                "samples. Make the MetricFrame without control_features."
            )
        table, overall = frame.by_group, frame.overall
        if isinstance(table, pd.Series):  # a MetricFrame of a single metric
            name = table.name if table.name is not None else "metric"
            table, overall = table.to_frame(name), pd.Series({name: overall})
        table = rename_fairlearn_columns(table)
        overall = rename_fairlearn_columns(overall.to_frame().T).iloc[0]
        summary = pd.Series(
            {m.name: m.compute(table, overall) for m in SUMMARY_METRICS
             if set(m.uses) <= set(table.columns)},
            name="value", dtype=float,
        )
        return cls(by_group=table, summary=summary, confidence_intervals=None,
                   threshold=None if threshold is None else float(threshold),
                   confidence_level=float("nan"))


def _bootstrap(y_true, y_score, y_pred, groups: Groups, weights, zero_division, n_boot: int,
               confidence_level: float, rng) -> pd.DataFrame:
    """Percentile intervals of every summary metric, resampling within each group."""
    members = groups.members()
    boot = np.empty((n_boot, len(SUMMARY_METRICS)))
    for b in range(n_boot):
        idx = np.concatenate([rng.choice(m, size=m.size, replace=True) for m in members])
        resampled = Groups(codes=groups.codes[idx], labels=groups.labels)
        stats = GroupStats(y_true[idx], y_score[idx], y_pred[idx], resampled, weights[idx],
                           zero_division, warn=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            table = group_table(stats)
        boot[b] = summary_values(table, {"auc": binary_auc(y_true[idx], y_score[idx],
                                                           weights[idx])})
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
    sample_weight: ArrayLike | None = None,
    random_state: RandomState = 0,
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
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weight of each sample in every rate and AUC (``n`` stays the
        number of samples); None weighs every sample 1.
    random_state : int, RandomState instance or None, default=0
        Seeds the bootstrap. The default makes the intervals reproducible, as the
        default of :func:`leakage_auc` does its split; None draws fresh ones per call.

    Returns
    -------
    FairnessReport
        ``by_group`` table, ``summary`` series and, with ``n_boot > 0``,
        ``confidence_intervals``.

    See Also
    --------
    FairnessReport.to_metric_frame : The table as a fairlearn MetricFrame.

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
    y_true, y_score, groups, weights = score_inputs(
        y_true, y_score, sensitive_features, sample_weight
    )
    check_zero_division(zero_division)
    if not (isinstance(n_boot, numbers.Integral) and n_boot >= 0):
        raise ValueError(f"n_boot must be a non-negative integer; got {n_boot!r}.")
    if not (isinstance(confidence_level, numbers.Real) and 0 < confidence_level < 1):
        raise ValueError(f"confidence_level must be a float in (0, 1); got {confidence_level!r}.")
    check_threshold(threshold, allow_none=False)
    y_pred = (y_score >= threshold).astype(np.int64)
    table = group_table(GroupStats(y_true, y_score, y_pred, groups, weights, zero_division))
    summary = pd.Series(
        summary_values(table, {"auc": binary_auc(y_true, y_score, weights)}),
        index=[m.name for m in SUMMARY_METRICS], name="value",
    )
    intervals = None
    if n_boot:
        intervals = _bootstrap(y_true, y_score, y_pred, groups, weights, zero_division, n_boot,
                               confidence_level, check_random_state(random_state))
    return FairnessReport(
        by_group=table,
        summary=summary,
        confidence_intervals=intervals,
        threshold=float(threshold),
        confidence_level=float(confidence_level),
        _samples=_Samples(y_true, y_score, groups,
                          None if sample_weight is None else weights),
    )
