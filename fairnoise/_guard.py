"""Do no harm: judge candidate edits on a held-out part of the training data.

The transformers learn their edit on the training part and keep the candidate that a
*fresh* probe finds least informative about the group, on images the edit never saw, as
long as the task does not pay for it; otherwise they return the identity and say why.

How a candidate is judged (the benchmarks' measures, on the validation part):

* **conditional leakage**: :func:`fairnoise.metrics.leakage_auc` with ``y``: a new
  standardised logistic regression per class of ``y``, trained on the candidate's
  embeddings of the training part, scored on those of the validation part, and folded
  about chance (``0.5 + |AUC - 0.5|``: an inverted probe reads the group too). An embedding
  eraser is fitted on the training part, so a probe trained on its own output would be
  blind by construction; the probe is trained on *cross-fitted* erased embeddings
  instead (each fold erased by an eraser fitted on the other folds).
* **task AUC**: a quick head (standardised logistic regression on ``y``) trained on the
  training part, its ROC AUC on the validation part **weighted by 1 / n(group, class)**.
  The validation part is as confounded as the training data, so unweighted it rewards the
  shortcut and would refuse good edits; the weights estimate the AUC on a population
  where group and class are independent.

The candidates: the identity, the learned edit (at each λ of its path), each learned
mask rounded to its bounds (once per distinct rounded mask), intensity standardisation,
and each of these followed by the embedding eraser (see the transformers' ``erase``,
``standardize`` and ``validation_fraction``).

The rule: among candidates that lower the leakage by at least ``min_leakage_drop`` and
cost at most ``auc_tolerance`` of task AUC, against the identity, keep the one with the
lowest leakage; if there is none, keep the identity and warn. A candidate with the
embedding eraser is kept over the best safe and useful one without it only if its
leakage is lower by :data:`ERASER_MARGIN` as well. The eraser removes the group-mean
directions the training part shows; what is left of the group is faint and spread, and
the verdict's probe, which learns from the confounded training part (whose minority
group × class cells hold a few dozen samples), mostly misses it, where a probe trained on
more samples of every cell reads it. An input edit that takes the shortcut out of the
images leaves nothing to find. In ``benchmarks/compare.py``, with a margin of
``min_leakage_drop`` only, the erased candidates the guard kept over an input edit on the
stand-in's localized shortcuts read 0.96 to 0.98 on the unconfounded test set
(``benchmarks/results/compare_eraser_margin_standin.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ._idle import IdleWork
from ._quiet import SKLEARN_CONVERGENCE, ignoring
from .metrics import leakage_auc

__all__ = ["NoSafeEditWarning", "holdout_split", "balancing_weights", "Judge"]

#: the λ path of ``lambda_reg="auto"`` for each edit, large to small (warm-started)
LAMBDA_PATHS = {"masked": (0.3, 0.1, 0.03), "additive": (0.1, 0.01, 0.001)}
#: epochs of each warm-started λ after the first
PATH_EPOCHS = 3
#: what ``lambda_reg="auto"`` means when nothing is validated (the earlier default)
LAMBDA_UNVALIDATED = 0.1
#: a learned mask's cells at or above this are replaced outright in its rounded candidate,
#: the others kept as they are: each cell goes to its nearer bound
ROUNDING_THRESHOLD = 0.5
#: how much lower its validation leakage must be for a candidate with the embedding
#: eraser to be kept over the best one without it (see the rule above): five times the
#: leakage estimate's noise (``min_leakage_drop``'s default), so that an eraser is kept
#: where no input edit reaches the shortcut, not where it only looks blinder
ERASER_MARGIN = 0.1
#: fewest validation samples, and fewest per (class, group) cell, for a verdict
MIN_VALIDATION, MIN_PER_CELL = 20, 2
#: folds of the cross-fitted embeddings a leakage probe is trained on (embedding erasers)
CROSS_FIT_FOLDS = 3
#: threads fitting a candidate's erasers (the full one and one per fold) where a fit runs
#: concurrent work (GeZO with n_jobs): the verdict's tail after the last call, halved
ERASER_THREADS = 2
#: leakage_auc's notice of a class of y it leaves out (a judge expects it on thin cells)
THIN_CLASS = (UserWarning, r"Class y=.* is skipped in the conditional leakage", "")


class NoSafeEditWarning(UserWarning):
    """No candidate edit lowered the group information without costing task accuracy.

    The transformer then returns the identity edit (its output is the encoder's own
    embeddings); ``validation_`` on the fitted transformer holds the figures.
    """


def holdout_split(a: np.ndarray, ycode: np.ndarray, fraction: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Split indices into (train, validation), stratified by (class, group) cell.

    Every cell gives ``round(fraction × size)`` samples to validation, and keeps at least
    one for training. Returns ``None`` when the validation part would be too small for a
    verdict: fewer than ``MIN_VALIDATION`` samples, or a class with two or more groups of
    which fewer than two have ``MIN_PER_CELL`` validation samples.

    Examples
    --------
    >>> a = np.array([0, 1] * 50); y = np.repeat([0, 1], 50)
    >>> tr, va = holdout_split(a, y, 0.2, seed=0)
    >>> len(tr), len(va), np.bincount(2 * y[va] + a[va]).tolist()
    (80, 20, [5, 5, 5, 5])
    """
    rng = np.random.default_rng(seed)
    n_groups = int(a.max()) + 1
    cell = ycode * n_groups + a
    train, val = [], []
    usable = {}
    for c in np.unique(cell):
        members = rng.permutation(np.flatnonzero(cell == c))
        n_val = min(int(round(fraction * members.size)), members.size - 1)
        val.append(members[:n_val])
        train.append(members[n_val:])
        usable[c] = n_val >= MIN_PER_CELL
    val_idx = np.sort(np.concatenate(val))
    if val_idx.size < MIN_VALIDATION:
        return None
    for k in np.unique(ycode):
        cells = [c for c in usable if c // n_groups == k]
        if len(cells) >= 2 and sum(usable[c] for c in cells) < 2:
            return None
    return np.sort(np.concatenate(train)), val_idx


def balancing_weights(a: np.ndarray, ycode: np.ndarray) -> np.ndarray:
    """Weights ``1 / n(group, class)``, scaled to mean one: group and class independent.

    >>> balancing_weights(np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0]))
    array([0.66666667, 0.66666667, 0.66666667, 2.        ])
    """
    cell = ycode * (int(a.max()) + 1) + a
    counts = np.bincount(cell)
    w = 1.0 / counts[cell]
    return w * (len(w) / w.sum())


def _task_auc(Z_tr, y_tr, Z_va, y_va, weights, seed) -> float:
    """Balanced ROC AUC of a quick head on ``y`` (one-vs-rest, macro, for more classes)."""
    head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=seed))
    with ignoring(SKLEARN_CONVERGENCE):
        head.fit(Z_tr, y_tr)
    scores = head.predict_proba(Z_va)
    present = np.unique(y_va)
    if present.size < 2:
        return float("nan")
    if scores.shape[1] == 2:
        return float(roc_auc_score(y_va, scores[:, 1], sample_weight=weights))
    aucs = [roc_auc_score(y_va == c, scores[:, j], sample_weight=weights)
            for j, c in enumerate(head.classes_) if c in present]
    return float(np.mean(aucs))


