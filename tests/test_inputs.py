"""Inputs people get wrong: each a clear error (or warning) naming the argument and what to
pass, never a silently wrong result (issue 13 #1, #2, #9, #15 and issue 14 §9)."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_encoder, make_marker_images

import fairnoise._inputs
from fairnoise import DebiasedNoiseTransformer, GeZONoiseTransformer
from fairnoise.encoders import CallableEncoder

ENC = make_encoder()
X, Y, A = make_marker_images(n=160)
N, B = len(X), 64

WHITE = dict(max_epochs=1, batch_size=B, random_state=0, validation_fraction=None)
BLACK = dict(batch_size=B, n_directions=3, noise_resolution=4, random_state=0,
             validation_fraction=None)

def embed(batch: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return ENC(torch.as_tensor(batch)).numpy()


def dne(**kw) -> DebiasedNoiseTransformer:
    return DebiasedNoiseTransformer(**{"encoder": ENC, **WHITE, **kw})


def gezo(**kw) -> GeZONoiseTransformer:
    return GeZONoiseTransformer(CallableEncoder(embed, batch_size=B), **{**BLACK, **kw})


# -- integer images (13.1) -----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int16, np.int8, np.uint32, np.uint64])
def test_signed_and_wide_integer_images_are_refused_with_what_to_pass(dtype):
    Xi = np.clip(X * 100, 0, 100).astype(dtype)  # 0-100 fits every type
    with pytest.raises(TypeError, match=rf"dtype {np.dtype(dtype)}.*X.astype\(np.uint8\)"):
        dne().fit(Xi, Y, sensitive_features=A)


def test_an_int64_tensor_is_refused_too():
    Xi = torch.as_tensor((X * 255).clip(0, 255).round().astype(np.int64))
    with pytest.raises(TypeError, match=r"int64.*X.to\(torch.uint8\)"):
        dne().fit(Xi, Y, sensitive_features=A)


def test_integer_images_are_refused_at_transform_too():
    t = dne().fit(X, Y, sensitive_features=A)
    with pytest.raises(TypeError, match="int64"):
        t.transform((X * 255).astype(np.int64))


@pytest.mark.parametrize(("dtype", "scale"), [(np.uint8, 255), (np.uint16, 65535)])
def test_uint8_and_uint16_images_are_their_float_images_bit_for_bit(dtype, scale):
    Xi = (X.clip(0, 1) * scale).round().astype(dtype)
    Xf = Xi.astype(np.float32) / np.float32(scale)
    t_int = dne().fit(Xi, Y, sensitive_features=A)
    t_float = dne().fit(Xf, Y, sensitive_features=A)
    np.testing.assert_array_equal(t_int.edit_.param, t_float.edit_.param)
    np.testing.assert_array_equal(t_int.transform(Xi), t_float.transform(Xf))


# -- y is always checked (13.2) ------------------------------------------------------------
@pytest.mark.parametrize("make", [dne, gezo])
def test_y_of_the_wrong_length_is_refused_even_when_not_conditional(make):
    with pytest.raises(ValueError, match=r"y must be 1-D with one label per sample \(160\); "
                                         r"got shape \(157,\)"):
        make(conditional=False).fit(X, Y[:-3], sensitive_features=A)


@pytest.mark.parametrize("conditional", [True, False])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_y_is_refused_not_made_a_class(conditional, bad):
    y = Y.astype(float)
    y[7] = bad
    with pytest.raises(ValueError, match="y contains NaN or infinity"):
        dne(conditional=conditional).fit(X, y, sensitive_features=A)


def test_a_later_partial_fit_checks_y_too():
    t = dne(conditional=False).partial_fit(X, Y, sensitive_features=A)
    with pytest.raises(ValueError, match="y must be 1-D"):
        t.partial_fit(X, Y[:10], sensitive_features=A)


# -- negative strides (13.9) ---------------------------------------------------------------
def test_negative_stride_views_work_in_fit_and_transform():
    flipped = X[:, :, ::-1]
    t1 = dne().fit(flipped, Y, sensitive_features=A)
    t2 = dne().fit(np.ascontiguousarray(flipped), Y, sensitive_features=A)
    np.testing.assert_array_equal(t1.edit_.param, t2.edit_.param)
    np.testing.assert_array_equal(t1.transform(flipped), t2.transform(flipped.copy()))
    assert t1.set_params(output="images").transform(flipped).shape == X.shape


# -- transform(output="images") writes into one array (13.15) ------------------------------
def test_images_output_on_a_memmap_peaks_near_the_size_of_the_output(tmp_path, monkeypatch):
    monkeypatch.setattr(fairnoise._inputs, "_CHUNK_BYTES", 2**20)  # small chunks, many of them
    big = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32,
                                    shape=(2000, 1, 64, 64))  # 32 MiB
    big[:] = 0.5
    big.flush()
    Xs, ys, a_s = make_marker_images(n=64, size=64)
    module = torch.nn.Sequential(torch.nn.AvgPool2d(8), torch.nn.Flatten())
    t = dne(encoder=module, output="images").fit(Xs, ys, sensitive_features=a_s)
    X_map = np.load(tmp_path / "x.npy", mmap_mode="r")
    tracemalloc.start()
    out = t.transform(X_map)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.shape == X_map.shape
    assert peak <= 1.2 * out.nbytes


# -- channels-last images (14 §9) ----------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_channels_last_images_are_refused_with_what_to_pass(channels):
    Xc = np.repeat(X, channels, axis=1)
    last = Xc.transpose(0, 2, 3, 1)
    with pytest.raises(ValueError, match=r"channels-last.*\(160, 16, 16, "
                                         rf"{channels}\).*X.transpose\(0, 3, 1, 2\)"):
        dne(encoder=make_encoder(channels)).fit(last, Y, sensitive_features=A)
    t = dne(encoder=make_encoder(channels)).fit(last.transpose(0, 3, 1, 2), Y,
                                                 sensitive_features=A)
    with pytest.raises(ValueError, match="channels-last"):
        t.transform(last)


def test_channels_first_images_with_many_channels_are_accepted():
    Xc = np.repeat(X, 8, axis=1)  # 8 channels of 16 × 16
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8 * 16 * 16, 6))
    assert dne(encoder=module).fit(Xc, Y, sensitive_features=A).transform(Xc).shape == (N, 6)


# -- the additive edit in feature mode (14 §9) ---------------------------------------------
@pytest.mark.parametrize("cls", [DebiasedNoiseTransformer, GeZONoiseTransformer])
def test_the_additive_edit_on_features_warns_that_it_cannot_remove_linear_information(
        cls, features):
    Xf, yf, af = features
    with pytest.warns(UserWarning, match="cannot remove linearly decodable information.*"
                                         "edit='masked'"):
        cls(edit="additive", max_epochs=1, random_state=0).fit(Xf, yf, sensitive_features=af)


def test_the_additive_edit_on_images_and_the_masked_edit_on_features_do_not_warn(features):
    Xf, yf, af = features
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        dne(edit="additive").fit(X, Y, sensitive_features=A)
        DebiasedNoiseTransformer(max_epochs=1, validation_fraction=None).fit(
            Xf, yf, sensitive_features=af)


# -- a group with one sample (14 §9) -------------------------------------------------------
def test_a_group_with_a_single_sample_warns_naming_it(features):
    Xf, yf, af = features
    groups = np.where(af == 1, "b", "a").astype(object)
    groups[5] = "lonely"
    with pytest.warns(UserWarning, match=r"1 group\(s\) with a single sample \(\['lonely'\]\)"):
        DebiasedNoiseTransformer(max_epochs=1).fit(Xf, yf, sensitive_features=groups)


def test_groups_of_two_or_more_samples_do_not_warn(features):
    Xf, yf, af = features
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        DebiasedNoiseTransformer(max_epochs=1, validation_fraction=None).fit(
            Xf, yf, sensitive_features=af)


# -- pandas labels indexed differently from X (14 §9) --------------------------------------
@pytest.fixture
def frame(features):
    Xf, yf, af = features
    index = pd.Index([f"patient{i}" for i in range(len(Xf))])
    return (pd.DataFrame(Xf, index=index, columns=list("abcde")),
            pd.Series(yf, index=index), pd.Series(af, index=index))


@pytest.mark.parametrize("which", ["sensitive_features", "y"])
def test_a_series_indexed_differently_from_the_dataframe_is_refused(frame, which):
    Xf, yf, af = frame
    labels = {"y": yf, "sensitive_features": af}
    labels[which] = labels[which].reset_index(drop=True)  # aligned by position, not by label
    with pytest.raises(ValueError, match=rf"{which} is a pandas Series whose index does not "
                                         rf"match.*{which}.loc\[X.index\]"):
        DebiasedNoiseTransformer(max_epochs=1).fit(Xf, **labels)


def test_a_shuffled_series_is_refused_and_an_aligned_one_accepted(frame):
    Xf, yf, af = frame
    shuffled = af.sample(frac=1.0, random_state=0)
    with pytest.raises(ValueError, match="does not match"):
        DebiasedNoiseTransformer(max_epochs=1).fit(Xf, yf, sensitive_features=shuffled)
    aligned = shuffled.loc[Xf.index]
    t1 = DebiasedNoiseTransformer(max_epochs=1, random_state=0).fit(
        Xf, yf, sensitive_features=aligned)
    t2 = DebiasedNoiseTransformer(max_epochs=1, random_state=0).fit(
        Xf, yf.to_numpy(), sensitive_features=af.to_numpy())
    np.testing.assert_array_equal(t1.edit_.param, t2.edit_.param)


def test_aligned_series_pass_through_grid_search(frame):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    Xf, yf, af = frame
    pipe = Pipeline([("noise", DebiasedNoiseTransformer(max_epochs=1, random_state=0)),
                     ("clf", LogisticRegression())])
    GridSearchCV(pipe, {"clf__C": [0.1, 1.0]}, cv=2).fit(Xf, yf, noise__sensitive_features=af)
