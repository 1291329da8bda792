"""DebiasedNoiseTransformer inside real scikit-learn tooling."""

from __future__ import annotations

import pickle
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
from conftest import make_encoder
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from fairnoise import DebiasedNoiseTransformer
from fairnoise.encoders import CallableEncoder, TorchEncoder

FAST = dict(max_epochs=2, batch_size=64, random_state=0, validation_fraction=None)


def pipeline(**kw):
    return Pipeline([("noise", DebiasedNoiseTransformer(**{**FAST, **kw})),
                     ("clf", LogisticRegression(max_iter=500))])


# The estimator check suite, in feature mode, with no expected failures.
@parametrize_with_checks([
    DebiasedNoiseTransformer(max_epochs=2, random_state=0),
    DebiasedNoiseTransformer(edit="additive", objective="neg_ce", max_epochs=2, random_state=0),
])
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fit(X, y) without groups warns
        check(estimator)


def test_pipeline_on_images(images, encoder):
    X, y, a = images
    pred = pipeline(encoder=encoder).fit(X, y, noise__sensitive_features=a).predict(X)
    assert pred.shape == (len(X),)


def test_pipeline_on_features(features):
    X, y, a = features
    pipe = pipeline().fit(X, y, noise__sensitive_features=a)
    assert pipe.score(X, y) > 0.7


def test_pipeline_passes_groups_to_the_transformer(images, encoder):
    X, y, a = images
    pipe = pipeline(encoder=encoder).fit(X, y, noise__sensitive_features=a)
    direct = DebiasedNoiseTransformer(encoder=encoder, **FAST).fit(X, y, sensitive_features=a)
    np.testing.assert_array_equal(pipe["noise"].edit_.param, direct.edit_.param)


def test_grid_search_routes_groups_with_routing_off(images, encoder):
    X, y, a = images
    search = GridSearchCV(pipeline(encoder=encoder), {"clf__C": [0.1, 1.0]}, cv=2)
    search.fit(X, y, noise__sensitive_features=a)
    assert search.best_estimator_["noise"].classes_sensitive_.tolist() == [0, 1]


def test_metadata_routing_without_set_fit_request(images, encoder):
    X, y, a = images
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(pipeline(encoder=encoder), {"clf__C": [0.1, 1.0]}, cv=2)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # the groups must arrive
            search.fit(X, y, sensitive_features=a)
    assert search.best_estimator_["noise"].sa_probe_ is not None


class _StreamRouter(sklearn.base.BaseEstimator):
    """The smallest meta-estimator that routes partial_fit's metadata (no Pipeline)."""

    def __init__(self, estimator):
        self.estimator = estimator

    def partial_fit(self, X, y=None, **params):
        from sklearn.utils.metadata_routing import process_routing

        routed = process_routing(self, "partial_fit", **params)
        self.estimator.partial_fit(X, y, **routed.estimator.partial_fit)
        return self

    def get_metadata_routing(self):
        from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping

        return MetadataRouter(owner=type(self).__name__).add(
            estimator=self.estimator,
            method_mapping=MethodMapping().add(caller="partial_fit", callee="partial_fit"))


def test_partial_fit_requests_sensitive_features_through_routing(features):
    X, y, a = features
    dne = DebiasedNoiseTransformer(**FAST)
    assert dne.get_metadata_routing().partial_fit.requests == {"sensitive_features": True}
    with sklearn.config_context(enable_metadata_routing=True):
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # the groups must arrive
            _StreamRouter(dne).partial_fit(X, y, sensitive_features=a)
    assert dne.classes_sensitive_.tolist() == [0, 1] and dne.n_iter_ == 1


def test_grid_search_over_noise_and_classifier_parameters(features):
    X, y, a = features
    grid = {"noise__lambda_reg": [0.01, 0.1], "noise__objective": ["mean_gap", "confusion"],
            "clf__C": [0.1, 1.0]}
    search = GridSearchCV(pipeline(), grid, cv=2).fit(X, y, noise__sensitive_features=a)
    assert len(search.cv_results_["params"]) == 8
    assert search.best_estimator_["noise"].lambda_reg in (0.01, 0.1)


def test_clone_keeps_parameters_and_shares_the_encoder_wrapper(encoder):
    for wrapper in (TorchEncoder(encoder), CallableEncoder(lambda b: b.reshape(len(b), -1))):
        t = DebiasedNoiseTransformer(encoder=wrapper, lambda_reg=0.5)
        c = clone(t)
        assert c.encoder is wrapper and c.lambda_reg == 0.5


def test_clone_of_a_plain_module_shares_it_and_copies_the_rest(encoder):
    probe = LogisticRegression(C=3.0)
    t = DebiasedNoiseTransformer(encoder=encoder, sa_probe=probe)
    c = clone(t)
    assert c.encoder is encoder
    assert c.sa_probe is not probe and c.sa_probe.C == 3.0


@pytest.mark.parametrize("dump, load", [
    (pickle.dumps, pickle.loads),
    (lambda obj: obj, lambda obj: joblib.load(_joblib_roundtrip(obj))),
])
def test_persistence_round_trip_gives_identical_transforms(images, encoder, dump, load):
    X, y, a = images
    pipe = pipeline(encoder=encoder).fit(X, y, noise__sensitive_features=a)
    restored = load(dump(pipe))
    np.testing.assert_array_equal(restored["noise"].transform(X), pipe["noise"].transform(X))
    np.testing.assert_array_equal(restored.predict_proba(X), pipe.predict_proba(X))


def _joblib_roundtrip(obj):
    import io

    buf = io.BytesIO()
    joblib.dump(obj, buf)
    buf.seek(0)
    return buf


def test_dataframe_input_and_pandas_output(features):
    X, y, a = features
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    t = DebiasedNoiseTransformer(**FAST).set_output(transform="pandas")
    out = t.fit(df, y, sensitive_features=a).transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(df.columns)
    assert list(t.get_feature_names_out()) == list(df.columns)


def test_feature_names_for_embeddings(images, encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, **FAST).fit(X, y, sensitive_features=a)
    names = t.get_feature_names_out()
    assert len(names) == 64 and names[0] == "debiasednoisetransformer0"


def test_images_output_has_no_feature_names(images, encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, output="images", **FAST)
    with pytest.raises(ValueError, match="no feature names"):
        t.fit(X, y, sensitive_features=a).get_feature_names_out()


def test_shared_encoder_between_clones_gives_the_same_fit(images):
    X, y, a = images
    wrapper = TorchEncoder(make_encoder(), device="cpu")
    t = DebiasedNoiseTransformer(encoder=wrapper, **FAST)
    n1 = clone(t).fit(X, y, sensitive_features=a).edit_.param
    n2 = clone(t).fit(X, y, sensitive_features=a).edit_.param
    np.testing.assert_array_equal(n1, n2)
