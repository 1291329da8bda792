"""What a fairness report holds: its per-group columns and its summary metrics, one entry each.

:func:`~fairnoise.metrics.fairness_report` builds its ``by_group`` table from
:data:`GROUP_COLUMNS` and its ``summary`` from :data:`SUMMARY_METRICS`;
:mod:`fairnoise.plotting` takes its labels from both. Adding a metric to the report and
its plots is one entry here.
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
                 groups: Groups, zero_division: Any, warn: bool = True):
        self.y_true, self.y_score, self.groups = y_true, y_score, groups
        self.zero_division, self.warn = zero_division, warn
        self.counts = Counts.of(y_true, y_pred, groups)

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
        return auc_by_group(self.y_true, self.y_score, self.groups, warn=self.warn)


def _accuracy(s: GroupStats) -> np.ndarray:
    c = s.counts
    tn = (c.total - c.pos) - (c.pred_pos - c.tp)
    return (c.tp + tn) / c.total


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
    GroupColumn("n", "samples", lambda s: s.size, None),
    GroupColumn("prevalence", "prevalence", lambda s: s.counts.pos / s.counts.total, None),
    GroupColumn("auc", "AUC", lambda s: s.auc, True),
    GroupColumn("tpr", "TPR (sensitivity)", lambda s: s.tpr, True),
    GroupColumn("tnr", "TNR (specificity)", lambda s: 1.0 - s.fpr, True),
    GroupColumn("fpr", "FPR", lambda s: s.fpr, False),
    GroupColumn("selection_rate", "selection rate", lambda s: selection_rate(s.counts), None),
    GroupColumn("accuracy", "accuracy", _accuracy, True),
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


def summary_metric(name: str) -> SummaryMetric | None:
    """The :data:`SUMMARY_METRICS` entry called ``name``, or None."""
    return next((m for m in SUMMARY_METRICS if m.name == name), None)


def group_column(name: str) -> GroupColumn | None:
    """The :data:`GROUP_COLUMNS` entry called ``name``, or None."""
    return next((c for c in GROUP_COLUMNS if c.name == name), None)
