"""fairnoise.metrics scorers: routed groups, thresholds, and a loud failure without groups."""

import pickle
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from fairnoise import DebiasedNoiseTransformer
from fairnoise import metrics as fm

READY_MADE = [fm.equalized_odds_scorer, fm.equal_opportunity_scorer, fm.worst_group_auc_scorer,
              fm.auc_gap_scorer]


def _scorer_data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, size=n)
    X = rng.normal(size=(n, 4))
    X[:, 1] += 1.5 * a
    y = (X[:, 0] + 0.8 * a + rng.normal(scale=0.8, size=n) > 0.5).astype(int)
    return X, y, a


class _CountingLogisticRegression(LogisticRegression):
    """LogisticRegression that counts its fits (for how early a search stops)."""

    fits = 0

    def fit(self, X, y, sample_weight=None):
        type(self).fits += 1
        return super().fit(X, y, sample_weight=sample_weight)


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


@pytest.mark.parametrize("scorer", [*READY_MADE, fm.make_utility_fairness_scorer(),
                                    fm.make_fairness_scorer(fm.demographic_parity_ratio)])
def test_scorers_request_sensitive_features_through_routing(scorer):
    assert scorer.get_metadata_routing().score.requests == {"sensitive_features": True}


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


def test_scorer_weighs_samples_when_it_requests_sample_weight():
    X, y, a = _scorer_data()
    w = np.random.default_rng(1).integers(1, 4, size=len(y)).astype(float)
    cv = KFold(2)
    scorer = fm.make_fairness_scorer(fm.equalized_odds_difference)
    with sklearn.config_context(enable_metadata_routing=True):
        scorer.set_score_request(sensitive_features=True, sample_weight=True)
        clf = LogisticRegression().set_fit_request(sample_weight=False)
        scores = cross_validate(clf, X, y, scoring=scorer, cv=cv,
                                params={"sensitive_features": a, "sample_weight": w})
    train, test = next(cv.split(X))
    proba = LogisticRegression().fit(X[train], y[train]).predict_proba(X[test])[:, 1]
    pred = (proba >= 0.5).astype(int)
    expected = fm.equalized_odds_difference(y[test], pred, sensitive_features=a[test],
                                            sample_weight=w[test])
    assert scores["test_score"][0] == pytest.approx(-expected, abs=1e-12)


@pytest.mark.parametrize("error_score", [np.nan, 0.0])
@pytest.mark.parametrize("multimetric", [False, True], ids=["one scorer", "dict of scorers"])
def test_search_without_routing_stops_at_the_first_score_whatever_error_score(error_score,
                                                                              multimetric):
    X, y, a = _scorer_data()
    scoring = ({"auc": "roc_auc", "eod": fm.equalized_odds_scorer} if multimetric
               else fm.equalized_odds_scorer)
    search = GridSearchCV(_CountingLogisticRegression(), {"C": [0.01, 0.1, 1.0]}, cv=5,
                          scoring=scoring, refit=False, error_score=error_score)
    _CountingLogisticRegression.fits = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Scoring failed" warning either
        with pytest.raises(fm.SensitiveFeaturesNotRoutedError,
                           match=r"routing, which is off.*enable_metadata_routing=True"):
            search.fit(X, y)
    assert _CountingLogisticRegression.fits == 1
    assert not hasattr(search, "best_params_")


def test_debiasing_search_without_routing_fails_instead_of_scoring_nan():
    # The case of the report: groups reach the edit by step name, never the scorer.
    X, y, a = _scorer_data(n=200)
    pipe = Pipeline([("noise", DebiasedNoiseTransformer(max_epochs=1, random_state=0)),
                     ("clf", LogisticRegression())])
    search = GridSearchCV(pipe, {"clf__C": [0.1, 1.0]}, cv=2, refit=False,
                          scoring={"auc": "roc_auc", "eod": fm.equalized_odds_scorer})
    with pytest.raises(fm.SensitiveFeaturesNotRoutedError, match="sensitive_features=a"):
        search.fit(X, y, noise__sensitive_features=a)


