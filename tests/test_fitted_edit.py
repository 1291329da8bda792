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
    t = DebiasedNoiseTransformer(random_state=0, max_epochs=3, validation_fraction=None)
    t.fit(X, y, sensitive_features=a)
    state = t.__getstate__()
    old = {k: v for k, v in state.items() if k != "edit_"}
    old.update(noise_=t.noise_.copy(), mask_=t.mask_.copy(), noise_param_=t.edit_.param.copy())
    revived = DebiasedNoiseTransformer.__new__(DebiasedNoiseTransformer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's version notice
        revived.__setstate__(old)
    np.testing.assert_array_equal(revived.transform(X), t.transform(X))
    assert pickle.loads(pickle.dumps(revived)).edit_.kind == "masked"


# -- the optional parts: a standardisation before the edit, an eraser after the encoder ------
def parts(seed=0):
    from fairnoise.edits import fit_conditional_eraser, fit_standardization

    rng = np.random.default_rng(seed)
    standardization = fit_standardization(rng.uniform(size=(20, 2, 4, 4)))
    Z = rng.normal(size=(60, 5))
    a = np.arange(60) % 2
    Z[:, 0] += 2.0 * a
    return standardization, fit_conditional_eraser(Z, a), Z


def masked_with(**parts_) -> FittedEdit:
    edit = masked()
    return FittedEdit(edit.kind, edit.input_shape, edit.param, mask=edit.mask,
                      fill=edit.fill, **parts_)


def test_without_parts_the_edit_is_exactly_the_mask_and_its_arrays_are_unchanged():
    edit = masked()
    assert edit.standardization is None and edit.eraser is None
    X = np.random.default_rng(3).uniform(size=(3, 2, 4, 4)).astype(np.float32)
    inv = (1.0 - edit.mask).astype(np.float32)
    assert np.array_equal(edit.apply(X), X - inv * (X - edit.replaced))
    assert set(edit.arrays()) == {"noise", "noise_param", "mask"}
    Z = np.ones((2, 5), np.float32)
    assert edit.apply_embeddings(Z) is Z  # no copy, nothing changed


def test_the_standardisation_runs_before_the_mask_in_numpy_and_torch():
    standardization, _, _ = parts()
    plain = masked()
    edit = masked_with(standardization=standardization)
    X = np.random.default_rng(4).uniform(size=(5, 2, 4, 4)).astype(np.float32)
    expected = plain.apply(standardization.apply(X))
    assert np.array_equal(edit.apply(X), expected)
    via_torch = edit.torch_op(torch.device("cpu"))(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(via_torch, expected, rtol=1e-5, atol=1e-5)


def test_apply_embeddings_is_the_eraser():
    _, eraser, Z = parts()
    edit = masked_with(eraser=eraser)
    assert np.array_equal(edit.apply_embeddings(Z), eraser.apply(Z))
    X = np.random.default_rng(5).uniform(size=(2, 2, 4, 4)).astype(np.float32)
    assert np.array_equal(edit.apply(X), masked().apply(X))  # inputs: the mask only


def test_is_identity_needs_every_part_to_be_the_identity():
    from fairnoise.edits import ConditionalEraser

    standardization, eraser, _ = parts()
    ones = np.ones((1, 4, 4), np.float32)
    base = dict(kind="masked", input_shape=(2, 4, 4), param=1 - ones, mask=ones,
                fill=np.zeros((2, 1, 1)))
    rank0 = ConditionalEraser(mean=np.zeros(5), left=np.zeros((5, 0)), right=np.zeros((5, 0)))
    assert FittedEdit(**base).is_identity and FittedEdit(**base, eraser=rank0).is_identity
    assert not FittedEdit(**base, eraser=eraser).is_identity
    assert not FittedEdit(**base, standardization=standardization).is_identity


def test_the_parts_round_trip_through_the_file_members():
    standardization, eraser, Z = parts()
    edit = masked_with(standardization=standardization, eraser=eraser)
    arrays = edit.arrays()
    assert {"standardize_mean", "standardize_std", "standardize_eps", "eraser_mean",
            "eraser_left", "eraser_right"} <= set(arrays)
    again = FittedEdit.from_arrays("masked", (2, 4, 4), arrays)
    X = np.random.default_rng(6).uniform(size=(2, 2, 4, 4)).astype(np.float32)
    assert np.array_equal(again.apply(X), edit.apply(X))
    assert np.array_equal(again.apply_embeddings(Z), edit.apply_embeddings(Z))
    del arrays["eraser_left"]
    with pytest.raises(ValueError, match="'eraser_left' array is missing"):
        FittedEdit.from_arrays("masked", (2, 4, 4), arrays)


def test_a_part_that_does_not_fit_the_edit_is_refused():
    from fairnoise.edits import IntensityStandardization

    three = IntensityStandardization(mean=np.zeros(3), std=np.ones(3))
    with pytest.raises(ValueError, match=r"3 channel\(s\), but inputs of shape \(2, 4, 4\)"):
        masked_with(standardization=three)
    with pytest.raises(ValueError, match="feature vectors, not images"):
        FittedEdit("additive", (3,), param=np.zeros(3), noise=np.zeros(3),
                   standardization=IntensityStandardization(mean=[0.0], std=[1.0]))
    with pytest.raises(TypeError, match="eraser must be a ConditionalEraser"):
        masked_with(eraser=np.eye(3))


def test_an_edit_pickled_before_the_parts_existed_has_none():
    edit = masked()
    state = pickle.loads(pickle.dumps(edit)).__dict__
    del state["standardization"], state["eraser"]  # what an older fairnoise pickled
    old = FittedEdit.__new__(FittedEdit)
    old.__dict__.update(state)
    assert old.standardization is None and old.eraser is None
    X = np.ones((1, 2, 4, 4), np.float32)
    assert np.array_equal(old.apply(X), edit.apply(X)) and not old.is_identity


def test_the_standardisation_flows_through_transform_and_every_encoder_path(images, encoder):
    from fairnoise.edits import fit_standardization
    from fairnoise.encoders import check_encoder

    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, max_epochs=1, random_state=0,
                                 validation_fraction=None)
    t = t.fit(X, y, sensitive_features=a)
    plain = t.edit_
    standardization = fit_standardization(0.5 * X + 0.2)
    edit = FittedEdit(plain.kind, plain.input_shape, plain.param, noise=plain.noise,
                      mask=plain.mask, fill=plain.fill, standardization=standardization)
    expected = t.transform(standardization.apply(X))  # the plain edit of standardised X
    t.edit_ = edit
    np.testing.assert_allclose(t.transform(X), expected, rtol=1e-4, atol=1e-5)  # torch_op
    callable_encoder = check_encoder(lambda batch: batch.reshape(len(batch), -1)[:, :7])
    np.testing.assert_array_equal(callable_encoder.embed(X, edit=edit),  # apply
                                  edit.apply(X).reshape(len(X), -1)[:, :7])
