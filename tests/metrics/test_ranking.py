"""fairnoise.metrics ranking metrics: ROC AUC per group, its gap, the worst group."""

import numpy as np
import pytest
from sklearn.exceptions import UndefinedMetricWarning

from fairnoise import metrics as fm


def test_group_auc_is_nan_for_single_class_group_and_gap_skips_it():
    y = np.array([0, 1, 0, 1, 1, 1])
    s = np.array([0.1, 0.9, 0.8, 0.2, 0.5, 0.6])
    g = np.array([0, 0, 1, 1, 2, 2])
    with pytest.warns(UndefinedMetricWarning, match=r"ROC AUC is undefined.*\[2\]"):
        by_group = fm.group_auc(y, s, sensitive_features=g)
    assert by_group.iloc[:2].tolist() == [1.0, 0.0] and np.isnan(by_group.iloc[2])
    with pytest.warns(UndefinedMetricWarning):
        assert fm.auc_gap(y, s, sensitive_features=g) == 1.0
    with pytest.warns(UndefinedMetricWarning):
        assert fm.worst_group_auc(y, s, sensitive_features=g) == 0.0


def test_intersectional_groups_are_indexed_by_column_names(make_case):
    y_true, y_score, _, sf = make_case("dataframe")
    index = fm.group_auc(y_true, y_score, sensitive_features=sf).index
    assert list(index.names) == ["sex", "age"]
    assert set(index) == {("F", "<60"), ("F", ">=60"), ("M", "<60"), ("M", ">=60")}
