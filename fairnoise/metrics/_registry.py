"""What a fairness report holds: its per-group columns and its summary metrics, one entry each.

:func:`~fairnoise.metrics.fairness_report` builds its ``by_group`` table from
:data:`GROUP_COLUMNS` and its ``summary`` from :data:`SUMMARY_METRICS`;
:mod:`fairnoise.plotting` takes its labels from both, and the conversion to and from
fairlearn's ``MetricFrame`` the functions fairlearn computes each column with. Adding a
metric to the report, its plots and its MetricFrame is one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from .._groups import Groups
from ._aggregate import difference, group_min, ratio, worst_case
from ._ranking import auc_by_group
from ._rates import Counts, fpr, selection_rate, tpr


class GroupStats:
    """Per-group counts of one evaluation, each rate computed (and warned about) once."""

    def __init__(self, y_true: np.ndarray, y_score: np.ndarray, y_pred: np.ndarray,
                 groups: Groups, weights: np.ndarray, zero_division: Any, warn: bool = True):
        self.y_true, self.y_score, self.groups, self.weights = y_true, y_score, groups, weights
        self.zero_division, self.warn = zero_division, warn
        self.counts = Counts.of(y_true, y_pred, groups, weights)

    @cached_property
    def size(self) -> np.ndarray:
        return np.bincount(self.groups.codes, minlength=self.groups.n_groups)

    @cached_property
    def tpr(self) -> np.ndarray:
        return tpr(self.counts, self.groups.labels, self.zero_division)

    @cached_property
    def fpr(self) -> np.ndarray:
        return fpr(self.counts, self.groups.labels, self.zero_division)

    @cached_property
    def auc(self) -> np.ndarray:
        return auc_by_group(self.y_true, self.y_score, self.groups, self.weights, warn=self.warn)


def _accuracy(s: GroupStats) -> np.ndarray:
    c = s.counts
    tn = (c.total - c.pos) - (c.pred_pos - c.tp)
    return (c.tp + tn) / c.total


def prevalence(y_true: Any, y_pred: Any, *, sample_weight: Any = None) -> float:
    """Share of positives in ``y_true`` (``y_pred`` unused): the MetricFrame form of the
    ``prevalence`` column, which fairlearn has no function for."""
    return float(np.average(np.asarray(y_true), weights=sample_weight))


@dataclass(frozen=True)
class GroupColumn:
    """One column of :attr:`FairnessReport.by_group`."""

    #: Column name.
    name: str
    #: Axis title in plots.
    label: str
    #: The column's values from one evaluation's :class:`GroupStats`, in group order.
    compute: Callable[[GroupStats], np.ndarray]
    #: True or False for a performance rate; None for a description of the group.
    greater_is_better: bool | None
    #: ``"module:function"`` that computes the column from one group's samples as
    #: ``MetricFrame`` calls it, ``f(y_true, y_pred[, sample_weight=])``.
    metric_frame_function: str
    #: Whether that function takes the scores (else predictions at the threshold).
    on_scores: bool = False
    #: Whether that function takes ``sample_weight``.
    weighted: bool = True

    @property
    def function_name(self) -> str:
        """Name of :attr:`metric_frame_function`, also accepted as a MetricFrame column."""
        return self.metric_frame_function.rpartition(":")[2]


@dataclass(frozen=True)
class SummaryMetric:
    """One entry of :attr:`FairnessReport.summary`: a number computed from the table."""

    #: Entry name: the function of :mod:`fairnoise.metrics` that computes it, where
    #: there is one.
    name: str
    #: Axis title in plots.
    label: str
    #: The value from the per-group table and the overall values (``"auc"``).
    compute: Callable[[pd.DataFrame, Mapping[str, float]], float]
    #: Direction of better, as in :func:`sklearn.metrics.make_scorer`.
    greater_is_better: bool
    #: Columns of the per-group table (or overall values) ``compute`` reads.
    uses: tuple[str, ...]


GROUP_COLUMNS: tuple[GroupColumn, ...] = (
    GroupColumn("n", "samples", lambda s: s.size, None, "fairlearn.metrics:count",
                weighted=False),
    GroupColumn("prevalence", "prevalence", lambda s: s.counts.pos / s.counts.total, None,
                "fairnoise.metrics._registry:prevalence"),
    GroupColumn("auc", "AUC", lambda s: s.auc, True, "sklearn.metrics:roc_auc_score",
                on_scores=True),
    GroupColumn("tpr", "TPR (sensitivity)", lambda s: s.tpr, True,
                "fairlearn.metrics:true_positive_rate"),
    GroupColumn("tnr", "TNR (specificity)", lambda s: 1.0 - s.fpr, True,
                "fairlearn.metrics:true_negative_rate"),
    GroupColumn("fpr", "FPR", lambda s: s.fpr, False, "fairlearn.metrics:false_positive_rate"),
    GroupColumn("selection_rate", "selection rate", lambda s: selection_rate(s.counts), None,
                "fairlearn.metrics:selection_rate"),
    GroupColumn("accuracy", "accuracy", _accuracy, True, "sklearn.metrics:accuracy_score"),
)

SUMMARY_METRICS: tuple[SummaryMetric, ...] = (
    SummaryMetric("equal_opportunity_difference", "equal-opportunity gap (TPR gap)",
                  lambda t, o: difference(t["tpr"]), False, ("tpr",)),
    SummaryMetric("true_negative_rate_difference", "TNR gap",
                  lambda t, o: difference(t["tnr"]), False, ("tnr",)),
    SummaryMetric("equalized_odds_difference", "equalized-odds gap",
                  lambda t, o: worst_case(difference(t["tpr"]), difference(t["fpr"])), False,
                  ("tpr", "fpr")),
    SummaryMetric("demographic_parity_difference", "demographic-parity gap",
                  lambda t, o: difference(t["selection_rate"]), False, ("selection_rate",)),
    SummaryMetric("disparate_impact_ratio", "disparate impact (selection-rate ratio)",
                  lambda t, o: ratio(t["selection_rate"]), True, ("selection_rate",)),
    SummaryMetric("disparate_impact_distance", "|1 - disparate impact|",
                  lambda t, o: abs(1.0 - ratio(t["selection_rate"])), False,
                  ("selection_rate",)),
    SummaryMetric("equal_opportunity_ratio", "TPR ratio", lambda t, o: ratio(t["tpr"]), True,
                  ("tpr",)),
    SummaryMetric("auc_gap", "AUC gap", lambda t, o: difference(t["auc"]), False, ("auc",)),
    SummaryMetric("worst_group_auc", "worst-group AUC", lambda t, o: group_min(t["auc"]), True,
                  ("auc",)),
    SummaryMetric("overall_auc", "task AUC", lambda t, o: float(o["auc"]), True, ("auc",)),
)


def group_table(stats: GroupStats) -> pd.DataFrame:
    """The per-group table: one row per group, one column per :data:`GROUP_COLUMNS` entry."""
    return pd.DataFrame({c.name: c.compute(stats) for c in GROUP_COLUMNS},
                        index=stats.groups.labels)


def summary_values(table: pd.DataFrame, overall: Mapping[str, float]) -> np.ndarray:
    """Every :data:`SUMMARY_METRICS` value, in registry order."""
    return np.array([m.compute(table, overall) for m in SUMMARY_METRICS])


def rename_fairlearn_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Columns named after their MetricFrame function (``true_positive_rate``) renamed to
    the report's names (``tpr``); other columns as they are."""
    names = {c.function_name: c.name for c in GROUP_COLUMNS if c.function_name != c.name}
    return table.rename(columns={k: v for k, v in names.items() if v not in table.columns})


def summary_metric(name: str) -> SummaryMetric | None:
    """The :data:`SUMMARY_METRICS` entry called ``name``, or None."""
    return next((m for m in SUMMARY_METRICS if m.name == name), None)


def group_column(name: str) -> GroupColumn | None:
    """The :data:`GROUP_COLUMNS` entry called ``name``, or None."""
    return next((c for c in GROUP_COLUMNS if c.name == name), None)
