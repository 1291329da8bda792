"""TorchEncoder: frozen use of a caller's module, batching, devices, precision."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from conftest import make_encoder

from fairnoise.encoders import CallableEncoder, TorchEncoder, check_encoder


def test_embed_matches_a_plain_forward_in_batches():
    enc = make_encoder()
    X = np.random.default_rng(0).normal(size=(10, 1, 16, 16)).astype(np.float32)
    with torch.no_grad():
        expected = enc(torch.as_tensor(X)).numpy()
    np.testing.assert_allclose(TorchEncoder(enc, batch_size=3).embed(X), expected,
                               rtol=1e-5, atol=1e-6)


def test_frozen_restores_mode_and_flags():
    enc = make_encoder().train()
    enc[0].weight.requires_grad_(True)
    wrapper = TorchEncoder(enc)
    with wrapper.frozen() as module:
        assert not module.training
        assert not any(p.requires_grad for p in module.parameters())
    assert enc.training and enc[0].weight.requires_grad and not enc[3].weight.requires_grad


def test_frozen_restores_even_after_an_error():
    enc = make_encoder().train()
    with pytest.raises(RuntimeError), TorchEncoder(enc).frozen():
        raise RuntimeError("boom")
    assert enc.training


def test_another_device_uses_a_private_copy(monkeypatch):
    enc = make_encoder()
    wrapper = TorchEncoder(enc, device="meta")
    moved = wrapper._target_module()
    assert moved is not enc
    assert next(enc.parameters()).device.type == "cpu"
    assert next(moved.parameters()).device.type == "meta"


def test_auto_device_and_precision_on_cpu():
    wrapper = TorchEncoder(make_encoder())
    if not torch.cuda.is_available():
        assert wrapper.torch_device.type == "cpu"


def test_bf16_precision_runs_and_returns_float32():
    X = np.ones((2, 1, 16, 16), np.float32)
    Z = TorchEncoder(make_encoder(), device="cpu", precision="bf16").embed(X)
    assert Z.dtype == np.float32 and Z.shape == (2, 64)


def test_invalid_device_is_a_value_error():
    with pytest.raises(ValueError, match="device"):
        TorchEncoder(make_encoder(), device="quantum").torch_device  # noqa: B018


def test_pickle_drops_the_device_cache():
    wrapper = TorchEncoder(make_encoder(), device="meta")
    wrapper._target_module()
    restored = pickle.loads(pickle.dumps(wrapper))
    assert restored._moved is None and restored.device == "meta"


def test_check_encoder_wraps_what_users_pass():
    enc = make_encoder()
    assert check_encoder(None) is None
    assert isinstance(check_encoder(enc), TorchEncoder)
    assert isinstance(check_encoder(lambda b: b), CallableEncoder)
    wrapper = TorchEncoder(enc)
    assert check_encoder(wrapper) is wrapper
    with pytest.raises(TypeError, match="encoder must be"):
        check_encoder(3)


def test_a_module_that_cannot_take_the_inputs_is_a_value_error_naming_their_shape():
    three_channels = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
    enc = TorchEncoder(three_channels, batch_size=8)
    with pytest.raises(ValueError, match=r"failed on the first batch, of shape \(8, 1, 16, 16\)"
                                         r": RuntimeError: .*channels.*check the encoder") as info:
        enc.embed(np.zeros((20, 1, 16, 16), np.float32))
    assert isinstance(info.value.__cause__, RuntimeError)  # torch's own error, kept


def test_a_module_failing_after_its_first_batch_raises_its_own_error():
    class Breaks(torch.nn.Module):
        calls = 0

        def forward(self, x):
            type(self).calls += 1
            if type(self).calls > 1:
                raise RuntimeError("the module's own failure")
            return x.flatten(1)

    with pytest.raises(RuntimeError, match="the module's own failure"):
        TorchEncoder(Breaks(), batch_size=8).embed(np.zeros((20, 1, 4, 4), np.float32))
