"""Shared test data: small images where a corner marker encodes the group."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairnoise.encoders import make_standin_encoder


def make_marker_images(n: int = 240, size: int = 16, groups: int = 2, seed: int = 0,
                       channels: int = 1):
    """Images whose corner marker encodes the group; the label leans on the group."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, groups, n)
    y = (rng.random(n) < np.linspace(0.25, 0.75, groups)[a]).astype(int)
    X = rng.normal(0.5, 0.1, (n, channels, size, size)).astype(np.float32)
    c = size // 2
    X[y == 1, :, c - 2 : c + 2, c - 2 : c + 2] += 0.3
    X[a >= 1, :, 1:4, -4:-1] += 0.8 * (a[a >= 1, None, None, None] / max(groups - 1, 1))
    return X, y, a


def make_encoder(channels: int = 1, seed: int = 0) -> torch.nn.Module:
    """A tiny frozen random CNN standing in for a foundation model (16×16 → 64-d)."""
    return make_standin_encoder(channels, seed, width=8, depth=2, kernel_size=3,
                                pooling="max", grid=2, init_std=0.3)


@pytest.fixture
def images():
    return make_marker_images()


@pytest.fixture
def encoder():
    return make_encoder()


@pytest.fixture
def features():
    """Feature vectors where column 3 encodes the group and column 0 the label."""
    rng = np.random.default_rng(0)
    n = 300
    a = rng.integers(0, 2, n)
    y = (rng.random(n) < np.where(a == 1, 0.7, 0.3)).astype(int)
    X = rng.normal(size=(n, 5))
    X[:, 0] += 1.5 * y
    X[:, 3] += 2.0 * a
    return X, y, a
