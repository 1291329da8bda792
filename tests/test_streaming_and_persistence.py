"""Out-of-core inputs, partial_fit, and the safe noise file."""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pytest
from conftest import make_marker_images

from fairnoise import DebiasedNoiseTransformer, export_noise, load_noise
from fairnoise.datasets import LazyImageArray

FAST = dict(max_epochs=2, batch_size=64, random_state=0, validation_fraction=None)


# -- integer and lazy inputs --------------------------------------------------------------------
def test_uint8_images_are_scaled_to_the_unit_interval(tmp_path, images, encoder):
    X, y, a = images
    X8 = np.clip(np.round(X * 255), 0, 255).astype(np.uint8)
    path = tmp_path / "x.npy"
    np.save(path, X8)
    mm = np.load(path, mmap_mode="r")
    t8 = DebiasedNoiseTransformer(encoder=encoder, **FAST).fit(mm, y, sensitive_features=a)
    tf = DebiasedNoiseTransformer(encoder=encoder, **FAST).fit(X8 / np.float32(255), y,
                                                               sensitive_features=a)
    np.testing.assert_allclose(t8.edit_.param, tf.edit_.param, atol=1e-5)
    edited = t8.set_params(output="images").transform(mm)
    assert edited.dtype == np.float32 and edited.max() <= 1.0 + 1e-6


def test_uint16_images_are_scaled_by_their_maximum(encoder):
    X, y, a = make_marker_images(n=64)
    X16 = (np.clip(X, 0, 1) * 65535).astype(np.uint16)
    t = DebiasedNoiseTransformer(encoder=encoder, output="images", **FAST)
    out = t.fit(X16, y, sensitive_features=a).transform(X16)
    assert 0.0 <= out.min() and out.max() <= 1.0 + 1e-6


def test_lazy_image_array_is_read_in_batches(tmp_path, encoder):
    from PIL import Image

    X, y, a = make_marker_images(n=40)
    paths = []
    for i, img in enumerate(X[:, 0]):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(paths[-1])
    lazy = LazyImageArray(paths, image_size=16)
    reads = []
    original = LazyImageArray.__getitem__

    def counting(self, key):
        batch = original(self, key)
        reads.append(len(batch))
        return batch

    LazyImageArray.__getitem__ = counting
    try:
        t = DebiasedNoiseTransformer(encoder=encoder, max_epochs=1, batch_size=16,
                                     random_state=0).fit(lazy, y, sensitive_features=a)
        Z = t.transform(lazy)
    finally:
        LazyImageArray.__getitem__ = original
    assert Z.shape == (40, 64)
    assert max(reads) <= 40 and len(reads) > 3  # several reads, never the whole set at once


# -- partial_fit --------------------------------------------------------------------------------
def test_partial_fit_streams_batches_and_counts_passes(images, encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, batch_size=32, random_state=0)
    for start in range(0, len(X), 80):
        sl = slice(start, start + 80)
        t.partial_fit(X[sl], y[sl], sensitive_features=a[sl])
    assert t.n_iter_ == 3 and len(t.loss_curve_) == 3
    assert t.transform(X).shape == (len(X), 64)
    assert set(t.sa_probe_) == {0, 1}


def test_partial_fit_keeps_adams_state_between_calls(images, encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, batch_size=240, random_state=0)
    t.partial_fit(X, y, sensitive_features=a)
    steps = int(t._adam_state["step"])
    t.partial_fit(X, y, sensitive_features=a)
    assert int(t._adam_state["step"]) == steps + 1


def test_partial_fit_over_one_batch_equals_one_epoch_of_fit(images, encoder):
    X, y, a = images
    kw = dict(encoder=encoder, batch_size=64, random_state=0, validation_fraction=None)
    streamed = DebiasedNoiseTransformer(**kw).partial_fit(X, y, sensitive_features=a)
    fitted = DebiasedNoiseTransformer(max_epochs=1, **kw).fit(X, y, sensitive_features=a)
    np.testing.assert_array_equal(streamed.edit_.param, fitted.edit_.param)


