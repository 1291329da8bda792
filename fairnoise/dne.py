"""White-box Debiased Noise Editing: the edit is learned with gradients through φ."""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BaseNoiseTransformer
from ._guard import PATH_EPOCHS
from .encoders import TorchEncoder, check_encoder
from .objectives import Adversary
from .optim import EditLoss, NonFiniteLoss, Trace, minimise_minibatch

__all__ = ["DebiasedNoiseTransformer"]


class DebiasedNoiseTransformer(BaseNoiseTransformer):
    r"""Learn one universal input edit that hides a sensitive attribute from a frozen encoder.

    Debiased Noise Editing (DNE; Jin et al., MICCAI 2024). Step 1 fits a probe
    :math:`g` that predicts the group :math:`a` from the clean embeddings
    :math:`\varphi(x)`. Step 2 learns the edit's parameter :math:`\theta` by minibatch
    Adam through the frozen encoder:

    .. math::

        \min_\theta\; \mathbb{E}_{(x, a)}
        \big[\ell_{adv}(g(\varphi(\mathrm{edit}(x, \theta))), a)\big] + \lambda \, R(\theta)

    with :math:`\ell_{adv}` = ``objective`` and :math:`R` the edit's regulariser
    (:math:`\|\varepsilon\|_2` for the additive noise, the mean of :math:`1 - m` over the
    full-resolution mask for the mask).
    The same edit is applied to every input at ``transform``, so no group labels are
    needed at prediction time.

    Parameters
    ----------
    encoder : None, torch.nn.Module or TorchEncoder, default=None
        The frozen, differentiable encoder :math:`\varphi`. ``None`` means the inputs
        already are embeddings (feature mode). Black-box callables belong to
        :class:`~fairnoise.GeZONoiseTransformer`.
    output : {"embeddings", "images"}, default="embeddings"
        ``transform`` returns :math:`\varphi(\mathrm{edit}(X))` (2-D) or
        :math:`\mathrm{edit}(X)` (same shape as ``X``).
    edit : {"masked", "additive"}, default="masked"
        ``"masked"``: :math:`m \odot x + (1 - m) \odot f` with a learned mask
        :math:`m \in [0, 1]` and the training mean as fixed fill :math:`f`; it can blank a
        location-fixed shortcut outright. ``"additive"``: :math:`x + \varepsilon` (the
        paper's). In feature mode an additive shift cannot remove linearly decodable
        information (it only moves a linear model's intercept): use ``"masked"`` there.
    objective : {"mean_gap", "confusion", "neg_ce"}, default="mean_gap"
        ``"mean_gap"``: root-mean-square difference between each group's mean
        standardised embedding and its class's (needs no probe, so it cannot be gamed by
        fooling one). ``"confusion"``: :math:`KL(\pi \| g)` to the group prior
        :math:`\pi` (bounded, minimal when the probe knows nothing beyond the base rate).
        ``"neg_ce"``: the paper's negative cross-entropy of the probe (unbounded; kept for
        fidelity). See :mod:`fairnoise.objectives`.
    lambda_reg : float or "auto", default="auto"
        Weight :math:`\lambda` of the regulariser: the cost of masking the whole input
        (``"masked"``; the ``"mean_gap"`` loss is relative, 1 = the clean embeddings'
        gap), or of a unit :math:`\|\varepsilon\|_2` (``"additive"``; the paper used
        1e-3). ``"auto"``: a small path, large to small and warm-started ((0.3, 0.1,
        0.03) for the mask, (0.1, 0.01, 0.001) for the noise), each value's edit judged
        on the validation part (see ``validation_fraction``); 0.1 when nothing is
        validated.
    noise_resolution : int, (int, int) or None, default=None
        Resolution ``(h, w)`` of the learned parameter grid, upsampled to the image size
        (see ``upsampling``), each side at most the image's (a larger one is capped).
        ``None``: full resolution. Images only.
    upsampling : {"auto", "bilinear", "nearest"}, default="auto"
        How a coarse ``noise_resolution`` grid reaches the image size: a smooth bilinear
        field, or piecewise-constant cells (each grid value covers its block of pixels).
        ``"auto"``: bilinear. No effect at full resolution.
    channel_shared : bool, default=True
        One noise map (or mask) for all channels, as in the paper, or one per channel.
    max_norm : float or None, default=None
        Bound on :math:`\|\varepsilon\|_2` (additive edit), enforced by projection after
        each step.
    sa_probe : None, classifier or torch.nn.Module, default=None
        The sensitive-attribute probe :math:`g`, fitted on standardised embeddings.
        ``None``: multinomial ``LogisticRegression``. Any scikit-learn classifier exposing
        ``coef_``/``intercept_`` works, and so does a module mapping embeddings to logits.
    conditional : bool, default=True
        When ``y`` is passed to ``fit``, fit one probe per class of ``y`` and confuse each
        towards the group distribution within its class: remove the group information
        beyond what the label explains (what equalized odds measures). Ignored without ``y``.
        ``False``: one probe for all of them, which hides the group information the label
        carries too. The validation guard judges within each class of ``y`` either way.
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
        With ``edit="masked"`` each mask of
        the λ path is also judged *rounded to its bounds* (``"masked edit, rounded"``:
        cells at or above one half replaced by the fill outright, the others kept as they
        are; each distinct rounded mask once): the fit often dims a cell where replacing
        it removes the shortcut, and a fresh probe still reads a dimmed one. One more
        forward pass of the inputs per distinct rounded mask.
    auc_tolerance : float, default=0.01
        Largest loss of balanced validation task AUC a candidate may cost.
    min_leakage_drop : float, default=0.02
        Smallest drop of validation conditional leakage (AUC) that counts as removing
        something (about the leakage estimate's noise on a few hundred samples).
    learning_rate : float, default=5e-2
        Adam step size, in parameter units (input units for noise, mask fraction for
        the mask) per step.
    max_epochs : int, default=30
        Maximum number of passes over the data.
    batch_size : int, default=128
        Inputs per gradient step.
    tol : float, default=1e-4
        Minimum decrease of the epoch loss that counts as an improvement.
    n_iter_no_change : int, default=5
        Stop after this many epochs without improvement.
    device : {"auto", "cpu", "cuda", ...}, default="auto"
        Device of the optimisation (used when ``encoder`` is a plain module).
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        Autocast precision of the encoder (used when ``encoder`` is a plain module).
    random_state : int, RandomState instance or None, default=None
        Seed of the minibatch order; fixed seeds give bit-identical results on CPU.
    verbose : int, default=0
        Show a progress bar with the current loss.

    Attributes
    ----------
    noise_ : ndarray
        The full-resolution noise added to every input (``"additive"``), or the fill
        (``"masked"``); broadcastable against one input.
    mask_ : ndarray or None
        The full-resolution mask (``"masked"``), else ``None``.
    edit_ : FittedEdit
        The learned edit as one frozen object (its arrays, ``apply``, the learned
        parameter ``edit_.param`` at ``noise_resolution``: noise, or ``1 - mask``);
        ``noise_`` and ``mask_`` are views of it.
    noise_param_ : ndarray
        Deprecated alias of ``edit_.param``.
    sa_probe_ : Pipeline, dict or None
        The probe the edit was optimised against (``StandardScaler`` → classifier); a dict
        of probes keyed by class code of ``y`` when conditional; ``None`` when fitted
        without groups.
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
        Mean training loss of each epoch (for each λ of the path in turn).
    validation_loss_curve_ : list of float
        The loss on the validation part before the first epoch (the unedited inputs')
        and after each epoch, for each λ of the path in turn; the fit keeps the best
        iterate by it. Only after a validated fit.
    n_iter_ : int
        Number of epochs run.

    See Also
    --------
    GeZONoiseTransformer : The same edit learned without encoder gradients (black-box).

    Examples
    --------
    >>> import numpy as np
    >>> from fairnoise import DebiasedNoiseTransformer
    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 2, 200)
    >>> X = np.c_[rng.normal(size=(200, 3)), a + rng.normal(scale=0.1, size=200)]
    >>> dne = DebiasedNoiseTransformer(edit="masked", random_state=0)
    >>> Z = dne.fit_transform(X, sensitive_features=a)
    >>> Z.shape
    (200, 4)
    >>> bool(dne.mask_[3] < dne.mask_[:3].min())  # the group column is masked most
    True
    """

    # partial_fit, like fit, requests sensitive_features by default (metadata routing)
    __metadata_request__partial_fit = {"sensitive_features": True}

    _parameter_constraints: dict = {
        **BaseNoiseTransformer._parameter_constraints,
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "precision": [StrOptions({"auto", "fp32", "bf16", "fp16"})],
    }

    def __init__(
        self,
        encoder: Any = None,
        *,
        output: str = "embeddings",
        edit: str = "masked",
        objective: str = "mean_gap",
        lambda_reg: float | str = "auto",
        noise_resolution: int | tuple[int, int] | None = None,
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
        learning_rate: float = 5e-2,
        max_epochs: int = 30,
        batch_size: int = 128,
        tol: float = 1e-4,
        n_iter_no_change: int = 5,
        device: str | torch.device = "auto",
        precision: str = "auto",
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
        self.learning_rate = learning_rate
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose

    def _check_encoder(self) -> TorchEncoder | None:
        encoder = check_encoder(self.encoder, device=self.device, precision=self.precision,
                                batch_size=self.batch_size)
        if encoder is not None and not encoder.differentiable:
            raise TypeError(
                "DebiasedNoiseTransformer needs a differentiable encoder (a torch.nn.Module "
                "or TorchEncoder); a plain callable gives no gradients. Use "
                "GeZONoiseTransformer for black-box encoders."
            )
        return encoder

    def _optimise(self, X: Any, adversary: Adversary, *, lambda_reg: float,
                  held_out: tuple[Any, Adversary] | None = None, warm: bool = False) -> None:
        if not warm:
            self._path_state = {}
        theta0 = self.edit_.param if warm else None
        epochs = min(PATH_EPOCHS, self.max_epochs) if warm else None
        curve = self._descend(X, adversary, theta0=theta0, max_epochs=epochs,
                              state=self._path_state if held_out is not None else None,
                              lambda_reg=lambda_reg, held_out=held_out)
        self.loss_curve_ = curve
        self.n_iter_ = len(curve)

    def _descend(self, X: Any, adversary: Adversary, theta0: np.ndarray | None = None,
                 max_epochs: int | None = None, state: dict[str, Any] | None = None,
                 lambda_reg: float | None = None,
                 held_out: tuple[Any, Adversary] | None = None) -> list[float]:
        """Minibatch Adam on the edit's parameter; stores it and returns the epoch losses.

        With ``held_out`` (inputs, adversary), the best iterate by the held-out loss is
        stored, and a held-out loss above 3 × the starting point's stops the run as
        diverged (``divergence_`` says at which epoch). A non-finite batch loss stops the
        fit with a ``ValueError`` naming what overflowed; the last edit with a finite loss
        is kept.
        """
        space, encoder = self._space, self._encoder
        device = self._torch_device()
        lam = self._lambda_path()[0] if lambda_reg is None else lambda_reg
        loss = EditLoss(space, adversary, lam, self._fill)
        module = None
        checked = False

        def embed(xb: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
            xe = loss.edit(xb, theta)
            scale = max(1.0, float(xb.detach().abs().max()))
            if not torch.isfinite(xe).all() or float(xe.detach().abs().max()) > 1e3 * scale:
                raise NonFiniteLoss("the edit overflowed", theta.detach().clone(), "edit")
            z = xe if encoder is None else encoder.forward(module, xe)
            if not torch.isfinite(z).all():
                raise NonFiniteLoss("the encoder returned NaN or infinity",
                                    theta.detach().clone(), "encoder")
            return z

        def batch_loss(idx: np.ndarray, theta: torch.Tensor) -> torch.Tensor:
            nonlocal checked
            idx = np.sort(idx)  # sequential reads from memmaps; the loss is order-free
            xb = torch.from_numpy(self._read(X, idx))
            if device.type == "cuda":
                xb = xb.pin_memory()
            z = embed(xb.to(device, non_blocking=True), theta)
            if not checked:
                checked = True
                if not z.requires_grad:
                    raise TypeError(
                        "the encoder's output carries no gradient with respect to its input "
                        "(it detaches, or runs outside torch), so DebiasedNoiseTransformer "
                        "cannot learn through it. Use GeZONoiseTransformer for black-box "
                        "encoders."
                    )
            return loss(z, idx, theta)

        evaluate = None
        if held_out is not None:
            X_va, adv_va = held_out
            va_loss = EditLoss(space, adv_va, lam, self._fill)

            def evaluate(theta: torch.Tensor) -> float:
                with torch.no_grad():
                    zs = [embed(torch.from_numpy(self._read(X_va, idx)).to(device), theta)
                          for idx in np.array_split(np.arange(len(X_va)),
                                                    -(-len(X_va) // self.batch_size))]
                    return float(va_loss(torch.cat(zs), np.arange(len(X_va)), theta))

        generator = torch.Generator().manual_seed(self._seed)
        # a writable copy: the fitted edit's arrays are read-only
        theta0 = torch.as_tensor(np.array(theta0) if theta0 is not None else space.init_param(),
                                 device=device)
        project = lambda t: space.project(t, self.max_norm)  # noqa: E731
        trace = Trace()
        kwargs = dict(batch_size=self.batch_size, learning_rate=self.learning_rate,
                      max_epochs=max_epochs or self.max_epochs, tol=self.tol,
                      n_iter_no_change=self.n_iter_no_change, project=project,
                      generator=generator, verbose=bool(self.verbose), state=state,
                      held_out=evaluate, trace=trace)
        try:
            if encoder is None:
                theta, curve = minimise_minibatch(batch_loss, theta0, len(X), **kwargs)
            else:
                with encoder.frozen() as module:  # noqa: F841 (read by batch_loss)
                    theta, curve = minimise_minibatch(batch_loss, theta0, len(X), **kwargs)
        except NonFiniteLoss as error:
            self._store(error.theta)
            raise ValueError(self._non_finite_message(error)) from None
        self._store(theta)
        self._held_out_curve = list(trace.held_out)
        if trace.diverged_at is not None:
            warnings.warn(
                f"the fit diverged at epoch {trace.diverged_at}: the loss on the validation "
                f"part rose above 3 times the unedited inputs' ({trace.held_out[0]:.3g}); "
                f"the best edit before that (epoch {trace.best_epoch}) is kept. Lower "
                f"learning_rate (now {self.learning_rate:g}) if this recurs.",
                UserWarning, stacklevel=4)
        return curve

    def _non_finite_message(self, error: NonFiniteLoss) -> str:
        if error.reason == "edit":
            cause = (f"the edit overflowed (the edited inputs left any sensible range): "
                     f"learning_rate={self.learning_rate:g} is far too large for the edit's "
                     "parameter (the default is 0.05)")
        elif error.reason == "encoder":
            cause = ("the encoder returned NaN or infinity for finite edited inputs: it is "
                     "not numerically stable on edited images (check its normalisation, and "
                     "that it does not divide by a statistic of the batch)")
        else:
            cause = f"{error} (the objective overflowed)"
        return (f"DebiasedNoiseTransformer.fit stopped: {cause}. The last edit whose loss "
                "was finite is kept in edit_.")

    def partial_fit(self, X: Any, y: Any = None, *,
                    sensitive_features: Any = None) -> DebiasedNoiseTransformer:
        """One pass of minibatch Adam over one batch of a stream; continues across calls.

        The first call (or the first with ``sensitive_features``) fixes everything that
        depends on the data as a whole, from that batch alone: the probe, the groups
        (``classes_sensitive_``), the classes of ``y``, the embeddings' standardisation and,
        for the masked edit, the fill. Make it representative (a few hundred samples with
        every group). Later calls continue the noise and Adam's state; labels they hold
        must have been seen in the first call. After unpickling, the next call rebuilds the
        probe from its batch and continues the noise.

        Nothing is held out of a stream, so the validation guard of :meth:`fit` does not
        run: the edit is not judged against the identity and no ``NoSafeEditWarning``
        comes. Check it on held-out data (:func:`fairnoise.metrics.leakage_auc`, the
        equalized-odds gap) before relying on it.

        Parameters
        ----------
        X, y, sensitive_features
            As in :meth:`fit`, for one batch.

        Returns
        -------
        self : object
        """
        if not hasattr(self, "edit_"):  # start once, as fit does, from the identity edit
            X = self._start(X)
            self._store_identity(X)
            self._y_classes = None
        else:
            X = self._validate_X(X, reset=False)
            self._encoder = self._check_encoder()
        if sensitive_features is None:
            self._warn_no_groups(method="partial_fit")
            return self
        # the groups and classes are fixed by the first call that has them
        a, ycode = self._codes(sensitive_features, y, len(X),
                               reset=self.classes_sensitive_ is None)
        if getattr(self, "_adversary", None) is None:
            self._adversary = adversary = self._fit_adversary(X, a, ycode)
        else:
            adversary = self._adversary.with_samples(a, ycode)
        self._adam_state = getattr(self, "_adam_state", None) or {}
        curve = self._descend(X, adversary, theta0=self.edit_.param, max_epochs=1,
                              state=self._adam_state)
        self.loss_curve_ = [*self.loss_curve_, *curve]
        self.n_iter_ += 1
        return self

