"""Estimator plumbing shared by the white-box and black-box noise transformers.

The public classes read top to bottom as the method: validate → probe → optimise → store.
This module holds everything but the optimiser (which lives in :mod:`fairnoise.optim`):
the start of a fit, group and label encoding, the sensitive-attribute probe, metadata
routing, the fitted edit (:class:`~fairnoise.edits.FittedEdit`), ``transform`` and feature
names. Inputs are validated in :mod:`fairnoise._inputs`.
"""

from __future__ import annotations

import contextlib
import copy
import copyreg
import dataclasses
import numbers
import warnings
from abc import abstractmethod
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._dask import is_dask_array, transform_dask
from ._groups import encode_groups, plain
from ._guard import (
    ERASER_THREADS,
    LAMBDA_PATHS,
    LAMBDA_UNVALIDATED,
    MIN_PER_CELL,
    MIN_VALIDATION,
    ROUNDING_THRESHOLD,
    Judge,
    NoSafeEditWarning,
    holdout_split,
    refusal_message,
)
from ._idle import collecting
from ._inputs import RowSubset, chunk_rows, read_rows, validate_inputs
from ._threads import blas_within_torch
from .edits import EDITS, UPSAMPLINGS, FittedEdit, NoiseSpace, input_mean
from .edits._file import save_edit
from .encoders import CallableEncoder, TorchEncoder
from .objectives import OBJECTIVES, Adversary
from .probe import TorchProbe, check_probe, fit_probe

_NO_GROUPS_WARNING = (
    "{cls}.{method} was called without sensitive_features, so no edit was learned (zero noise, "
    "a mask of ones) and transform only applies the encoder. Pass the groups directly as "
    "{method}(X, y, sensitive_features=a); through a Pipeline or GridSearchCV as "
    "{method}(X, y, <step name>__sensitive_features=a); or with metadata routing on "
    "(sklearn.set_config(enable_metadata_routing=True)) as {method}(X, y, "
    "sensitive_features=a)."
)


def codes_in(labels: Any, classes: np.ndarray, name: str, n_samples: int) -> np.ndarray:
    """Codes of ``labels`` among ``classes`` fixed earlier (for ``partial_fit``)."""
    codes, seen = (encode_groups(labels, n_samples, min_groups=1)
                   if name == "sensitive_features"
                   else _check_y_classes(labels, n_samples, return_classes=True))
    index = pd.Index(list(classes), tupleize_cols=False)
    mapping = index.get_indexer(pd.Index(list(seen), tupleize_cols=False))
    if (mapping < 0).any():
        unseen = [plain(label) for label, m in zip(seen, mapping, strict=True) if m < 0]
        raise ValueError(
            f"{name} holds labels {unseen!r} that the first partial_fit call did not see "
            f"(known: {[plain(c) for c in classes]!r}); the first batch must contain every "
            "label."
        )
    return mapping[codes].astype(np.int64)


