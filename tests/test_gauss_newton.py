"""strategy="gauss_newton": Levenberg–Marquardt steps on the objective's residual vector."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from conftest import make_encoder, make_marker_images

from fairnoise import GeZONoiseTransformer
from fairnoise.edits import NoiseSpace
from fairnoise.objectives import Adversary, mean_gap, mean_gap_residuals
from fairnoise.optim import (
    STRATEGIES,
    EditLoss,
    GaussNewtonSearch,
    QueryLoss,
    SearchState,
    numpy_projection,
    zeroth_order_search,
)

TARGET = np.array([0.2, 0.9, 0.0, 0.6], np.float32)


class Linear:
    """A linear black box ``z = x A`` and the loss ``‖z − z*‖²`` with its residuals."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.A = torch.as_tensor(rng.standard_normal((4, 6)), dtype=torch.float32)
        self.goal = torch.as_tensor(TARGET) @ self.A

    def __call__(self, z, idx):
        return ((z @ self.A - self.goal) ** 2).sum(dim=1).mean()

    def residuals(self, z, idx):
        return ((z @ self.A - self.goal) / np.sqrt(len(z))).reshape(-1)


def search(name: str, n_iter: int, n_directions: int = 4) -> tuple[np.ndarray, list[float]]:
    space = NoiseSpace((4,), "additive", None, True)
    X = np.zeros((32, 4), np.float32)
    strategy = STRATEGIES[name](momentum=0.9, step_decay=0.95,
                                project=numpy_projection(space, None))
    loss = QueryLoss(EditLoss(space, Linear(), 0.0, np.zeros(4, np.float32)),
                     lambda idx: X[idx], None, {}, {} if strategy.needs_residuals else None)
    curve: list[float] = []
    theta = zeroth_order_search(loss, np.zeros(4, np.float32), strategy.start(0.2, (4,), 0),
                                strategy, n_samples=32, batch_size=16,
                                n_directions=n_directions, max_iter=n_iter,
                                on_iteration=lambda t, v: curve.append(v))
    return theta, curve


def test_on_residuals_linear_in_the_edit_two_iterations_reach_the_minimum():
    # the first iteration's probes span the space: its proposal is the least-squares
    # solution (up to the damping), taken on the second iteration's batch
    theta, curve = search("gauss_newton", 2)
    np.testing.assert_allclose(theta, TARGET, atol=1e-2)
    assert curve[-1] < 1e-3 * curve[0]
    # SPSA, at the same number of iterations (more losses each), is nowhere near
    spsa, _ = search("spsa", 2)
    assert np.abs(spsa - TARGET).max() > 0.3


def test_fewer_directions_than_parameters_still_converge_in_random_subspaces():
    theta, curve = search("gauss_newton", 30, n_directions=2)
    np.testing.assert_allclose(theta, TARGET, atol=2e-2)
    assert np.all(np.diff(curve) <= 1e-7)  # the kept point is never worse on its batch


def test_an_iteration_sends_the_current_point_the_proposal_and_one_probe_per_direction():
    strategy = GaussNewtonSearch(momentum=0.9, step_decay=0.9, project=lambda t: t)
    theta = np.zeros(16, np.float32)
    state = strategy.start(0.2, theta.shape, seed=0)
    u = np.random.default_rng(0).standard_normal((40, 16)).astype(np.float32)
    points = strategy.first_round(theta, state, u)
    assert len(points) == 2 + 16  # at most one direction per parameter
    probes = np.stack(points[2:]) - theta
    lengths = np.linalg.norm(probes, axis=1)
    np.testing.assert_allclose(lengths, 0.2 * np.sqrt(16), rtol=1e-5)  # 0.2 per coordinate
    np.testing.assert_allclose(probes @ probes.T / lengths[0] ** 2, np.eye(16), atol=1e-5)


def test_a_rejected_proposal_raises_the_damping_and_an_accepted_one_lowers_it():
    strategy = GaussNewtonSearch(momentum=0.9, step_decay=0.5, project=lambda t: t)
    theta = np.zeros(2, np.float32)
    state = strategy.start(0.1, theta.shape, seed=0)
    state.moments["proposal"] = np.ones(2, np.float32)
    probes = [np.array([1.1, 1.0], np.float32), np.array([1.0, 1.1], np.float32)]
    points = [theta, state.moments["proposal"], *probes]
    residuals = np.array([[1.0], [0.5], [0.4], [0.45]])

    def oracle(pts):
        return (residuals[: len(pts)] ** 2).sum(axis=1)

    oracle.residuals = lambda pts: residuals[: len(pts)]
    kept, _ = strategy.update(theta, state, points, np.array([1.0, 2.0, 0.16, 0.2]),
                              None, oracle)  # the proposal scored worse: rejected
    assert kept is theta and float(state.moments["damping"]) == pytest.approx(4e-3)
    kept, value = strategy.update(theta, state, points, oracle(points), None, oracle)
    assert kept is points[1] and value == 0.25  # better: taken, damping down again
    assert float(state.moments["damping"]) == pytest.approx(1e-3)


