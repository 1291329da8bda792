"""fairnoise.metrics agrees with fairlearn wherever both have a metric, and converts to it."""

import fairlearn.metrics as flm
import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, roc_auc_score

from fairnoise import metrics as fm

#: fairnoise metric of hard predictions -> the fairlearn function with the same meaning.
SAME_RATE_METRIC = [
    (fm.equal_opportunity_difference, flm.equal_opportunity_difference),
    (fm.equal_opportunity_ratio, flm.equal_opportunity_ratio),
    (fm.true_negative_rate_difference, flm.true_negative_rate_difference),
    (fm.equalized_odds_difference, flm.equalized_odds_difference),
    (fm.demographic_parity_difference, flm.demographic_parity_difference),
    (fm.disparate_impact_ratio, flm.demographic_parity_ratio),
    (fm.demographic_parity_ratio, flm.demographic_parity_ratio),
]


def _sample_params(weights):
    return None if weights is None else {"sample_weight": weights}


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize(("ours", "theirs"), SAME_RATE_METRIC, ids=lambda f: f.__name__)
def test_rate_metric_matches_fairlearn(ours, theirs, weighted, case, weights):
    y_true, _, y_pred, sf = case
    w = {"sample_weight": weights} if weighted else {}
    expected = theirs(y_true, y_pred, sensitive_features=sf, **w)
    assert ours(y_true, y_pred, sensitive_features=sf, **w) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_disparate_impact_distance_is_one_minus_fairlearns_ratio(weighted, case, weights):
    y_true, _, y_pred, sf = case
    w = {"sample_weight": weights} if weighted else {}
    dpr = flm.demographic_parity_ratio(y_true, y_pred, sensitive_features=sf, **w)
    assert fm.disparate_impact_distance(y_true, y_pred, sensitive_features=sf, **w) == (
        pytest.approx(1 - dpr, abs=1e-9))


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_auc_metrics_match_a_fairlearn_metricframe_of_roc_auc(weighted, case, weights):
    y_true, y_score, _, sf = case
    w = weights if weighted else None
    frame = flm.MetricFrame(metrics=roc_auc_score, y_true=y_true, y_pred=y_score,
                            sensitive_features=sf, sample_params=_sample_params(w))
    kw = {"sensitive_features": sf, "sample_weight": w}
    ours = fm.group_auc(y_true, y_score, **kw)
    assert list(ours.index) == list(frame.by_group.index)
    np.testing.assert_allclose(ours.to_numpy(), frame.by_group.to_numpy(), atol=1e-9)
    assert fm.auc_gap(y_true, y_score, **kw) == pytest.approx(frame.difference(), abs=1e-9)
    assert fm.worst_group_auc(y_true, y_score, **kw) == pytest.approx(
        flm.roc_auc_score_group_min(y_true, y_score, sensitive_features=sf,
                                    **({} if w is None else {"sample_weight": w})), abs=1e-9)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_group_accuracy_matches_a_fairlearn_metricframe(weighted, case, weights):
    y_true, _, y_pred, sf = case
    w = weights if weighted else None
    frame = flm.MetricFrame(metrics=accuracy_score, y_true=y_true, y_pred=y_pred,
                            sensitive_features=sf, sample_params=_sample_params(w))
    ours = fm.group_accuracy(y_true, y_pred, sensitive_features=sf, sample_weight=w)
    np.testing.assert_allclose(ours.to_numpy(), frame.by_group.to_numpy(), atol=1e-9)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_report_table_matches_fairlearns_own_functions(weighted, case, weights):
    y_true, y_score, y_pred, sf = case
    w = weights if weighted else None
    report = fm.fairness_report(y_true, y_score, sensitive_features=sf, sample_weight=w)
    theirs = {"tpr": flm.true_positive_rate, "tnr": flm.true_negative_rate,
              "fpr": flm.false_positive_rate, "selection_rate": flm.selection_rate,
              "accuracy": accuracy_score}
    frame = flm.MetricFrame(metrics=theirs, y_true=y_true, y_pred=y_pred, sensitive_features=sf,
                            sample_params=None if w is None else {k: {"sample_weight": w}
                                                                  for k in theirs})
    pd.testing.assert_frame_equal(report.by_group[list(theirs)], frame.by_group,
                                  check_exact=False, atol=1e-9, check_dtype=False)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_to_metric_frame_reproduces_the_report_table(weighted, case, weights):
    y_true, y_score, _, sf = case
    w = weights if weighted else None
    report = fm.fairness_report(y_true, y_score, sensitive_features=sf, threshold=0.45,
                                sample_weight=w)
    frame = report.to_metric_frame()
    assert isinstance(frame, flm.MetricFrame)
    pd.testing.assert_frame_equal(frame.by_group, report.by_group, check_exact=False, atol=1e-12,
                                  check_dtype=False)
    assert frame.overall["auc"] == pytest.approx(report.summary["overall_auc"], abs=1e-12)


