"""Per-image intensity standardisation: a gain and offset between groups is removed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairnoise.edits import IntensityStandardization, fit_standardization


def images(n=40, shape=(3, 8, 8), seed=0):
    return np.random.default_rng(seed).uniform(size=(n, *shape)).astype(np.float32)


def per_image_stats(X):
    flat = X.reshape(len(X), X.shape[1] if X.ndim == 4 else 1, -1)
    return flat.mean(-1), flat.std(-1)


def test_groups_differing_by_gain_and_offset_become_indistinguishable():
    X = images(n=60)
    group = np.arange(60) % 2
    X_shifted = np.where(group[:, None, None, None] == 1, 0.6 * X + 0.3, X)
    edit = fit_standardization(X_shifted)
    mean, std = per_image_stats(edit.apply(X_shifted))
    for k in range(3):  # every image now has the same mean and std per channel
        np.testing.assert_allclose(mean[:, k], edit.mean[k], atol=1e-5)
        np.testing.assert_allclose(std[:, k], edit.std[k], rtol=1e-4)
    before_mean, _ = per_image_stats(X_shifted)
    assert abs(before_mean[group == 1].mean() - before_mean[group == 0].mean()) > 0.05


def test_the_targets_are_the_average_per_image_mean_and_std():
    X = images()
    mean, std = per_image_stats(X.astype(np.float64))
    edit = fit_standardization(X)
    np.testing.assert_allclose(edit.mean, mean.mean(0), rtol=1e-6)
    np.testing.assert_allclose(edit.std, std.mean(0), rtol=1e-6)


def test_fitting_on_chunks_a_memmap_or_the_array_agrees(tmp_path):
    X = images(n=300, shape=(1, 4, 4))  # more than one internal chunk of the array
    path = tmp_path / "x.npy"
    np.save(path, X)
    whole = fit_standardization(X)
    for source in (np.load(path, mmap_mode="r"), (X[i : i + 7] for i in range(0, 300, 7)),
                   [X[:100], X[100:]]):
        edit = fit_standardization(source)
        np.testing.assert_allclose(edit.mean, whole.mean, rtol=1e-6)
        np.testing.assert_allclose(edit.std, whole.std, rtol=1e-6)


def test_single_channel_batches_have_one_channel():
    X = images(shape=(6, 6))
    edit = fit_standardization(X)
    assert edit.n_channels == 1 and edit.apply(X).shape == X.shape
    with pytest.raises(ValueError, match=r"with 1 channel\(s\).*shape \(2, 3, 6, 6\)"):
        edit.apply(images(n=2, shape=(3, 6, 6)))


def test_a_constant_image_stays_constant():
    edit = IntensityStandardization(mean=[0.5, 0.2], std=[0.1, 0.1])
    X = np.full((2, 2, 5, 5), 0.7, np.float32)
    out = edit.apply(X)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:, 0], 0.5, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], 0.2, atol=1e-6)
    torch_out = edit.torch_op(torch.device("cpu"))(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(torch_out, out, atol=1e-6)


def test_eps_floors_the_std_of_a_nearly_constant_image():
    edit = IntensityStandardization(mean=[0.0], std=[1.0], eps=0.1)
    X = np.array([[[0.5, 0.5 + 2e-3]]], np.float64)  # std 1e-3, far below eps
    np.testing.assert_allclose(edit.apply(X), [[[-1e-2, 1e-2]]], rtol=1e-9)


@pytest.mark.parametrize("shape", [(3, 8, 8), (8, 8)])
def test_numpy_and_torch_versions_agree(shape):
    X = images(shape=shape) * 3 - 1
    edit = fit_standardization(X)
    via_torch = edit.torch_op(torch.device("cpu"))(torch.from_numpy(X))
    assert via_torch.dtype == torch.float32
    np.testing.assert_allclose(via_torch.numpy(), edit.apply(X), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_dtype_is_kept_and_the_input_not_changed(dtype):
    X = images().astype(dtype)
    copy = X.copy()
    edit = fit_standardization(X)
    out = edit.apply(X)
    assert out.dtype == dtype and out is not X and np.array_equal(X, copy)
    xt = torch.from_numpy(X)
    edit.torch_op(torch.device("cpu"))(xt)
    assert np.array_equal(xt.numpy(), copy)


def test_the_arrays_are_read_only_and_round_trip():
    edit = fit_standardization(images(), eps=1e-4)
    with pytest.raises(ValueError, match="read-only"):
        edit.mean[0] = 1.0
    again = IntensityStandardization.from_arrays(edit.arrays())
    assert again.eps == 1e-4 and np.array_equal(again.apply(images()), edit.apply(images()))


@pytest.mark.parametrize("X, message", [
    (np.zeros((4, 8)), r"images \(N, H, W\) or \(N, C, H, W\)"),
    (np.zeros((0, 3, 4, 4)), "no images"),
    (np.full((2, 3, 4, 4), np.nan), "NaN"),
    (np.zeros((2, 4, 4), complex), "real numbers"),
    ([np.zeros((2, 4, 4)), np.zeros((2, 5, 5))], "every chunk"),
    (3.0, "an array of images or an iterable of batches"),
])
def test_fitting_on_bad_input_is_a_value_error_naming_x(X, message):
    with pytest.raises(ValueError, match=message):
        fit_standardization(X)


@pytest.mark.parametrize("kwargs, message", [
    (dict(mean=[0.5], std=[0.1, 0.2]), "one value per channel"),
    (dict(mean=[[0.5]], std=[[0.1]]), "non-empty vector"),
    (dict(mean=[np.nan], std=[0.1]), "NaN"),
    (dict(mean=[0.5], std=[-0.1]), "non-negative"),
    (dict(mean=[0.5], std=[0.1], eps=0.0), "eps must be a positive number"),
])
def test_inconsistent_arrays_are_not_a_standardisation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        IntensityStandardization(**kwargs)
