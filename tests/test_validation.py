"""Bad input raises ValueError / TypeError with a message a user can act on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_marker_images

from fairnoise import DebiasedNoiseTransformer
from fairnoise.encoders import CallableEncoder, TorchEncoder

FAST = dict(max_epochs=1, batch_size=64, random_state=0, validation_fraction=None)


def fit(X, y, a, **kw):
    return DebiasedNoiseTransformer(**{**FAST, **kw}).fit(X, y, sensitive_features=a)


def test_length_mismatch_names_both_lengths(images, encoder):
    X, y, a = images
    with pytest.raises(ValueError, match=r"sensitive_features has 239 entries but X has 240"):
        fit(X, y, a[:-1], encoder=encoder)


def test_a_single_group(images, encoder):
    X, y, _ = images
    with pytest.raises(ValueError, match="single group"):
        fit(X, y, np.zeros(len(X)), encoder=encoder)


def test_missing_group_labels(images, encoder):
    X, y, a = images
    labels = a.astype(object)
    labels[3] = None
    with pytest.raises(ValueError, match="missing values"):
        fit(X, y, labels, encoder=encoder)


def test_three_dimensional_sensitive_features(images, encoder):
    X, y, a = images
    with pytest.raises(ValueError, match="1-D .* or 2-D"):
        fit(X, y, a.reshape(-1, 1, 1), encoder=encoder)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_images(images, encoder, bad):
    X, y, a = images
    X = X.copy()
    X[5, 0, 2, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        fit(X, y, a, encoder=encoder)


def test_non_finite_features(features):
    X, y, a = features
    X = X.copy()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit(X, y, a)


@pytest.mark.parametrize("shape", [(10,), (4, 1, 2, 3, 3)])
def test_wrong_number_of_dimensions(encoder, shape):
    with pytest.raises(ValueError, match="X must be 2-D"):
        fit(np.zeros(shape, np.float32), None, np.arange(shape[0]) % 2, encoder=encoder)


def test_images_without_an_encoder():
    X, y, a = make_marker_images(n=20)
    with pytest.raises(ValueError, match="encoder=None .* must be 2-D"):
        fit(X, y, a)


def test_complex_input(encoder):
    with pytest.raises(TypeError, match="real numbers"):
        fit(np.zeros((4, 1, 4, 4), np.complex64), None, [0, 1, 0, 1], encoder=encoder)


def test_transform_with_another_shape(images, encoder):
    X, y, a = images
    t = fit(X, y, a, encoder=encoder)
    with pytest.raises(ValueError, match=r"shape \(1, 12, 12\).*fitted on samples of shape"):
        t.transform(X[:, :, :12, :12])
    with pytest.raises(ValueError, match=r"single sample, add the batch axis: X\[None\]"):
        t.transform(X[0])
    assert t.transform(X[0][None]).shape[0] == 1


def test_transform_with_another_number_of_features(features):
    X, y, a = features
    t = fit(X, y, a)
    with pytest.raises(ValueError, match="features"):
        t.transform(X[:, :3])


def test_encoder_with_non_2d_output(images):
    X, y, a = images
    with pytest.raises(ValueError, match="2-D"):
        fit(X, y, a, encoder=torch.nn.Identity())


def test_encoder_returning_nan(images):
    X, y, a = images

    class NaNEncoder(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1) * torch.nan

    with pytest.raises(ValueError, match="NaN"):
        fit(X, y, a, encoder=NaNEncoder())


def test_a_plain_callable_is_not_differentiable(images):
    X, y, a = images
    with pytest.raises(TypeError, match="GeZONoiseTransformer"):
        fit(X, y, a, encoder=lambda b: b.reshape(len(b), -1))
    with pytest.raises(TypeError, match="GeZONoiseTransformer"):
        fit(X, y, a, encoder=CallableEncoder(lambda b: b.reshape(len(b), -1)))


def test_a_module_that_detaches_is_not_differentiable(images):
    X, y, a = images

    class Detaching(torch.nn.Module):
        def forward(self, x):
            return torch.as_tensor(x.detach().flatten(1).numpy())

    with pytest.raises(TypeError, match="carries no gradient"):
        fit(X, y, a, encoder=Detaching())


def test_encoder_of_the_wrong_type(images):
    X, y, a = images
    with pytest.raises((TypeError, ValueError), match="encoder"):
        fit(X, y, a, encoder="resnet50")


@pytest.mark.parametrize("param, value, match", [
    ("edit", "nope", "edit"),
    ("objective", "entropy", "objective"),
    ("output", "logits", "output"),
    ("precision", "fp8", "precision"),
    ("lambda_reg", -1.0, "lambda_reg"),
    ("batch_size", 0, "batch_size"),
    ("max_epochs", 0, "max_epochs"),
])
def test_invalid_parameters_name_themselves(images, encoder, param, value, match):
    X, y, a = images
    with pytest.raises(ValueError, match=match):
        fit(X, y, a, encoder=encoder, **{param: value})


def test_noise_resolution_in_feature_mode(features):
    X, y, a = features
    with pytest.raises(ValueError, match="noise_resolution applies to images"):
        fit(X, y, a, noise_resolution=4)


def test_bad_noise_resolution_pair(images, encoder):
    X, y, a = images
    with pytest.raises(ValueError, match="noise_resolution"):
        fit(X, y, a, encoder=encoder, noise_resolution=(4, 4, 4))


def test_max_norm_with_the_masked_edit(images, encoder):
    X, y, a = images
    with pytest.raises(ValueError, match="max_norm bounds the additive noise"):
        fit(X, y, a, encoder=encoder, edit="masked", max_norm=1.0)


def test_probe_without_coefficients(features):
    from sklearn.ensemble import RandomForestClassifier

    X, y, a = features
    with pytest.raises(TypeError, match="coef_/intercept_"):
        fit(X, y, a, sa_probe=RandomForestClassifier(n_estimators=2), objective="confusion")


def test_continuous_y_with_the_conditional_adversary(features):
    X, _, a = features
    with pytest.raises(ValueError, match="conditional=False"):
        fit(X, np.linspace(0, 1, len(X)), a)


def test_wrapper_arguments_are_checked():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        TorchEncoder(lambda b: b)
    with pytest.raises(ValueError, match="precision"):
        TorchEncoder(torch.nn.Identity(), precision="int4")
    with pytest.raises(ValueError, match="batch_size"):
        CallableEncoder(lambda b: b, batch_size=0)
    with pytest.raises(TypeError, match="callable"):
        CallableEncoder(42)


def test_transform_before_fit():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        DebiasedNoiseTransformer().transform(np.zeros((2, 3)))


def test_a_single_class_of_y_is_refused_where_the_guard_needs_two(images, encoder):
    X, _, a = images
    y = np.full(len(X), "healthy")
    with pytest.raises(ValueError, match=r"y holds a single class \('healthy'\).* task AUC"):
        fit(X, y, a, encoder=encoder, validation_fraction=0.2)
    from fairnoise import GeZONoiseTransformer

    with pytest.raises(ValueError, match=r"single class .*validation_fraction=None"):
        GeZONoiseTransformer(CallableEncoder(lambda b: b.reshape(len(b), -1)[:, :8]),
                             max_queries=2000).fit(X, y, sensitive_features=a)
    fit(X, y, a, encoder=encoder)  # unguarded: the one class is the marginal adversary


def test_an_encoder_for_other_images_is_a_value_error_at_fit(images):
    X, y, a = images
    rgb = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
    with pytest.raises(ValueError, match=r"failed on the first batch, of shape \(64, 1, "):
        fit(X, y, a, encoder=rgb)