def test_search_with_routing_but_no_groups_says_to_pass_them():
    X, y, _ = _scorer_data()
    with sklearn.config_context(enable_metadata_routing=True):
        with pytest.raises(fm.SensitiveFeaturesNotRoutedError, match="routing is on, but the "
                                                                     "groups did not come"):
            cross_validate(LogisticRegression(), X, y, scoring=fm.auc_gap_scorer, cv=2,
                           error_score=np.nan)


def test_scorer_called_directly_without_groups_raises_the_same_error():
    X, y, _ = _scorer_data()
    clf = LogisticRegression().fit(X, y)
    with pytest.raises(fm.SensitiveFeaturesNotRoutedError,
                       match=r"scorer\(estimator, X, y, sensitive_features=a\)"):
        fm.equalized_odds_scorer(clf, X, y)


def test_not_routed_error_is_not_an_exception_that_error_score_swallows():
    assert not issubclass(fm.SensitiveFeaturesNotRoutedError, Exception)


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


def _named(y):
    return np.array(["benign", "malignant"])[y]


@pytest.mark.parametrize("scorer", [*READY_MADE, fm.make_utility_fairness_scorer(alpha=0.5)])
def test_string_labels_score_as_their_zero_one_codes(scorer):
    # scikit-learn's convention: of two labels the larger is classes_[-1], the positive
    X, y, a = _scorer_data()
    coded, named = LogisticRegression().fit(X, y), LogisticRegression().fit(X, _named(y))
    with sklearn.config_context(enable_metadata_routing=True):
        assert scorer(named, X, _named(y), sensitive_features=a) == pytest.approx(
            scorer(coded, X, y, sensitive_features=a), abs=1e-12)


def test_pos_label_names_the_positive_class_and_its_response_is_scored():
    X, y, a = _scorer_data()
    clf = LogisticRegression().fit(X, _named(y))
    scorer = fm.make_fairness_scorer(fm.equalized_odds_difference, pos_label="benign")
    assert repr(scorer).endswith("threshold=0.5, pos_label=benign)")  # scikit-learn's repr
    benign = clf.predict_proba(X)[:, 0] >= 0.5
    expected = -fm.equalized_odds_difference(1 - y, benign.astype(int), sensitive_features=a)
    utility = fm.make_utility_fairness_scorer(alpha=1.0, pos_label="benign")
    with sklearn.config_context(enable_metadata_routing=True):
        assert scorer(clf, X, _named(y), sensitive_features=a) == expected
        assert utility(clf, X, _named(y), sensitive_features=a) == pytest.approx(
            roc_auc_score(1 - y, clf.predict_proba(X)[:, 0]) + expected, abs=1e-12)


def test_predicted_string_labels_are_compared_with_the_positive_class():
    X, y, a = _scorer_data()
    clf = LogisticRegression().fit(X, _named(y))
    scorer = fm.make_fairness_scorer(fm.demographic_parity_difference,
                                     response_method="predict", threshold=None)
    predicted = (clf.predict(X) == "malignant").astype(int)
    with sklearn.config_context(enable_metadata_routing=True):
        assert scorer(clf, X, _named(y), sensitive_features=a) == (
            -fm.demographic_parity_difference(y, predicted, sensitive_features=a))


def test_labels_without_a_clear_positive_class_ask_for_pos_label():
    X, y, a = _scorer_data()
    clf = LogisticRegression().fit(X, _named(y))
    one_class = np.full(len(y), "benign")  # a fold with only one of the two labels
    with sklearn.config_context(enable_metadata_routing=True):
        with pytest.raises(ValueError, match=r"labels 'benign'.*pos_label="):
            fm.equalized_odds_scorer(clf, X, one_class, sensitive_features=a)
        named = fm.make_fairness_scorer(fm.equalized_odds_difference, pos_label="malignant")
        assert np.isfinite(named(clf, X, one_class, sensitive_features=a))
