"""fairnoise.metrics agrees with fairlearn wherever both have a metric."""

import fairlearn.metrics as flm
import numpy as np
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, roc_auc_score

from fairnoise import metrics as fm

#: fairnoise metric of hard predictions -> the fairlearn function with the same meaning.
SAME_RATE_METRIC = [
    (fm.equal_opportunity_difference, flm.equal_opportunity_difference),
    (fm.equalized_odds_difference, flm.equalized_odds_difference),
    (fm.demographic_parity_difference, flm.demographic_parity_difference),
    (fm.disparate_impact_ratio, flm.demographic_parity_ratio),
]


@pytest.mark.parametrize(("ours", "theirs"), SAME_RATE_METRIC, ids=lambda f: f.__name__)
def test_rate_metric_matches_fairlearn(ours, theirs, case):
    y_true, _, y_pred, sf = case
    expected = theirs(y_true, y_pred, sensitive_features=sf)
    assert ours(y_true, y_pred, sensitive_features=sf) == pytest.approx(expected, abs=1e-9)


def test_disparate_impact_distance_is_one_minus_fairlearns_ratio(case):
    y_true, _, y_pred, sf = case
    dpr = flm.demographic_parity_ratio(y_true, y_pred, sensitive_features=sf)
    assert fm.disparate_impact_distance(y_true, y_pred, sensitive_features=sf) == (
        pytest.approx(1 - dpr, abs=1e-9))


def test_rates_by_group_match_fairlearn_metricframe(case):
    y_true, _, y_pred, sf = case
    frame = flm.MetricFrame(
        metrics={"tpr": flm.true_positive_rate, "tnr": flm.true_negative_rate},
        y_true=y_true, y_pred=y_pred, sensitive_features=sf,
    )
    diff, ratio = frame.difference(), frame.ratio()
    kw = {"sensitive_features": sf}
    assert fm.equal_opportunity_difference(y_true, y_pred, **kw) == pytest.approx(
        diff["tpr"], abs=1e-9)
    assert fm.true_negative_rate_difference(y_true, y_pred, **kw) == pytest.approx(
        diff["tnr"], abs=1e-9)
    assert fm.equal_opportunity_ratio(y_true, y_pred, **kw) == pytest.approx(ratio["tpr"], abs=1e-9)


def test_group_auc_and_accuracy_match_fairlearn_metricframe(case):
    y_true, y_score, y_pred, sf = case
    auc_frame = flm.MetricFrame(
        metrics=roc_auc_score, y_true=y_true, y_pred=y_score, sensitive_features=sf
    )
    acc_frame = flm.MetricFrame(
        metrics=accuracy_score, y_true=y_true, y_pred=y_pred, sensitive_features=sf
    )
    ours = fm.group_auc(y_true, y_score, sensitive_features=sf)
    np.testing.assert_allclose(ours.to_numpy(), auc_frame.by_group.to_numpy(), atol=1e-9)
    assert list(ours.index) == list(auc_frame.by_group.index)
    acc = fm.group_accuracy(y_true, y_pred, sensitive_features=sf)
    np.testing.assert_allclose(acc.to_numpy(), acc_frame.by_group.to_numpy(), atol=1e-9)
    kw = {"sensitive_features": sf}
    assert fm.auc_gap(y_true, y_score, **kw) == pytest.approx(auc_frame.difference(), abs=1e-9)
    assert fm.worst_group_auc(y_true, y_score, **kw) == pytest.approx(
        auc_frame.group_min(), abs=1e-9)


def test_undefined_rate_counts_as_zero_as_in_fairlearn():
    y = np.array([0, 0, 0, 1, 1, 0, 0])  # group "a" has no positives
    p = np.array([1, 0, 0, 1, 0, 1, 0])
    g = np.array(["a", "a", "a", "b", "b", "b", "b"])
    with pytest.warns(UndefinedMetricWarning):
        ours = fm.equal_opportunity_difference(y, p, sensitive_features=g)
    assert ours == flm.equal_opportunity_difference(y, p, sensitive_features=g)
