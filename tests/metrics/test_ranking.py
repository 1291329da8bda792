"""fairnoise.metrics ranking metrics: ROC AUC per group, its gap, the worst group."""

import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import roc_auc_score

from fairnoise import metrics as fm
from fairnoise.metrics._ranking import binary_auc


def test_binary_auc_with_unit_weights_is_the_rank_sum_statistic_exactly():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=501)
    s = np.round(rng.uniform(size=501), 2)  # many ties
    n_pos = int(y.sum())
    u = rankdata(s)[y == 1].sum() - n_pos * (n_pos + 1) / 2  # Mann-Whitney U, ties halved
    assert binary_auc(y, s) == u / (n_pos * (y.size - n_pos))


def test_weighted_binary_auc_matches_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=300)
    s = np.round(rng.uniform(size=300), 1)
    w = rng.uniform(0.1, 3.0, size=300)
    assert binary_auc(y, s, w) == pytest.approx(roc_auc_score(y, s, sample_weight=w), abs=1e-12)


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


@pytest.mark.parametrize("metric", [fm.auc_gap, fm.worst_group_auc], ids=lambda m: m.__name__)
def test_integer_sample_weight_equals_repeating_samples(metric, make_case):
    y_true, y_score, _, sf = make_case("K3-strings", n=120)
    counts = np.random.default_rng(3).integers(1, 4, size=120)
    weighted = metric(y_true, y_score, sensitive_features=sf, sample_weight=counts)
    repeated = metric(np.repeat(y_true, counts), np.repeat(y_score, counts),
                      sensitive_features=np.repeat(sf, counts))
    assert weighted == pytest.approx(repeated, abs=1e-12)
