"""Specification tests for fairnoise.metrics."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from fairlearn import metrics as flm
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from fairnoise import metrics as fm

# --------------------------------------------------------------------------------------
# Agreement with fairlearn
# --------------------------------------------------------------------------------------


def _random_case(kind, n=400, seed=0):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, size=n)
    y_score = np.clip(0.3 * y_true + rng.uniform(size=n) * 0.7, 0, 1)
    y_pred = (y_score >= 0.5).astype(int)
    if kind == "K2":
        sf = rng.integers(0, 2, size=n)
    elif kind == "K3-strings":
        sf = rng.choice(["left", "middle", "right"], size=n)
    elif kind == "series":
        sf = pd.Series(rng.choice(["F", "M"], size=n), name="sex")
    elif kind == "2d-array":
        sf = np.column_stack([rng.integers(0, 2, size=n), rng.integers(0, 3, size=n)])
    else:  # intersectional DataFrame
        sf = pd.DataFrame(
            {"sex": rng.choice(["F", "M"], size=n), "age": rng.choice(["<60", ">=60"], size=n)}
        )
    return y_true, y_score, y_pred, sf


CASES = ["K2", "K3-strings", "series", "2d-array", "dataframe"]


@pytest.mark.parametrize("kind", CASES)
def test_rate_metrics_match_fairlearn(kind):
    y_true, _, y_pred, sf = _random_case(kind)
    pairs = [
        (fm.equalized_odds_difference, flm.equalized_odds_difference),
        (fm.demographic_parity_difference, flm.demographic_parity_difference),
        (fm.disparate_impact_ratio, flm.demographic_parity_ratio),
        (fm.equal_opportunity_difference, flm.equal_opportunity_difference),
    ]
    for ours, theirs in pairs:
        expected = theirs(y_true, y_pred, sensitive_features=sf)
        assert ours(y_true, y_pred, sensitive_features=sf) == pytest.approx(expected, abs=1e-9)
    dpr = flm.demographic_parity_ratio(y_true, y_pred, sensitive_features=sf)
    assert fm.disparate_impact_distance(y_true, y_pred, sensitive_features=sf) == pytest.approx(
        abs(1 - dpr), abs=1e-9
    )


@pytest.mark.parametrize("kind", CASES)
def test_rates_by_group_match_fairlearn_metricframe(kind):
    y_true, _, y_pred, sf = _random_case(kind)
    frame = flm.MetricFrame(
        metrics={"tpr": flm.true_positive_rate, "tnr": flm.true_negative_rate},
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=sf,
    )
    diff, ratio = frame.difference(), frame.ratio()
    kw = {"sensitive_features": sf}
    assert fm.equal_opportunity_difference(y_true, y_pred, **kw) == pytest.approx(
        diff["tpr"], abs=1e-9
    )
    assert fm.true_negative_rate_difference(y_true, y_pred, **kw) == pytest.approx(
        diff["tnr"], abs=1e-9
    )
    assert fm.equal_opportunity_ratio(y_true, y_pred, **kw) == pytest.approx(ratio["tpr"], abs=1e-9)


@pytest.mark.parametrize("kind", CASES)
def test_group_auc_and_accuracy_match_fairlearn_metricframe(kind):
    y_true, y_score, y_pred, sf = _random_case(kind)
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
        auc_frame.group_min(), abs=1e-9
    )


def test_intersectional_groups_are_indexed_by_column_names():
    y_true, y_score, _, sf = _random_case("dataframe")
    index = fm.group_auc(y_true, y_score, sensitive_features=sf).index
    assert list(index.names) == ["sex", "age"]
    assert set(index) == {("F", "<60"), ("F", ">=60"), ("M", "<60"), ("M", ">=60")}


# --------------------------------------------------------------------------------------
# Hand-computed edge cases
# --------------------------------------------------------------------------------------

# Group "a" has no positives; group "b": TPR 1/2, FPR 1/2.
Y_NO_POS = np.array([0, 0, 0, 1, 1, 0, 0])
P_NO_POS = np.array([1, 0, 0, 1, 0, 1, 0])
G_NO_POS = np.array(["a", "a", "a", "b", "b", "b", "b"])


def test_undefined_tpr_counts_as_zero_with_warning_like_fairlearn():
    with pytest.warns(UndefinedMetricWarning, match=r"True positive rate is undefined.*'a'"):
        value = fm.equal_opportunity_difference(Y_NO_POS, P_NO_POS, sensitive_features=G_NO_POS)
    assert value == 0.5
    expected = flm.equal_opportunity_difference(Y_NO_POS, P_NO_POS, sensitive_features=G_NO_POS)
    assert value == pytest.approx(expected)


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


def test_boolean_labels_are_accepted():
    y = np.array([True, False, True, False])
    p = np.array([True, False, False, False])
    assert fm.equal_opportunity_difference(y, p, sensitive_features=[0, 0, 1, 1]) == 1.0


# --------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------


def test_sensitive_features_length_mismatch_is_rejected():
    with pytest.raises(ValueError, match="sensitive_features has 3 entries but y_true has 4"):
        fm.equalized_odds_difference([0, 1, 0, 1], [0, 1, 1, 1], sensitive_features=[0, 1, 0])


def test_missing_group_labels_are_rejected():
    with pytest.raises(ValueError, match=r"sensitive_features contains missing values .* in 1 "):
        fm.demographic_parity_difference(
            [0, 1, 0, 1], [0, 1, 1, 1], sensitive_features=["a", None, "b", "b"]
        )
    with pytest.raises(ValueError, match="missing value"):
        fm.group_auc([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], sensitive_features=[0, np.nan, 1, 1])


def test_non_binary_y_true_is_rejected():
    with pytest.raises(ValueError, match=r"y_true must contain binary labels 0/1; got values"):
        fm.equal_opportunity_difference([0, 1, 2, 1], [0, 1, 1, 1], sensitive_features=[0, 0, 1, 1])


def test_scores_passed_as_predictions_get_a_thresholding_hint():
    with pytest.raises(ValueError, match=r"y_pred must contain binary labels.*Threshold"):
        fm.equalized_odds_difference(
            [0, 1, 0, 1], [0.2, 0.7, 0.1, 0.9], sensitive_features=[0, 0, 1, 1]
        )


def test_non_finite_scores_are_rejected():
    with pytest.raises(ValueError, match="y_score contains NaN or infinite values"):
        fm.auc_gap([0, 1, 0, 1], [0.2, np.inf, 0.1, 0.9], sensitive_features=[0, 0, 1, 1])


def test_single_group_is_rejected_for_gaps():
    with pytest.raises(ValueError, match="single group .* needed to compare"):
        fm.demographic_parity_difference([0, 1], [0, 1], sensitive_features=["a", "a"])


def test_three_dimensional_sensitive_features_are_rejected():
    with pytest.raises(ValueError, match="sensitive_features must be 1-D .* or 2-D"):
        fm.demographic_parity_difference([0, 1], [0, 1], sensitive_features=np.zeros((2, 1, 1)))


def test_invalid_zero_division_is_rejected():
    with pytest.raises(ValueError, match="zero_division must be 'warn', 0.0, 1.0 or np.nan"):
        fm.equal_opportunity_difference(
            [0, 1, 0, 1], [0, 1, 1, 1], sensitive_features=[0, 0, 1, 1], zero_division=0.5
        )


# --------------------------------------------------------------------------------------
# Leakage
# --------------------------------------------------------------------------------------


def test_leakage_of_random_embeddings_is_near_chance():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, size=600)
    Z = rng.normal(size=(600, 8))
    assert abs(fm.leakage_auc(Z, a) - 0.5) < 0.07


def test_leakage_is_near_one_when_a_column_equals_the_group():
    rng = np.random.default_rng(1)
    a = rng.choice(["F", "M"], size=300)
    Z = rng.normal(size=(300, 8))
    Z[:, 3] = a == "M"
    assert fm.leakage_auc(Z, a) > 0.99
    assert fm.leakage_auc(Z, a, probe="mlp") > 0.99


def test_leakage_for_three_groups_is_macro_one_vs_rest_auc():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 3, size=600)
    Z = rng.normal(size=(600, 4)) + 0.7 * np.eye(3, 4)[a]
    Z_train, Z_test, a_train, a_test = Z[:300], Z[300:], a[:300], a[300:]
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(Z_train, a_train)
    expected = roc_auc_score(a_test, probe.predict_proba(Z_test), multi_class="ovr")
    value = fm.leakage_auc(Z_train, a_train, Z_test=Z_test, sensitive_features_test=a_test)
    assert value == pytest.approx(expected, abs=1e-12)
    assert 0.6 < value < 0.95


def test_conditional_leakage_is_near_chance_when_embeddings_only_encode_y():
    rng = np.random.default_rng(3)
    n = 1200
    y = rng.integers(0, 2, size=n)
    a = np.where(rng.uniform(size=n) < 0.85, y, 1 - y)  # a strongly correlated with y
    Z = rng.normal(size=(n, 6))
    Z[:, 0] += 3 * y
    assert fm.leakage_auc(Z, a) > 0.75
    assert abs(fm.leakage_auc(Z, a, y=y) - 0.5) < 0.08


def test_conditional_leakage_detects_group_information_beyond_y():
    rng = np.random.default_rng(4)
    n = 800
    y = rng.integers(0, 2, size=n)
    a = rng.integers(0, 2, size=n)
    Z = rng.normal(size=(n, 4))
    Z[:, 0] += 3 * y
    Z[:, 1] += 3 * a
    assert fm.leakage_auc(Z, a, y=y) > 0.95


def test_leakage_is_deterministic_for_fixed_random_state():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 2, size=200)
    y = rng.integers(0, 2, size=200)
    Z = rng.normal(size=(200, 5)) + a[:, None] * 0.3
    for kwargs in ({}, {"y": y}, {"probe": "mlp"}):
        first = fm.leakage_auc(Z, a, random_state=7, **kwargs)
        assert fm.leakage_auc(Z, a, random_state=7, **kwargs) == first
    assert fm.leakage_auc(Z, a, random_state=7) != fm.leakage_auc(Z, a, random_state=8)


def test_conditional_leakage_skips_class_with_a_single_group():
    rng = np.random.default_rng(6)
    y = np.repeat([0, 1], 200)
    a = np.concatenate([rng.integers(0, 2, size=200), np.zeros(200, dtype=int)])
    Z = rng.normal(size=(400, 3))
    Z[:, 0] += 3 * a
    with pytest.warns(UserWarning, match="Class y=1 is skipped"):
        value = fm.leakage_auc(Z, a, y=y)
    assert value > 0.95  # computed on class 0 only


def test_conditional_leakage_without_any_usable_class_is_rejected():
    a = np.array([0, 0, 0, 1, 1, 1])
    y = np.array([0, 0, 0, 1, 1, 1])
    Z = np.arange(12.0).reshape(6, 2)
    with pytest.warns(UserWarning, match="skipped"):
        with pytest.raises(ValueError, match="Conditional leakage is undefined"):
            fm.leakage_auc(Z, a, y=y)


def test_leakage_drops_singleton_groups_with_warning():
    rng = np.random.default_rng(7)
    a = np.array([0] * 50 + [1] * 50 + [2])
    Z = rng.normal(size=(101, 3)) + np.eye(3)[a] * 3
    with pytest.warns(UserWarning, match="1 sample"):
        assert fm.leakage_auc(Z, a) > 0.9


def test_leakage_accepts_a_classifier_with_decision_function_only():
    rng = np.random.default_rng(8)
    a = rng.integers(0, 2, size=300)
    Z = rng.normal(size=(300, 3))
    Z[:, 0] += 2 * a
    assert fm.leakage_auc(Z, a, probe=LinearSVC()) > 0.8


def test_leakage_with_held_out_set_rejects_unseen_groups():
    Z = np.random.default_rng(9).normal(size=(20, 2))
    a = np.array([0, 1] * 10)
    with pytest.raises(ValueError, match=r"groups not present in sensitive_features: \[2\]"):
        fm.leakage_auc(Z, a, Z_test=Z[:4], sensitive_features_test=[0, 1, 2, 1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"Z_test": np.zeros((4, 3))}, "Z_test has 3 features but Z has 2"),
        ({"Z_test": np.zeros((4, 2))}, "sensitive_features_test is required"),
        ({"sensitive_features_test": [0, 1]}, "only used together with Z_test"),
        ({"test_size": 1.5}, r"test_size must be a float in \(0, 1\)"),
        ({"probe": "forest"}, "probe must be 'linear', 'mlp' or a classifier"),
        (
            {"Z_test": np.zeros((4, 2)), "sensitive_features_test": [0, 1, 0, 1], "y": [0, 1] * 10},
            "Pass y and y_test together",
        ),
    ],
)
def test_leakage_rejects_inconsistent_arguments(kwargs, message):
    Z = np.random.default_rng(10).normal(size=(20, 2))
    a = np.array([0, 1] * 10)
    with pytest.raises(ValueError, match=message):
        fm.leakage_auc(Z, a, **kwargs)


def test_leakage_needs_two_groups_with_enough_samples():
    Z = np.zeros((5, 2))
    with pytest.warns(UserWarning, match="1 sample"):
        with pytest.raises(ValueError, match="at least two groups with two or more samples"):
            fm.leakage_auc(Z, [0, 0, 0, 0, 1])
    with pytest.raises(ValueError, match="sensitive_features_test holds a single group"):
        fm.leakage_auc(Z, [0, 1, 0, 1, 0], Z_test=Z, sensitive_features_test=[1] * 5)


def test_leakage_rejects_group_length_mismatch():
    with pytest.raises(ValueError, match="sensitive_features has 3 entries but Z has 4 samples"):
        fm.leakage_auc(np.zeros((4, 2)), [0, 1, 0])


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def test_report_table_and_summary_agree_with_the_metric_functions():
    y_true, y_score, _, sf = _random_case("K3-strings")
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
        "n",
        "prevalence",
        "auc",
        "tpr",
        "tnr",
        "fpr",
        "selection_rate",
        "accuracy",
    ]
    assert table["n"].sum() == len(y_true)
    pd.testing.assert_series_equal(
        table["auc"], fm.group_auc(y_true, y_score, **kw), check_names=False
    )
    pd.testing.assert_series_equal(
        table["accuracy"], fm.group_accuracy(y_true, y_pred, **kw), check_names=False
    )
    assert report.confidence_intervals is None


def test_report_bootstrap_intervals_are_deterministic_and_bracket_the_estimate():
    y_true, y_score, _, sf = _random_case("K2", n=300)
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


def test_report_markdown_renders_intersectional_groups_and_intervals():
    y_true, y_score, _, sf = _random_case("dataframe", n=200)
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


# --------------------------------------------------------------------------------------
# Scorers
# --------------------------------------------------------------------------------------


def _scorer_data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, size=n)
    X = rng.normal(size=(n, 4))
    X[:, 1] += 1.5 * a
    y = (X[:, 0] + 0.8 * a + rng.normal(scale=0.8, size=n) > 0.5).astype(int)
    return X, y, a


def test_fairness_scorer_thresholds_probabilities_and_negates_gap():
    X, y, a = _scorer_data()
    clf = LogisticRegression().fit(X, y)
    pred = (clf.predict_proba(X)[:, 1] >= 0.3).astype(int)
    scorer = fm.make_fairness_scorer(fm.equalized_odds_difference, threshold=0.3)
    with sklearn.config_context(enable_metadata_routing=True):
        value = scorer(clf, X, y, sensitive_features=a)
    assert value == -fm.equalized_odds_difference(y, pred, sensitive_features=a)
    assert repr(scorer) == (
        "make_scorer(equalized_odds_difference, greater_is_better=False, "
        "response_method='predict_proba', threshold=0.3)"
    )


def test_score_metric_scorer_gets_raw_probabilities():
    X, y, a = _scorer_data()
    clf = LogisticRegression().fit(X, y)
    with sklearn.config_context(enable_metadata_routing=True):
        value = fm.worst_group_auc_scorer(clf, X, y, sensitive_features=a)
    assert value == fm.worst_group_auc(y, clf.predict_proba(X)[:, 1], sensitive_features=a)


def test_predict_scorer_passes_labels_unchanged():
    X, y, a = _scorer_data()
    clf = LogisticRegression().fit(X, y)
    scorer = fm.make_fairness_scorer(
        fm.demographic_parity_difference, response_method="predict", threshold=None
    )
    with sklearn.config_context(enable_metadata_routing=True):
        value = scorer(clf, X, y, sensitive_features=a)
    assert value == -fm.demographic_parity_difference(y, clf.predict(X), sensitive_features=a)


def test_utility_fairness_scorer_is_auc_minus_alpha_times_gap():
    X, y, a = _scorer_data()
    clf = LogisticRegression().fit(X, y)
    proba = clf.predict_proba(X)[:, 1]
    scorer = fm.make_utility_fairness_scorer(alpha=2.0, metric=fm.equal_opportunity_difference)
    with sklearn.config_context(enable_metadata_routing=True):
        value = scorer(clf, X, y, sensitive_features=a)
    gap = fm.equal_opportunity_difference(y, (proba >= 0.5).astype(int), sensitive_features=a)
    assert value == pytest.approx(roc_auc_score(y, proba) - 2.0 * gap, abs=1e-12)


def test_scorers_route_sensitive_features_in_grid_search():
    X, y, a = _scorer_data(n=400)
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    scoring = {
        "auc": "roc_auc",
        "eod": fm.equalized_odds_scorer,
        "eo": fm.equal_opportunity_scorer,
        "worst_auc": fm.worst_group_auc_scorer,
        "auc_gap": fm.auc_gap_scorer,
        "utility": fm.make_utility_fairness_scorer(alpha=1.0),
    }
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    grid = {"logisticregression__C": [0.01, 1.0]}
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(pipe, grid, scoring=scoring, refit="utility", cv=cv)
        search.fit(X, y, sensitive_features=a)
    results = search.cv_results_
    assert search.best_index_ == int(np.argmax(results["mean_test_utility"]))
    assert (results["mean_test_eod"] <= 0).all() and (results["mean_test_worst_auc"] > 0.5).all()
    # The routed groups are the fold's own: recompute split 0 of candidate 0 by hand.
    train, test = next(cv.split(X, y))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01)).fit(X[train], y[train])
    pred = (model.predict_proba(X[test])[:, 1] >= 0.5).astype(int)
    expected = -fm.equalized_odds_difference(y[test], pred, sensitive_features=a[test])
    assert results["split0_test_eod"][0] == pytest.approx(expected, abs=1e-12)


def test_scorer_without_routed_groups_explains_how_to_route_them():
    X, y, _ = _scorer_data()
    clf = LogisticRegression().fit(X, y)
    with pytest.raises(ValueError, match="enable_metadata_routing=True"):
        fm.equalized_odds_scorer(clf, X, y)


def test_scorer_survives_pickling():
    X, y, a = _scorer_data()
    clf = LogisticRegression().fit(X, y)
    scorer = pickle.loads(pickle.dumps(fm.make_utility_fairness_scorer(alpha=0.5)))
    with sklearn.config_context(enable_metadata_routing=True):
        assert np.isfinite(scorer(clf, X, y, sensitive_features=a))


def test_scorer_factories_validate_arguments():
    with pytest.raises(ValueError, match="threshold must be None with response_method='predict'"):
        fm.make_fairness_scorer(fm.equalized_odds_difference, response_method="predict")
    with pytest.raises(ValueError, match="response_method must be one of"):
        fm.make_fairness_scorer(fm.equalized_odds_difference, response_method="proba")
    with pytest.raises(TypeError, match="metric must be callable"):
        fm.make_fairness_scorer("equalized_odds_difference")
    with pytest.raises(ValueError, match="alpha must be a non-negative number"):
        fm.make_utility_fairness_scorer(alpha=-1)
    with pytest.raises(ValueError, match="threshold must be a number or None"):
        fm.make_fairness_scorer(fm.equalized_odds_difference, threshold="high")
    with pytest.raises(ValueError, match="AUC needs scores"):
        fm.make_utility_fairness_scorer(response_method="predict")
