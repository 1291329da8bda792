"""Black-box Debiased Noise Editing: the edit is learned from encoder queries alone (GeZO).

The encoder φ is a black box, typically a paid, slow, rate-limited embedding API: the
search only sees φ's outputs on the inputs it sends, and pays for every image. The probe
and the loss are local. The search itself (its loop, state and strategies, ``"spsa"`` and
``"greedy"``) lives in :mod:`fairnoise.optim`; this module glues it to the estimator's
parameters and holds the query budget and the failure/resume contract.
"""

from __future__ import annotations

import contextlib
import numbers
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from tqdm.auto import tqdm

from ._base import BaseNoiseTransformer
from .edits import FittedEdit
from .encoders import (
    CallableEncoder,
    QueryBudgetExceeded,
    QueryError,
    QueryMeter,
    TorchEncoder,
    as_black_box,
)
from .objectives import SUM_OF_SQUARES, Adversary
from .optim import (
    STRATEGIES,
    EditLoss,
    QueryLoss,
    SearchState,
    greedy_update,
    numpy_projection,
    spsa_update,
    zeroth_order_search,
)

__all__ = ["GeZONoiseTransformer", "SearchState", "greedy_update", "spsa_update"]

# the parameter grid of noise_resolution="auto" for images, and how it is upsampled
_AUTO_RESOLUTION, _AUTO_UPSAMPLING = 4, "nearest"


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
    batch, and no point is ever scored twice on a batch (see :mod:`fairnoise.optim` for
    the strategies). The same edit is applied to every input at ``transform``.

    The encoder is a query engine as well: every image sent is counted (``n_queries_``
    for calls that returned embeddings, ``n_queries_attempted_`` for all); ``max_queries``
    is a hard budget, checked before every call; independent queries go out concurrently
    on ``n_jobs`` threads; transient failures and malformed responses are retried with
    backoff; a failure that persists keeps the progress on the estimator and raises
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
    lambda_reg : float or "auto", default="auto"
        Weight :math:`\lambda` of the regulariser :math:`R` (:math:`\mathrm{mean}(1 - m)`
        for the mask, :math:`\|\varepsilon\|_2` for the noise; the paper used 1e-3 with
        ``"additive"``).
        ``"auto"``: 0.1 (GeZO runs one search per fit; the λ path of
        :class:`DebiasedNoiseTransformer` would multiply the queries).
    noise_resolution : "auto", int, (int, int) or None, default="auto"
        Resolution ``(h, w)`` of the searched parameter grid, upsampled to the image size
        (see ``upsampling``), each side at most the image's (a larger one is capped);
        ``None`` is full resolution. ``"auto"``: 4 × 4 for images (a
        zeroth-order search pays for every dimension, so this is much coarser than the
        white-box default; the black-box guide says why), full resolution for feature
        vectors.
    upsampling : {"auto", "bilinear", "nearest"}, default="auto"
        How the grid reaches the image size: a smooth bilinear field, or
        piecewise-constant cells (each grid value covers its block of pixels, so a mask
        cell at its bound replaces the whole block by the fill: the search can occlude a
        region outright). ``"auto"``: cells (``"nearest"``) for images.
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
        label explains (one probe and one group prior per class of ``y``). ``False``:
        one probe for all of them, which hides the group information the label carries
        too. The validation guard judges within each class of ``y`` either way.
    erase : bool or "auto", default="auto"
        Also judge each candidate followed by a class-conditional *embedding eraser*
        (:func:`fairnoise.edits.fit_conditional_eraser`): one fixed linear map, fitted at
        ``fit`` and applied at ``transform`` without group or label, that removes the
        within-class differences of the group means (the part of the attribute the class
        does not explain), so the disease signal stays. It reaches shortcuts an input
        edit cannot (a global intensity or texture difference). ``"auto"``: a candidate
        when validated and ``output="embeddings"``; ``True`` raises where it cannot apply.
    standardize : bool or "auto", default="auto"
        Also judge per-image intensity standardisation (each image's channel mean and
        spread mapped to the training average; :func:`fairnoise.edits.fit_standardization`),
        which removes a global brightness/contrast difference between groups. Images only.
    validation_fraction : float or None, default=0.2
        Share of the training data (stratified by group × class) held out to judge the
        candidates when ``y`` (class labels) is given, whatever ``conditional``: a fresh probe's
        conditional leakage and a quick task head's AUC, balanced over group × class
        (see ``validation_``). The
        candidate with the lowest leakage among those that lower it by at least
        ``min_leakage_drop`` at a task-AUC cost of at most ``auc_tolerance`` is kept (one
        with the embedding eraser only if it also beats the best without it by 0.1: on
        a few hundred samples an eraser looks blinder than it is); when there is none
        the identity edit is returned with a :class:`~fairnoise.NoSafeEditWarning`.
        ``None`` or 0: no validation, one edit learned on all the data (as without ``y``).
        The guard costs one pass over the
        inputs per input edit judged besides the identity: the standardised pass is sent
        right after the clean one, before the search, and the searched edit's after it;
        the search keeps back what the latter needs from ``max_queries``. With
        ``edit="masked"`` the searched mask is also judged *rounded to its bounds*
        (``"masked edit, rounded"``: cells at or above one half replaced by the fill
        outright, the others kept as they are): the search often dims a cell where
        replacing it removes the shortcut, and a faint blend over other cells can cancel
        the group-mean gap the objective sees while a fresh probe still reads the group.
        One more pass, kept back the same way (and not sent where rounding changes
        nothing or gives the identity).
    auc_tolerance : float, default=0.01
        Largest loss of balanced validation task AUC a candidate may cost.
    min_leakage_drop : float, default=0.02
        Smallest drop of validation conditional leakage (AUC) that counts as removing
        something (about the leakage estimate's noise on a few hundred samples).
    strategy : {"spsa", "greedy", "gauss_newton"}, default="spsa"
        ``"spsa"``: antithetic two-point gradient estimates with Adam. ``"greedy"``: the
        paper's greedy search, done right. ``"gauss_newton"`` (``objective="mean_gap"``
        only): one probe per direction, ``min(n_directions, n_params)`` orthonormal
        directions, each response read as the whole vector of group-mean differences,
        not one loss, and a Levenberg–Marquardt step on them; ``step_size`` is then the
        probes' scale and ``momentum`` is not used. It lowers the search's objective
        with far fewer images (``benchmarks/gezo_queries.py``); end to end with the
        guard it is measured beside the defaults in ``benchmarks/compare.py
        --gauss-newton``. See :mod:`fairnoise.optim`.
    n_directions : int, default=10
        Random directions per iteration, each scored with both signs. On a small budget
        (a few thousand images), fewer directions on smaller batches (``n_directions=3,
        batch_size=48, step_size=0.3``: seven times as many, cheaper iterations) lower the
        objective several times faster per image (``benchmarks/gezo_queries.py``); the
        defaults are the settings measured end to end with the guard at larger budgets
        (``benchmarks/compare.py``). With 3, an ``"spsa"`` iteration is 8 independent
        queries: one round trip at ``n_jobs=8``.
    step_size : float, default=0.2
        Initial step :math:`s`, in parameter units (input units for noise, mask fraction
        for the mask): the scale of the random perturbations and, for ``"spsa"``, Adam's
        learning rate. The paper's greedy search used 0.03.
    momentum : float, default=0.9
        ``"greedy"``: weight :math:`\mu` of the velocity in the next candidates;
        ``"spsa"``: Adam's first-moment decay.
    step_decay : float, default=0.95
        Factor applied to the step whenever an iteration finds no better point
        (``"gauss_newton"``: the damping is divided by its square instead).
    max_epochs : int, default=10
        Most passes over the training inputs, counted over warm-started fits. An epoch
        is ``ceil(n_samples / batch_size)`` iterations and sends about
        ``(2 * n_directions + 1) * n_samples`` images (``"greedy"``; one more
        ``n_samples`` for ``"spsa"``).
    max_queries : int or None, default=None
        Budget: most images sent to the encoder, counted over warm-started fits, the
        embedding of the training inputs for the probe included. Never exceeded: the
        last iteration uses fewer directions if that fits the budget, and the search
        stops before an iteration that would not fit. ``None``: no budget. It counts
        the images of successful calls (``n_queries_``) unless
        ``budget_includes_failed=True``.
    budget_includes_failed : bool, default=False
        Whether ``max_queries`` also counts the images of failed calls (transient errors,
        malformed responses), i.e. bounds ``n_queries_attempted_`` rather than
        ``n_queries_``: set it for a provider that bills failed calls. Retries then
        spend budget, so the budget may run out within an iteration; the search then
        stops there with a warning, keeping the best edit and the losses already paid
        for (raise ``max_queries`` and fit with ``warm_start=True`` to go on).
    batch_size : int, default=128
        Training inputs per iteration: every loss of the iteration is measured on the
        same batch, at ``batch_size`` encoder images per loss.
    n_jobs : int or None, default=None
        Threads issuing independent queries concurrently (the points of an iteration,
        and the batches of the probe's embedding). While they are out, the calling thread
        judges the guard's candidates that do not depend on the search (the unedited and
        the standardised embeddings; see ``validation_fraction``), and two more threads
        fit each candidate's embedding erasers (``erase``). Results do not depend on it.
    max_retries : int, default=3
        Retries of a call that failed with a transient error (see
        :attr:`CallableEncoder.transient_errors <fairnoise.encoders.CallableEncoder>`) or
        returned a malformed response (NaN or infinite values, a row too many or too
        few, another width than the first response, complex numbers, non-numbers; see
        ``retry_malformed`` there).
    warm_start : bool, default=False
        Continue the previous fit (after a failure, or with a larger ``max_queries`` or
        ``max_epochs``) from its edit, velocity or Adam moments, step size, random
        state, position in the epoch, iteration count and query count, with the same
        probe, data and validation split (also with ``random_state=None``). The settings
        that define the search (``edit``, ``strategy``, ``objective``, ``conditional``,
        ``noise_resolution``, ``upsampling``, ``channel_shared``, ``max_norm``,
        ``validation_fraction``) must stay as they were: a ``ValueError`` names any that
        changed. Within the same process the clean (and standardised) embeddings are not
        queried again; after unpickling they are (``n_samples`` images each).
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
    edit_ : FittedEdit
        The learned edit as one frozen object (its arrays, ``apply``, the searched
        parameter ``edit_.param`` at ``noise_resolution``: noise, or ``1 - mask``);
        ``noise_`` and ``mask_`` are views of it.
    noise_param_ : ndarray
        Deprecated alias of ``edit_.param``.
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
    validation_ : DataFrame
        The candidates judged on the validation part, one row each: ``candidate``,
        ``lambda_reg``, ``erase``, ``cond_leakage`` (a fresh probe's within-class group
        AUC folded about chance, 0.5 + |AUC − 0.5|: 0.5 = nothing left), ``task_auc``
        (balanced) and ``selected``. Only after a validated fit (``y`` given,
        ``validation_fraction`` > 0).
    loss_curve_ : list of float
        Loss of the current edit on each iteration's batch, after the iteration.
    n_iter_ : int
        Number of search iterations (batches) run, over warm-started fits.
    n_queries_ : int
        Images sent to the encoder in successful calls (well-formed embeddings) during
        ``fit``, over warm-started fits, the probe's embedding of the training inputs
        included. A fit that met failures costs exactly what the same fit costs against
        a reliable encoder.
    n_queries_attempted_ : int
        Images sent to the encoder in any call during ``fit``, failed and malformed ones
        included (what a provider that bills every call charges), over warm-started fits.
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
        "strategy": [StrOptions(set(STRATEGIES))],
        "n_directions": [Interval(numbers.Integral, 1, None, closed="left")],
        "step_size": [Interval(numbers.Real, 0, None, closed="neither")],
        "momentum": [Interval(numbers.Real, 0, 1, closed="left")],
        "step_decay": [Interval(numbers.Real, 0, 1, closed="right")],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_queries": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "budget_includes_failed": ["boolean"],
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
        lambda_reg: float | str = "auto",
        noise_resolution: str | int | tuple[int, int] | None = "auto",
        upsampling: str = "auto",
        channel_shared: bool = True,
        max_norm: float | None = None,
        sa_probe: Any = None,
        conditional: bool = True,
        erase: bool | str = "auto",
        standardize: bool | str = "auto",
        validation_fraction: float | None = 0.2,
        auc_tolerance: float = 0.01,
        min_leakage_drop: float = 0.02,
        strategy: str = "spsa",
        n_directions: int = 10,
        step_size: float = 0.2,
        momentum: float = 0.9,
        step_decay: float = 0.95,
        max_epochs: int = 10,
        max_queries: int | None = None,
        budget_includes_failed: bool = False,
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
        self.upsampling = upsampling
        self.channel_shared = channel_shared
        self.max_norm = max_norm
        self.sa_probe = sa_probe
        self.conditional = conditional
        self.erase = erase
        self.standardize = standardize
        self.validation_fraction = validation_fraction
        self.auc_tolerance = auc_tolerance
        self.min_leakage_drop = min_leakage_drop
        self.strategy = strategy
        self.n_directions = n_directions
        self.step_size = step_size
        self.momentum = momentum
        self.step_decay = step_decay
        self.max_epochs = max_epochs
        self.max_queries = max_queries
        self.budget_includes_failed = budget_includes_failed
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.max_retries = max_retries
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose

    # -- fit: the budget and the failure contract around the shared fit -------------------
    def fit(self, X: Any, y: Any = None, *, sensitive_features: Any = None) -> GeZONoiseTransformer:
        """Search the universal edit that hides ``sensitive_features``, by encoder queries.

        The training inputs are embedded once for the probe (``n_samples`` images), then
        each search iteration sends up to ``(2 * n_directions + 2) * batch_size`` edited
        images (``"spsa"``; one ``batch_size`` less for ``"greedy"``).

        **Budget.** ``max_queries`` is checked before every call: no call is sent that
        could take the images sent past it (counted over warm-started fits). The last
        iterations use fewer directions where that fits; when not even one does, the
        search stops and the best edit found is kept. ``n_queries_`` counts every image
        sent in a successful call, the probe's embedding included;
        ``n_queries_attempted_`` every image sent in any call. The budget counts the
        former, or the latter with ``budget_includes_failed=True``.

        **Failures and resume.** A transient error or a malformed response (see
        ``max_retries``) is retried with backoff; the images of the failed call count
        in ``n_queries_attempted_`` only. A failure that persists raises
        :class:`~fairnoise.encoders.QueryError` (for malformed responses its subclass
        :class:`~fairnoise.encoders.MalformedResponseError`, also a ``ValueError``);
        the estimator then keeps the best edit found so far (``transform`` works),
        ``n_queries_`` and the search state, and the message says how to resume: set
        ``warm_start=True`` and call ``fit`` again with the same data. The resumed search
        replays the interrupted iteration from its stored random state and does not pay
        again for the losses it had already received, so the result equals that of an
        uninterrupted fit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, [C,] H, W)
            Feature vectors (``encoder=None``) or images; NumPy arrays, memmaps (read in
            batches), torch tensors, or a pandas DataFrame of features.
        y : array-like of shape (n_samples,), default=None
            Task labels. Optional; with ``conditional=True`` they make the adversary
            class-conditional (hide the group information beyond what ``y`` explains).
        sensitive_features : array-like of shape (n_samples,) or (n_samples, n_attributes)
            Group labels of any hashable type; several columns are combined into their
            intersection. Without them no edit is learned and a warning says how to pass them.

        Returns
        -------
        self : object
            The fitted transformer.

        Raises
        ------
        QueryError
            When the encoder fails for good (the progress is kept; see above).
        ValueError
            When ``max_queries`` cannot even pay for embedding the training inputs once,
            a warm start is asked for with other data or settings, or the edit
            overflowed (``step_size`` far too large; the best edit so far is kept).
        """
        self._validate_params()
        if STRATEGIES[self.strategy].needs_residuals and self.objective not in SUM_OF_SQUARES:
            raise ValueError(
                f"strategy={self.strategy!r} models the residual vector of the 'mean_gap' "
                f"objective, and objective={self.objective!r} has none. Use "
                "objective='mean_gap', or strategy='spsa' with this objective.")
        spent, attempted = ((getattr(self, "n_queries_", 0),
                             getattr(self, "n_queries_attempted_", 0))
                            if self.warm_start else (0, 0))
        if self._continuing():
            self._check_same_search()
        else:  # a new search: a failure must not leave an old edit
            for attr in ("edit_", "search_state_", "_adversary", "_search_param",
                         "_search_settings"):
                self.__dict__.pop(attr, None)
        counted = attempted if self.budget_includes_failed else spent
        meter = self._meter = QueryMeter(
            None if self.max_queries is None else max(self.max_queries - counted, 0),
            count_failed=self.budget_includes_failed)
        error = None
        try:
            super().fit(X, y, sensitive_features=sensitive_features)
        except QueryError as exc:
            error = exc
        finally:  # whatever happens, what was paid for is counted
            self.n_queries_ = spent + meter.spent
            self.n_queries_attempted_ = attempted + meter.attempted
            del self._meter
        if (isinstance(error, QueryBudgetExceeded)
                and getattr(self, "search_state_", None) is not None):
            # only failed calls counted in the budget can exhaust it within an iteration
            warnings.warn(
                f"max_queries={self.max_queries} ran out within an iteration, failed calls "
                f"counted (budget_includes_failed=True; n_queries_attempted_="
                f"{self.n_queries_attempted_}). The best edit so far is kept, and so are the "
                "losses already paid for: raise max_queries and fit again with "
                "warm_start=True to finish the search.", UserWarning, stacklevel=2)
        elif error is not None:  # the same kind of error, with what was kept and the way on
            raise type(error)(self._resume_message(error)) from (error.__cause__ or error)
        return self

    def _resume_message(self, exc: QueryError) -> str:
        name = type(self).__name__
        if getattr(self, "search_state_", None) is None or not hasattr(self, "edit_"):
            kept = ("No edit was learned yet: the failure came while embedding the training "
                    f"inputs for the probe (n_queries_={self.n_queries_} counts the images "
                    "already sent).")
        else:
            kept = (f"The progress so far is kept ({self.n_iter_} iterations, n_queries_="
                    f"{self.n_queries_}) and transform uses the best edit found.")
        return (f"{name}.fit stopped: {str(exc).rstrip('.')}. {kept} To resume, set "
                "warm_start=True and call fit again with the same data; the search continues "
                "where it stopped.")

    #: what a warm start may not change: the search space, the loss, the guard's split
    _SEARCH_SETTINGS = ("edit", "strategy", "objective", "conditional", "noise_resolution",
                        "upsampling", "channel_shared", "max_norm", "validation_fraction")

    def _search_signature(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._SEARCH_SETTINGS}

    def _check_same_search(self) -> None:
        """A warm start continues the previous search: refuse settings it cannot keep."""
        then = getattr(self, "_search_settings", None)
        if then is None:  # a transformer pickled before fairnoise kept them
            return
        now = self._search_signature()
        changed = [f"{k}={then[k]!r} then, {now[k]!r} now" for k in then if then[k] != now[k]]
        if changed:
            raise ValueError(
                "warm_start=True continues the previous search, but settings it was started "
                f"with have changed ({'; '.join(changed)}): its state belongs to the old "
                "search space, loss or validation split. Set them back, or set "
                "warm_start=False to start a new search (the budget, max_epochs, n_jobs "
                "and the step settings may change between warm starts)."
            )

    def _start(self, X: Any) -> Any:
        X = super()._start(X)
        if self._continuing() and hasattr(self, "_search_seed"):
            # the validation split and the probes of the fit this one continues (a
            # random_state of None would draw another seed)
            self._seed = self._search_seed
        else:
            self._search_seed = self._seed
            self._search_settings = self._search_signature()
        return X

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "edit_")  # a fit that failed early leaves n_queries_ only

    # -- step 1 ---------------------------------------------------------------------------
    def _check_encoder(self) -> CallableEncoder | None:
        return as_black_box(self.encoder, batch_size=self.batch_size)

    def _encoder_embed(self, Xb: np.ndarray, edit: FittedEdit | None = None,
                       n_features: int | None = None) -> np.ndarray:
        if self._encoder is None:
            return super()._encoder_embed(Xb, edit)
        # the expected width goes to the encoder: a response of another width is then a
        # malformed response, retried, instead of an error after it was paid for
        return self._encoder.embed(Xb, edit=edit, n_jobs=self.n_jobs,
                                   max_retries=self.max_retries,
                                   meter=getattr(self, "_meter", None), n_features=n_features)

    def _resolution(self) -> Any:
        if self.noise_resolution == "auto":
            return _AUTO_RESOLUTION if len(self.input_shape_) >= 2 else None
        return self.noise_resolution

    def _upsampling(self) -> str:
        if self.upsampling == "auto":
            return _AUTO_UPSAMPLING if len(self.input_shape_) >= 2 else "bilinear"
        return self.upsampling

    def _store_identity(self, X: Any) -> None:
        super()._store_identity(X)
        self.search_state_ = None  # nothing to continue: a warm start begins a new search
        self.__dict__.pop("_search_param", None)

    def _variants(self, edit: FittedEdit, n_samples: int) -> list[tuple[str, FittedEdit]]:
        meter = getattr(self, "_meter", None)
        if self._encoder is not None and meter is not None and meter.remaining < n_samples:
            return []  # a budget the search left no room in: no pass for the rounded mask
        return super()._variants(edit, n_samples)

    def _judges_while_querying(self) -> bool:
        return self._encoder is not None and self.n_jobs is not None and self.n_jobs > 1

    def _continuing(self) -> bool:
        return self.warm_start and getattr(self, "search_state_", None) is not None

    def _kept(self, cache: str) -> Any:
        """What the fit this one continues left in ``cache`` (None for a new search)."""
        return getattr(self, cache, None) if self._continuing() else None

    def _fit_adversary(self, X: np.ndarray, a: np.ndarray, ycode: np.ndarray) -> Adversary:
        cached = getattr(self, "_adversary", None) if self._continuing() else None
        if cached is not None:
            self._check_same_labels(cached.a.cpu().numpy(), cached.cls.cpu().numpy(), a, ycode)
            return cached
        self._check_budget_for_clean_pass(len(X), "the sensitive-attribute probe")
        return super()._fit_adversary(X, a, ycode)

    def _clean_start(self, X: Any, a: np.ndarray, ycode: np.ndarray,
                     tr: np.ndarray) -> tuple[np.ndarray, Adversary]:
        # a resumed (warm-started) search does not pay for the clean embeddings again
        cached = self._kept("_clean_cache")
        if cached is not None:
            # the training part too: it is drawn by group and class of y, which with
            # conditional=False the adversary's codes do not show
            self._check_same_labels(cached[2], cached[3], a, ycode, cached[4], tr)
            return cached[0], cached[1]
        self._check_budget_for_clean_pass(
            len(X), "the sensitive-attribute probe and the validation part")
        Z0, adversary = super()._clean_start(X, a, ycode, tr)
        self._clean_cache = (Z0, adversary, a, ycode, tr)
        self.__dict__.pop("_standardized_cache", None)  # of other data
        return Z0, adversary

    def _standardized(self, X: Any, identity: FittedEdit) -> tuple[FittedEdit, np.ndarray]:
        # nor for the standardised embeddings: they do not depend on the search
        cached = self._kept("_standardized_cache")
        if cached is None:
            cached = self._standardized_cache = super()._standardized(X, identity)
        return cached

    @staticmethod
    def _check_same_labels(a_then: np.ndarray, y_then: np.ndarray, a: np.ndarray,
                           ycode: np.ndarray, tr_then: Any = None, tr: Any = None) -> None:
        """A warm start continues the previous fit: its groups and classes (and training
        part, when guarded) must be these."""
        if not (np.array_equal(a_then, a) and np.array_equal(y_then, ycode)
                and np.array_equal(tr_then, tr)):
            raise ValueError(
                "warm_start=True continues the previous fit, but sensitive_features or y "
                "differ from that fit's. Call fit with the same data, or set "
                "warm_start=False to start a new search."
            )

    def _check_budget_for_clean_pass(self, n_samples: int, purpose: str, passes: int = 1,
                                     other_ways: str = "") -> None:
        """Refuse, before anything is sent, a budget that cannot embed the inputs
        ``passes`` times (what is sent before the search)."""
        need = n_samples * passes
        if self._encoder is not None and self._meter.remaining < need:
            times = {1: "once", 2: "twice"}.get(passes, f"{passes} times")
            raise ValueError(
                f"max_queries={self.max_queries} leaves {int(self._meter.remaining)} images, "
                f"too few to embed the {n_samples} training inputs {times} for {purpose}. "
                f"Raise max_queries well above {need} (each search iteration costs "
                f"about (2 * n_directions + 2) * batch_size more){other_ways}, or fit on a "
                "subsample."
            )

    def _fit_guarded(self, X: Any, a: np.ndarray, ycode: np.ndarray, tr: np.ndarray,
                     va: np.ndarray, *, task: np.ndarray, erase: bool,
                     standardize: bool) -> None:
        # the passes sent before the search (those a warm start has kept are not sent
        # again), checked against the budget before the first of them
        clean = self._kept("_clean_cache") is None
        std = standardize and self._kept("_standardized_cache") is None
        if std:
            self._check_budget_for_clean_pass(
                len(X), "the sensitive-attribute probe and the validation part, as they are "
                "and standardised (the guard's standardisation candidate)", clean + std,
                ", pass standardize=False or validation_fraction=None")
        super()._fit_guarded(X, a, ycode, tr, va, task=task, erase=erase,
                             standardize=standardize)

    @contextlib.contextmanager
    def _holding_back(self, n_images: int) -> Iterator[None]:
        meter = getattr(self, "_meter", None)
        if self._encoder is None or meter is None or meter.limit is None:
            yield
            return
        held = min(n_images, max(int(meter.remaining) - 1, 0))
        meter.limit -= held
        try:
            yield
        finally:
            meter.limit += held

    # -- step 2 ---------------------------------------------------------------------------
    def _lambda_path(self, validated: bool = False) -> tuple[float, ...]:
        # one search per fit: a λ path would multiply the queries
        return super()._lambda_path(validated=False)

    def _optimise(self, X: np.ndarray, adversary: Adversary, *, lambda_reg: float,
                  held_out: Any = None, warm: bool = False) -> None:
        space = self._space
        project = numpy_projection(space, self.max_norm)
        strategy = STRATEGIES[self.strategy](momentum=self.momentum, step_decay=self.step_decay,
                                             project=project)
        probed = strategy.probed_directions(self.n_directions, space.n_params)
        if self._continuing():
            # from where the search stood, which the guard's choice (edit_) may not be
            theta = getattr(self, "_search_param", None)
            theta, state = self.edit_.param if theta is None else theta, self.search_state_
            if theta.shape != space.param_shape or len(state.order) not in (0, len(X)):
                raise ValueError(
                    "warm_start=True continues the previous fit, but the inputs or the "
                    f"settings differ from that fit's (edit parameter of shape {theta.shape}"
                    f" then, {space.param_shape} now; {len(state.order) or '?'} samples "
                    f"then, {len(X)} now). Set warm_start=False to start a new search."
                )
            theta = np.array(theta)  # a writable copy of the frozen edit's parameter
        else:
            theta = space.init_param().numpy()
            state = strategy.start(self.step_size, space.param_shape, self._seed)
            self.loss_curve_, self.n_iter_ = [], 0
        self.search_state_ = state
        loss = QueryLoss(EditLoss(space, _FiniteLoss(adversary, self), lambda_reg,
                                  self._fill),
                         lambda idx: self._read(X, idx), self._embed_many(), state.known_losses,
                         state.known_residuals if strategy.needs_residuals else None)
        max_iter = self.max_epochs * -(-len(X) // self.batch_size)
        start_iter = self.n_iter_
        # the bar's total is what will run: max_iter, or fewer where max_queries ends first
        planned = (max_iter if self._encoder is None else
                   _planned_iterations(self._meter.remaining, state, len(X), self.batch_size,
                                       probed,
                                       strategy.n_leading + strategy.followups,
                                       self.n_iter_, max_iter, strategy.points_per_direction,
                                       strategy.drop_last))
        bar = tqdm(total=planned, initial=self.n_iter_, desc="GeZO search",
                   disable=not self.verbose, leave=False)
        self._theta = theta
        start = np.array(theta, copy=True)

        def on_iteration(point: np.ndarray, value: float) -> None:
            self._theta = point
            self.n_iter_ += 1
            self.loss_curve_.append(value)
            if self.n_iter_ > bar.total:  # cached losses made an iteration cheaper
                bar.total = self.n_iter_
            bar.update()
            bar.set_postfix(loss=f"{value:.4f}", queries=self._meter.spent)

        finished = False
        try:
            zeroth_order_search(
                loss, theta, state, strategy, n_samples=len(X), batch_size=self.batch_size,
                n_directions=self.n_directions, max_iter=max_iter, n_iter=self.n_iter_,
                remaining=None if self._encoder is None else lambda: self._meter.remaining,
                on_iteration=on_iteration)
            finished = True
        finally:  # also on a failed query: the best edit found so far is kept
            if finished and bar.total != self.n_iter_:
                bar.total = self.n_iter_  # a search that ran to its end ends the bar full
                bar.refresh()
            bar.close()
            self._store(torch.from_numpy(np.ascontiguousarray(self._theta)))
            self._search_param = self.edit_.param  # what a warm start continues from
            del self._theta
        if self.n_iter_ == start_iter < max_iter:
            # the fewest queries of an iteration: the current point and one pair (any other
            # leading point, such as SPSA's first proposal, may be the current point itself)
            warnings.warn(
                f"max_queries={self.max_queries} leaves no room for a search iteration "
                f"({3 + strategy.followups} queries of up to {self.batch_size} images at the "
                "least), so the edit is unchanged. Raise max_queries.", UserWarning,
                stacklevel=4)
        elif self.n_iter_ > start_iter and np.array_equal(self.edit_.param, start):
            ran = self.n_iter_ - start_iter
            if strategy.n_leading == 2 and ran == 1:
                per_iteration = (strategy.points_per_direction * probed + 2) * self.batch_size
                why = (f"{self.strategy!r} scores a step on the batch of the iteration after "
                       "the one that proposes it, so a single iteration cannot move the edit. "
                       f"Raise max_queries (an iteration sends up to {per_iteration} images "
                       "here), or lower n_directions or batch_size")
            else:
                why = ("No step it tried lowered the loss on its batch; a smaller step_size "
                       "or more iterations (max_queries, max_epochs) may")
            unchanged = ("the identity: transform returns the encoder's own embeddings"
                         if self.edit_.is_identity else "the one it started from")
            warnings.warn(
                f"GeZO's search ran {ran} iteration(s) and ended where it started, so the "
                f"edit is {unchanged}. {why}.", UserWarning, stacklevel=4)

    def _embed_many(self) -> Any:
        """The encoder's embeddings of several batches, concurrently (None: features)."""
        if self._encoder is None:
            return None

        def embed_many(batches: Any, on_result: Any) -> Any:
            return self._encoder.embed_many(_FiniteBatches(batches, self), n_jobs=self.n_jobs,
                                            max_retries=self.max_retries, meter=self._meter,
                                            on_result=on_result,
                                            n_features=self.n_features_out_)

        return embed_many

    def _overflow_error(self, what: str) -> ValueError:
        return ValueError(
            f"the edit overflowed: {what}. step_size={self.step_size} is far too large for "
            "inputs in [0, 1] (the default is 0.2); lower it and fit again with "
            "warm_start=False. The best edit found so far is kept."
        )


class _FiniteLoss:
    """The adversarial loss, refusing a non-finite value: the edit overflowed."""

    def __init__(self, adversary: Adversary, owner: GeZONoiseTransformer) -> None:
        self.adversary, self.owner = adversary, owner
        self.device = adversary.device

    def residuals(self, z: torch.Tensor, idx: Any) -> torch.Tensor:
        return self.adversary.residuals(z, idx)

    def loss_and_residuals(self, z: torch.Tensor, idx: Any) -> tuple[torch.Tensor, torch.Tensor]:
        value, r = self.adversary.loss_and_residuals(z, idx)
        return self._finite(value, z), r

    def __call__(self, z: torch.Tensor, idx: Any) -> torch.Tensor:
        return self._finite(self.adversary(z, idx), z)

    def _finite(self, value: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if not torch.isfinite(value):
            raise self.owner._overflow_error(
                f"the loss of an edited batch is {float(value)} (its largest embedding "
                f"value is {float(z.abs().max()):.3g})")
        return value


class _FiniteBatches(Sequence):
    """Edited batches, each checked to be finite before it is sent (nothing is paid for)."""

    def __init__(self, batches: Sequence[np.ndarray], owner: GeZONoiseTransformer) -> None:
        self.batches, self.owner = batches, owner

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        batch = self.batches[i]
        if not np.isfinite(batch.sum()) and not np.isfinite(batch).all():
            raise self.owner._overflow_error("an edited batch holds NaN or infinity, so it "
                                             "was not sent to the encoder")
        return batch


def _planned_iterations(remaining: float, state: Any, n_samples: int, batch_size: int,
                        n_directions: int, extra: int, n_iter: int, max_iter: int,
                        per_direction: int = 2, drop_last: bool = False) -> int:
    """The iteration count a search from ``n_iter`` reaches: ``max_iter`` or where the budget
    of ``remaining`` images ends it (what :func:`~fairnoise.optim.zeroth_order_search`
    does: batches in epochs, the last of an epoch smaller or, with ``drop_last``, skipped;
    an iteration costs ``(extra + per_direction · d)`` batches with the most directions
    ``d ≤ n_directions`` that fit; ``extra``: the points besides the probes). Losses
    already known (from an interrupted iteration, or a first proposal that is the current
    point) are not discounted."""
    if not np.isfinite(remaining):
        return max_iter
    remaining = int(remaining)
    position = state.position if len(state.order) else n_samples
    full = min(batch_size, n_samples)
    per_epoch = n_samples // full if drop_last else -(-n_samples // batch_size)
    used = per_epoch * full if drop_last else n_samples  # inputs an epoch sends
    epoch_cost = (extra + per_direction * n_directions) * used
    while n_iter < max_iter:
        if position >= n_samples or (drop_last and n_samples - position < full):
            position = 0
            # whole epochs at full width at once, keeping one in hand for the last ones
            skip = min(remaining // epoch_cost - 1, (max_iter - n_iter) // per_epoch)
            if skip > 0:
                remaining -= skip * epoch_cost
                n_iter += skip * per_epoch
                continue
        size = min(batch_size, n_samples - position)
        dirs = min(n_directions, (remaining // size - extra) // per_direction)
        if dirs < 1:
            break
        remaining -= (extra + per_direction * dirs) * size
        position += size
        n_iter += 1
    return n_iter