@dataclass
class Judge:
    """Scores candidate embeddings on the validation part and keeps the verdicts.

    Parameters
    ----------
    tr, va : ndarray of int
        Indices of the training and validation parts.
    a, ycode : ndarray of int
        Group and class codes of every sample.
    seed : int
    fit_eraser : callable or None
        ``fit_eraser(Z, a, ycode) -> eraser`` with ``eraser.apply(Z)``; ``None``: no
        erased candidates.
    """

    tr: np.ndarray
    va: np.ndarray
    a: np.ndarray
    ycode: np.ndarray
    seed: int
    fit_eraser: Callable[[np.ndarray, np.ndarray, np.ndarray], Any] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.weights = balancing_weights(self.a[self.va], self.ycode[self.va])

    def _score(self, Z_probe_tr: np.ndarray, Z_head_tr: np.ndarray,
               Z_va: np.ndarray) -> Generator[None, None, tuple[float, float]]:
        a, y, tr, va = self.a, self.ycode, self.tr, self.va
        with ignoring(THIN_CLASS):  # a class too thin for the probe is left out
            leak = leakage_auc(Z_probe_tr, a[tr], y=y[tr], Z_test=Z_va,
                               sensitive_features_test=a[va], y_test=y[va],
                               random_state=self.seed)
        yield
        auc = _task_auc(Z_head_tr, y[tr], Z_va, y[va], self.weights, self.seed)
        # folded about chance: an AUC of 0.3 reads the group as well as 0.7 does (a
        # cross-fitted eraser can over-correct the fold it did not see, and invert it)
        return 0.5 + abs(float(leak) - 0.5), auc

    def _folds(self) -> np.ndarray:
        """The cross-fitting fold of each training-part sample (stratified by cell)."""
        a, y = self.a[self.tr], self.ycode[self.tr]
        rng = np.random.default_rng(self.seed)
        fold = np.empty(len(a), int)
        cell = y * (int(self.a.max()) + 1) + a
        for c in np.unique(cell):
            members = rng.permutation(np.flatnonzero(cell == c))
            fold[members] = np.arange(members.size) % CROSS_FIT_FOLDS
        return fold

    def _fold_erased(self, Z_tr: np.ndarray, fold: np.ndarray, f: int) -> np.ndarray:
        """Fold ``f`` of the training part erased by an eraser fitted on the other folds."""
        a, y, rest = self.a[self.tr], self.ycode[self.tr], fold != f
        return self.fit_eraser(Z_tr[rest], a[rest], y[rest]).apply(Z_tr[~rest])

    def _erasers(self, Z_tr: np.ndarray) -> Generator[None, None, tuple[Any, np.ndarray]]:
        """The eraser of the training part and the cross-fitted erased embeddings."""
        eraser = self.fit_eraser(Z_tr, self.a[self.tr], self.ycode[self.tr])
        yield
        fold, crossed = self._folds(), np.empty_like(Z_tr)
        for f in range(CROSS_FIT_FOLDS):
            crossed[fold == f] = self._fold_erased(Z_tr, fold, f)
            yield
        return eraser, crossed

    def start_erasers(self, Z: np.ndarray, pool: Executor) -> Callable[[], tuple[Any, np.ndarray]]:
        """Fit the erasers of the candidate ``Z`` on ``pool``'s threads, now (NumPy work
        that touches no process-wide state, such as warnings filters); returns what
        :meth:`evaluate` takes as ``erasers``: a wait for the same values as its own."""
        Z_tr = Z[self.tr]
        fold = self._folds()
        eraser = pool.submit(self.fit_eraser, Z_tr, self.a[self.tr], self.ycode[self.tr])
        parts = [pool.submit(self._fold_erased, Z_tr, fold, f) for f in range(CROSS_FIT_FOLDS)]

        def result() -> tuple[Any, np.ndarray]:
            crossed = np.empty_like(Z_tr)
            for f, part in enumerate(parts):
                crossed[fold == f] = part.result()
            return eraser.result(), crossed

        return result

    def evaluate(self, name: str, Z: np.ndarray, *, erase: bool = False,
                 erasers: Callable[[], tuple[Any, np.ndarray]] | None = None,
                 **info: Any) -> Generator[None, None, tuple[dict[str, Any], Any]]:
        """The verdict on the candidate whose embeddings of every sample are ``Z``, in
        steps: a generator that yields between its probe and eraser fits and returns
        ``(row, eraser)`` (see :mod:`fairnoise._idle`). :meth:`add` runs it at once.
        ``erasers``: those :meth:`start_erasers` fits elsewhere (else fitted here)."""
        Z_tr, Z_va = Z[self.tr], Z[self.va]
        eraser = None
        if erase:
            eraser, crossed = (erasers() if erasers is not None
                               else (yield from self._erasers(Z_tr)))
            leak, auc = yield from self._score(crossed, eraser.apply(Z_tr),
                                               eraser.apply(Z_va))
        else:
            leak, auc = yield from self._score(Z_tr, Z_tr, Z_va)
        return ({"candidate": name, **info, "erase": erase, "cond_leakage": leak,
                 "task_auc": auc}, eraser)

    def add(self, name: str, Z: np.ndarray, *, erase: bool = False, **info: Any) -> Any:
        """Judge the candidate whose embeddings of every sample are ``Z``, at once.

        With ``erase``, the candidate is ``Z`` followed by an embedding eraser fitted on
        the training part; that eraser is returned (else ``None``).
        """
        row, eraser = IdleWork().defer(self.evaluate, name, Z, erase=erase, **info).result()
        self.rows.append(row)
        return eraser

    def choose(self, auc_tolerance: float, min_leakage_drop: float) -> int:
        """Index of the chosen row (0, the identity, when no candidate is safe and useful).

        The safe and useful candidate with the lowest leakage, except that one with the
        embedding eraser must also beat the best one without it by
        :data:`ERASER_MARGIN` (the eraser looks blinder on the validation part than it
        is: see the module docstring).
        """
        base = self.rows[0]
        best = {False: (0, np.inf), True: (0, np.inf)}  # per erase: (row, leakage)
        for i, row in enumerate(self.rows[1:], start=1):
            leak = row["cond_leakage"]
            lowers = leak <= base["cond_leakage"] - min_leakage_drop
            affordable = not (row["task_auc"] < base["task_auc"] - auc_tolerance)
            if lowers and affordable and leak < best[bool(row["erase"])][1]:
                best[bool(row["erase"])] = (i, leak)
        (plain, plain_leak), (erased, erased_leak) = best[False], best[True]
        if erased and (not plain or erased_leak <= plain_leak - ERASER_MARGIN):
            return erased
        return plain

    def table(self, chosen: int) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows)
        frame["selected"] = np.arange(len(frame)) == chosen
        return frame


def refusal_message(cls: str, table: pd.DataFrame, auc_tolerance: float,
                    min_leakage_drop: float) -> str:
    """The warning when the identity is kept, in plain words."""
    base = table.iloc[0]
    others = table.iloc[1:]
    best = others.loc[others["cond_leakage"].idxmin()] if len(others) else None
    detail = ""
    if best is not None:
        detail = (f" The best candidate ({best['candidate']}"
                  f"{' + embedding eraser' if best['erase'] else ''}) reached conditional "
                  f"leakage {best['cond_leakage']:.3f} against the unedited "
                  f"{base['cond_leakage']:.3f}, at task AUC {best['task_auc']:.3f} against "
                  f"{base['task_auc']:.3f}.")
    return (
        f"{cls} kept the identity edit: on the validation part no candidate lowered the "
        f"group information a fresh probe reads (conditional leakage AUC) by at least "
        f"min_leakage_drop={min_leakage_drop:g} without costing more than "
        f"auc_tolerance={auc_tolerance:g} of task AUC.{detail} transform returns the "
        "encoder's own embeddings; the figures are in validation_. If the embeddings carry "
        "no shortcut this is the right answer; otherwise try more training data, another "
        "edit or objective."
    )
