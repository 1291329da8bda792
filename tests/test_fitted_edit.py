"""FittedEdit: the learned edit as one frozen value object, and the estimators' views of it."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch

from fairnoise import DebiasedNoiseTransformer
from fairnoise.edits import FittedEdit, NoiseSpace


def masked(input_shape=(2, 4, 4), mask_shape=(1, 4, 4), seed=0) -> FittedEdit:
    rng = np.random.default_rng(seed)
    mask = rng.uniform(size=mask_shape).astype(np.float32)
    fill = rng.uniform(size=(input_shape[0], 1, 1)).astype(np.float32)
    return FittedEdit("masked", input_shape, param=1 - mask, mask=mask, fill=fill)


def test_numpy_and_torch_forms_of_the_edit_agree():
    X = np.random.default_rng(1).uniform(size=(5, 2, 4, 4)).astype(np.float32)
    for edit in (masked(), FittedEdit("additive", (2, 4, 4), param=np.ones((1, 2, 2)),
                                      noise=np.full((1, 4, 4), 0.25))):
        via_torch = edit.torch_op(torch.device("cpu"))(torch.from_numpy(X)).numpy()
        np.testing.assert_allclose(edit.apply(X), via_torch, rtol=1e-6, atol=1e-7)


def test_the_masked_edit_is_a_convex_mix_of_input_and_fill():
    edit = masked()
    X = np.random.default_rng(2).uniform(size=(3, 2, 4, 4)).astype(np.float32)
    expected = edit.mask * X + (1 - edit.mask) * edit.fill
    np.testing.assert_allclose(edit.apply(X), expected, rtol=1e-6)
    assert edit.replaced.shape == (2, 4, 4)  # the fill where the mask acts, per channel


def test_arrays_are_read_only_copies():
    mask = np.ones(3, np.float32)
    edit = FittedEdit("masked", (3,), param=1 - mask, mask=mask, fill=np.zeros(3))
    mask[0] = 0.0  # the caller's array is not shared
    assert edit.mask[0] == 1.0 and edit.is_identity
    with pytest.raises(ValueError, match="read-only"):
        edit.mask[0] = 0.5
    X = np.ones((2, 3), np.float32)
    edit.apply(X)
    assert (X == 1).all()


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="blur"), "kind must be one of"),
    (dict(input_shape=(0, 3)), "input_shape must be 1 to 3 positive integers"),
    (dict(input_shape="3"), "input_shape must be 1 to 3 positive integers"),
    (dict(mask=None), "needs its mask array"),
    (dict(noise=np.zeros(3)), "has no noise array"),
    (dict(mask=np.full(3, 2.0)), r"mask leaves \[0, 1\]"),
    (dict(mask=np.ones(4)), "does not broadcast"),
    (dict(fill=np.array([np.inf, 0, 0])), "NaN or infinity"),
    (dict(fill=np.zeros(3, np.complex64)), "real numbers"),
])
def test_an_invalid_edit_is_refused_with_the_reason(kwargs, message):
    args = dict(kind="masked", input_shape=(3,), param=np.zeros(3), mask=np.ones(3),
                fill=np.zeros(3))
    with pytest.raises(ValueError, match=message):
        FittedEdit(**{**args, **kwargs})


def test_arrays_round_trip_through_the_file_members():
    for edit in (masked(), FittedEdit("additive", (4,), param=np.ones(4), noise=np.ones(4))):
        again = FittedEdit.from_arrays(edit.kind, edit.input_shape, edit.arrays())
        X = np.random.default_rng(3).uniform(size=(2, *edit.input_shape)).astype(np.float32)
        np.testing.assert_array_equal(again.apply(X), edit.apply(X))


def test_the_learning_side_produces_the_fitted_edit():
    space = NoiseSpace((1, 8, 8), "masked", (2, 2), True)
    theta = torch.tensor([[[0.0, 1.0], [0.5, 0.0]]])
    edit = space.fitted(theta, np.full((1, 1, 1), 0.5, np.float32))
    assert edit.kind == "masked" and edit.mask.shape == (1, 8, 8)
    np.testing.assert_array_equal(edit.param, theta.numpy())
    x = torch.rand(3, 1, 8, 8)
    fill = torch.full((1, 1, 1), 0.5)
    np.testing.assert_allclose(edit.apply(x.numpy()), space.apply(x, theta, fill).numpy(),
                               atol=1e-6)


def test_estimator_attributes_are_views_of_the_fitted_edit(features):
    X, y, a = features
    t = DebiasedNoiseTransformer(random_state=0, max_epochs=3).fit(X, y, sensitive_features=a)
    assert t.mask_ is t.edit_.mask
    np.testing.assert_array_equal(t.noise_, t.edit_.replaced)
    with pytest.warns(FutureWarning, match="edit_.param"):
        np.testing.assert_array_equal(t.noise_param_, t.edit_.param)


def test_a_transformer_pickled_by_fairnoise_0_1_still_transforms(features):
    X, y, a = features
    t = DebiasedNoiseTransformer(random_state=0, max_epochs=3).fit(X, y, sensitive_features=a)
    state = t.__getstate__()
    old = {k: v for k, v in state.items() if k != "edit_"}
    old.update(noise_=t.noise_.copy(), mask_=t.mask_.copy(), noise_param_=t.edit_.param.copy())
    revived = DebiasedNoiseTransformer.__new__(DebiasedNoiseTransformer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's version notice
        revived.__setstate__(old)
    np.testing.assert_array_equal(revived.transform(X), t.transform(X))
    assert pickle.loads(pickle.dumps(revived)).edit_.kind == "masked"
