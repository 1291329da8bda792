"""Encoders that misbehave: user code never gets the caller's memory, a changing width or a
float64 module are handled by name, a missing device is named (issue 13 #5, #10, #11)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_encoder, make_marker_images

from fairnoise import DebiasedNoiseTransformer, GeZONoiseTransformer
from fairnoise.encoders import CallableEncoder, TorchEncoder

ENC = make_encoder()
X, Y, A = make_marker_images(n=160)
N, B = len(X), 64

WHITE = dict(max_epochs=1, batch_size=B, random_state=0)
BLACK = dict(batch_size=B, n_directions=3, noise_resolution=4, random_state=0)

def embed(batch: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return ENC(torch.as_tensor(batch)).numpy()


def dne(**kw) -> DebiasedNoiseTransformer:
    return DebiasedNoiseTransformer(**{"encoder": ENC, **WHITE, **kw})


def gezo(fn=embed, **kw) -> GeZONoiseTransformer:
    return GeZONoiseTransformer(CallableEncoder(fn, batch_size=B, retry_delay=0),
                                **{**BLACK, **kw})


# -- user code never receives the caller's memory (13.5) -----------------------------------
class InPlace(torch.nn.Module):
    """The stand-in encoder after an in-place ``x.sub_(0.5)`` (or out of place: the clean twin)."""

    def __init__(self, in_place: bool):
        super().__init__()
        self.in_place, self.body = in_place, make_encoder()

    def forward(self, x):
        x = x.sub_(0.5) if self.in_place else x - 0.5
        return self.body(x)


def in_place_api(batch):
    batch -= 0.5
    return embed(batch)


def clean_api(batch):
    return embed(batch - 0.5)


@pytest.mark.parametrize("output", ["embeddings", "images"])
def test_a_module_writing_to_its_input_changes_neither_x_nor_the_result(output):
    X0 = X.copy()
    dirty = dne(encoder=InPlace(True), output=output)
    clean = dne(encoder=InPlace(False), output=output)
    Z_dirty = dirty.fit(X, Y, sensitive_features=A).transform(X)
    np.testing.assert_array_equal(X, X0)
    Z_clean = clean.fit(X, Y, sensitive_features=A).transform(X)
    np.testing.assert_array_equal(dirty.edit_.param, clean.edit_.param)
    np.testing.assert_array_equal(Z_dirty, Z_clean)


@pytest.mark.parametrize("n_jobs", [None, 2])
def test_an_api_writing_to_its_batch_changes_neither_x_nor_the_result(n_jobs):
    X0 = X.copy()
    dirty = gezo(in_place_api, max_epochs=1, n_jobs=n_jobs)
    Z_dirty = dirty.fit(X, Y, sensitive_features=A).transform(X)
    np.testing.assert_array_equal(X, X0)
    clean = gezo(clean_api, max_epochs=1, n_jobs=n_jobs)
    Z_clean = clean.fit(X, Y, sensitive_features=A).transform(X)
    np.testing.assert_array_equal(dirty.edit_.param, clean.edit_.param)
    np.testing.assert_array_equal(Z_dirty, Z_clean)


def test_a_module_writing_to_its_input_in_gezo_leaves_x_alone():
    X0 = X.copy()
    GeZONoiseTransformer(InPlace(True), **BLACK, max_epochs=1).fit(
        X, Y, sensitive_features=A).transform(X)
    np.testing.assert_array_equal(X, X0)


# -- encoders of changing width, float64 modules (13.10) -----------------------------------
class Narrowing(torch.nn.Module):
    """64 features on the first call, then 5: an encoder whose output width changes."""

    def __init__(self):
        super().__init__()
        self.body, self.calls = make_encoder(), 0

    def forward(self, x):
        self.calls += 1
        z = self.body(x)
        return z if self.calls == 1 else z[:, :5]


def test_an_encoder_changing_width_is_refused_by_name_in_dne():
    with pytest.raises(ValueError, match=r"encoder TorchEncoder\(Narrowing.*returned "
                                         r"embeddings of 5 features, but 64 on an earlier call"):
        dne(encoder=Narrowing(), batch_size=32).fit(X, Y, sensitive_features=A)


def test_an_encoder_changing_width_between_the_probe_and_training_is_refused():
    class LaterNarrowing(Narrowing):
        def forward(self, x):
            z = self.body(x)
            return z if not torch.is_grad_enabled() else z[:, :5]  # narrower with gradients

    with pytest.raises(ValueError, match="5 features, but 64 on an earlier call"):
        dne(encoder=LaterNarrowing()).fit(X, Y, sensitive_features=A)


@pytest.mark.parametrize("cls", [DebiasedNoiseTransformer, GeZONoiseTransformer])
def test_a_float64_module_runs_and_is_not_changed(cls):
    settings = WHITE if cls is DebiasedNoiseTransformer else {**BLACK, "max_epochs": 1}
    module = make_encoder().double()
    t64 = cls(module, **settings).fit(X, Y, sensitive_features=A)
    t32 = cls(make_encoder(), **settings).fit(X, Y, sensitive_features=A)
    assert next(module.parameters()).dtype == torch.float64  # left as it was
    Z64, Z32 = t64.transform(X), t32.transform(X)
    assert Z64.dtype == np.float32
    np.testing.assert_allclose(t64.edit_.param, t32.edit_.param, atol=1e-4)
    np.testing.assert_allclose(Z64, Z32, rtol=1e-4, atol=1e-5)


# -- a device that is not there (13.11) ----------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_value_error_naming_device():
    with pytest.raises(ValueError, match=r"device='cuda', but CUDA is not available"):
        dne(device="cuda").fit(X, Y, sensitive_features=A)
    with pytest.raises(ValueError, match=r"device='cuda:1'"):
        TorchEncoder(ENC, device="cuda:1")