def check_y(y: Any, n_samples: int) -> np.ndarray:
    """``y`` as a 1-D array with one finite label per sample, whatever it is used for."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n_samples:
        raise ValueError(
            f"y must be 1-D with one label per sample ({n_samples}); got shape {y.shape}."
        )
    if np.issubdtype(y.dtype, np.number) and not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinity; every sample needs a finite label.")
    if pd.isna(pd.Series(y)).any():
        raise ValueError("y contains missing values.")
    return y


def _check_y_classes(y: Any, n_samples: int, return_classes: bool = False) -> Any:
    """Class codes of ``y`` for the class-conditional adversary."""
    y = check_y(y, n_samples)
    codes, classes = pd.factorize(pd.Series(y), sort=True)
    if len(classes) > max(20, n_samples // 10):
        raise ValueError(
            f"y has {len(classes)} distinct values; the class-conditional adversary needs "
            "class labels. Pass conditional=False (or no y) for a continuous target."
        )
    if return_classes:
        return codes.astype(np.int64), np.asarray(classes)
    return codes.astype(np.int64)


def check_index_aligned(labels: Any, name: str, index: pd.Index | None) -> None:
    """Refuse a pandas ``labels`` whose index does not match the DataFrame ``X``'s.

    scikit-learn pairs samples by position; a Series indexed differently from ``X`` (after
    a ``reset_index``, a shuffle or a filter on one of them) would silently pair each
    row with another row's label, the worst kind of error in a fairness tool.
    """
    if index is None or not isinstance(labels, (pd.Series, pd.DataFrame)):
        return
    if not labels.index.equals(index):
        raise ValueError(
            f"{name} is a pandas {type(labels).__name__} whose index does not match the "
            "index of the DataFrame X, so its rows would be paired with X's by position, "
            f"not by label. Align it first ({name}.loc[X.index], or reindex), or pass "
            f"{name}.to_numpy() if the order is right."
        )


def _warn_single_sample_groups(codes: np.ndarray, classes: np.ndarray) -> None:
    counts = np.bincount(codes, minlength=len(classes))
    alone = [classes[k] for k in np.flatnonzero(counts == 1)]
    if alone:
        warnings.warn(
            f"sensitive_features has {len(alone)} group(s) with a single sample "
            f"({[_plain(g) for g in alone][:10]!r}): neither the probe nor the group's mean "
            "embedding can be estimated from one sample, so the edit is not learned for "
            "them in any meaningful way. Merge rare groups, or collect more samples.",
            UserWarning, stacklevel=4)


def _plain(label: Any) -> Any:
    """A label as a plain Python value (``7``, not ``np.int64(7)``) for messages."""
    if isinstance(label, tuple):
        return tuple(_plain(v) for v in label)
    return label.item() if isinstance(label, np.generic) else label


class BaseNoiseTransformer(TransformerMixin, BaseEstimator):
    """Shared base of :class:`DebiasedNoiseTransformer` and :class:`GeZONoiseTransformer`.

    ``fit`` is :meth:`_start` (validate, set up the edit), step 1 (:meth:`_fit_adversary`:
    the probe on the clean embeddings) and step 2 (:meth:`_optimise`, the subclass's
    optimiser from :mod:`fairnoise.optim`), which ends by storing the edit. Subclasses
    list their own parameters in ``__init__`` and implement :meth:`_optimise`.
    """

    # the class requests sensitive_features by default: routing works without
    # set_fit_request(sensitive_features=True)
    __metadata_request__fit = {"sensitive_features": True}

    _parameter_constraints: dict = {
        "encoder": [None, callable, TorchEncoder, CallableEncoder],
        "output": [StrOptions({"embeddings", "images"})],
        "edit": [StrOptions(set(EDITS))],
        "objective": [StrOptions(set(OBJECTIVES))],
        "lambda_reg": [Interval(numbers.Real, 0, None, closed="left"), StrOptions({"auto"})],
        "erase": ["boolean", StrOptions({"auto"})],
        "standardize": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [None, Interval(numbers.Real, 0, 1, closed="left")],
        "auc_tolerance": [Interval(numbers.Real, 0, 1, closed="both")],
        "min_leakage_drop": [Interval(numbers.Real, 0, 0.5, closed="both")],
        "noise_resolution": [None, Interval(numbers.Integral, 1, None, closed="left"), tuple],
        "upsampling": [StrOptions({"auto", *UPSAMPLINGS})],
        "channel_shared": ["boolean"],
        "max_norm": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "sa_probe": [None, object],
        "conditional": ["boolean"],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # -- fit ------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None, *, sensitive_features: Any = None) -> BaseNoiseTransformer:
        """Learn the universal edit that hides ``sensitive_features`` from the encoder.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, [C,] H, W)
            Feature vectors (``encoder=None``) or images; NumPy arrays, memmaps (read in
            batches), torch tensors, or a pandas DataFrame of features.
        y : array-like of shape (n_samples,), default=None
            Task labels. Optional; with ``conditional=True`` they make the adversary
            class-conditional (hide the group information beyond what ``y`` explains),
            and the validation guard judges each candidate by its task AUC on them, so a
            guarded fit needs at least two classes.
        sensitive_features : array-like of shape (n_samples,) or (n_samples, n_attributes)
            Group labels of any hashable type; several columns are combined into their
            intersection. Without them no edit is learned and a warning says how to pass them.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        shipped = self.__dict__.pop("_loaded_from", None)  # a loaded edit, replaced by this fit
        X = self._start(X)
        if sensitive_features is None:
            self._warn_no_groups(shipped)
            self._store_identity(X)
            return self
        a, ycode = self._codes(sensitive_features, y, len(X), reset=True)
        judged = self._judged_classes(y, ycode, len(X))
        split = self._validation_split(a, y, judged)
        # an explicit erase=True / standardize=True that cannot apply is refused either way
        unvalidated = None if split is not None else (
            self._unvalidated_by(y, judged)
            or "the validation part is too small (see the warning above)")
        erase, standardize = self._erasing(unvalidated), self._standardizing(unvalidated)
        if split is None:  # nothing to validate against: one edit, learned on everything
            self.__dict__.pop("validation_", None)
            self.__dict__.pop("validation_loss_curve_", None)
            self._adversary = self._fit_adversary(X, a, ycode)
            self._optimise(X, self._adversary, lambda_reg=self._lambda_path()[0])
            return self
        self._fit_guarded(X, a, ycode, *split, task=judged[0], erase=erase,
                          standardize=standardize)
        return self

    # -- the guard (see fairnoise._guard) -----------------------------------------------------
    def _lambda_path(self, validated: bool = False) -> tuple[float, ...]:
        """``lambda_reg`` as values to try (the path when "auto" and validated)."""
        if self.lambda_reg != "auto":
            return (float(self.lambda_reg),)
        return LAMBDA_PATHS[self.edit] if validated else (LAMBDA_UNVALIDATED,)

    def _judged_classes(self, y: Any, ycode: np.ndarray,
                        n_samples: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The class codes of ``y`` and its classes, as the guard judges with them, or None
        when ``y`` holds no class labels (not given, or a continuous target).

        They are the adversary's codes when ``conditional=True``; with ``conditional=False``
        the adversary ignores ``y`` (its codes are all zero) but the guard still judges each
        candidate within each class of ``y``, by the same verdicts."""
        if y is None:
            return None
        if self.conditional:
            return ycode, self._y_classes
        try:
            return _check_y_classes(y, n_samples, return_classes=True)
        except ValueError:  # a continuous target: nothing to judge a task AUC on
            return None

    def _unvalidated_by(self, y: Any, judged: Any) -> str | None:
        """The setting that leaves a fit unvalidated (the guard judges within each class
        of ``y``), or None when the settings ask for a validated fit."""
        if y is None:
            return "y was not given"
        if judged is None:
            return "y is a continuous target, not class labels"
        if not self.validation_fraction:
            return f"validation_fraction={self.validation_fraction!r}"
        return None

    _VALIDATED = ("a validated fit (y given as class labels and validation_fraction > 0, "
                  "with enough data)")

    def _erasing(self, unvalidated: str | None) -> bool:
        """Whether embedding-eraser candidates are judged (``erase``); ``unvalidated``
        says why the fit is not validated (None: it is)."""
        if self.erase is True and (self.output == "images" or unvalidated):
            got = f"output={self.output!r}" if self.output == "images" else unvalidated
            raise ValueError(
                "erase=True fits an embedding eraser, which needs output='embeddings' and "
                f"{self._VALIDATED}; here {got}. Use erase='auto' or erase=False."
            )
        return self.erase is not False and self.output == "embeddings" and not unvalidated

    def _standardizing(self, unvalidated: str | None) -> bool:
        """Whether the intensity-standardisation candidates are judged (``standardize``)."""
        images = len(self.input_shape_) >= 2
        if self.standardize is True and (not images or unvalidated):
            got = "the inputs are feature vectors" if not images else unvalidated
            raise ValueError(
                "standardize=True standardises each image's intensity, which needs image "
                f"inputs and {self._VALIDATED}; here {got}. Use standardize='auto' or "
                "standardize=False."
            )
        return self.standardize is not False and images and not unvalidated

    def _validation_split(self, a: np.ndarray, y: Any,
                          judged: tuple[np.ndarray, np.ndarray] | None
                          ) -> tuple[np.ndarray, np.ndarray] | None:
        """The (train, validation) split of the guard, or None when nothing is validated."""
        fraction = self.validation_fraction
        if self._unvalidated_by(y, judged) is not None:
            return None
        ycode, classes = judged
        if ycode.max() == 0:
            raise ValueError(
                f"y holds a single class ({plain(classes[0])!r}), and the validation "
                "guard judges every candidate edit by the task AUC a fresh head reaches on y, "
                "which needs at least two classes. Pass y with at least two classes, "
                "y=None (no class-conditional adversary, no guard) or "
                "validation_fraction=None (no guard)."
            )
        split = holdout_split(a, ycode, fraction, self._seed)
        if split is None:
            warnings.warn(
                f"validation_fraction={fraction:g} leaves too few samples per group and "
                f"class to judge the edit (it needs {MIN_VALIDATION} validation samples in "
                f"all, and in every class two groups with at least {MIN_PER_CELL} each), so "
                f"{type(self).__name__} learns one edit on all the data without checking it "
                "against the identity. Pass more data, a larger validation_fraction, or "
                "validation_fraction=None to silence this.", UserWarning, stacklevel=3)
        return split

    def _fit_guarded(self, X: Any, a: np.ndarray, ycode: np.ndarray, tr: np.ndarray,
                     va: np.ndarray, *, task: np.ndarray, erase: bool,
                     standardize: bool) -> None:
        """Learn candidates on the training part, keep the one the validation part backs.

        ``ycode`` holds the adversary's class codes, ``task`` those of ``y`` the guard
        judges with (the same unless ``conditional=False``, where ``ycode`` is all zero)."""
        Z0, adversary = self._clean_start(X, a, ycode, tr)
        self.n_features_out_ = Z0.shape[1]
        self._adversary = adversary
        held_out = (RowSubset(X, va), adversary.with_samples(a[va], ycode[va]))
        if erase:
            from .edits import fit_conditional_eraser
        judge = Judge(tr, va, a, task, self._seed,
                      fit_eraser=fit_conditional_eraser if erase else None)
        # the verdicts are client work: deferred, they run while the search waits for its
        # queries (GeZO with n_jobs), else before it; the same values either way
        with collecting() as work, self._eraser_threads(erase) as pool:
            def judge_edit(name: str, edit: FittedEdit, Z: np.ndarray, lam: float,
                           into: list) -> None:
                """The edit as it is and, when erasing, followed by the embedding eraser."""
                for erased in (False, True)[: 1 + erase]:
                    erasers = judge.start_erasers(Z, pool) if erased and pool else None
                    into.append((edit, work.defer(judge.evaluate, name, Z, erase=erased,
                                                  erasers=erasers, lambda_reg=lam)))

            candidates: list = []  # (input edit, deferred verdict), one per row of the judge
            identity = self._space.fitted(self._space.init_param(), self._fill)
            judge_edit("identity", identity, Z0, np.nan, candidates)
            last: list = []  # the standardisation: judged last, embedded before the search
            if standardize:  # (it does not depend on the search)
                judge_edit("standardize", *self._standardized(X, identity), np.nan, last)
            if not self._judges_while_querying():
                work.drain()  # no calls to wait for: judged now, a failure costs no search
            curves, held_curves, X_tr, previous = [], [], RowSubset(X, tr), identity
            judged_variants: list[np.ndarray] = []
            path = self._lambda_path(validated=True)
            for i, lam in enumerate(path):
                # kept back for the guard: one pass per input-edit candidate still to judge
                with self._holding_back(len(X) * (len(path) - i) * (1 + self._rounds())):
                    self._optimise(X_tr, adversary, lambda_reg=lam, held_out=held_out,
                                   warm=i > 0)
                curves.append(list(self.loss_curve_))
                held_curves.append(self.__dict__.pop("_held_out_curve", []))
                edit = self.edit_
                if edit.is_identity or np.array_equal(edit.param, previous.param):
                    continue  # nothing new to judge
                previous = edit
                judge_edit(self._edit_name(), edit, self._embed_again(X, edit), lam,
                           candidates)
                for name, variant in self._variants(edit, len(X)):
                    if any(np.array_equal(variant.param, p) for p in judged_variants):
                        continue  # the λ path's masks often round alike: judged once
                    judged_variants.append(variant.param)
                    judge_edit(name, variant, self._embed_again(X, variant), lam, candidates)
            candidates += last
            verdicts = [verdict.result() for _, verdict in candidates]
        judge.rows.extend(row for row, _ in verdicts)
        chosen = judge.choose(self.auc_tolerance, self.min_leakage_drop)
        self.validation_ = judge.table(chosen)
        edit, eraser = candidates[chosen][0], verdicts[chosen][1]
        if eraser is not None:  # the eraser as validated: fitted on the training part
            edit = dataclasses.replace(edit, eraser=eraser)
        self.edit_ = edit
        self.loss_curve_ = [v for curve in curves for v in curve]
        self.n_iter_ = len(self.loss_curve_)
        if any(held_curves):
            self.validation_loss_curve_ = [v for curve in held_curves for v in curve]
        if chosen == 0:
            warnings.warn(refusal_message(type(self).__name__, self.validation_,
                                          self.auc_tolerance, self.min_leakage_drop),
                          NoSafeEditWarning, stacklevel=3)

    def _standardized(self, X: Any, identity: FittedEdit) -> tuple[FittedEdit, np.ndarray]:
        """The standardisation candidate and its embeddings of every sample."""
        from .edits import fit_standardization

        std = dataclasses.replace(identity, standardization=fit_standardization(
            self._iter_chunks(X)))
        return std, self._embed_again(X, std)

    def _embed_again(self, X: Any, edit: FittedEdit) -> np.ndarray:
        """φ(edit(X)) for a candidate, at the width the clean pass of this fit found."""
        return self._embed(X, edit, self.n_features_out_, fitted=False)

    def _judges_while_querying(self) -> bool:
        """Whether the search waits on concurrent encoder calls, which the guard's
        verdicts can fill (else they run before the search)."""
        return False

    @contextlib.contextmanager
    def _eraser_threads(self, erase: bool) -> Iterator[ThreadPoolExecutor | None]:
        """Two threads that fit the guard's embedding erasers (NumPy only) while the
        calling thread judges and waits, where the fit runs concurrent work anyway (GeZO
        with ``n_jobs``); None: each verdict fits its own, in the calling thread. The
        values are the same either way."""
        if not (erase and self._judges_while_querying()):
            yield None
            return
        pool = ThreadPoolExecutor(max_workers=ERASER_THREADS,
                                  thread_name_prefix="fairnoise-eraser")
        try:
            yield pool
        finally:  # nothing is left running after the fit, which may have failed
            pool.shutdown(wait=True, cancel_futures=True)

    def _clean_start(self, X: Any, a: np.ndarray, ycode: np.ndarray,
                     tr: np.ndarray) -> tuple[np.ndarray, Adversary]:
        """The clean embeddings of every sample and the adversary of the training part."""
        Z0 = self._embed(X)
        probe = self._fit_probes(Z0[tr], a[tr], ycode[tr])
        return Z0, Adversary(self.objective, probe, a[tr], ycode[tr], Z0[tr],
                             self._torch_device())

    @contextlib.contextmanager
    def _holding_back(self, n_images: int) -> Iterator[None]:
        """While the edit is learned, keep ``n_images`` for the guard (a query budget)."""
        yield

    def _edit_name(self) -> str:
        return f"{self.edit} edit"

    def _rounds(self) -> bool:
        """Whether the guard also judges each learned mask rounded to its bounds."""
        return self.edit == "masked"

    def _variants(self, edit: FittedEdit, n_samples: int) -> list[tuple[str, FittedEdit]]:
        """More candidates made from a learned ``edit``, judged right after it.

        With :meth:`_rounds`: the mask rounded to its bounds, every cell either kept as it
        is (below one half) or replaced by the fill outright. A cell the search only
        dimmed still shows the shortcut to a fresh probe, and a faint blend over the
        other cells can cancel the group-mean difference the objective sees without
        removing anything; the rounded mask keeps what the search found to matter and
        drops the rest. Not judged when rounding changes nothing or gives the identity.
        """
        if not self._rounds():
            return []
        rounded = (edit.param >= ROUNDING_THRESHOLD).astype(np.float32)
        if not rounded.any() or np.array_equal(rounded, edit.param):
            return []
        return [(f"{self._edit_name()}, rounded",
                 self._space.fitted(torch.from_numpy(rounded), self._fill))]

    def _start(self, X: Any) -> Any:
        """What every new fit does first: validate, wrap the encoder, set up the edit."""
        self._validate_params()
        X = self._validate_X(X, reset=True)
        self._encoder = self._check_encoder()
        self._seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self._space = self._noise_space()
        self._fill = self._compute_fill(X)
        return X

    def _warn_no_groups(self, shipped: str | None = None, method: str = "fit") -> None:
        self.__dict__.pop("_X_index", None)  # no labels to align
        message = _NO_GROUPS_WARNING.format(cls=type(self).__name__, method=method)
        if shipped is not None:
            message += (f" This transformer was loaded from {shipped}, and fit has replaced "
                        "that edit: to use a shipped edit in a Pipeline without refitting it, "
                        "wrap it in sklearn.frozen.FrozenEstimator, or load it with "
                        "load_noise(path, frozen=True).")
        warnings.warn(message, UserWarning, stacklevel=3)

    def _codes(self, sensitive_features: Any, y: Any, n_samples: int, *,
               reset: bool) -> tuple[np.ndarray, np.ndarray]:
        """Group and class codes; ``reset`` fixes the groups and classes, else they are known."""
        index = self.__dict__.pop("_X_index", None)
        check_index_aligned(sensitive_features, "sensitive_features", index)
        check_index_aligned(y, "y", index)
        if reset:
            a, self.classes_sensitive_ = encode_groups(sensitive_features, n_samples)
            _warn_single_sample_groups(a, self.classes_sensitive_)
        else:
            a = codes_in(sensitive_features, self.classes_sensitive_, "sensitive_features",
                         n_samples)
        return a, self._class_codes(y, n_samples, reset=reset)

    def _class_codes(self, y: Any, n_samples: int, *, reset: bool) -> np.ndarray:
        """Class codes of ``y`` for the conditional adversary (all zero when unused)."""
        if y is not None:  # checked whatever it is used for: a wrong y is a wrong y
            y = check_y(y, n_samples)
        if reset:
            self._y_classes = None
            if y is None or not self.conditional:
                return np.zeros(n_samples, np.int64)
            codes, self._y_classes = _check_y_classes(y, n_samples, return_classes=True)
            return codes
        if self._y_classes is None:
            return np.zeros(n_samples, np.int64)
        if y is None:
            raise ValueError("y was given to the first partial_fit call (conditional=True), "
                             "so every later call needs it too.")
        return codes_in(y, self._y_classes, "y", n_samples)

    def _fit_adversary(self, X: np.ndarray, a: np.ndarray, ycode: np.ndarray) -> Adversary:
        """Step 1: embed the clean inputs, fit the probe on them, build the loss of step 2."""
        Z = self._embed(X)
        self.n_features_out_ = Z.shape[1]
        probe = self._fit_probes(Z, a, ycode)
        return Adversary(self.objective, probe, a, ycode, Z, self._torch_device())

    def _fit_probes(self, Z: np.ndarray, a: np.ndarray, ycode: np.ndarray) -> TorchProbe:
        """Step 1: the probe g on clean embeddings, one per class of ``y`` when conditional."""
        base = check_probe(self.sa_probe)
        K = len(self.classes_sensitive_)
        n_classes = int(ycode.max()) + 1
        probes, present = [], np.zeros((n_classes, K), bool)
        with blas_within_torch():  # one thread setting, torch's, for the whole fit
            for j in range(n_classes):
                sel = ycode == j
                present[j, np.unique(a[sel])] = True
                probes.append(fit_probe(base, Z[sel], a[sel]) if present[j].sum() > 1
                              else None)
        self.sa_probe_ = probes[0] if n_classes == 1 else dict(enumerate(probes))
        return TorchProbe(probes, K, present, self._torch_device())

    @abstractmethod
    def _optimise(self, X: np.ndarray, adversary: Adversary, *, lambda_reg: float,
                  held_out: tuple[Any, Adversary] | None = None, warm: bool = False) -> None:
        """Step 2: learn the edit; store it (:meth:`_store`), ``loss_curve_``, ``n_iter_``.

        ``held_out`` (inputs and their adversary), when given, is the validation part the
        optimiser may use to keep its best iterate; ``warm`` continues from the stored
        edit (the next value of a λ path).
        """

    # -- the fitted edit ---------------------------------------------------------------------
    def _store(self, theta: torch.Tensor) -> None:
        """Store the learned parameter as the fitted edit."""
        self.edit_ = self._space.fitted(theta, self._fill)

    def _store_identity(self, X: Any) -> None:
        self._adversary = None
        self._store(self._space.init_param())
        self.sa_probe_ = None
        self.classes_sensitive_ = None
        self.loss_curve_ = []
        self.n_iter_ = 0
        self.n_features_out_ = (
            self.n_features_in_ if self._encoder is None
            else self._encoder_embed(self._read(X, np.arange(min(1, len(X))))).shape[1]
        )

    @property
    def noise_(self) -> np.ndarray:
        """The noise added to every input (``"additive"``), or the fill (``"masked"``)."""
        return self.edit_.replaced

    @property
    def mask_(self) -> np.ndarray | None:
        """The full-resolution mask (``"masked"``), else ``None``."""
        return self.edit_.mask

    @property
    def noise_param_(self) -> np.ndarray:
        """Deprecated: the learned parameter, now ``edit_.param``."""
        warnings.warn("noise_param_ is deprecated and will be removed in fairnoise 0.3; use "
                      "edit_.param (the noise, or 1 - mask, at noise_resolution).",
                      FutureWarning, stacklevel=2)
        return self.edit_.param

    # -- validation -------------------------------------------------------------------------
    @abstractmethod
    def _check_encoder(self) -> TorchEncoder | CallableEncoder | None:
        """The encoder as the optimiser uses it (a wrapper from :mod:`fairnoise.encoders`)."""

    def _resolution(self) -> Any:
        """``noise_resolution`` as given; a subclass may resolve a default that depends on X."""
        return self.noise_resolution

    def _upsampling(self) -> str:
        """``upsampling`` as used: ``"auto"`` is bilinear (a subclass may choose otherwise)."""
        return "bilinear" if self.upsampling == "auto" else self.upsampling

    def _noise_space(self) -> NoiseSpace:
        shape = self.input_shape_
        res = self._resolution()
        if res is not None:
            if len(shape) < 2:
                raise ValueError(
                    "noise_resolution applies to images; the inputs are feature vectors "
                    f"of shape {shape}. Leave noise_resolution=None."
                )
            res = (res, res) if isinstance(res, numbers.Integral) else tuple(res)
            if len(res) != 2 or not all(isinstance(r, numbers.Integral) and r >= 1 for r in res):
                raise ValueError(
                    f"noise_resolution must be an int or an (h, w) pair of ints; got {res!r}."
                )
            res = (min(res[0], shape[-2]), min(res[1], shape[-1]))
        if self.max_norm is not None and self.edit != "additive":
            raise ValueError(
                f"max_norm bounds the additive noise; it has no meaning for edit={self.edit!r}."
            )
        if self.edit == "additive" and len(shape) == 1:
            warnings.warn(
                "edit='additive' on feature vectors (encoder=None) adds the same vector to "
                "every sample, which only moves a linear model's intercept: it cannot remove "
                "linearly decodable information about sensitive_features. Use "
                "edit='masked' in feature mode.", UserWarning, stacklevel=4)
        return NoiseSpace(tuple(shape), self.edit, res, self.channel_shared, self._upsampling())

    def _validate_X(self, X: Any, *, reset: bool) -> Any:
        """Validate inputs once, at the edge (see :func:`fairnoise._inputs.validate_inputs`).

        A DataFrame's index is kept until :meth:`_codes` checks the labels against it.
        """
        self._X_index = X.index if isinstance(X, pd.DataFrame) else None
        return validate_inputs(self, X, reset=reset)

    # -- helpers used by the optimisers ----------------------------------------------------------
    def _torch_device(self) -> torch.device:
        return getattr(getattr(self, "_encoder", None), "torch_device", torch.device("cpu"))

    @staticmethod
    def _read(X: Any, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` of ``X`` as float32 (memmaps and lazy arrays are read only here)."""
        return read_rows(X, idx)

    def _iter_chunks(self, X: Any, size: int | None = None) -> Iterator[np.ndarray]:
        """Consecutive row blocks: float32 images (scaled, see ``as_float_images``), or
        the validated feature matrix's own rows."""
        size = size or chunk_rows(self.input_shape_, at_least=self.batch_size)
        for start in range(0, len(X), size):
            key = slice(start, start + size)
            yield X[key] if len(self.input_shape_) == 1 else read_rows(X, key)

    def _compute_fill(self, X: np.ndarray) -> np.ndarray:
        """Mean training input (only the masked edit uses it as its fixed fill)."""
        if self.edit != "masked":
            return np.zeros((1,) * len(self.input_shape_), np.float32)
        total = np.zeros(self.input_shape_, np.float64)
        for chunk in self._iter_chunks(X):
            total += chunk.sum(axis=0, dtype=np.float64)
        return input_mean(total / len(X), self.input_shape_)

    def _encoder_embed(self, Xb: np.ndarray, edit: FittedEdit | None = None,
                       n_features: int | None = None) -> np.ndarray:
        """``φ(edit(Xb))`` of one chunk (``φ(Xb)`` without an edit); ``n_features``, when
        known, is the width the embeddings must have (a subclass may pass it on)."""
        if self._encoder is None:
            return Xb if edit is None else edit.apply(Xb)
        return self._encoder.embed(Xb, edit=edit)

    def _embed(self, X: Any, edit: FittedEdit | None = None,
               n_features: int | None = None, *, fitted: bool = True) -> np.ndarray:
        """φ(edit(X)) chunk by chunk (φ(X) when ``edit`` is None).

        Every chunk must have the width of the first (or ``n_features``, the fitted
        width, or with ``fitted=False`` that of the clean pass of this fit, so a query
        encoder sends every call at once): an encoder whose output width changes is
        refused by name.
        """
        out, width = [], n_features
        for xb in self._iter_chunks(X):
            Z = self._encoder_embed(xb, edit, width)
            if width is not None and Z.shape[1] != width:
                raise self._width_error(Z.shape[1], width,
                                        fitted=fitted and n_features is not None)
            width = Z.shape[1]
            out.append(Z if edit is None else edit.apply_embeddings(Z))
        return np.concatenate(out)

    def _width_error(self, got: int, expected: int, *, fitted: bool) -> ValueError:
        if fitted:
            return ValueError(
                f"the encoder returned embeddings of {got} features, but this "
                f"{type(self).__name__} was fitted for {expected} (n_features_out_): it is "
                "not the encoder the edit was learned for."
            )
        return ValueError(
            f"the encoder {self._encoder!r} returned embeddings of {got} features, but "
            f"{expected} on an earlier call: an encoder must return the same number of "
            "features for every input."
        )

    def __sklearn_clone__(self) -> BaseNoiseTransformer:
        """Clone parameters as scikit-learn does, but share the frozen encoder.

        ``GridSearchCV`` clones once per candidate and split; deep-copying a foundation
        model each time would cost memory and break caching (``Pipeline(memory=...)``
        hashes the step, and copies of a module hash differently). fairnoise never
        modifies the encoder, so sharing it is safe.
        """
        params = self.get_params(deep=False)
        encoder = params.pop("encoder")
        new = type(self)(encoder=encoder,
                         **{k: clone(v, safe=False) for k, v in params.items()})
        if hasattr(self, "_metadata_request"):
            new._metadata_request = copy.deepcopy(self._metadata_request)
        return new

    def export_noise(self, path: Any) -> str:
        """Write the learned edit to a safe ``.npz`` file; see :func:`fairnoise.export_noise`.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        path : str
            The file written (``.npz`` appended if missing).
        """
        from . import __version__

        check_is_fitted(self)
        names = getattr(self, "feature_names_in_", None)
        resolution = self._resolution()  # GeZO's "auto" resolved: the grid that was searched
        return save_edit(path, self.edit_, {
            "fairnoise_version": __version__,
            "estimator": type(self).__name__,
            "n_features_out": int(self.n_features_out_),
            "channel_shared": bool(self.channel_shared),
            "noise_resolution": ([int(r) for r in resolution] if isinstance(resolution, tuple)
                                 else None if resolution is None else int(resolution)),
            "feature_names": None if names is None else [str(n) for n in names],
            "input_scaling": _INPUT_SCALING,
            "params": _json_params(self),
        })

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # a copy: object's is the live __dict__
        state.pop("_adversary", None)  # torch state, rebuilt by partial_fit when needed
        state.pop("_X_index", None)  # only held between validation and the labels' check
        state.pop("_clean_cache", None)  # the guard's clean embeddings and adversary
        state.pop("_standardized_cache", None)  # and its standardised candidate
        state.pop("_path_state", None)  # Adam's state along the λ path of one fit
        if isinstance(state.get("validation_"), pd.DataFrame):  # plain lists: skops-safe
            state["validation_"] = {"columns": state["validation_"].to_dict("list")}
        return state

    def __reduce_ex__(self, protocol: int) -> tuple:
        # pickle and copy call __reduce_ex__; what object's would do, without going through
        # __reduce__ below (object.__reduce_ex__ calls an overridden __reduce__)
        if protocol < 2:
            return copyreg._reduce_ex(self, protocol)
        return copyreg.__newobj__, (type(self),), self.__getstate__(), None, None

    def __reduce__(self) -> tuple:
        """What skops reads: refuse torch state with a message, rather than torch's error.

        skops calls ``__reduce__`` directly (pickle and :mod:`copy` call
        :meth:`__reduce_ex__`), so this is where a transformer holding a torch encoder or
        probe, which skops cannot store, says what to do instead.
        """
        holders = [k for k, v in self.__getstate__().items() if _holds_torch(v)]
        holders = [k for k in holders if not k.startswith("_")] or holders
        if holders:
            raise TypeError(
                f"skops cannot store this {type(self).__name__}: {', '.join(holders)} "
                "holds torch modules or tensors, which skops does not persist. Ship the "
                "learned edit with export_noise(path) (arrays and JSON only; load it with "
                "load_noise(path, encoder=model)) and the model through your model "
                "registry, or pickle the whole transformer if you trust the file."
            )
        return self.__reduce_ex__(2)

    def __setstate__(self, state: dict[str, Any]) -> None:
        table = state.get("validation_")
        if isinstance(table, dict) and set(table) == {"columns"}:
            state = {**state, "validation_": pd.DataFrame(table["columns"])}
        if "noise_param_" in state and "edit_" not in state:  # pickled by fairnoise 0.1
            state = dict(state)
            noise, mask, param = (state.pop(k) for k in ("noise_", "mask_", "noise_param_"))
            shape = tuple(state["input_shape_"])
            state["edit_"] = (
                FittedEdit("additive", shape, param=param, noise=noise) if mask is None
                else FittedEdit("masked", shape, param=param, mask=mask, fill=noise))
        super().__setstate__(state)

    # -- transform ------------------------------------------------------------------------------
    def transform(self, X: Any) -> np.ndarray:
        """Apply the learned edit, then the encoder (``output="embeddings"``).

        Parameters
        ----------
        X : array-like of the same per-sample shape as in ``fit``
            As in ``fit``, or a Dask array: the result is then a Dask array too, computed
            lazily block by block (on a cluster's workers, which receive the edit and the
            encoder once); see the scale guide.

        Returns
        -------
        Xt : ndarray or dask.array.Array
            ``φ(edit(X))`` of shape (n_samples, n_features_out_) for ``output="embeddings"``,
            or ``edit(X)`` with the shape of ``X`` for ``output="images"``.
        """
        check_is_fitted(self)
        if is_dask_array(X):
            return transform_dask(self, X)
        X = validate_inputs(self, X, reset=False)
        self._encoder = self._check_encoder()
        return self._transform_validated(X)

    def _transform_validated(self, X: Any) -> np.ndarray:
        """``transform`` of validated inputs, with the encoder already wrapped."""
        if self.output == "images":
            if getattr(self.edit_, "eraser", None) is not None:
                raise ValueError(
                    "this transformer's edit ends with an embedding eraser (chosen at fit "
                    "with erase='auto'), which output='images' cannot apply: the edited "
                    "images alone would keep what the eraser removes. Use "
                    "output='embeddings', or refit with output='images' or erase=False."
                )
            # written chunk by chunk into one array: peak memory is the output and a chunk
            out, start = None, 0
            for chunk in self._iter_chunks(X):
                edited = self.edit_.apply(chunk)
                if out is None:
                    out = np.empty((len(X), *edited.shape[1:]), edited.dtype)
                out[start : start + len(edited)] = edited
                start += len(edited)
            return out
        return self._embed(X, self.edit_, n_features=self.n_features_out_)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output feature names: the input names in feature mode, else ``<class>0..``."""
        check_is_fitted(self)
        if self.output == "images":
            raise ValueError("output='images' returns images, which have no feature names.")
        if self.encoder is None:
            from sklearn.utils.validation import _check_feature_names_in

            return _check_feature_names_in(self, input_features)
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self.n_features_out_)], dtype=object)

    def __sklearn_tags__(self):  # noqa: ANN204
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.allow_nan = False
        return tags


_INPUT_SCALING = ("uint8 images are divided by 255 and uint16 images by 65535; floats are used "
                  "as given")


def _holds_torch(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` holds a torch module or tensor (in containers or attributes)."""
    if isinstance(value, (torch.Tensor, torch.nn.Module)):
        return True
    if depth >= 6 or isinstance(value, (str, bytes, np.ndarray, numbers.Number, type)):
        return False
    if isinstance(value, dict):
        return any(_holds_torch(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple, set)):
        return any(_holds_torch(v, depth + 1) for v in value)
    attrs = getattr(value, "__dict__", None)
    return isinstance(attrs, dict) and _holds_torch(attrs, depth + 1)


def _json_params(estimator: BaseNoiseTransformer) -> dict[str, Any]:
    """The training parameters that JSON can hold (tuples as lists, a device as its name);
    the encoder and values such as a probe object or a ``RandomState`` are left out."""
    params = {}
    for name, value in estimator.get_params(deep=False).items():
        if isinstance(value, torch.device):
            value = str(value)
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, tuple) and all(isinstance(v, numbers.Integral) for v in value):
            value = [int(v) for v in value]  # noise_resolution
        if name != "encoder" and (value is None or isinstance(value, (str, numbers.Real, list))):
            params[name] = value
    return params
