"""Behaviour of the white-box DebiasedNoiseTransformer."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_encoder, make_marker_images
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fairnoise import DebiasedNoiseTransformer
from fairnoise.edits import FittedEdit

FAST = dict(max_epochs=2, batch_size=64, random_state=0, validation_fraction=None)


def retrained_leakage(t, X_train, a_train, X_test, a_test, y_train=None, y_test=None):
    """AUC of a fresh probe trained on transformed train data, scored on held-out data."""
    Z, Zt = t.transform(X_train), t.transform(X_test)

    def auc(Ztr, atr, Zte, ate):
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        return roc_auc_score(ate, probe.fit(Ztr, atr).predict_proba(Zte)[:, 1])

    if y_train is None:
        return auc(Z, a_train, Zt, a_test)
    return np.mean([auc(Z[y_train == c], a_train[y_train == c], Zt[y_test == c],
                        a_test[y_test == c]) for c in np.unique(y_train)])


# -- shapes and outputs -------------------------------------------------------------------------
def test_transform_returns_2d_embeddings(images, encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, **FAST)
    Z = t.fit(X, y, sensitive_features=a).transform(X)
    assert Z.shape == (len(X), 64)
    assert Z.dtype == np.float32


def test_output_images_keeps_input_shape(images, encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, output="images", **FAST)
    assert t.fit(X, y, sensitive_features=a).transform(X).shape == X.shape


def test_images_output_is_the_edit_that_embeddings_output_encodes(images, encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, **FAST).fit(X, y, sensitive_features=a)
    edited = t.set_params(output="images").transform(X)
    with torch.no_grad():
        expected = encoder(torch.as_tensor(edited)).numpy()
    np.testing.assert_allclose(t.set_params(output="embeddings").transform(X), expected,
                               rtol=1e-5, atol=1e-6)


def test_fitted_state_is_numpy(images, encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, **FAST).fit(X, y, sensitive_features=a)
    for name in ("noise_", "mask_", "classes_sensitive_"):
        assert isinstance(getattr(t, name), np.ndarray), name
    assert isinstance(t.edit_, FittedEdit) and isinstance(t.edit_.param, np.ndarray)
    assert t.input_shape_ == (1, 16, 16)
    assert t.n_features_in_ == 256
    assert len(t.loss_curve_) == t.n_iter_ == 2


@pytest.mark.parametrize("edit", ["additive", "masked"])
@pytest.mark.parametrize("channel_shared, noise_channels", [(True, 1), (False, 3)])
def test_noise_shape_follows_channel_sharing_and_resolution(edit, channel_shared, noise_channels):
    X, y, a = make_marker_images(n=64, channels=3)
    t = DebiasedNoiseTransformer(encoder=make_encoder(channels=3), edit=edit,
                                 channel_shared=channel_shared, noise_resolution=4, **FAST)
    t.fit(X, y, sensitive_features=a)
    assert t.edit_.param.shape == (noise_channels, 4, 4)
    full = t.mask_ if edit == "masked" else t.noise_
    assert full.shape == (noise_channels, 16, 16)


def test_low_resolution_noise_is_smooth_upsampling(images, encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, edit="additive", noise_resolution=2,
                                 **FAST).fit(X, y, sensitive_features=a)
    up = torch.nn.functional.interpolate(torch.tensor(t.edit_.param)[None], size=(16, 16),
                                         mode="bilinear", align_corners=False)[0].numpy()
    np.testing.assert_allclose(t.noise_, up, rtol=1e-6)


def test_nearest_upsampling_learns_a_piecewise_constant_mask(images, encoder):
    X, y, a = images  # 16 x 16 images: a 4 x 4 grid of cells of 4 x 4 pixels
    t = DebiasedNoiseTransformer(encoder=encoder, noise_resolution=4, upsampling="nearest",
                                 **FAST).fit(X, y, sensitive_features=a)
    cells = np.kron(t.edit_.param, np.ones((1, 4, 4), np.float32))
    np.testing.assert_array_equal(t.mask_, 1.0 - cells)


def test_auto_upsampling_of_the_white_box_class_is_bilinear(images, encoder):
    X, y, a = images
    fits = [DebiasedNoiseTransformer(encoder=encoder, noise_resolution=4, upsampling=u,
                                     **FAST).fit(X, y, sensitive_features=a)
            for u in ("auto", "bilinear")]
    np.testing.assert_array_equal(fits[0].mask_, fits[1].mask_)


def test_images_without_channel_axis(encoder):
    X, y, a = make_marker_images(n=64)
    X3 = X[:, 0]
    enc = torch.nn.Sequential(torch.nn.Unflatten(1, (1, 16)), encoder)
    t = DebiasedNoiseTransformer(encoder=enc, output="images", **FAST)
    assert t.fit(X3, y, sensitive_features=a).transform(X3).shape == X3.shape


def test_torch_tensor_input(images, encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, **FAST)
    Z1 = t.fit(torch.as_tensor(X), y, sensitive_features=torch.as_tensor(a)).transform(X)
    t2 = DebiasedNoiseTransformer(encoder=encoder, **FAST)
    Z2 = t2.fit(X, y, sensitive_features=a).transform(X)
    np.testing.assert_array_equal(Z1, Z2)


def test_memmap_input_is_read_lazily_and_matches_in_memory(tmp_path, images, encoder):
    X, y, a = images
    path = tmp_path / "x.npy"
    np.save(path, X)
    mm = np.load(path, mmap_mode="r")
    t_mm = DebiasedNoiseTransformer(encoder=encoder, **FAST).fit(mm, y, sensitive_features=a)
    t_np = DebiasedNoiseTransformer(encoder=encoder, **FAST).fit(X, y, sensitive_features=a)
    np.testing.assert_array_equal(t_mm.edit_.param, t_np.edit_.param)
    np.testing.assert_array_equal(t_mm.transform(mm), t_np.transform(X))


# -- reproducibility and purity ----------------------------------------------------------------
def test_same_random_state_gives_bit_identical_noise(images, encoder):
    X, y, a = images
    kw = dict(encoder=encoder, max_epochs=3, batch_size=32, validation_fraction=None)
    t1 = DebiasedNoiseTransformer(random_state=3, **kw).fit(X, y, sensitive_features=a)
    t2 = DebiasedNoiseTransformer(random_state=3, **kw).fit(X, y, sensitive_features=a)
    t3 = DebiasedNoiseTransformer(random_state=4, **kw).fit(X, y, sensitive_features=a)
    np.testing.assert_array_equal(t1.edit_.param, t2.edit_.param)
    assert not np.array_equal(t1.edit_.param, t3.edit_.param)


def test_fit_does_not_touch_the_global_torch_seed(images, encoder):
    X, y, a = images
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    DebiasedNoiseTransformer(encoder=encoder, **FAST).fit(X, y, sensitive_features=a)
    assert torch.equal(torch.rand(3), expected)


def test_the_callers_module_is_left_as_it_was(images):
    X, y, a = images
    enc = make_encoder().train()
    enc[0].weight.requires_grad_(True)
    flags = [p.requires_grad for p in enc.parameters()]
    before = [p.detach().clone() for p in enc.parameters()]
    DebiasedNoiseTransformer(encoder=enc, **FAST).fit(X, y, sensitive_features=a)
    assert enc.training and all(m.training for m in enc.modules())
    assert [p.requires_grad for p in enc.parameters()] == flags
    assert all(torch.equal(p, q) for p, q in zip(enc.parameters(), before, strict=True))
    assert all(p.grad is None for p in enc.parameters())


def test_inputs_are_not_mutated(images, encoder):
    X, y, a = images
    Xc, yc, ac = X.copy(), y.copy(), a.copy()
    t = DebiasedNoiseTransformer(encoder=encoder, **FAST).fit(X, y, sensitive_features=a)
    t.transform(X)
    t.set_params(output="images").transform(X)
    assert np.array_equal(X, Xc) and np.array_equal(y, yc) and np.array_equal(a, ac)


# -- the method ---------------------------------------------------------------------------------
def test_default_edit_lowers_retrained_probe_leakage_on_a_marker_shortcut():
    X, y, a = make_marker_images(n=400, seed=0)
    Xt, yt, at = make_marker_images(n=400, seed=1)
    enc = make_encoder()
    identity = DebiasedNoiseTransformer(encoder=enc, max_epochs=1, learning_rate=1e-12,
                                        validation_fraction=None,
                                        random_state=0).fit(X, y, sensitive_features=a)
    dne = DebiasedNoiseTransformer(encoder=enc, random_state=0).fit(X, y, sensitive_features=a)
    before = retrained_leakage(identity, X, a, Xt, at, y, yt)
    after = retrained_leakage(dne, X, a, Xt, at, y, yt)
    assert before > 0.95
    assert after < 0.75, (before, after)
    # the mask sits on the marker (rows 1-3, last columns) and keeps most of the image
    assert dne.mask_[0, 1:4, -4:-1].mean() < 0.2
    assert dne.mask_.mean() > 0.75


def test_feature_mode_masked_edit_hides_the_group_column(features):
    X, y, a = features
    t = DebiasedNoiseTransformer(validation_fraction=None, random_state=0).fit(
        X, y, sensitive_features=a)
    assert t.mask_[3] < 0.1
    assert t.mask_[0] > 0.9  # the label column is kept


def test_additive_edit_in_feature_mode_cannot_remove_linear_information(features):
    X, y, a = features
    with pytest.warns(UserWarning, match="only moves a linear model's intercept"):
        t = DebiasedNoiseTransformer(edit="additive", erase=False, random_state=0).fit(
            X, y, sensitive_features=a)
    Z = t.transform(X)
    np.testing.assert_allclose(Z - X, np.broadcast_to(t.noise_, X.shape), atol=1e-6)


@pytest.mark.parametrize("objective", ["neg_ce", "confusion", "mean_gap"])
def test_every_objective_decreases_its_loss(images, encoder, objective):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, objective=objective, edit="additive",
                                 learning_rate=0.01, lambda_reg=1e-3, max_epochs=5, random_state=0,
                                 n_iter_no_change=10)
    t.fit(X, y, sensitive_features=a)
    assert t.loss_curve_[-1] < t.loss_curve_[0]


def test_mean_gap_cannot_be_won_by_inflating_the_spread():
    # With the sampling-noise correction in the gradient, the additive edit learned to
    # inflate the within-group spread of a random CNN's embeddings and drove the
    # estimate to about -150 (in units of the clean gap, which is >= 0 by definition)
    # within a few epochs; the value must stay an honest, non-negative-in-expectation
    # estimate.
    X, y, a = make_marker_images(n=600, seed=1)
    t = DebiasedNoiseTransformer(make_encoder(), edit="additive", objective="mean_gap",
                                 max_epochs=4, n_iter_no_change=10, random_state=0)
    t.fit(X, y, sensitive_features=a)
    assert min(t.loss_curve_) > -0.25


def test_max_norm_bounds_the_full_resolution_noise(images, encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, edit="additive", objective="neg_ce",
                                 max_norm=0.5, learning_rate=0.1, noise_resolution=4, **FAST)
    t.fit(X, y, sensitive_features=a)
    assert np.linalg.norm(t.noise_) <= 0.5 + 1e-5


def test_mask_stays_in_the_unit_interval(images, encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, learning_rate=0.5, **FAST)
    t.fit(X, y, sensitive_features=a)
    assert t.mask_.min() >= 0 and t.mask_.max() <= 1


def test_early_stopping_on_the_loss(images, encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, max_epochs=50, tol=1e3, n_iter_no_change=2,
                                 validation_fraction=None,
                                 random_state=0).fit(X, y, sensitive_features=a)
    assert t.n_iter_ == 3  # the first epoch sets the best loss, two more fail to beat it


def test_conditional_adversary_fits_one_probe_per_class(images, encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, objective="confusion", **FAST)
    assert set(t.fit(X, y, sensitive_features=a).sa_probe_) == {0, 1}
    assert hasattr(t.fit(X, sensitive_features=a).sa_probe_, "predict_proba")
    t.set_params(conditional=False).fit(X, y, sensitive_features=a)
    assert hasattr(t.sa_probe_, "predict_proba")


def test_a_class_holding_a_single_group_is_handled(images, encoder):
    X, y, a = images
    a = np.where(y == 1, 1, a)  # every positive is in group 1
    t = DebiasedNoiseTransformer(encoder=encoder, objective="confusion", **FAST)
    t.fit(X, y, sensitive_features=a)
    assert t.sa_probe_[1] is None
    assert np.isfinite(t.loss_curve_).all()


def test_string_labels_and_three_groups(encoder):
    X, y, a = make_marker_images(groups=3)
    labels = np.array(["female", "male", "other"])[a]
    t = DebiasedNoiseTransformer(encoder=encoder, objective="confusion", **FAST)
    t.fit(X, y, sensitive_features=labels)
    assert list(t.classes_sensitive_) == ["female", "male", "other"]
    assert t.transform(X).shape == (len(X), 64)


def test_several_attributes_form_intersectional_groups(images, encoder):
    X, y, a = images
    age = np.arange(len(a)) % 2
    sf = pd.DataFrame({"sex": np.array(["F", "M"])[a], "age": age})
    t = DebiasedNoiseTransformer(encoder=encoder, **FAST).fit(X, y, sensitive_features=sf)
    assert len(t.classes_sensitive_) == 4
    assert t.classes_sensitive_[0] == ("F", 0)


@pytest.mark.parametrize("probe", [SGDClassifier(loss="log_loss", random_state=0),
                                   torch.nn.Linear(64, 2)])
def test_replaceable_probe(images, encoder, probe):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, sa_probe=probe, objective="confusion",
                                 conditional=False, **FAST)
    t.fit(X, y, sensitive_features=a)
    assert t.sa_probe_.predict(np.zeros((1, 64))).shape == (1,)
    assert t.loss_curve_[-1] <= t.loss_curve_[0]


def test_torch_probe_module_is_not_modified(images, encoder):
    X, y, a = images
    module = torch.nn.Linear(64, 2)
    before = module.weight.detach().clone()
    DebiasedNoiseTransformer(encoder=encoder, sa_probe=module, objective="confusion",
                             **FAST).fit(X, y, sensitive_features=a)
    assert torch.equal(module.weight, before)


def test_verbose_shows_a_progress_bar(images, encoder, capsys):
    X, y, a = images
    DebiasedNoiseTransformer(encoder=encoder, verbose=1, **FAST).fit(X, y, sensitive_features=a)
    assert "fitting noise" in capsys.readouterr().err


def test_without_sensitive_features_fit_warns_and_learns_no_edit(images, encoder):
    X, y, _ = images
    with pytest.warns(UserWarning, match="sensitive_features") as record:
        t = DebiasedNoiseTransformer(encoder=encoder, **FAST).fit(X, y)
    message = str(record[0].message)
    assert "noise__sensitive_features" not in message  # names the pattern, not a step
    assert "__sensitive_features" in message and "enable_metadata_routing" in message
    np.testing.assert_array_equal(t.mask_, 1.0)
    with torch.no_grad():
        np.testing.assert_allclose(t.transform(X), encoder(torch.as_tensor(X)).numpy(), rtol=1e-6)


def test_feature_mode_preserves_float64():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert DebiasedNoiseTransformer().fit_transform(X).dtype == np.float64


# -- the optimiser on its own --------------------------------------------------------------------
