"""GeZO's budget check scales: thousands of directions cost one pass, not one per candidate."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_encoder, make_marker_images

import fairnoise.optim._loss as loss_module
from fairnoise import GeZONoiseTransformer


class CountingDigest:
    """``_digest`` that counts its calls and fails as soon as they pass ``limit``."""

    def __init__(self, digest, limit: int) -> None:
        self.digest, self.limit, self.calls = digest, limit, 0

    def __call__(self, idx: np.ndarray, theta: np.ndarray) -> str:
        self.calls += 1
        if self.calls > self.limit:
            raise AssertionError(f"more than {self.limit} digests: the budget check is not "
                                 "linear in the number of directions")
        return self.digest(idx, theta)


@pytest.mark.parametrize("strategy", ["spsa", "greedy"])
def test_thousands_of_directions_cost_one_digest_per_point(monkeypatch, strategy):
    n_directions, budget = 20_000, 5_000
    X, y, a = make_marker_images(n=128)
    points = 1 + 2 * n_directions
    # linear: each point of an iteration digested a small number of times (the budget
    # check, the losses of the few directions kept); quadratic: ~points per candidate
    counter = CountingDigest(loss_module._digest, limit=4 * points)
    monkeypatch.setattr(loss_module, "_digest", counter)
    t = GeZONoiseTransformer(make_encoder(), strategy=strategy, n_directions=n_directions,
                             max_queries=budget, batch_size=128, noise_resolution=4,
                             random_state=0)
    t.fit(X, y, sensitive_features=a)
    assert t.n_iter_ == 1  # the budget pays for one iteration with the directions it can
    assert t.n_queries_ <= budget
    # the probe's embedding, then (1 + 2 n + follow-ups) images of 128: n = 18 or 17 here
    assert t.n_queries_ > budget - (2 + 1) * 128
    assert 0 < counter.calls <= 4 * points


def test_gauss_newton_probes_at_most_one_direction_per_parameter(monkeypatch):
    # 20,000 directions asked for, 16 parameters (4 x 4): an iteration probes 16 of them,
    # one point each, so the budget buys several iterations and digests stay few
    X, y, a = make_marker_images(n=128)
    counter = CountingDigest(loss_module._digest, limit=2_000)
    monkeypatch.setattr(loss_module, "_digest", counter)
    t = GeZONoiseTransformer(make_encoder(), strategy="gauss_newton", n_directions=20_000,
                             max_queries=5_000, batch_size=128, noise_resolution=4,
                             random_state=0)
    t.fit(X, y, sensitive_features=a)
    # the probe's embedding (128), then iterations of (1 + 16) and (2 + 16) batches of 128,
    # the last with the directions that still fit; one pass of the inputs is held back
    # for the rounded mask, unused where rounding changes nothing
    assert t.n_iter_ == 3
    rounded = "masked edit, rounded" in set(t.validation_["candidate"])
    assert budget_left(t, 5_000) < 128 * (1 if rounded else 2)
    assert 0 < counter.calls <= 2_000


def budget_left(t: GeZONoiseTransformer, budget: int) -> int:
    assert t.n_queries_ <= budget
    return budget - t.n_queries_