def test_to_metric_frame_passes_metricframe_options_such_as_control_features(make_case):
    y_true, y_score, _, sf = make_case("K2")
    control = np.random.default_rng(4).choice(["site A", "site B"], size=len(y_true))
    frame = fm.fairness_report(y_true, y_score, sensitive_features=sf).to_metric_frame(
        control_features=control)
    assert frame.by_group.index.nlevels == 2
    assert frame.difference(method="to_overall").shape[0] == 2  # one row per site


def test_from_metric_frame_round_trip_gives_the_same_table_and_summary(case):
    y_true, y_score, _, sf = case
    report = fm.fairness_report(y_true, y_score, sensitive_features=sf)
    back = fm.FairnessReport.from_metric_frame(report.to_metric_frame(), threshold=0.5)
    pd.testing.assert_frame_equal(back.by_group, report.by_group, check_exact=False,
                                  atol=1e-12, check_dtype=False)
    pd.testing.assert_series_equal(back.summary, report.summary, check_exact=False, atol=1e-12)
    assert back.threshold == 0.5 and back.confidence_intervals is None


def test_from_metric_frame_reads_fairlearn_function_names_and_keeps_what_it_can(make_case):
    y_true, _, y_pred, sf = make_case("K3-strings")
    frame = flm.MetricFrame(metrics={"true_positive_rate": flm.true_positive_rate,
                                     "false_positive_rate": flm.false_positive_rate},
                            y_true=y_true, y_pred=y_pred, sensitive_features=sf)
    report = fm.FairnessReport.from_metric_frame(frame)
    assert list(report.by_group.columns) == ["tpr", "fpr"]
    kw = {"sensitive_features": sf}
    assert report.summary.to_dict() == pytest.approx({
        "equal_opportunity_difference": fm.equal_opportunity_difference(y_true, y_pred, **kw),
        "equalized_odds_difference": fm.equalized_odds_difference(y_true, y_pred, **kw),
        "equal_opportunity_ratio": fm.equal_opportunity_ratio(y_true, y_pred, **kw),
    }, abs=1e-12)
    assert report.threshold is None


def test_from_metric_frame_rejects_control_features_and_non_frames(make_case):
    y_true, y_score, _, sf = make_case("K2")
    frame = fm.fairness_report(y_true, y_score, sensitive_features=sf).to_metric_frame(
        control_features=np.arange(len(y_true)) % 2)
    with pytest.raises(ValueError, match="frame has control_features"):
        fm.FairnessReport.from_metric_frame(frame)
    with pytest.raises(TypeError, match="frame must be a fairlearn MetricFrame; got DataFrame"):
        fm.FairnessReport.from_metric_frame(pd.DataFrame())


def test_report_from_a_metric_frame_cannot_make_one_again(make_case):
    y_true, y_score, _, sf = make_case("K2")
    frame = fm.fairness_report(y_true, y_score, sensitive_features=sf).to_metric_frame()
    with pytest.raises(ValueError, match="holds no samples"):
        fm.FairnessReport.from_metric_frame(frame).to_metric_frame()


def test_stratified_bootstrap_intervals_are_as_wide_as_fairlearns(make_case):
    # fairlearn resamples all samples, fairnoise within each group: the same uncertainty.
    y_true, y_score, y_pred, sf = make_case("K2", n=2000, seed=3)
    ours = fm.fairness_report(y_true, y_score, sensitive_features=sf, n_boot=100,
                              random_state=0).confidence_intervals
    frame = flm.MetricFrame(metrics={"tpr": flm.true_positive_rate,
                                     "selection_rate": flm.selection_rate},
                            y_true=y_true, y_pred=y_pred, sensitive_features=sf,
                            n_boot=100, ci_quantiles=[0.025, 0.975], random_state=0)
    lower, upper = frame.difference_ci()
    for ours_name, theirs_name in [("equal_opportunity_difference", "tpr"),
                                   ("demographic_parity_difference", "selection_rate")]:
        width = ours.loc[ours_name, "upper"] - ours.loc[ours_name, "lower"]
        assert width == pytest.approx(upper[theirs_name] - lower[theirs_name], rel=0.3)


def test_undefined_rate_counts_as_zero_as_in_fairlearn():
    y = np.array([0, 0, 0, 1, 1, 0, 0])  # group "a" has no positives
    p = np.array([1, 0, 0, 1, 0, 1, 0])
    g = np.array(["a", "a", "a", "b", "b", "b", "b"])
    with pytest.warns(UndefinedMetricWarning):
        ours = fm.equal_opportunity_difference(y, p, sensitive_features=g)
    assert ours == flm.equal_opportunity_difference(y, p, sensitive_features=g)