def test_mean_gap_is_the_squared_residual_norm_less_the_noise_correction():
    rng = np.random.default_rng(0)
    z = torch.as_tensor(rng.normal(size=(64, 8)), dtype=torch.float32)
    cell = torch.as_tensor(rng.integers(0, 4, 64))
    means = torch.stack([z[cell == c].mean(0) for c in range(4)])
    flat = means[cell]  # no spread within a cell: nothing to correct for
    r = mean_gap_residuals(flat, cell, 2, 2)
    assert float((r**2).sum()) == pytest.approx(float(mean_gap(flat, cell, 2, 2)), rel=1e-5)
    # with spread, the correction only lowers the estimate
    assert float((mean_gap_residuals(z, cell, 2, 2) ** 2).sum()) > float(
        mean_gap(z, cell, 2, 2))


def test_only_mean_gap_has_residuals():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(40, 3)).astype(np.float32)
    a, y = np.tile([0, 1], 20), np.repeat([0, 1], 20)
    adversary = Adversary("mean_gap", None, a, y, Z, torch.device("cpu"))
    assert adversary.has_residuals
    assert adversary.residuals(torch.as_tensor(Z), np.arange(40)).shape == (2 * 2 * 3,)
    adversary.objective = "neg_ce"
    with pytest.raises(ValueError, match="only 'mean_gap' has residuals"):
        adversary.residuals(torch.as_tensor(Z), np.arange(40))


def test_loss_and_residuals_are_the_two_calls_whitened_once(monkeypatch):
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(40, 3)).astype(np.float32)
    a, y = np.tile([0, 1], 20), np.repeat([0, 1], 20)
    adversary = Adversary("mean_gap", None, a, y, Z, torch.device("cpu"))
    idx = np.arange(7, 37)
    z = torch.as_tensor(Z[idx] + rng.normal(0, 0.1, (30, 3)).astype(np.float32))
    whiten, calls = adversary.whiten, []
    monkeypatch.setattr(adversary, "whiten", lambda v: calls.append(1) or whiten(v))
    loss, r = adversary.loss_and_residuals(z, idx)
    assert len(calls) == 1
    assert torch.equal(loss, adversary(z, idx))
    assert torch.equal(r, adversary.residuals(z, idx))
    adversary.objective = "confusion"
    with pytest.raises(ValueError, match="only 'mean_gap' has residuals"):
        adversary.loss_and_residuals(z, idx)


def test_query_loss_keeps_the_losses_of_a_data_loss_without_loss_and_residuals():
    # a data loss with residuals but no combined call: the two calls, the same values
    space = NoiseSpace((4,), "additive", None, True)
    X = np.ones((8, 4), np.float32)
    known, kept = {}, {}
    loss = QueryLoss(EditLoss(space, Linear(), 0.0, np.zeros(4, np.float32)),
                     lambda idx: X[idx], None, known, kept)
    values = loss.on(np.arange(8))([np.zeros(4, np.float32), np.full(4, 0.5, np.float32)])
    z = torch.as_tensor(X)
    assert values[0] == pytest.approx(float(Linear()(z, None)))
    assert len(known) == len(kept) == 2


@pytest.mark.parametrize("objective", ["neg_ce", "confusion"])
def test_gauss_newton_with_another_objective_is_a_value_error_naming_both(objective):
    X, y, a = make_marker_images(n=64)
    t = GeZONoiseTransformer(make_encoder(), strategy="gauss_newton", objective=objective)
    with pytest.raises(ValueError, match=rf"strategy='gauss_newton'.*objective='{objective}'"):
        t.fit(X, y, sensitive_features=a)


def test_drop_last_skips_an_epochs_short_last_batch():
    state = SearchState.start(0.1, (1,), seed=0)
    rng = np.random.default_rng(0)
    sizes = []
    for _ in range(6):
        idx, state.order, state.position = state.next_batch(rng, 10, 4, drop_last=True)
        sizes.append(len(idx))
    assert sizes == [4] * 6  # 10 inputs: two batches of 4 an epoch, the 2 left skipped
    few = SearchState.start(0.1, (1,), seed=0)  # fewer inputs than a batch: all of them
    idx, few.order, few.position = few.next_batch(rng, 3, 4, drop_last=True)
    assert len(idx) == 3


def test_a_search_state_pickled_before_residuals_were_kept_loads():
    state = SearchState.start(0.1, (2,), seed=0)
    del state.__dict__["known_residuals"]
    loaded = pickle.loads(pickle.dumps(state))
    assert loaded.known_residuals == {}


def test_on_marker_images_it_lowers_the_loss_below_spsa_at_the_same_budget():
    X, y, a = make_marker_images(n=160)
    curves = {}
    for name in ("spsa", "gauss_newton"):
        t = GeZONoiseTransformer(make_encoder(), strategy=name, max_queries=3_000,
                                 max_epochs=1000, batch_size=32, noise_resolution=4,
                                 random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            t.fit(X, y, sensitive_features=a)
        assert t.n_queries_ <= 3_000
        curves[name] = min(t.loss_curve_)
    assert curves["gauss_newton"] < 0.5 * curves["spsa"]
