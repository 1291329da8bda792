"""Black-box Debiased Noise Editing: the edit is learned from encoder queries alone (GeZO).

The encoder φ is a black box, typically a paid, slow, rate-limited embedding API: the
search only sees φ's outputs on the inputs it sends, and pays for every image. The probe
and the loss are local. The search runs in the edit's parameter space θ (low resolution,
so it has few dimensions), one batch of training inputs per iteration:

* every point of an iteration is scored on that same batch (common random numbers), so
  their losses differ by the edit alone, not by sampling noise;
* the current point is only ever replaced by a point with a lower loss on that batch, so
  the stored edit is always the best one found;
* a point whose loss on the batch is already known is never queried again (this also
  holds across a failure: on resume, the interrupted iteration is replayed from the
  stored random state and the losses it had already paid for).

Strategies (the ``strategy`` parameter):

``"greedy"`` (the paper's GeZO, with the reference code's defects fixed)
    Score the current point and ``θ + μv ± s·u_c`` for ``n_directions`` Gaussian
    directions ``u_c``, both signs; move to the best candidate if it beats the current
    point (``v ← candidate − θ``), else stay, set ``v ← 0`` and shrink ``s ← s·decay``.
    ``v`` and ``s`` persist across iterations and warm starts. ``2·n_directions + 1``
    losses per iteration.
``"spsa"``
    Antithetic two-point estimate of the gradient,
    ``ĝ = (1/C) Σ_c (L(θ + s·u_c) − L(θ − s·u_c)) / (2s) · u_c``, fed to Adam (first-moment
    decay = ``momentum``, learning rate = ``s``); the proposed point is scored on the same
    batch and taken only if it beats the current point, else ``s ← s·decay``.
    ``2·n_directions + 2`` losses per iteration, in two rounds of queries.

Each loss costs ``batch_size`` encoder images.
"""

from __future__ import annotations

import hashlib
import numbers
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from tqdm.auto import tqdm

from ._base import BaseNoiseTransformer
from .edits import apply_numpy
from .encoders import CallableEncoder, QueryError, QueryMeter, TorchEncoder, as_black_box
from .objectives import Adversary

__all__ = ["GeZONoiseTransformer", "SearchState", "greedy_update", "spsa_update"]

# Adam's second-moment decay and its guard against division by zero (the usual values)
_BETA2, _EPS = 0.999, 1e-8
# the parameter grid of noise_resolution="auto" for images
_AUTO_RESOLUTION = 8

#: ``evaluate(points) -> losses``: the losses of parameter points on the iteration's batch
Evaluate = Callable[[Sequence[np.ndarray]], np.ndarray]


@dataclass
class SearchState:
    """Where a zeroth-order search stands between iterations; NumPy and Python values only.

    Attributes
    ----------
    step_size : float
        Current step ``s``: the scale of the perturbations (and Adam's learning rate).
    velocity : ndarray
        ``"greedy"``: the velocity ``v``; ``"spsa"``: Adam's first moment.
    second_moment : ndarray
        ``"spsa"``: Adam's second moment (unused by ``"greedy"``).
    n_updates : int
        ``"spsa"``: number of gradient estimates so far (Adam's bias correction).
    rng_state : dict
        State of the PCG64 generator at the start of the next iteration.
    order : ndarray of int
        The current epoch's random order of the training inputs (empty before the first).
    position : int
        How many inputs of ``order`` earlier iterations of the epoch have used.
    known_losses : dict
        Data losses already paid for in an iteration that did not finish, keyed by a
        digest of (batch, point); emptied whenever an iteration completes.

    Examples
    --------
    >>> import numpy as np
    >>> state = SearchState.start(0.2, (1, 8, 8), seed=0)
    >>> state.step_size, state.velocity.shape, state.n_updates
    (0.2, (1, 8, 8), 0)
    >>> rng = np.random.Generator(np.random.PCG64())
    >>> rng.bit_generator.state = state.rng_state
    >>> idx, order, position = state.next_batch(rng, n_samples=10, batch_size=4)
    >>> len(idx), position
    (4, 4)
    """

    step_size: float
    velocity: np.ndarray
    second_moment: np.ndarray
    n_updates: int
    rng_state: dict
    order: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    position: int = 0
    known_losses: dict[str, float] = field(default_factory=dict)

    @classmethod
    def start(cls, step_size: float, shape: tuple[int, ...], seed: int) -> SearchState:
        zeros = np.zeros(shape, np.float32)
        rng_state = np.random.Generator(np.random.PCG64(seed)).bit_generator.state
        return cls(float(step_size), zeros, zeros.copy(), 0, rng_state)

    def next_batch(self, rng: np.random.Generator, n_samples: int,
                   batch_size: int) -> tuple[np.ndarray, np.ndarray, int]:
        """The next batch (sorted indices), and the order and position after it.

        Epochs as in minibatch training: a fresh random order of the inputs, cut into
        consecutive batches (the last one may be smaller). ``self`` is not changed.
        """
        order, position = self.order, self.position
        if position >= len(order):
            order, position = rng.permutation(n_samples), 0
        idx = np.sort(order[position : position + batch_size])
        return idx, order, position + len(idx)


