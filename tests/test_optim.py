"""The optimiser seam on its own: the batch loss, minibatch Adam, the zeroth-order search."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pytest
import torch

from fairnoise.edits import NoiseSpace
from fairnoise.optim import (
    STRATEGIES,
    EditLoss,
    GaussNewtonSearch,
    GreedySearch,
    QueryLoss,
    SearchState,
    SPSASearch,
    greedy_update,
    minimise_minibatch,
    numpy_projection,
    spsa_update,
    zeroth_order_search,
)
from fairnoise.optim._zeroth_order import _affordable_directions

TARGET = np.array([0.2, 0.9, 0.0, 0.6], np.float32)


class QuadraticLoss:
    """Data loss ``‖z − t‖²`` (batch mean) of the edited features themselves, with its
    residual vector ``(z − t) / sqrt(n)`` (``loss = ‖r‖²``)."""

    def __call__(self, z, idx):
        return ((z - torch.as_tensor(TARGET)) ** 2).sum(dim=1).mean()

    def residuals(self, z, idx):
        return ((z - torch.as_tensor(TARGET)) / np.sqrt(len(z))).reshape(-1)


def quadratic_loss(space: NoiseSpace, lambda_reg: float = 0.0) -> EditLoss:
    """:class:`QuadraticLoss` on the edited features (no encoder)."""
    return EditLoss(space, QuadraticLoss(), lambda_reg, fill=np.zeros(4, np.float32))


class CountingEmbed:
    """``embed_many`` of a black box that returns its inputs, counting every image sent."""

    def __init__(self) -> None:
        self.images = 0

    def __call__(self, batches, on_result):
        for i in range(len(batches)):
            batch = batches[i]
            self.images += len(batch)
            on_result(i, batch)


# -- the batch loss -----------------------------------------------------------------------------
def test_edit_loss_adds_the_weighted_regulariser_to_the_data_loss():
    space = NoiseSpace((4,), "masked", None, True)
    loss = quadratic_loss(space, lambda_reg=0.5)
    theta = torch.tensor([0.0, 0.0, 1.0, 0.5])
    x = torch.ones(3, 4)
    z = loss.edit(x, theta)
    expected = float(((z - torch.as_tensor(TARGET)) ** 2).sum(1).mean()) + 0.5 * 1.5 / 4
    assert float(loss(z, np.arange(3), theta)) == pytest.approx(expected)
    # the evaluation form gives the same number from a data loss already computed
    data = float(loss.data_loss(z, None))
    assert loss.total(data, theta.numpy()) == pytest.approx(expected)


def test_query_loss_pays_for_each_batch_and_point_once():
    space = NoiseSpace((4,), "additive", None, True)
    X = np.ones((10, 4), np.float32)
    embed = CountingEmbed()
    known: dict[str, float] = {}
    loss = QueryLoss(quadratic_loss(space), lambda idx: X[idx], embed, known)
    idx = np.arange(5)
    a, b = np.zeros(4, np.float32), np.full(4, 0.1, np.float32)
    first = loss.on(idx)([a, b, a])
    assert embed.images == 2 * 5  # a twice in one call: queried once
    second = loss.on(idx)([b, a])
    assert embed.images == 2 * 5 and np.array_equal(second, first[[1, 0]])
    loss.on(np.arange(5, 10))([a])  # another batch is another query
    assert embed.images == 3 * 5
    # a resumed search restores what was paid for and queries nothing again
    replay = QueryLoss(quadratic_loss(space), lambda idx: X[idx], embed, dict(known))
    replay.on(idx)([a, b])
    assert embed.images == 3 * 5


def test_unpaid_counts_distinct_new_points_in_every_prefix():
    space = NoiseSpace((4,), "additive", None, True)
    loss = QueryLoss(quadratic_loss(space), lambda idx: np.zeros((len(idx), 4), np.float32),
                     CountingEmbed(), {})
    idx = np.arange(3)
    a, b, c = (np.full(4, v, np.float32) for v in (0.0, 1.0, 2.0))
    loss.on(idx)([b])  # b is paid for
    np.testing.assert_array_equal(loss.unpaid(idx, [a, b, a, c, c]), [1, 1, 1, 2, 2])


def test_budget_check_is_linear_in_the_number_of_directions():
    space = NoiseSpace((1, 8, 8), "masked", (8, 8), True)
    loss = QueryLoss(quadratic_loss(space), lambda idx: None, CountingEmbed(), {})
    rng = np.random.default_rng(0)
    points = list(rng.normal(size=(1 + 2 * 20_000, 1, 8, 8)).astype(np.float32))
    start = time.perf_counter()
    n = _affordable_directions(loss, np.arange(128), points, followups=1, remaining=5_000)
    assert n == 18  # (1 + 2 n + 1 follow-up) * 128 images <= 5,000
    assert time.perf_counter() - start < 5


# -- minibatch Adam ------------------------------------------------------------------------------
def test_minimise_minibatch_solves_a_projected_quadratic():
    target = torch.tensor([0.3, 2.0, -1.0])

    def loss(idx, theta):
        return ((theta - target) ** 2).sum()

    theta, curve = minimise_minibatch(
        loss, torch.zeros(3), 10, batch_size=5, learning_rate=0.05, max_epochs=300, tol=0,
        n_iter_no_change=300, project=lambda t: t.clamp_(0, 1),
        generator=torch.Generator().manual_seed(0),
    )
    np.testing.assert_allclose(theta.numpy(), [0.3, 1.0, 0.0], atol=1e-2)
    assert curve[-1] < curve[0]


def test_minimise_minibatch_carries_adam_state_across_calls():
    def loss(idx, theta):
        return ((theta - 1.0) ** 2).sum()

    kwargs = dict(batch_size=10, learning_rate=0.1, max_epochs=1, tol=0, n_iter_no_change=5,
                  project=lambda t: t)
    state: dict = {}
    theta = torch.zeros(2)
    for _ in range(3):
        theta, _ = minimise_minibatch(loss, theta, 10, generator=torch.Generator().manual_seed(0),
                                      state=state, **kwargs)
    at_once, _ = minimise_minibatch(loss, torch.zeros(2), 10, max_epochs=3,
                                    generator=torch.Generator().manual_seed(0),
                                    **{k: v for k, v in kwargs.items() if k != "max_epochs"})
    assert int(state["step"]) == 3
    torch.testing.assert_close(theta, at_once)


# -- the zeroth-order search ---------------------------------------------------------------------
def test_greedy_update_takes_the_best_sign_only_when_it_beats_the_current_point():
    theta = np.zeros(4, np.float32)
    state = SearchState.start(0.1, (4,), seed=0, moments=("velocity",))
    state.moments["velocity"][:] = 1.0
    points = [theta, theta + 1, theta - 1, theta + 2, theta - 2]
    new, loss = greedy_update(theta, state, points, np.array([1.0, 1.2, 0.9, 1.1, 0.7]),
                              step_decay=0.5)
    assert loss == 0.7 and np.array_equal(new, points[4])  # a minus sign wins
    np.testing.assert_array_equal(state.moments["velocity"], points[4] - theta)
    assert state.step_size == 0.1
    new, loss = greedy_update(theta, state, points, np.array([0.5, 0.5, 0.6, 0.9, 0.7]),
                              step_decay=0.5)
    assert loss == 0.5 and new is theta  # a tie is not an improvement
    assert state.step_size == 0.05 and not state.moments["velocity"].any()


def test_spsa_scores_its_proposal_on_the_next_batch_with_the_probes_around_it():
    strategy = SPSASearch(momentum=0.9, step_decay=0.5, project=lambda t: t)
    theta = np.zeros(3, np.float32)
    state = strategy.start(0.1, theta.shape, seed=0)
    u = np.eye(3, dtype=np.float32)
    first = strategy.first_round(theta, state, u)
    assert first[1] is theta  # no proposal yet: the current point (scored once)
    target = np.array([1.0, -1.0, 0.5])

    def evaluate(points):
        return np.array([float(((p - target) ** 2).sum()) for p in points])

    same, _ = strategy.update(theta, state, first, evaluate(first), u, evaluate)
    assert same is theta and state.step_size == 0.1  # nothing was proposed to reject
    proposal = state.moments["proposal"]
    assert np.all(np.sign(proposal) == np.sign(target))  # along the descent direction
    second = strategy.first_round(theta, state, u)
    assert second[1] is proposal
    np.testing.assert_allclose(second[2] - second[3], 2 * 0.1 * u[0], atol=1e-6)
    new, loss = strategy.update(theta, state, second, evaluate(second), u, evaluate)
    assert new is proposal and loss == evaluate([proposal])[0]  # it beat θ: taken
    assert state.step_size == 0.1
    # a proposal that loses on its batch is refused and the step shrinks
    state.moments["proposal"] = new + 10.0
    third = strategy.first_round(new, state, u)
    kept, kept_loss = strategy.update(new, state, third, evaluate(third), u, evaluate)
    assert kept is new and kept_loss == evaluate([new])[0]
    assert state.step_size == pytest.approx(0.05)


def test_spsa_update_is_deprecated():
    state = SearchState.start(0.1, (2,), seed=0)
    u = np.eye(2, dtype=np.float32)
    with pytest.warns(FutureWarning, match="spsa_update is deprecated"):
        spsa_update(np.zeros(2, np.float32), state, u, np.ones(5), lambda p: np.zeros(len(p)),
                    momentum=0.9, step_decay=0.5, project=lambda t: t)


@pytest.mark.filterwarnings("ignore:spsa_update is deprecated:FutureWarning")
def test_spsa_update_leaves_the_state_untouched_when_the_proposal_cannot_be_scored():
    theta = np.zeros(3, np.float32)
    state = SPSASearch(momentum=0.9, step_decay=0.5, project=lambda t: t).start(0.1, (3,), 0)
    u = np.eye(3, dtype=np.float32)
    losses = np.array([1.0, 0.9, 1.1, 0.8, 1.2, 1.0, 1.0])

    def failing(points):
        raise ConnectionError("the API is down")

    with pytest.raises(ConnectionError):
        spsa_update(theta, state, u, losses, failing, momentum=0.9, step_decay=0.5,
                    project=lambda t: t)
    assert state.n_updates == 0 and not state.moments["first_moment"].any()


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_each_strategy_scores_the_current_point_and_one_antithetic_pair_per_direction(name):
    strategy = STRATEGIES[name](momentum=0.9, step_decay=0.9,
                                project=lambda t: np.clip(t, 0, 1))
    assert strategy.name == name
    theta = np.full(4, 0.5, np.float32)
    state = strategy.start(0.2, theta.shape, seed=0)
    assert set(state.moments) == set(strategy.moment_names)
    u = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32) * 10
    points = strategy.first_round(theta, state, u)
    lead = strategy.n_leading
    assert points[0] is theta
    if isinstance(strategy, GaussNewtonSearch):  # one probe per direction, projected
        assert len(points) == lead + 3 and strategy.points_per_direction == 1
        probes = np.stack(points[lead:]) - theta
        assert all(((p >= 0) & (p <= 1)).all() for p in points)
        assert np.linalg.matrix_rank(probes) == 3  # three distinct directions
        return
    assert len(points) == lead + 2 * 3
    pairs = points[lead:]
    centre = (pairs[0] + pairs[1]) / 2  # each pair is symmetric about the same point
    for plus, minus in zip(pairs[::2], pairs[1::2], strict=True):
        if not isinstance(strategy, GreedySearch):  # greedy projects its candidates
            np.testing.assert_allclose((plus + minus) / 2, centre, atol=1e-6)
    inside = all(((p >= 0) & (p <= 1)).all() for p in points)
    # the greedy candidates may become the next point (projected); SPSA's probes may not
    assert inside == isinstance(strategy, GreedySearch)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_the_search_lowers_the_loss_and_never_keeps_a_worse_point(name):
    space = NoiseSpace((4,), "additive", None, True)
    X = np.zeros((64, 4), np.float32)
    project = numpy_projection(space, None)
    strategy = STRATEGIES[name](momentum=0.9, step_decay=0.95, project=project)
    loss = QueryLoss(quadratic_loss(space), lambda idx: X[idx], None, {},
                     {} if strategy.needs_residuals else None)
    state = strategy.start(0.2, (4,), seed=0)
    curve = []
    theta = zeroth_order_search(loss, np.zeros(4, np.float32), state, strategy, n_samples=64,
                                batch_size=16, n_directions=4, max_iter=150,
                                on_iteration=lambda t, v: curve.append(v))
    assert len(curve) == 150
    assert np.all(np.diff(curve) <= 1e-7)  # the same batch every time: never worse
    assert curve[-1] < 0.1 * float((TARGET**2).sum())
    assert np.abs(theta - TARGET).max() < 0.15


def test_the_search_stops_before_an_iteration_the_budget_cannot_pay_for():
    space = NoiseSpace((4,), "additive", None, True)
    X = np.zeros((64, 4), np.float32)
    embed = CountingEmbed()
    loss = QueryLoss(quadratic_loss(space), lambda idx: X[idx], embed, {})
    strategy = SPSASearch(momentum=0.9, step_decay=0.95, project=numpy_projection(space, None))
    budget = 16 * 9  # one iteration of 3 directions (1 + 6 + 1 losses) and a bit
    remaining = lambda: budget - embed.images  # noqa: E731
    calls = []
    zeroth_order_search(loss, np.zeros(4, np.float32), strategy.start(0.2, (4,), 0), strategy,
                        n_samples=64, batch_size=16, n_directions=10, max_iter=100,
                        remaining=remaining, on_iteration=lambda t, v: calls.append(v))
    assert embed.images <= budget
    assert len(calls) == 1  # with fewer directions (3), then no room for another


# -- the state ------------------------------------------------------------------------------
def test_search_state_of_fairnoise_0_1_unpickles_into_named_moments():
    state = SearchState.start(0.1, (2,), seed=0)
    old = dict(state.__dict__)
    del old["moments"]
    old.update(velocity=np.ones(2, np.float32), second_moment=np.full(2, 2.0, np.float32),
               n_updates=3)
    restored = SearchState.__new__(SearchState)
    restored.__setstate__(old)
    assert set(restored.moments) == {"first_moment", "second_moment"}
    with pytest.warns(FutureWarning, match="moments"):
        np.testing.assert_array_equal(restored.velocity, np.ones(2))
    assert pickle.loads(pickle.dumps(restored)).moments.keys() == restored.moments.keys()