def test_partial_fit_rejects_unseen_groups(images, encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, **FAST).partial_fit(X, y, sensitive_features=a)
    # plain values in the message: [7], not [np.int64(7)]
    with pytest.raises(ValueError, match=r"labels \[7\] that the first partial_fit call did "
                       r"not see \(known: \[0, 1\]\)"):
        t.partial_fit(X[:10], y[:10], sensitive_features=np.full(10, 7))
    with pytest.raises(ValueError, match=r"y holds labels \[5\] .* \(known: \[0, 1\]\)"):
        t.partial_fit(X[:10], np.full(10, 5), sensitive_features=a[:10])


def test_partial_fit_accepts_a_later_batch_with_one_group(images, encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, **FAST).partial_fit(X, y, sensitive_features=a)
    sel = a == 1
    t.partial_fit(X[sel], y[sel], sensitive_features=a[sel])
    assert t.n_iter_ == 2


def test_partial_fit_continues_after_unpickling(images, encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, **FAST).partial_fit(X, y, sensitive_features=a)
    restored = pickle.loads(pickle.dumps(t))
    restored.partial_fit(X, y, sensitive_features=a)
    assert restored.n_iter_ == 2


def test_partial_fit_rejects_another_shape(images, encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, **FAST).partial_fit(X, y, sensitive_features=a)
    with pytest.raises(ValueError, match="fitted on samples of shape"):
        t.partial_fit(X[:, :, :8, :8], y, sensitive_features=a)


# -- export / load ------------------------------------------------------------------------------
@pytest.mark.parametrize("edit", ["masked", "additive"])
def test_exported_noise_reproduces_the_transform_exactly(tmp_path, images, encoder, edit):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, edit=edit, noise_resolution=4, **FAST)
    t.fit(X, y, sensitive_features=a)
    path = t.export_noise(tmp_path / "edit")
    assert path.endswith(".npz")
    loaded = load_noise(path, encoder=encoder)
    np.testing.assert_array_equal(loaded.transform(X), t.transform(X))
    np.testing.assert_array_equal(load_noise(path, output="images", encoder=encoder).transform(X),
                                  t.set_params(output="images").transform(X))


def test_exported_file_holds_no_pickles(tmp_path, features):
    X, y, a = features
    t = DebiasedNoiseTransformer(random_state=0, validation_fraction=None)
    path = export_noise(t.fit(X, y, sensitive_features=a), tmp_path / "edit.npz")
    with np.load(path, allow_pickle=False) as data:
        assert {"noise", "mask", "noise_param", "metadata"} == set(data.files)
        meta = json.loads(str(data["metadata"]))
    assert meta["edit"] == "masked" and meta["input_shape"] == [5]


def test_feature_names_travel_with_the_noise(tmp_path, features):
    import pandas as pd

    X, y, a = features
    df = pd.DataFrame(X, columns=list("abcde"))
    t = DebiasedNoiseTransformer(random_state=0).fit(df, y, sensitive_features=a)
    loaded = load_noise(t.export_noise(tmp_path / "e"))
    assert list(loaded.get_feature_names_out()) == list("abcde")


def test_corrupted_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match="not a valid fairnoise edit file"):
        load_noise(bad)


