"""fairnoise.metrics.fairness_report: the table, the summary, bootstrap intervals, Markdown."""

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from fairnoise import metrics as fm


def test_report_table_and_summary_agree_with_the_metric_functions(make_case):
    y_true, y_score, _, sf = make_case("K3-strings")
    report = fm.fairness_report(y_true, y_score, sensitive_features=sf, threshold=0.4)
    y_pred = (y_score >= 0.4).astype(int)
    kw = {"sensitive_features": sf}
    expected = {
        "equal_opportunity_difference": fm.equal_opportunity_difference(y_true, y_pred, **kw),
        "true_negative_rate_difference": fm.true_negative_rate_difference(y_true, y_pred, **kw),
        "equalized_odds_difference": fm.equalized_odds_difference(y_true, y_pred, **kw),
        "demographic_parity_difference": fm.demographic_parity_difference(y_true, y_pred, **kw),
        "disparate_impact_ratio": fm.disparate_impact_ratio(y_true, y_pred, **kw),
        "disparate_impact_distance": fm.disparate_impact_distance(y_true, y_pred, **kw),
        "equal_opportunity_ratio": fm.equal_opportunity_ratio(y_true, y_pred, **kw),
        "auc_gap": fm.auc_gap(y_true, y_score, **kw),
        "worst_group_auc": fm.worst_group_auc(y_true, y_score, **kw),
        "overall_auc": roc_auc_score(y_true, y_score),
    }
    pd.testing.assert_series_equal(
        report.summary, pd.Series(expected, name="value"), check_exact=False, atol=1e-12
    )
    table = report.by_group
    assert list(table.columns) == [
        "n", "prevalence", "auc", "tpr", "tnr", "fpr", "selection_rate", "accuracy",
    ]
    assert table["n"].sum() == len(y_true)
    pd.testing.assert_series_equal(
        table["auc"], fm.group_auc(y_true, y_score, **kw), check_names=False
    )
    pd.testing.assert_series_equal(
        table["accuracy"], fm.group_accuracy(y_true, y_pred, **kw), check_names=False
    )
    assert report.confidence_intervals is None


def test_weighted_report_agrees_with_the_weighted_metric_functions(make_case, weights):
    y_true, y_score, y_pred, sf = make_case("dataframe")
    report = fm.fairness_report(y_true, y_score, sensitive_features=sf, sample_weight=weights)
    kw = {"sensitive_features": sf, "sample_weight": weights}
    assert report.summary["equalized_odds_difference"] == pytest.approx(
        fm.equalized_odds_difference(y_true, y_pred, **kw), abs=1e-12)
    assert report.summary["worst_group_auc"] == pytest.approx(
        fm.worst_group_auc(y_true, y_score, **kw), abs=1e-12)
    assert report.summary["overall_auc"] == pytest.approx(
        roc_auc_score(y_true, y_score, sample_weight=weights), abs=1e-12)
    assert report.by_group["n"].sum() == len(y_true)  # n counts samples, not weight


def test_report_bootstrap_intervals_are_deterministic_and_bracket_the_estimate(make_case):
    y_true, y_score, _, sf = make_case("K2", n=300)
    kwargs = {"sensitive_features": sf, "n_boot": 200, "random_state": 0}
    first = fm.fairness_report(y_true, y_score, **kwargs)
    second = fm.fairness_report(y_true, y_score, **kwargs)
    pd.testing.assert_frame_equal(first.confidence_intervals, second.confidence_intervals)
    ci = first.confidence_intervals
    assert list(ci.columns) == ["lower", "upper"]
    assert list(ci.index) == list(first.summary.index)
    assert (ci["lower"] <= first.summary + 1e-12).all()
    assert (first.summary <= ci["upper"] + 1e-12).all()
    narrow = fm.fairness_report(y_true, y_score, confidence_level=0.5, **kwargs)
    assert (narrow.confidence_intervals["upper"] <= ci["upper"] + 1e-12).all()


def test_report_intervals_are_reproducible_by_default_like_leakage(make_case):
    y_true, y_score, _, sf = make_case("K2", n=200)
    first = fm.fairness_report(y_true, y_score, sensitive_features=sf, n_boot=30)
    second = fm.fairness_report(y_true, y_score, sensitive_features=sf, n_boot=30)
    pd.testing.assert_frame_equal(first.confidence_intervals, second.confidence_intervals)


def test_report_markdown_renders_intersectional_groups_and_intervals(make_case):
    y_true, y_score, _, sf = make_case("dataframe", n=200)
    report = fm.fairness_report(y_true, y_score, sensitive_features=sf, n_boot=20, random_state=0)
    text = report.to_markdown(digits=2)
    assert text.splitlines()[0].startswith("| sex | age | n | prevalence | auc |")
    assert "| F | <60 |" in text
    assert "| metric | value | lower | upper |" in text


def test_report_rejects_bad_bootstrap_settings():
    y, s, g = [0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], [0, 0, 1, 1]
    with pytest.raises(ValueError, match="n_boot must be a non-negative integer"):
        fm.fairness_report(y, s, sensitive_features=g, n_boot=-1)
    with pytest.raises(ValueError, match=r"confidence_level must be a float in \(0, 1\)"):
        fm.fairness_report(y, s, sensitive_features=g, confidence_level=95)
    with pytest.raises(ValueError, match="threshold must be a number"):
        fm.fairness_report(y, s, sensitive_features=g, threshold="0.5")