def _candidates(theta: np.ndarray, state: SearchState, u: np.ndarray, strategy: str,
                momentum: float, project: Callable[[np.ndarray], np.ndarray]) -> list[np.ndarray]:
    """The first round of points of an iteration: ``[θ, +u_1, −u_1, +u_2, −u_2, ...]``.

    ``"greedy"`` perturbs the momentum point ``θ + μv`` and projects each candidate (it may
    become the next point); ``"spsa"`` perturbs ``θ`` and does not (the pairs only probe
    the slope, and projecting would break their symmetry).
    """
    s = np.float32(state.step_size)
    if strategy == "greedy":
        centre = theta + np.float32(momentum) * state.velocity
        pairs = [project(centre + sign * s * ui) for ui in u for sign in (1, -1)]
    else:
        pairs = [theta + sign * s * ui for ui in u for sign in (1, -1)]
    return [theta, *(p.astype(np.float32, copy=False) for p in pairs)]


def greedy_update(theta: np.ndarray, state: SearchState, points: Sequence[np.ndarray],
                  losses: np.ndarray, *, step_decay: float) -> tuple[np.ndarray, float]:
    """Move to the best candidate if it beats the current point (``points[0]``).

    ``losses[k]`` is the loss of ``points[k]``, all on the same batch. Returns the next
    point and its loss on that batch; updates ``state`` in place.

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
        state.velocity = (points[best] - theta).astype(np.float32)
        return points[best], float(losses[best])
    state.velocity = np.zeros_like(state.velocity)  # momentum led nowhere better: drop it
    state.step_size *= step_decay
    return theta, float(losses[0])


def spsa_update(theta: np.ndarray, state: SearchState, u: np.ndarray, losses: np.ndarray,
                evaluate: Evaluate, *, momentum: float, step_decay: float,
                project: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, float]:
    """Adam step along the antithetic gradient estimate; keep it if it beats ``θ``.

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
    >>> new, loss = spsa_update(theta, state, u, evaluate(points), evaluate, momentum=0.9,
    ...                         step_decay=0.95, project=lambda t: t)
    >>> bool(loss < evaluate([theta])[0]), bool((new > 0).all())
    (True, True)
    """
    s = state.step_size
    diffs = (losses[1::2] - losses[2::2]) / (2.0 * s)
    grad = (diffs[:, None] * u.reshape(len(u), -1)).mean(axis=0).reshape(theta.shape)
    t = state.n_updates + 1
    m = momentum * state.velocity + (1.0 - momentum) * grad
    v2 = _BETA2 * state.second_moment + (1.0 - _BETA2) * grad**2
    step = s * (m / (1.0 - momentum**t)) / (np.sqrt(v2 / (1.0 - _BETA2**t)) + _EPS)
    proposal = project((theta - step).astype(np.float32))
    loss = float(evaluate([proposal])[0])
    # the gradient information stays valid at θ whether or not the step is taken
    state.velocity, state.second_moment, state.n_updates = (
        m.astype(np.float32), v2.astype(np.float32), t)
    if loss < losses[0]:
        return proposal, loss
    state.step_size *= step_decay
    return theta, float(losses[0])


def _digest(idx: np.ndarray, theta: np.ndarray) -> str:
    """Key of a (batch, point) pair, for the losses already paid for."""
    return hashlib.blake2b(idx.tobytes() + theta.tobytes(), digest_size=16).hexdigest()


class _EditedBatches(Sequence):
    """``batch`` edited with each point, built lazily (in the worker thread that sends it)."""

    def __init__(self, edit: Callable[[np.ndarray], np.ndarray], points: list[np.ndarray]):
        self.edit, self.points = edit, points

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        return self.edit(self.points[i])


class GeZONoiseTransformer(BaseNoiseTransformer):
    r"""Learn one universal input edit that hides a sensitive attribute from a black-box encoder.

    Debiased Noise Editing (DNE; Jin et al., MICCAI 2024) for encoders that can only be
    queried: a web API, a closed model, a non-differentiable pipeline. Step 1 fits a
    probe :math:`g` on the clean embeddings :math:`\varphi(x)` (one query per training
    input). Step 2 searches the edit's low-resolution parameter :math:`\theta` with
    zeroth-order steps (GeZO) that only need loss values, each the loss of a batch

    .. math::

        L_B(\theta) = \ell_{adv}\big(\varphi(\mathrm{edit}(x_B, \theta)), a_B\big)
        + \lambda \, R(\theta)

    of ``batch_size`` edited inputs sent to the encoder. All points of an iteration are
    scored on the same batch, the current point is replaced only by a better one on that
    batch, and no point is ever scored twice on a batch (see :mod:`fairnoise.gezo` for
    the strategies). The same edit is applied to every input at ``transform``.

    The encoder is a query engine as well: every image sent is counted (``n_queries_``);
    ``max_queries`` is a hard budget, checked before every call; independent queries go
    out concurrently on ``n_jobs`` threads; transient failures are retried with backoff;
    a failure that persists keeps the progress on the estimator and raises
    :class:`~fairnoise.encoders.QueryError` saying how to resume (``warm_start=True``).

    Parameters
    ----------
    encoder : None, callable, torch.nn.Module, TorchEncoder or CallableEncoder, default=None
        The frozen encoder :math:`\varphi`, used through its outputs only. A callable maps
        a float32 batch ``(n, *input_shape)`` to a 2-D array of embeddings and is wrapped
        in a :class:`~fairnoise.encoders.CallableEncoder` with calls of ``batch_size``
        inputs; pass your own ``CallableEncoder`` to set the call size, the retry delay
        or which exceptions are transient. A module is run forward only, without
        gradients. ``None`` means the inputs already are embeddings (feature mode; nothing
        is queried).
    output : {"embeddings", "images"}, default="embeddings"
        ``transform`` returns :math:`\varphi(\mathrm{edit}(X))` (2-D) or
        :math:`\mathrm{edit}(X)` (same shape as ``X``; no encoder query).
    edit : {"masked", "additive"}, default="masked"
        ``"masked"``: :math:`m \odot x + (1 - m) \odot f` with a learned mask
        :math:`m \in [0, 1]` and the training mean as fixed fill :math:`f`.
        ``"additive"``: :math:`x + \varepsilon` (the paper's). As in
        :class:`~fairnoise.DebiasedNoiseTransformer`.
    objective : {"mean_gap", "confusion", "neg_ce"}, default="mean_gap"
        The adversarial loss :math:`\ell_{adv}`; see :mod:`fairnoise.objectives`.
    lambda_reg : float, default=0.1
        Weight :math:`\lambda` of the regulariser :math:`R` (:math:`\mathrm{mean}(1 - m)`
        for the mask, :math:`\|\varepsilon\|_2` for the noise; the paper used 1e-3 with
        ``"additive"``).
    noise_resolution : "auto", int, (int, int) or None, default="auto"
        Resolution ``(h, w)`` of the searched parameter grid, upsampled bilinearly to the
        image size; ``None`` is full resolution. ``"auto"``: 8 × 8 for images (a
        zeroth-order search pays for every dimension, so this is much coarser than the
        white-box default), full resolution for feature vectors.
    channel_shared : bool, default=True
        One map (or mask) for all channels, as in the paper, or one per channel.
    max_norm : float or None, default=None
        Bound on :math:`\|\varepsilon\|_2` (additive edit), enforced by projection.
    sa_probe : None, classifier or torch.nn.Module, default=None
        The sensitive-attribute probe :math:`g` (used by ``"confusion"`` and
        ``"neg_ce"``). ``None``: multinomial ``LogisticRegression``. It is local, so it
        may be any classifier with ``coef_``/``intercept_``, or a module.
    conditional : bool, default=True
        When ``y`` is passed to ``fit``, hide the group information beyond what the
        label explains (one probe and one group prior per class of ``y``).
    strategy : {"spsa", "greedy"}, default="spsa"
        ``"spsa"``: antithetic two-point gradient estimates with Adam. ``"greedy"``: the
        paper's greedy search, done right. See :mod:`fairnoise.gezo`.
    n_directions : int, default=10
        Random directions per iteration, each scored with both signs.
    step_size : float, default=0.2
        Initial step :math:`s`, in parameter units (input units for noise, mask fraction
        for the mask): the scale of the random perturbations and, for ``"spsa"``, Adam's
        learning rate. The paper's greedy search used 0.03.
    momentum : float, default=0.9
        ``"greedy"``: weight :math:`\mu` of the velocity in the next candidates;
        ``"spsa"``: Adam's first-moment decay.
    step_decay : float, default=0.95
        Factor applied to the step whenever an iteration finds no better point.
    max_epochs : int, default=10
        Most passes over the training inputs, counted over warm-started fits. An epoch
        is ``ceil(n_samples / batch_size)`` iterations and sends about
        ``(2 * n_directions + 1) * n_samples`` images (``"greedy"``; one more
        ``n_samples`` for ``"spsa"``).
    max_queries : int or None, default=None
        Budget: most images sent to the encoder, counted over warm-started fits, the
        embedding of the training inputs for the probe included. Never exceeded: the
        last iteration uses fewer directions if that fits the budget, and the search
        stops before an iteration that would not fit. ``None``: no budget.
    batch_size : int, default=128
        Training inputs per iteration: every loss of the iteration is measured on the
        same batch, at ``batch_size`` encoder images per loss.
    n_jobs : int or None, default=None
        Threads issuing independent queries concurrently (the points of an iteration,
        and the batches of the probe's embedding). Results do not depend on it.
    max_retries : int, default=3
        Retries of a call that failed with a transient error (see
        :attr:`CallableEncoder.transient_errors <fairnoise.encoders.CallableEncoder>`).
    warm_start : bool, default=False
        Continue the previous fit (after a failure, or with a larger ``max_queries`` or
        ``max_epochs``) from its edit, velocity or Adam moments, step size, random
        state, position in the epoch, iteration count and query count, with the same
        probe and data. Within the same
        process the clean embeddings are not queried again; after unpickling they are
        (``n_samples`` images).
    random_state : int, RandomState instance or None, default=None
        Seed of the batches and directions; fixed seeds give bit-identical results (with
        a deterministic encoder), whatever ``n_jobs``.
    verbose : int, default=0
        Show a progress bar with the current loss and the queries spent.

    Attributes
    ----------
    noise_ : ndarray
        The full-resolution noise added to every input (``"additive"``), or the fill
        (``"masked"``); broadcastable against one input.
    mask_ : ndarray or None
        The full-resolution mask (``"masked"``), else ``None``.
    noise_param_ : ndarray
        The searched parameter at ``noise_resolution`` (noise, or ``1 - mask``).
    sa_probe_ : Pipeline, dict or None
        The probe fitted on the clean embeddings; a dict keyed by class code of ``y``
        when conditional; ``None`` when fitted without groups.
    classes_sensitive_ : ndarray
        Group labels (tuples for several attributes), in code order.
    n_features_in_ : int
        Number of input features (pixels × channels for images).
    feature_names_in_ : ndarray of str
        Input column names, when ``X`` was a DataFrame with string columns.
    input_shape_ : tuple of int
        Shape of one input.
    n_features_out_ : int
        Dimension of the transform's output embeddings.
    loss_curve_ : list of float
        Loss of the current edit on each iteration's batch, after the iteration.
    n_iter_ : int
        Number of search iterations (batches) run, over warm-started fits.
    n_queries_ : int
        Images sent to the encoder in successful calls during ``fit``, over warm-started
        fits, the probe's embedding of the training inputs included.
    search_state_ : SearchState
        Step size, velocity or Adam moments and random state, for ``warm_start``.

    See Also
    --------
    DebiasedNoiseTransformer : The same edit learned with encoder gradients (white-box).
    fairnoise.encoders.CallableEncoder : The query engine: batching, retries, concurrency.

    Examples
    --------
    >>> import numpy as np
    >>> from fairnoise import GeZONoiseTransformer
    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 2, 200)
    >>> X = rng.normal(0.5, 0.1, (200, 1, 8, 8)).astype(np.float32)
    >>> X[a == 1, 0, :2, :2] += 1.0                     # a corner marker gives the group away
    >>> def api(batch):                                 # a black box: NumPy in, NumPy out
    ...     return batch.reshape(len(batch), 4, 16).mean(axis=2)
    >>> gezo = GeZONoiseTransformer(api, noise_resolution=4, batch_size=64,
    ...                             max_queries=20_000, random_state=0)
    >>> Z = gezo.fit_transform(X, sensitive_features=a)
    >>> Z.shape
    (200, 4)
    >>> gezo.n_queries_ <= 20_000
    True
    >>> bool(gezo.mask_[0, 0, 0] < gezo.mask_[0, -1, -1])  # the marker's corner is masked
    True
    """

    _parameter_constraints: dict = {
        **BaseNoiseTransformer._parameter_constraints,
        "encoder": [None, callable, torch.nn.Module, TorchEncoder, CallableEncoder],
        "noise_resolution": [StrOptions({"auto"}),
                             *BaseNoiseTransformer._parameter_constraints["noise_resolution"]],
        "strategy": [StrOptions({"spsa", "greedy"})],
        "n_directions": [Interval(numbers.Integral, 1, None, closed="left")],
        "step_size": [Interval(numbers.Real, 0, None, closed="neither")],
        "momentum": [Interval(numbers.Real, 0, 1, closed="left")],
        "step_decay": [Interval(numbers.Real, 0, 1, closed="right")],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_queries": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "n_jobs": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "max_retries": [Interval(numbers.Integral, 0, None, closed="left")],
        "warm_start": ["boolean"],
    }

    def __init__(
        self,
        encoder: Any = None,
        *,
        output: str = "embeddings",
        edit: str = "masked",
        objective: str = "mean_gap",
        lambda_reg: float = 0.1,
        noise_resolution: str | int | tuple[int, int] | None = "auto",
        channel_shared: bool = True,
        max_norm: float | None = None,
        sa_probe: Any = None,
        conditional: bool = True,
        strategy: str = "spsa",
        n_directions: int = 10,
        step_size: float = 0.2,
        momentum: float = 0.9,
        step_decay: float = 0.95,
        max_epochs: int = 10,
        max_queries: int | None = None,
        batch_size: int = 128,
        n_jobs: int | None = None,
        max_retries: int = 3,
        warm_start: bool = False,
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.encoder = encoder
        self.output = output
        self.edit = edit
        self.objective = objective
        self.lambda_reg = lambda_reg
        self.noise_resolution = noise_resolution
        self.channel_shared = channel_shared
        self.max_norm = max_norm
        self.sa_probe = sa_probe
        self.conditional = conditional
        self.strategy = strategy
        self.n_directions = n_directions
        self.step_size = step_size
        self.momentum = momentum
        self.step_decay = step_decay
        self.max_epochs = max_epochs
        self.max_queries = max_queries
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.max_retries = max_retries
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose

    # -- fit: the budget and the failure contract around the shared fit -------------------
    def fit(self, X: Any, y: Any = None, *, sensitive_features: Any = None) -> GeZONoiseTransformer:
        self._validate_params()
        spent = getattr(self, "n_queries_", 0) if self.warm_start else 0
        if not self._continuing():  # a new search: a failure must not leave an old edit
            for attr in ("noise_", "search_state_", "_adversary"):
                self.__dict__.pop(attr, None)
        meter = self._meter = QueryMeter(
            None if self.max_queries is None else max(self.max_queries - spent, 0))
        error = None
        try:
            super().fit(X, y, sensitive_features=sensitive_features)
        except QueryError as exc:
            error = exc
        finally:  # whatever happens, what was paid for is counted
            self.n_queries_ = spent + meter.spent
            del self._meter
        if error is not None:
            raise QueryError(self._resume_message(error)) from (error.__cause__ or error)
        return self

    fit.__doc__ = BaseNoiseTransformer.fit.__doc__

    def _resume_message(self, exc: QueryError) -> str:
        name = type(self).__name__
        if getattr(self, "search_state_", None) is None or not hasattr(self, "noise_"):
            kept = ("No edit was learned yet: the failure came while embedding the training "
                    f"inputs for the probe (n_queries_={self.n_queries_} counts the images "
                    "already sent).")
        else:
            kept = (f"The progress so far is kept ({self.n_iter_} iterations, n_queries_="
                    f"{self.n_queries_}) and transform uses the best edit found.")
        return (f"{name}.fit stopped: {exc}. {kept} To resume, set warm_start=True and call "
                "fit again with the same data; the search continues where it stopped.")

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "noise_")  # a fit that failed early leaves n_queries_ only

    # -- step 1 ---------------------------------------------------------------------------
    def _check_encoder(self) -> CallableEncoder | None:
        return as_black_box(self.encoder, batch_size=self.batch_size)

    def _encoder_embed(self, Xb: np.ndarray) -> np.ndarray:
        if self._encoder is None:
            return Xb
        return self._encoder.embed(Xb, n_jobs=self.n_jobs, max_retries=self.max_retries,
                                   meter=getattr(self, "_meter", None))

    def _resolution(self) -> Any:
        if self.noise_resolution == "auto":
            return _AUTO_RESOLUTION if len(self.input_shape_) >= 2 else None
        return self.noise_resolution

    def _store_identity(self, X: Any) -> None:
        super()._store_identity(X)
        self.search_state_ = None  # nothing to continue: a warm start begins a new search

    def _continuing(self) -> bool:
        return self.warm_start and getattr(self, "search_state_", None) is not None

    def _fit_adversary(self, X: np.ndarray, a: np.ndarray, ycode: np.ndarray) -> Adversary:
        cached = getattr(self, "_adversary", None) if self._continuing() else None
        if cached is not None:
            if not (np.array_equal(cached.a.cpu().numpy(), a)
                    and np.array_equal(cached.cls.cpu().numpy(), ycode)):
                raise ValueError(
                    "warm_start=True continues the previous fit, but sensitive_features or y "
                    "differ from that fit's. Call fit with the same data, or set "
                    "warm_start=False to start a new search."
                )
            return cached
        if self._encoder is not None and self._meter.remaining < len(X):
            raise ValueError(
                f"max_queries={self.max_queries} leaves {int(self._meter.remaining)} images, "
                f"too few to embed the {len(X)} training inputs once for the "
                f"sensitive-attribute probe. Raise max_queries well above {len(X)} (each "
                "search iteration costs about (2 * n_directions + 2) * batch_size more), or "
                "fit on a subsample."
            )
        return super()._fit_adversary(X, a, ycode)

    # -- step 2 ---------------------------------------------------------------------------
    def _optimise(self, X: np.ndarray, adversary: Adversary) -> None:
        space = self._space
        if self._continuing():
            theta, state = self.noise_param_, self.search_state_
            if theta.shape != space.param_shape or len(state.order) not in (0, len(X)):
                raise ValueError(
                    "warm_start=True continues the previous fit, but the inputs or the "
                    f"settings differ from that fit's (edit parameter of shape {theta.shape}"
                    f" then, {space.param_shape} now; {len(state.order) or '?'} samples "
                    f"then, {len(X)} now). Set warm_start=False to start a new search."
                )
        else:
            theta = space.init_param().numpy()
            state = SearchState.start(self.step_size, space.param_shape, self._seed)
            self.loss_curve_, self.n_iter_ = [], 0
        self.search_state_ = state
        project = self._projection()
        evaluate_on = self._batch_loss(X, adversary, state.known_losses)
        followups = 1 if self.strategy == "spsa" else 0
        max_iter = self.max_epochs * -(-len(X) // self.batch_size)
        rng = np.random.Generator(np.random.PCG64())
        bar = tqdm(total=max_iter, initial=self.n_iter_, desc="GeZO search",
                   disable=not self.verbose, leave=False)
        start_iter = self.n_iter_
        try:
            while self.n_iter_ < max_iter:
                # all random draws of the iteration come first, and are committed to the
                # state only once it completes: a failed iteration is replayed as it was
                rng.bit_generator.state = state.rng_state
                idx, order, position = state.next_batch(rng, len(X), self.batch_size)
                u = rng.standard_normal((self.n_directions, *theta.shape), dtype=np.float32)
                points = _candidates(theta, state, u, self.strategy, self.momentum, project)
                evaluate = evaluate_on(idx)
                n_dirs = self._affordable_directions(idx, points, state.known_losses,
                                                     followups)
                if n_dirs == 0:
                    break
                points = points[: 1 + 2 * n_dirs]
                losses = evaluate(points)
                if self.strategy == "greedy":
                    theta, loss = greedy_update(theta, state, points, losses,
                                                step_decay=self.step_decay)
                else:
                    theta, loss = spsa_update(theta, state, u[:n_dirs], losses, evaluate,
                                              momentum=self.momentum,
                                              step_decay=self.step_decay, project=project)
                state.known_losses.clear()
                state.rng_state = rng.bit_generator.state
                state.order, state.position = order, position
                self.n_iter_ += 1
                self.loss_curve_.append(loss)
                bar.update()
                bar.set_postfix(loss=f"{loss:.4f}", queries=self._meter.spent)
        finally:
            bar.close()
            self._store(torch.from_numpy(np.ascontiguousarray(theta)))
        if self.n_iter_ == start_iter < max_iter:
            warnings.warn(
                f"max_queries={self.max_queries} leaves no room for a search iteration "
                f"({3 + followups} queries of up to {self.batch_size} images at the least), "
                "so the edit is unchanged. Raise max_queries.", UserWarning, stacklevel=4)

    def _projection(self) -> Callable[[np.ndarray], np.ndarray]:
        space, max_norm = self._space, self.max_norm

        def project(theta: np.ndarray) -> np.ndarray:
            return space.project(torch.from_numpy(theta.copy()), max_norm).numpy()

        return project

    def _affordable_directions(self, idx: np.ndarray, points: list[np.ndarray],
                               known: dict[str, float], followups: int) -> int:
        """Most directions whose iteration fits the remaining budget (0: none does).

        The losses already known cost nothing; a follow-up query (the proposed step of
        ``"spsa"``) is reserved in full.
        """
        if self._encoder is None:
            return self.n_directions
        for n_dirs in range(self.n_directions, 0, -1):
            new = {_digest(idx, p) for p in points[: 1 + 2 * n_dirs]} - known.keys()
            if (len(new) + followups) * len(idx) <= self._meter.remaining:
                return n_dirs
        return 0

    def _batch_loss(self, X: np.ndarray, adversary: Adversary,
                    known: dict[str, float]) -> Callable[[np.ndarray], Evaluate]:
        """``evaluate_on(idx)``: the loss oracle of one batch, paying only for new points.

        Data losses go into ``known`` as each query completes, so a failure midway keeps
        what was paid for.
        """
        space, encoder, fill, lam = self._space, self._encoder, self._fill, self.lambda_reg

        def evaluate_on(idx: np.ndarray) -> Evaluate:
            xb = self._read(X, idx)

            def edited(theta: np.ndarray) -> np.ndarray:
                noise, mask = space.full_arrays(torch.from_numpy(theta), fill)
                return apply_numpy(xb, noise, mask)

            def record(key: str, Z: np.ndarray) -> None:
                with torch.no_grad():
                    z = torch.as_tensor(np.asarray(Z, np.float32), device=adversary.device)
                    known[key] = float(adversary(z, idx))

            def evaluate(points: Sequence[np.ndarray]) -> np.ndarray:
                keys = [_digest(idx, p) for p in points]
                todo = dict(zip(keys, points, strict=True))  # unique points, in order
                todo = {k: p for k, p in todo.items() if k not in known}
                if encoder is None:
                    for key, p in todo.items():
                        record(key, edited(p))
                elif todo:
                    names = list(todo)
                    encoder.embed_many(
                        _EditedBatches(edited, list(todo.values())), n_jobs=self.n_jobs,
                        max_retries=self.max_retries, meter=self._meter,
                        on_result=lambda i, Z: record(names[i], Z))
                return np.array([known[k] + lam * float(space.penalty(torch.from_numpy(p)))
                                 for k, p in zip(keys, points, strict=True)])

            return evaluate

        return evaluate_on
