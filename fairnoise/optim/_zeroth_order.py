"""Zeroth-order search of the edit (GeZO): the loop, its state and its strategies.

The search only sees loss values, each the loss of one batch of edited inputs sent to a
black-box encoder (:class:`~fairnoise.optim.QueryLoss`), one batch per iteration:

* every point of an iteration is scored on that same batch (common random numbers), so
  their losses differ by the edit alone, not by sampling noise;
* the current point is only ever replaced by a point with a lower loss on that batch, so
  the stored edit is always the best one found;
* a point whose loss on the batch is already known is never queried again (this also
  holds across a failure: on resume, the interrupted iteration is replayed from the
  stored random state and the losses it had already paid for).

A strategy is one class with its own state (its entries of :attr:`SearchState.moments`),
registered in :data:`STRATEGIES`:

``"greedy"`` (:class:`GreedySearch`, the paper's GeZO with the reference code's defects fixed)
    Score the current point and ``θ + μv ± s·u_c`` for ``n_directions`` Gaussian
    directions ``u_c``, both signs; move to the best candidate if it beats the current
    point (``v ← candidate − θ``), else stay, set ``v ← 0`` and shrink ``s ← s·decay``.
    ``v`` and ``s`` persist across iterations and warm starts. ``2·n_directions + 1``
    losses per iteration.
``"spsa"`` (:class:`SPSASearch`)
    Antithetic two-point estimate of the gradient,
    ``ĝ = (1/C) Σ_c (L(p + s·u_c) − L(p − s·u_c)) / (2s) · u_c``, fed to Adam (first-moment
    decay = ``momentum``, learning rate = ``s``), which proposes the next point ``p'``.
    The proposal is scored on the *next* iteration's batch, next to the current point and
    to the probes of the gradient around it, and taken only if it beats the current point
    there, else ``s ← s·decay``. ``2·n_directions + 2`` losses per iteration, all in one
    round of concurrent queries (the first iteration has no proposal yet: one loss less).
    Scoring the proposal on the batch that also probes the next gradient, instead of in a
    follow-up query that waits for the gradient, saves one wait per iteration: against a
    remote API with ``n_jobs`` threads, an iteration takes ``ceil((2C + 2) / n_jobs)``
    round trips instead of ``ceil((2C + 1) / n_jobs) + 1``.
``"gauss_newton"`` (:class:`GaussNewtonSearch`; the ``"mean_gap"`` objective)
    The loss is a squared norm ``‖r‖²`` (less a noise correction, plus the regulariser),
    and each query returns all of ``r``: one probe ``p + δ_j`` per orthonormal direction
    gives the secant ``r(p + δ_j) − r(p)``, and a Levenberg–Marquardt step on the linear
    model of ``r`` proposes the next point, scored on the next batch as in ``"spsa"``.
    ``d + 2`` losses per iteration, ``d = min(C, n_params)``; the last batch of an epoch
    is skipped when it is smaller than the others.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from ..edits import NoiseSpace
from ._loss import Evaluate, QueryLoss

# Adam's second-moment decay and its guard against division by zero (the usual values)
_BETA2, _EPS = 0.999, 1e-8


@dataclass
class SearchState:
    """Where a zeroth-order search stands between iterations; NumPy and Python values only.

    Attributes
    ----------
    step_size : float
        Current step ``s``: the scale of the perturbations (and Adam's learning rate).
    moments : dict of str to ndarray
        The strategy's own running state: ``"velocity"`` (greedy), ``"first_moment"`` and
        ``"second_moment"`` (Adam's, SPSA) and ``"proposal"`` (SPSA's point to score on the
        next batch, once there is one).
    n_updates : int
        Number of gradient estimates so far (Adam's bias correction; SPSA).
    rng_state : dict
        State of the PCG64 generator at the start of the next iteration.
    order : ndarray of int
        The current epoch's random order of the training inputs (empty before the first).
    position : int
        How many inputs of ``order`` earlier iterations of the epoch have used.
    known_losses : dict
        Data losses already paid for in an iteration that did not finish, keyed by a
        digest of (batch, point); emptied whenever an iteration completes.
    known_residuals : dict
        The same for their residual vectors, kept only for a strategy that models them
        (:attr:`Strategy.needs_residuals`).

    Examples
    --------
    >>> import numpy as np
    >>> state = SearchState.start(0.2, (1, 8, 8), seed=0)
    >>> state.step_size, state.n_updates
    (0.2, 0)
    >>> state.moment("velocity", np.zeros((1, 8, 8), np.float32)).shape  # zeros until set
    (1, 8, 8)
    >>> rng = np.random.Generator(np.random.PCG64())
    >>> rng.bit_generator.state = state.rng_state
    >>> idx, order, position = state.next_batch(rng, n_samples=10, batch_size=4)
    >>> len(idx), position
    (4, 4)
    """

    step_size: float
    moments: dict[str, np.ndarray]
    n_updates: int
    rng_state: dict
    order: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    position: int = 0
    known_losses: dict[str, float] = field(default_factory=dict)
    known_residuals: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def start(cls, step_size: float, shape: tuple[int, ...], seed: int,
              moments: Sequence[str] = ()) -> SearchState:
        """A new search: step ``step_size``, the named moments zero, a generator of ``seed``."""
        rng_state = np.random.Generator(np.random.PCG64(seed)).bit_generator.state
        return cls(float(step_size), {k: np.zeros(shape, np.float32) for k in moments}, 0,
                   rng_state)

    def moment(self, name: str, like: np.ndarray) -> np.ndarray:
        """The moment ``name``, or zeros shaped like ``like`` if the search has none yet."""
        value = self.moments.get(name)
        return np.zeros_like(like, np.float32) if value is None else value

    def next_batch(self, rng: np.random.Generator, n_samples: int, batch_size: int,
                   drop_last: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
        """The next batch (sorted indices), and the order and position after it.

        Epochs as in minibatch training: a fresh random order of the inputs, cut into
        consecutive batches (the last one may be smaller; with ``drop_last``, a last one
        smaller than ``batch_size`` is skipped, as in PyTorch's ``DataLoader``, unless
        the inputs are fewer than a batch). ``self`` is not changed.
        """
        order, position = self.order, self.position
        left = len(order) - position
        if left <= 0 or (drop_last and left < min(batch_size, n_samples)):
            order, position = rng.permutation(n_samples), 0
        idx = np.sort(order[position : position + batch_size])
        return idx, order, position + len(idx)

    # -- names of fairnoise 0.1 ------------------------------------------------------------
    @property
    def velocity(self) -> np.ndarray:
        """Deprecated: ``moments["velocity"]`` (greedy) or ``moments["first_moment"]``."""
        warnings.warn("SearchState.velocity is deprecated and will be removed in fairnoise "
                      "0.3; read moments['velocity'] (greedy) or moments['first_moment'] "
                      "(spsa).", FutureWarning, stacklevel=2)
        return self.moments.get("velocity", self.moments.get("first_moment"))

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "moments" not in state:  # a state pickled by fairnoise 0.1
            state = dict(state)
            velocity, second = state.pop("velocity"), state.pop("second_moment")
            state["moments"] = ({"first_moment": velocity, "second_moment": second}
                                if state.get("n_updates") else {"velocity": velocity})
        self.__dict__.update(state)
        self.__dict__.setdefault("known_residuals", {})  # fairnoise <= 0.2


def greedy_update(theta: np.ndarray, state: SearchState, points: Sequence[np.ndarray],
                  losses: np.ndarray, *, step_decay: float) -> tuple[np.ndarray, float]:
    """Move to the best candidate if it beats the current point (``points[0]``).

    ``losses[k]`` is the loss of ``points[k]``, all on the same batch. Returns the next
    point and its loss on that batch; updates ``state`` in place (the velocity, or the
    step size).

    Examples
    --------
    >>> import numpy as np
    >>> state = SearchState.start(0.1, (2,), seed=0)
    >>> theta = np.zeros(2, np.float32)
    >>> points = [theta, np.array([0.1, 0], np.float32), np.array([-0.1, 0], np.float32)]
    >>> new, loss = greedy_update(theta, state, points, np.array([1.0, 0.5, 2.0]),
    ...                           step_decay=0.9)
    >>> new.tolist(), loss  # the better candidate is taken, its move kept as velocity
    ([0.10000000149011612, 0.0], 0.5)
    >>> _, loss = greedy_update(new, state, [new, new + 1], np.array([0.5, 0.7]),
    ...                         step_decay=0.9)
    >>> loss, round(state.step_size, 3)  # no candidate improves: stay, shrink the step
    (0.5, 0.09)
    """
    best = 1 + int(np.argmin(losses[1:]))  # first of equal losses: no dependence on order
    if losses[best] < losses[0]:
        state.moments["velocity"] = (points[best] - theta).astype(np.float32)
        return points[best], float(losses[best])
    # momentum led nowhere better: drop it
    state.moments["velocity"] = np.zeros_like(state.moment("velocity", theta))
    state.step_size *= step_decay
    return theta, float(losses[0])


def adam_proposal(centre: np.ndarray, state: SearchState, u: np.ndarray,
                  pair_losses: np.ndarray, origin: np.ndarray, *, scale: float,
                  momentum: float, project: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Adam's proposal from ``origin`` along the antithetic gradient estimate at ``centre``.

    ``pair_losses = [L(c + s·u_1), L(c − s·u_1), ...]`` with ``c = centre`` and ``s =
    scale``; Adam's learning rate is the state's step size. Updates the state's Adam
    moments and ``n_updates`` in place.

    Examples
    --------
    >>> import numpy as np
    >>> state = SearchState.start(0.1, (2,), seed=0)
    >>> u = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    >>> centre = np.zeros(2, np.float32)
    >>> losses = np.array([0.9, 1.1, 1.2, 0.8])  # the loss falls along +x and along -y
    >>> adam_proposal(centre, state, u, losses, centre, scale=0.1, momentum=0.9,
    ...               project=lambda t: t).astype(float).round(3).tolist()
    [0.1, -0.1]
    """
    s = state.step_size
    diffs = (pair_losses[0::2] - pair_losses[1::2]) / (2.0 * scale)
    grad = (diffs[:, None] * u.reshape(len(u), -1)).mean(axis=0).reshape(centre.shape)
    t = state.n_updates + 1
    m = momentum * state.moment("first_moment", centre) + (1.0 - momentum) * grad
    v2 = _BETA2 * state.moment("second_moment", centre) + (1.0 - _BETA2) * grad**2
    step = s * (m / (1.0 - momentum**t)) / (np.sqrt(v2 / (1.0 - _BETA2**t)) + _EPS)
    state.moments["first_moment"] = m.astype(np.float32)
    state.moments["second_moment"] = v2.astype(np.float32)
    state.n_updates = t
    return project((origin - step).astype(np.float32))


def spsa_update(theta: np.ndarray, state: SearchState, u: np.ndarray, losses: np.ndarray,
                evaluate: Evaluate, *, momentum: float, step_decay: float,
                project: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, float]:
    """Deprecated: Adam step along the antithetic gradient estimate, kept if it beats ``θ``.

    The step of fairnoise 0.1's ``"spsa"``, which scored its proposal in a follow-up
    query on the same batch; :class:`SPSASearch` now scores it on the next iteration's
    batch (:func:`adam_proposal` makes the proposal). Removed in fairnoise 0.3.

    ``losses = [L(θ), L(θ + s·u_1), L(θ − s·u_1), ...]`` on the iteration's batch;
    ``evaluate`` scores the proposed point on the same batch. Returns the next point and
    its loss on the batch; updates ``state`` in place (only once the proposal is scored,
    so a failed query leaves it untouched).

    Examples
    --------
    On a quadratic, one step from the antithetic pairs moves towards the minimum at 1:

    >>> import numpy as np
    >>> def evaluate(points):
    ...     return np.array([float(((p - 1.0) ** 2).sum()) for p in points])
    >>> theta = np.zeros(3, np.float32)
    >>> state = SearchState.start(0.1, theta.shape, seed=0)
    >>> u = np.random.default_rng(0).choice([-1.0, 1.0], size=(4, 3)).astype(np.float32)
    >>> s = np.float32(state.step_size)
    >>> points = [theta, *(theta + sign * s * ui for ui in u for sign in (1, -1))]
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", FutureWarning)
    ...     new, loss = spsa_update(theta, state, u, evaluate(points), evaluate,
    ...                             momentum=0.9, step_decay=0.95, project=lambda t: t)
    >>> bool(loss < evaluate([theta])[0]), bool((new > 0).all())
    (True, True)
    """
    warnings.warn("spsa_update is deprecated and will be removed in fairnoise 0.3: the "
                  "'spsa' strategy now scores its proposal on the next iteration's batch "
                  "(SPSASearch; adam_proposal makes the proposal).", FutureWarning,
                  stacklevel=2)
    scratch = SearchState(state.step_size, dict(state.moments), state.n_updates,
                          state.rng_state)
    proposal = adam_proposal(theta, scratch, u, losses[1:], theta, scale=state.step_size,
                             momentum=momentum, project=project)
    loss = float(evaluate([proposal])[0])
    # only once the proposal is scored: a failed query leaves the state untouched; the
    # gradient information stays valid at θ whether or not the step is taken
    state.moments.update(scratch.moments)
    state.n_updates = scratch.n_updates
    if loss < losses[0]:
        return proposal, loss
    state.step_size *= step_decay
    return theta, float(losses[0])


class Strategy(ABC):
    """How a zeroth-order search moves, from the losses of the points it scores.

    An iteration scores a first round ``[θ, ..., p_1⁺, p_1⁻, p_2⁺, ...]`` (the current
    point, :attr:`n_leading` − 1 more points, then one antithetic pair per direction, see
    :meth:`first_round`) on one batch, then :meth:`update` may score up to
    :attr:`followups` more points on the same batch and returns the next point. A new
    strategy subclasses this and adds itself to :data:`STRATEGIES`.

    Parameters
    ----------
    momentum : float
        The strategy's momentum (its meaning is the strategy's).
    step_decay : float
        Factor applied to the step whenever an iteration finds no better point.
    project : callable
        Maps a point back onto the feasible set of the edit's parameter.
    """

    #: the name the ``strategy`` parameter uses
    name: ClassVar[str]
    #: points scored after the first round, per iteration (reserved in the query budget)
    followups: ClassVar[int] = 0
    #: points of the first round before the antithetic pairs (the current point first)
    n_leading: ClassVar[int] = 1
    #: the entries of :attr:`SearchState.moments` the strategy keeps
    moment_names: ClassVar[tuple[str, ...]] = ()
    #: points of the first round per direction: 2 (an antithetic pair) or 1 (one probe)
    points_per_direction: ClassVar[int] = 2
    #: whether an epoch's last batch is skipped when it is smaller than the others
    drop_last: ClassVar[bool] = False
    #: whether :meth:`update` reads the residual vectors (``evaluate.residuals``)
    needs_residuals: ClassVar[bool] = False

    def __init__(self, *, momentum: float, step_decay: float,
                 project: Callable[[np.ndarray], np.ndarray]) -> None:
        self.momentum = momentum
        self.step_decay = step_decay
        self.project = project

    def probed_directions(self, n_directions: int, n_params: int) -> int:
        """Directions a full iteration probes, of ``n_directions`` drawn over ``n_params``
        parameters (what the budget plans for)."""
        return n_directions

    def start(self, step_size: float, shape: tuple[int, ...], seed: int) -> SearchState:
        """The state of a new search."""
        return SearchState.start(step_size, shape, seed, self.moment_names)

    @abstractmethod
    def first_round(self, theta: np.ndarray, state: SearchState,
                    u: np.ndarray) -> list[np.ndarray]:
        """``[θ, ..., +u_1, −u_1, +u_2, −u_2, ...]``: the points scored first (``n_leading``
        before the pairs), ``u`` the directions."""

    @abstractmethod
    def update(self, theta: np.ndarray, state: SearchState, points: Sequence[np.ndarray],
               losses: np.ndarray, u: np.ndarray, evaluate: Evaluate) -> tuple[np.ndarray, float]:
        """The next point and its loss on the batch; updates ``state`` in place."""


class GreedySearch(Strategy):
    """The paper's greedy search: take the best candidate around the momentum point."""

    name = "greedy"
    moment_names = ("velocity",)

    def first_round(self, theta: np.ndarray, state: SearchState,
                    u: np.ndarray) -> list[np.ndarray]:
        # candidates may become the next point, so each is projected
        s = np.float32(state.step_size)
        centre = theta + np.float32(self.momentum) * state.moment("velocity", theta)
        pairs = [self.project(centre + sign * s * ui) for ui in u for sign in (1, -1)]
        return [theta, *(p.astype(np.float32, copy=False) for p in pairs)]

    def update(self, theta: np.ndarray, state: SearchState, points: Sequence[np.ndarray],
               losses: np.ndarray, u: np.ndarray, evaluate: Evaluate) -> tuple[np.ndarray, float]:
        return greedy_update(theta, state, points, losses, step_decay=self.step_decay)


class SPSASearch(Strategy):
    """Antithetic two-point gradient estimates, fed to Adam; a step is taken if it helps.

    The first round is ``[θ, p, p ± s·u_c]``: the current point, the pending proposal
    ``p`` (``θ`` itself before the first proposal; a point already scored on the batch is
    not queried again) and the gradient probes around ``p``. ``p`` replaces ``θ`` if its
    loss on the batch is lower, else the step shrinks; then Adam proposes the next point
    from there along the gradient estimated at ``p`` (:func:`adam_proposal`), kept in
    ``state.moments["proposal"]`` for the next iteration.
    """

    name = "spsa"
    n_leading = 2
    moment_names = ("first_moment", "second_moment")

    def first_round(self, theta: np.ndarray, state: SearchState,
                    u: np.ndarray) -> list[np.ndarray]:
        # the pairs only probe the slope: projecting would break their symmetry
        centre = state.moments.get("proposal", theta)
        s = np.float32(state.step_size)
        pairs = [centre + sign * s * ui for ui in u for sign in (1, -1)]
        return [theta, centre, *(p.astype(np.float32, copy=False) for p in pairs)]

    def update(self, theta: np.ndarray, state: SearchState, points: Sequence[np.ndarray],
               losses: np.ndarray, u: np.ndarray, evaluate: Evaluate) -> tuple[np.ndarray, float]:
        centre, value = points[1], float(losses[0])
        scale = state.step_size  # the probes' scale, before any decay below
        if "proposal" in state.moments:
            if losses[1] < losses[0]:
                theta, value = centre, float(losses[1])
            else:  # the last step was too long: shorter ones from here on
                state.step_size *= self.step_decay
        state.moments["proposal"] = adam_proposal(
            centre, state, u, losses[2:], theta, scale=scale, momentum=self.momentum,
            project=self.project)
        return theta, value


class GaussNewtonSearch(Strategy):
    """Gauss–Newton steps on the objective's residual vector, from one probe per direction.

    The objective ``"mean_gap"`` is a squared norm, ``L = ‖r‖² + ρ`` (``r`` the whitened
    group-mean differences, :meth:`~fairnoise.objectives.Adversary.residuals`; ``ρ`` the
    regulariser less the sampling-noise correction), and every query returns the whole
    embedding batch, hence the whole of ``r``, not only ``L``. The first round is
    ``[θ, p, p + δ_1, ..., p + δ_d]``: the current point, the pending proposal ``p`` (as
    in :class:`SPSASearch`, ``θ`` before the first) and one probe per direction, ``δ_j``
    an orthonormal set of ``d = min(n_directions, n_params)`` random directions scaled to
    the step size per coordinate (``step_size · sqrt(n_params)`` long) and projected onto
    the feasible set. ``p`` replaces ``θ`` if its loss on the batch is lower (the
    damping falls), else the damping rises by ``1 / step_decay²``. The secants ``J_j =
    r(p + δ_j) − r(p)`` then give the linear model ``r(θ + Σ c_j δ_j) ≈ r(θ) + J c``,
    and the next proposal is ``θ + Σ c_j δ_j`` with ``c`` the Levenberg–Marquardt step
    ``(JᵀJ + μ·tr(JᵀJ)/d·I) c = −(Jᵀ r(θ) + ∇ρ / 2)`` (``∇ρ`` from the same probes),
    shortened to at most :data:`TRUST_RADIUS` probe lengths and projected. ``d + 2``
    losses per iteration; each probe tells the search how every coordinate of ``r``
    moves, where an SPSA pair tells it one number.
    """

    name = "gauss_newton"
    n_leading = 2
    points_per_direction = 1
    drop_last = True  # a tiny last batch leaves cells nearly empty: r is then mostly noise
    needs_residuals = True

    #: initial, smallest and largest Levenberg–Marquardt damping ``μ``
    DAMPING = (1e-3, 1e-4, 1e4)

    def probed_directions(self, n_directions: int, n_params: int) -> int:
        # orthonormal directions: at most one per parameter (first_round's QR)
        return min(n_directions, n_params)

    def first_round(self, theta: np.ndarray, state: SearchState,
                    u: np.ndarray) -> list[np.ndarray]:
        centre = state.moments.get("proposal", theta)
        flat = u.reshape(len(u), -1).astype(np.float64)
        q, _ = np.linalg.qr(flat.T)  # orthonormal columns spanning the directions
        length = state.step_size * np.sqrt(flat.shape[1])
        probes = [self.project((centre + length * qj.reshape(centre.shape)).astype(np.float32))
                  for qj in q.T[: len(u)]]
        return [theta, centre, *probes]

    def update(self, theta: np.ndarray, state: SearchState, points: Sequence[np.ndarray],
               losses: np.ndarray, u: np.ndarray, evaluate: Evaluate) -> tuple[np.ndarray, float]:
        mu0, mu_min, mu_max = self.DAMPING
        mu = float(state.moments.get("damping", mu0))
        centre, value = points[1], float(losses[0])
        if "proposal" in state.moments:
            if losses[1] < losses[0]:
                theta, value = centre, float(losses[1])
                mu = max(mu * self.step_decay**2, mu_min)
            else:  # the model overreached: a more cautious step next
                mu = min(mu / self.step_decay**2, mu_max)
        state.moments["damping"] = np.asarray(mu)
        residuals = np.asarray(evaluate.residuals(points), np.float64)  # type: ignore[attr-defined]
        rest = np.asarray(losses, np.float64) - (residuals**2).sum(axis=1)  # ρ at each point
        base = 0 if theta is points[0] else 1
        deltas = np.stack([(p - centre).reshape(-1) for p in points[2:]]).astype(np.float64)
        keep = np.linalg.norm(deltas, axis=1) > 1e-12  # a probe projected onto p says nothing
        if not keep.any():
            state.moments["proposal"] = theta
            return theta, value
        deltas = deltas[keep]
        J = (residuals[2:][keep] - residuals[1]).T
        grad_rest = rest[2:][keep] - rest[1]
        H = J.T @ J
        ridge = mu * max(float(np.trace(H)) / len(H), 1e-12) + 1e-12
        c = np.linalg.solve(H + ridge * np.eye(len(H)), -(J.T @ residuals[base] + grad_rest / 2))
        step = c @ deltas
        limit = TRUST_RADIUS * float(np.linalg.norm(deltas, axis=1).max())
        norm = float(np.linalg.norm(step))
        if norm > limit:
            step *= limit / norm
        state.moments["proposal"] = self.project(
            (theta.reshape(-1) + step).reshape(theta.shape).astype(np.float32))
        state.n_updates += 1
        return theta, value


#: longest Gauss–Newton step, in probe lengths (the linear model is trusted this far)
TRUST_RADIUS = 5.0

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (SPSASearch, GreedySearch, GaussNewtonSearch)}
"""The strategies by name (the ``strategy`` parameter and its validation read this)."""


def numpy_projection(space: NoiseSpace,
                     max_norm: float | None) -> Callable[[np.ndarray], np.ndarray]:
    """:meth:`NoiseSpace.project` on NumPy points (a new array; the point is not changed)."""

    def project(theta: np.ndarray) -> np.ndarray:
        return space.project(torch.from_numpy(theta.copy()), max_norm).numpy()

    return project


def zeroth_order_search(
    loss: QueryLoss,
    theta: np.ndarray,
    state: SearchState,
    strategy: Strategy,
    *,
    n_samples: int,
    batch_size: int,
    n_directions: int,
    max_iter: int,
    n_iter: int = 0,
    remaining: Callable[[], float] | None = None,
    on_iteration: Callable[[np.ndarray, float], None] | None = None,
) -> np.ndarray:
    """Run the search from iteration ``n_iter`` until ``max_iter`` or the budget ends.

    ``remaining()`` is the number of encoder images the budget still allows (``None``:
    no budget); the last iterations use fewer directions where that fits, and the search
    stops before an iteration that would not fit even with one. ``on_iteration(θ, loss)``
    is called after each completed iteration with the current point and its loss on the
    iteration's batch; ``state`` is updated in place, and only when an iteration
    completes, so a search interrupted by an exception can be resumed from it. Returns
    the current point.
    """
    rng = np.random.Generator(np.random.PCG64())
    while n_iter < max_iter:
        # all random draws of the iteration come first, and are committed to the state
        # only once it completes: a failed iteration is replayed as it was
        rng.bit_generator.state = state.rng_state
        idx, order, position = state.next_batch(rng, n_samples, batch_size,
                                                strategy.drop_last)
        u = rng.standard_normal((n_directions, *theta.shape), dtype=np.float32)
        points = strategy.first_round(theta, state, u)
        lead, per = strategy.n_leading, strategy.points_per_direction
        n_dirs = (len(points) - lead) // per
        if remaining is not None:
            n_dirs = _affordable_directions(loss, idx, points, strategy.followups, remaining(),
                                            lead, per)
        if n_dirs == 0:
            break
        points = points[: lead + per * n_dirs]
        evaluate = loss.on(idx)
        theta, value = strategy.update(theta, state, points, evaluate(points), u[:n_dirs],
                                       evaluate)
        state.known_losses.clear()
        state.known_residuals.clear()
        state.rng_state = rng.bit_generator.state
        state.order, state.position = order, position
        n_iter += 1
        if on_iteration is not None:
            on_iteration(theta, value)
    return theta


def _affordable_directions(loss: QueryLoss, idx: np.ndarray, points: Sequence[np.ndarray],
                           followups: int, remaining: float, n_leading: int = 1,
                           per_direction: int = 2) -> int:
    """Most directions whose iteration fits the remaining budget (0: none does).

    ``points`` holds ``n_leading`` points, then ``per_direction`` points per direction
    (an antithetic pair, or one probe). The losses already known cost nothing; a
    follow-up query is reserved in full.
    """
    unpaid = loss.unpaid(idx, points)
    for n_dirs in range((len(points) - n_leading) // per_direction, 0, -1):
        last = n_leading - 1 + per_direction * n_dirs
        if (int(unpaid[last]) + followups) * len(idx) <= remaining:
            return n_dirs
    return 0
