"""The registry is what the report holds: one entry per column and per summary metric."""

import importlib

import numpy as np
import pytest

from fairnoise import metrics as fm
from fairnoise.metrics._registry import GROUP_COLUMNS, SUMMARY_METRICS


@pytest.fixture(scope="module")
def report():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    return fm.fairness_report(y, np.clip(0.4 * y + 0.6 * rng.uniform(size=300), 0, 1),
                              sensitive_features=rng.choice(["a", "b", "c"], 300), n_boot=5)


def test_report_columns_are_the_registry_columns_in_order(report):
    assert list(report.by_group.columns) == [c.name for c in GROUP_COLUMNS]


def test_report_summary_and_intervals_are_the_registry_metrics_in_order(report):
    names = [m.name for m in SUMMARY_METRICS]
    assert list(report.summary.index) == names
    assert list(report.confidence_intervals.index) == names


def test_every_summary_metric_reads_only_columns_of_the_table():
    columns = {c.name for c in GROUP_COLUMNS}
    for metric in SUMMARY_METRICS:
        assert set(metric.uses) <= columns, metric.name


def test_summary_metrics_with_a_function_are_named_after_it():
    functions = [m.name for m in SUMMARY_METRICS if m.name != "overall_auc"]
    assert all(name in fm.__all__ for name in functions)


def test_every_column_names_a_function_metric_frame_can_call():
    for column in GROUP_COLUMNS:
        module, _, name = column.metric_frame_function.partition(":")
        assert callable(getattr(importlib.import_module(module), name)), column.name
