"""fairnoise.metrics.leakage_auc: a fresh probe, held-out scoring, marginal and conditional."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from fairnoise import metrics as fm


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


def test_leakage_with_held_out_set_rejects_unseen_groups_printing_plain_labels():
    Z = np.random.default_rng(9).normal(size=(20, 2))
    a = np.array([0, 1] * 10)
    with pytest.raises(ValueError, match=r"groups not present in sensitive_features: \[2\]\."):
        fm.leakage_auc(Z, a, Z_test=Z[:4], sensitive_features_test=np.array([0, 1, 2, 1]))


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
