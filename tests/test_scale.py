"""Tuning at scale: cached pipelines, a Dask cluster, and transform invariants."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_encoder, make_marker_images
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from fairnoise import DebiasedNoiseTransformer, GeZONoiseTransformer

FAST = dict(max_epochs=2, batch_size=64, random_state=0, validation_fraction=None)


class CountingEncoder(torch.nn.Module):
    """The conftest CNN, counting the images it sees in a class attribute (not pickled)."""

    images_seen = 0

    def __init__(self):
        super().__init__()
        self.net = make_encoder()

    def forward(self, x):
        type(self).images_seen += len(x)
        return self.net(x)


def test_pipeline_memory_fits_the_noise_once_per_split(tmp_path, images):
    X, y, a = images
    enc = CountingEncoder()
    pipe = Pipeline([("noise", DebiasedNoiseTransformer(encoder=enc, **FAST)),
                     ("clf", LogisticRegression(max_iter=500))], memory=str(tmp_path))
    grid = {"clf__C": [0.01, 0.1, 1.0, 10.0]}
    CountingEncoder.images_seen = 0
    GridSearchCV(pipe, grid, cv=2, refit=False).fit(X, y, noise__sensitive_features=a)
    cached = CountingEncoder.images_seen

    CountingEncoder.images_seen = 0
    uncached = pipe.set_params(memory=None)
    GridSearchCV(uncached, grid, cv=2, refit=False).fit(X, y, noise__sensitive_features=a)

    # one split: fit_transform on 120 images (probe, 2 epochs, transform) + 120 to score
    fit_cost, score_cost = 4 * len(X) // 2, len(X) // 2
    assert CountingEncoder.images_seen == 4 * 2 * (fit_cost + score_cost)
    assert cached == 2 * fit_cost + 4 * 2 * score_cost  # the noise is fitted once per split


@pytest.mark.cluster
def test_grid_search_on_a_local_dask_cluster(features):
    distributed = pytest.importorskip("distributed")
    import joblib

    X, y, a = features
    pipe = Pipeline([("noise", DebiasedNoiseTransformer(**FAST)),
                     ("clf", LogisticRegression())])
    grid = {"noise__lambda_reg": [0.01, 0.1], "clf__C": [0.1, 1.0]}
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster), joblib.parallel_backend("dask"):
        on_cluster = GridSearchCV(pipe, grid, cv=2, n_jobs=-1).fit(
            X, y, noise__sensitive_features=a)
    local = GridSearchCV(pipe, grid, cv=2).fit(X, y, noise__sensitive_features=a)
    np.testing.assert_allclose(on_cluster.cv_results_["mean_test_score"],
                               local.cv_results_["mean_test_score"])


# -- transform of a Dask array: lazy, block by block, on a cluster ------------------------------
def _fitted_for_dask(kind: str, output: str):
    X, y, a = make_marker_images(n=120)
    if kind == "dne":
        t = DebiasedNoiseTransformer(encoder=make_encoder(), output=output, **FAST)
    else:  # a module through forward passes only
        t = GeZONoiseTransformer(encoder=make_encoder(), output=output, max_queries=3_000,
                                 batch_size=64, random_state=0)
    return t.fit(X, y, sensitive_features=a), X


@pytest.mark.cluster
@pytest.mark.parametrize("kind", ["dne", "gezo"])
@pytest.mark.parametrize("output", ["embeddings", "images"])
def test_transform_of_a_dask_array_on_a_local_cluster_equals_numpy(kind, output):
    distributed = pytest.importorskip("distributed")
    da = pytest.importorskip("dask.array")

    t, X = _fitted_for_dask(kind, output)
    lazy = t.transform(da.from_array(X, chunks=(50, 1, 8, 16)))  # blocks split a sample, too
    assert isinstance(lazy, da.Array)
    assert lazy.chunks[0] == (50, 50, 20)  # whole samples per block, the rows' chunks kept
    expected = t.transform(X)
    assert lazy.shape == expected.shape and lazy.dtype == expected.dtype
    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        computed = client.compute(lazy).result()
    np.testing.assert_array_equal(computed, expected)


def test_a_dask_transform_is_lazy_and_ships_the_edit_once():
    da = pytest.importorskip("dask.array")

    enc = CountingEncoder()
    X, y, a = make_marker_images(n=90)
    t = DebiasedNoiseTransformer(encoder=enc, **FAST).fit(X, y, sensitive_features=a)
    CountingEncoder.images_seen = 0
    lazy = t.transform(da.from_array(X, chunks=30))
    assert CountingEncoder.images_seen == 0  # nothing computed yet
    keys = [k for k in lazy.__dask_graph__() if isinstance(k, str)]
    assert len([k for k in keys if k.startswith("ShippedTransform")]) == 1  # one copy
    np.testing.assert_array_equal(lazy.compute(), t.transform(X))
    assert CountingEncoder.images_seen == 2 * len(X)  # the blocks, then NumPy's transform


def test_a_dask_transform_in_feature_mode_keeps_the_numpy_dtype(features):
    da = pytest.importorskip("dask.array")

    X, y, a = features
    t = DebiasedNoiseTransformer(**FAST).fit(X, y, sensitive_features=a)
    for dtype in (np.float32, np.float64, np.int64):
        Xd = (X * 10).astype(dtype)
        lazy = t.transform(da.from_array(Xd, chunks=(100, 2)))
        expected = t.transform(Xd)
        assert lazy.dtype == expected.dtype
        np.testing.assert_array_equal(lazy.compute(), expected)


def test_a_dask_transform_through_a_black_box_declares_its_dtype():
    da = pytest.importorskip("dask.array")

    def api(batch):  # float64 embeddings, as JSON numbers arrive
        return batch.reshape(len(batch), 16, 16).mean(axis=2).astype(np.float64)

    X, y, a = make_marker_images(n=64)
    t = GeZONoiseTransformer(api, max_queries=2_000, n_directions=2, batch_size=32,
                             random_state=0).fit(X, y, sensitive_features=a)
    lazy = t.transform(da.from_array(X, chunks=32))
    assert lazy.dtype == np.float64  # learned from one zero image sent to the API
    np.testing.assert_array_equal(lazy.compute(), t.transform(X))


def test_a_dask_array_of_another_sample_shape_is_rejected_before_computing(images, encoder):
    da = pytest.importorskip("dask.array")

    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, **FAST).fit(X, y, sensitive_features=a)
    with pytest.raises(ValueError, match=r"samples of shape \(1, 8, 8\), but "
                       r"DebiasedNoiseTransformer was fitted on samples of shape \(1, 16, 16\)"):
        t.transform(da.zeros((10, 1, 8, 8), chunks=5))
    with pytest.raises(TypeError, match="real numbers"):
        t.transform(da.zeros((10, 1, 16, 16), dtype=bool, chunks=5))


# -- property-based invariants of transform -----------------------------------------------------
_FITTED = {}


def fitted(edit: str, output: str) -> DebiasedNoiseTransformer:
    key = (edit, output)
    if key not in _FITTED:
        X, y, a = make_marker_images(n=64)
        _FITTED[key] = DebiasedNoiseTransformer(
            encoder=make_encoder(), edit=edit, output=output, noise_resolution=4, **FAST
        ).fit(X, y, sensitive_features=a)
    return _FITTED[key]


images_strategy = hnp.arrays(
    np.float32, st.integers(1, 9).map(lambda n: (n, 1, 16, 16)),
    elements=st.floats(-2, 2, allow_nan=False, width=32),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=images_strategy, edit=st.sampled_from(["masked", "additive"]),
       output=st.sampled_from(["embeddings", "images"]))
def test_transform_invariants(X, edit, output):
    t = fitted(edit, output)
    before = X.copy()
    out = t.transform(X)
    assert np.array_equal(X, before)  # the input is not mutated
    assert out.dtype == np.float32
    assert out.shape == (X.shape if output == "images" else (len(X), t.n_features_out_))
    assert np.array_equal(out, t.transform(X))  # deterministic
    assert np.isfinite(out).all()
    # rows are edited independently: one sample alone gives the same row
    np.testing.assert_allclose(t.transform(X[-1:]), out[-1:], rtol=1e-5, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_fit_is_deterministic_for_any_seed(seed):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, 60)
    X = np.c_[rng.normal(size=(60, 3)), a + rng.normal(scale=0.1, size=60)]
    t1 = DebiasedNoiseTransformer(max_epochs=2, random_state=seed).fit(X, sensitive_features=a)
    t2 = DebiasedNoiseTransformer(max_epochs=2, random_state=seed).fit(X, sensitive_features=a)
    assert np.array_equal(t1.edit_.param, t2.edit_.param)