def test_foreign_npz_is_rejected(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(ValueError, match="no metadata"):
        load_noise(path)


def test_tampered_arrays_are_rejected(tmp_path, features):
    X, y, a = features
    path = DebiasedNoiseTransformer(random_state=0).fit(X, y, sensitive_features=a).export_noise(
        tmp_path / "e")
    with np.load(path) as data:
        contents = dict(data)
    contents["mask"] = contents["mask"] * 5
    np.savez(path, **contents)
    with pytest.raises(ValueError, match="mask leaves"):
        load_noise(path)


def test_mismatched_input_shape_is_rejected(tmp_path, images, encoder):
    X, y, a = images
    path = DebiasedNoiseTransformer(encoder=encoder, **FAST).fit(
        X, y, sensitive_features=a).export_noise(tmp_path / "e")
    with pytest.raises(ValueError, match=r"inputs of shape \(1, 16, 16\), not \(3, 16, 16\)"):
        load_noise(path, encoder=encoder, input_shape=(3, 16, 16))
    with pytest.raises(ValueError, match="fitted on samples of shape"):
        load_noise(path, encoder=encoder).transform(np.zeros((2, 1, 8, 8), np.float32))


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_noise(tmp_path / "nope.npz")


# -- the training parameters travel with the edit -----------------------------------------------
TRAINED = dict(edit="additive", objective="confusion", lambda_reg=0.03,
               noise_resolution=(np.int64(4), 8),  # NumPy integers too
               conditional=False, learning_rate=0.02, max_epochs=2, batch_size=64,
               random_state=7)


def test_loaded_transformer_reports_the_parameters_it_was_trained_with(tmp_path, images,
                                                                       encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, device="cpu", verbose=0, **TRAINED)
    path = t.fit(X, y, sensitive_features=a).export_noise(tmp_path / "e")
    with np.load(path) as data:
        stored = json.loads(str(data["metadata"]))["params"]
    assert "encoder" not in stored and stored["noise_resolution"] == [4, 8]
    loaded = load_noise(path, encoder=encoder)
    params = loaded.get_params()
    assert {k: params[k] for k in TRAINED} == TRAINED  # (4, 8) comes back a tuple
    assert params["encoder"] is encoder and params["device"] == "auto"  # this machine's own
    np.testing.assert_array_equal(loaded.transform(X), t.transform(X))


def test_a_file_without_training_parameters_still_loads(tmp_path, features):
    X, y, a = features
    t = DebiasedNoiseTransformer(edit="additive", lambda_reg=0.5, random_state=0,
                                 validation_fraction=None)
    path = t.fit(X, y, sensitive_features=a).export_noise(tmp_path / "e")
    with np.load(path) as data:  # as fairnoise 0.1 wrote it: format version 1, no params
        contents = dict(data)
    meta = json.loads(str(contents["metadata"]))
    del meta["params"]
    contents["metadata"] = np.asarray(json.dumps(meta))
    np.savez(path, **contents)
    loaded = load_noise(path)
    assert loaded.edit == "additive" and loaded.lambda_reg == "auto"  # the default: unknown
    np.testing.assert_array_equal(loaded.transform(X), t.transform(X))


def test_training_parameters_that_do_not_validate_are_a_clear_error(tmp_path, features):
    X, y, a = features
    path = DebiasedNoiseTransformer(random_state=0).fit(X, sensitive_features=a).export_noise(
        tmp_path / "e")
    with np.load(path) as data:
        contents = dict(data)
    meta = json.loads(str(contents["metadata"]))
    meta["params"]["lambda_reg"] = -1
    contents["metadata"] = np.asarray(json.dumps(meta))
    np.savez(path, **contents)
    with pytest.raises(ValueError, match="training parameters that DebiasedNoiseTransformer "
                       "rejects.*lambda_reg"):
        load_noise(path)


def test_a_black_box_edit_loads_for_its_api_with_the_default_resolution(tmp_path):
    from fairnoise import GeZONoiseTransformer

    X, y, a = make_marker_images(n=64, size=16)

    def api(batch):  # a black box: NumPy in, NumPy out
        return batch.reshape(len(batch), 16, 16).mean(axis=2)

    gezo = GeZONoiseTransformer(api, batch_size=32, max_queries=2_000, n_directions=2,
                                random_state=0).fit(X, y, sensitive_features=a)
    loaded = load_noise(gezo.export_noise(tmp_path / "e"), encoder=api)
    assert isinstance(loaded, GeZONoiseTransformer)  # the class that learned it
    assert loaded.get_params()["noise_resolution"] == "auto"
    assert loaded.get_params()["max_queries"] == 2_000 and loaded.n_queries_ == 0
    np.testing.assert_array_equal(loaded.transform(X), gezo.transform(X))


# -- a shipped edit as a prefit pipeline step ---------------------------------------------------
@pytest.fixture
def shipped(tmp_path, images, encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, **FAST).fit(X, y, sensitive_features=a)
    return t, t.export_noise(tmp_path / "edit")


@pytest.mark.parametrize("how", ["FrozenEstimator", "frozen=True"])
def test_a_frozen_shipped_edit_in_a_pipeline_fits_only_the_head(shipped, images, encoder, how):
    from sklearn.base import clone
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    X, y, a = images
    t, path = shipped
    step = (FrozenEstimator(load_noise(path, encoder=encoder)) if how == "FrozenEstimator"
            else load_noise(path, encoder=encoder, frozen=True))
    pipe = make_pipeline(step, LogisticRegression(max_iter=500))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "fit was called without sensitive_features"
        pipe.fit(X, y)
    np.testing.assert_array_equal(pipe[0].edit_.param, t.edit_.param)  # the shipped edit
    head = LogisticRegression(max_iter=500).fit(t.transform(X), y)
    np.testing.assert_array_equal(pipe.predict_proba(X), head.predict_proba(t.transform(X)))

    search = GridSearchCV(pipe, {"logisticregression__C": [0.1, 1.0]}, cv=2).fit(X, y)
    assert search.best_estimator_[0].estimator is step.estimator  # clone shares the edit
    assert clone(pipe)[0] is step
    np.testing.assert_array_equal(search.best_estimator_[0].edit_.param, t.edit_.param)


def test_a_frozen_shipped_edit_works_with_metadata_routing_on(shipped, images, encoder):
    import sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    X, y, a = images
    t, path = shipped
    pipe = make_pipeline(load_noise(path, encoder=encoder, frozen=True), LogisticRegression())
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(pipe, {"logisticregression__C": [0.1, 1.0]}, cv=2).fit(X, y)
    np.testing.assert_array_equal(search.best_estimator_[0].edit_.param, t.edit_.param)


def test_refitting_a_loaded_edit_without_groups_says_how_to_keep_it(shipped, images, encoder):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    X, y, a = images
    t, path = shipped
    pipe = make_pipeline(load_noise(path, encoder=encoder), LogisticRegression(max_iter=500))
    with pytest.warns(UserWarning, match=r"loaded from .*edit\.npz.*FrozenEstimator.*"
                      r"frozen=True"):
        pipe.fit(X, y)
    assert not np.array_equal(pipe[0].edit_.param, t.edit_.param)  # what the warning says


@pytest.mark.parametrize("kind", ["dne", "gezo"])
def test_skops_round_trip_with_the_documented_trusted_types(tmp_path, features, kind):
    sio = pytest.importorskip("skops.io")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from fairnoise import GeZONoiseTransformer

    X, y, a = features
    noise = (DebiasedNoiseTransformer(objective="confusion", random_state=0) if kind == "dne"
             else GeZONoiseTransformer(max_queries=5000, random_state=0))
    pipe = Pipeline([("noise", noise),
                     ("clf", LogisticRegression())]).fit(X, y, noise__sensitive_features=a)
    path = tmp_path / "pipe.skops"
    sio.dump(pipe, path)
    untrusted = sio.get_untrusted_types(file=path)
    from fairnoise.persistence import SKOPS_TRUSTED_TYPES

    assert set(untrusted) <= set(SKOPS_TRUSTED_TYPES), set(untrusted) - set(SKOPS_TRUSTED_TYPES)
    restored = sio.load(path, trusted=untrusted)
    np.testing.assert_array_equal(restored.predict_proba(X), pipe.predict_proba(X))


def test_fit_without_groups_then_partial_fit_with_groups(images, encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, **FAST)
    with pytest.warns(UserWarning, match=r"partial_fit was called without sensitive_features"
                                         r".* as partial_fit\(X, y, sensitive_features=a\)"):
        t.partial_fit(X, y)
    t.partial_fit(X, y, sensitive_features=a)
    assert t.classes_sensitive_.tolist() == [0, 1] and t.n_iter_ == 1
    assert t.edit_.param.shape == (1, 16, 16) and t.edit_.param.any()
