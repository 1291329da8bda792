"""fairnoise.metrics rate metrics: hand-computed values, undefined rates, sample weights."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import UndefinedMetricWarning

from fairnoise import metrics as fm

RATE_METRICS = [
    fm.equal_opportunity_difference,
    fm.true_negative_rate_difference,
    fm.equalized_odds_difference,
    fm.equal_opportunity_ratio,
    fm.demographic_parity_difference,
    fm.disparate_impact_ratio,
    fm.demographic_parity_ratio,
    fm.disparate_impact_distance,
]

# Group "a" has no positives; group "b": TPR 1/2, FPR 1/2.
Y_NO_POS = np.array([0, 0, 0, 1, 1, 0, 0])
P_NO_POS = np.array([1, 0, 0, 1, 0, 1, 0])
G_NO_POS = np.array(["a", "a", "a", "b", "b", "b", "b"])


def test_undefined_tpr_counts_as_zero_with_a_warning_naming_the_group():
    with pytest.warns(UndefinedMetricWarning, match=r"True positive rate is undefined.*\['a'\]"):
        value = fm.equal_opportunity_difference(Y_NO_POS, P_NO_POS, sensitive_features=G_NO_POS)
    assert value == 0.5


def test_undefined_rate_warning_prints_plain_group_labels():
    group = np.where(G_NO_POS == "a", 7, 3)  # int64 labels
    with pytest.warns(UndefinedMetricWarning, match=r"group\(s\) \[7\]") as record:
        fm.equal_opportunity_difference(Y_NO_POS, P_NO_POS, sensitive_features=group)
    assert "np.int64" not in str(record[0].message)


def test_zero_division_nan_leaves_undefined_group_out():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gap = fm.equal_opportunity_difference(
            Y_NO_POS, P_NO_POS, sensitive_features=G_NO_POS, zero_division=np.nan
        )
        eod = fm.equalized_odds_difference(
            Y_NO_POS, P_NO_POS, sensitive_features=G_NO_POS, zero_division=np.nan
        )
    assert np.isnan(gap)  # only one group has a TPR: nothing to compare
    assert np.isnan(eod)


def test_zero_division_value_fills_undefined_rate():
    gap = fm.equal_opportunity_difference(
        Y_NO_POS, P_NO_POS, sensitive_features=G_NO_POS, zero_division=1.0
    )
    assert gap == 0.5  # TPR_a := 1, TPR_b = 1/2


def test_zero_division_nan_keeps_remaining_groups_in_three_group_comparison():
    y = np.array([0, 0, 1, 1, 1, 1])
    p = np.array([0, 1, 1, 1, 1, 0])
    g = np.array([0, 0, 1, 1, 2, 2])
    assert fm.equal_opportunity_difference(y, p, sensitive_features=g, zero_division=np.nan) == 0.5
    assert fm.equal_opportunity_ratio(y, p, sensitive_features=g, zero_division=np.nan) == 0.5


def test_hand_computed_equalized_odds_takes_larger_gap():
    # TPR: a 1.0, b 0.5 (gap 0.5); FPR: a 0.0, b 1.0 (gap 1.0)
    y = [1, 1, 0, 0, 1, 1, 0, 0]
    p = [1, 1, 0, 0, 1, 0, 1, 1]
    g = ["a"] * 4 + ["b"] * 4
    assert fm.equalized_odds_difference(y, p, sensitive_features=g) == 1.0
    assert fm.true_negative_rate_difference(y, p, sensitive_features=g) == 1.0
    assert fm.equal_opportunity_difference(y, p, sensitive_features=g) == 0.5


def test_ratios_are_nan_when_no_group_is_selected():
    y, p, g = [0, 1, 0, 1], [0, 0, 0, 0], [0, 0, 1, 1]
    assert np.isnan(fm.disparate_impact_ratio(y, p, sensitive_features=g))
    assert np.isnan(fm.equal_opportunity_ratio(y, p, sensitive_features=g))


def test_disparate_impact_and_equal_opportunity_ratio_differ():
    # Selection rates 1/2 and 1/2 (DI = 1) but TPRs 1 and 1/2.
    y = [1, 0, 1, 1]
    p = [1, 0, 1, 0]
    g = [0, 0, 1, 1]
    assert fm.disparate_impact_ratio(y, p, sensitive_features=g) == 1.0
    assert fm.equal_opportunity_ratio(y, p, sensitive_features=g) == 0.5


def test_demographic_parity_ratio_is_disparate_impact_ratio_under_fairlearns_name(make_case):
    y_true, _, y_pred, sf = make_case("K3-strings")
    assert fm.demographic_parity_ratio(y_true, y_pred, sensitive_features=sf) == (
        fm.disparate_impact_ratio(y_true, y_pred, sensitive_features=sf)
    )
    assert "disparate_impact_ratio" in fm.demographic_parity_ratio.__doc__


def test_boolean_labels_are_accepted():
    y = np.array([True, False, True, False])
    p = np.array([True, False, False, False])
    assert fm.equal_opportunity_difference(y, p, sensitive_features=[0, 0, 1, 1]) == 1.0


def test_group_accuracy_allows_a_single_group_and_any_labels():
    acc = fm.group_accuracy(["x", "y", "x"], ["x", "x", "x"], sensitive_features=["g"] * 3)
    pd.testing.assert_series_equal(
        acc, pd.Series([2 / 3], index=pd.Index(["g"], name="sensitive_feature_0"),
                       name="accuracy"))


@pytest.mark.parametrize("metric", RATE_METRICS, ids=lambda m: m.__name__)
def test_integer_sample_weight_equals_repeating_samples(metric, make_case):
    y_true, _, y_pred, sf = make_case("K3-strings", n=120)
    counts = np.random.default_rng(3).integers(1, 4, size=120)
    weighted = metric(y_true, y_pred, sensitive_features=sf, sample_weight=counts)
    repeated = metric(np.repeat(y_true, counts), np.repeat(y_pred, counts),
                      sensitive_features=np.repeat(sf, counts))
    assert weighted == pytest.approx(repeated, abs=1e-12)


@pytest.mark.parametrize("metric", RATE_METRICS, ids=lambda m: m.__name__)
def test_unit_sample_weight_gives_the_unweighted_value_exactly(metric, make_case):
    y_true, _, y_pred, sf = make_case("dataframe")
    assert metric(y_true, y_pred, sensitive_features=sf, sample_weight=np.ones(400)) == (
        metric(y_true, y_pred, sensitive_features=sf)
    )


def test_group_accuracy_weights_samples():
    acc = fm.group_accuracy([1, 0, 1, 1], [1, 1, 0, 1], sensitive_features=[0, 0, 1, 1],
                            sample_weight=[3, 1, 1, 1])
    assert acc.tolist() == [0.75, 0.5]
