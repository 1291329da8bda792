"""Sensitive-attribute leakage: how well a freshly trained probe recovers the group.

The probe is fitted here, on a stratified split of its own (or on the given training
embeddings), never taken from the edit it judges.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_array, check_random_state

from .._groups import check_groups, plain
from .._quiet import SKLEARN_CONVERGENCE, ignoring
from ._ranking import binary_auc
from ._validation import RandomState, check_1d


def _stratified_split(strata: np.ndarray, test_size: float, rng) -> tuple[np.ndarray, ...]:
    """Split every stratum of at least two samples into train and test parts."""
    train, test, dropped = [], [], 0
    for stratum in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == stratum))
        if members.size < 2:
            dropped += members.size
            continue
        n_test = min(max(int(round(test_size * members.size)), 1), members.size - 1)
        test.append(members[:n_test])
        train.append(members[n_test:])
    if dropped:
        warnings.warn(
            f"{dropped} sample(s) left out of the leakage probe: their group (within its "
            "class of y) has a single sample and cannot be split into train and test.",
            UserWarning,
            stacklevel=3,
        )
    if not train:
        return np.array([], dtype=np.intp), np.array([], dtype=np.intp)
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _make_probe(probe, seed: int):
    if isinstance(probe, str):
        if probe == "linear":
            return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        if probe == "mlp":
            mlp = MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, random_state=seed)
            return make_pipeline(StandardScaler(), mlp)
        raise ValueError(f"probe must be 'linear', 'mlp' or a classifier; got {probe!r}.")
    if not hasattr(probe, "fit"):
        raise TypeError(
            f"probe must be 'linear', 'mlp' or a scikit-learn classifier; got {probe!r}."
        )
    return clone(probe)


def _probe_auc(probe, seed, Z_train, a_train, Z_test, a_test) -> float:
    """Fit a fresh probe on the train part; macro one-vs-rest AUC on the test part."""
    estimator = _make_probe(probe, seed)
    # The built-in probes have a fixed training budget; hitting it is expected.
    expected = (SKLEARN_CONVERGENCE,) if isinstance(probe, str) else ()
    with ignoring(*expected):
        estimator.fit(Z_train, a_train)
    classes = estimator.classes_
    if hasattr(estimator, "predict_proba"):
        scores = estimator.predict_proba(Z_test)
    else:
        scores = estimator.decision_function(Z_test)
    if scores.ndim == 1 or classes.size == 2:
        positive = scores if scores.ndim == 1 else scores[:, 1]
        return binary_auc((a_test == classes[1]).astype(int), positive)
    aucs = [binary_auc((a_test == c).astype(int), scores[:, j]) for j, c in enumerate(classes)]
    return float(np.nanmean(aucs))


def leakage_auc(
    Z: ArrayLike,
    sensitive_features: ArrayLike,
    *,
    y: ArrayLike | None = None,
    probe: str | Any = "linear",
    test_size: float = 0.5,
    Z_test: ArrayLike | None = None,
    sensitive_features_test: ArrayLike | None = None,
    y_test: ArrayLike | None = None,
    random_state: RandomState = 0,
) -> float:
    r"""How well a freshly trained probe recovers the sensitive attribute from embeddings.

    A new probe (never one an edit was optimised against) is fitted on training
    embeddings and its ROC AUC for the group is measured on held-out embeddings: binary
    AUC for two groups, macro-averaged one-vs-rest AUC for more. 0.5 means the groups
    cannot be told apart (values slightly below 0.5 are chance), 1.0 means they are
    perfectly decodable.

    Without ``y`` this is the *marginal* leakage :math:`A \mid Z`. When A and Y are
    correlated it cannot reach 0.5 even for shortcut-free embeddings, because the
    disease itself predicts the group. With ``y`` it is the *conditional* leakage
    :math:`A \mid Z, Y`: one probe is fitted and scored within each class of ``y`` and
    the class AUCs are averaged, weighted by the number of held-out samples of the
    class. Shortcut-free embeddings drive this to about 0.5, so it is the number to
    compare against the oracle.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_features)
        Embeddings (or any features) the probe is trained on.
    sensitive_features : array-like of shape (n_samples,) or (n_samples, n_features)
        Group label per sample; several columns form intersectional groups.
    y : array-like of shape (n_samples,), default=None
        Task labels. When given, the leakage is conditional on ``y``.
    probe : {"linear", "mlp"} or classifier, default="linear"
        ``"linear"``: standardisation + logistic regression. ``"mlp"``:
        standardisation + a one-hidden-layer (64 units)
        :class:`~sklearn.neural_network.MLPClassifier` trained for at most 500 epochs.
        A classifier is cloned and fitted afresh; it needs ``predict_proba`` or
        ``decision_function``.
    test_size : float, default=0.5
        Fraction of every group (within every class of ``y``) held out for scoring.
        Ignored when ``Z_test`` is given.
    Z_test : array-like of shape (n_test, n_features), default=None
        Held-out embeddings. When given, the probe is trained on all of ``Z`` and
        scored on ``Z_test`` (no split): the honest protocol when ``Z`` are the
        training embeddings of an edit and ``Z_test`` embeddings of unseen images.
    sensitive_features_test : array-like of shape (n_test,) or (n_test, n_features), \
            default=None
        Groups of ``Z_test``; required with ``Z_test``.
    y_test : array-like of shape (n_test,), default=None
        Task labels of ``Z_test``; required with ``Z_test`` when ``y`` is given.
    random_state : int, RandomState instance or None, default=0
        Seeds the split and the MLP probe; the result is deterministic for an int.

    Returns
    -------
    float
        Leakage AUC.

    Raises
    ------
    ValueError
        If inputs are inconsistent, or, for the conditional leakage, if no class of
        ``y`` holds two groups with enough samples to train and score a probe.

    Notes
    -----
    A (class, group) cell with a single sample cannot be split and is left out with a
    warning; a class of ``y`` in which fewer than two groups remain is skipped with a
    warning.

    Examples
    --------
    >>> import numpy as np
    >>> from fairnoise.metrics import leakage_auc
    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 2, size=400)
    >>> Z = rng.normal(size=(400, 5))
    >>> round(leakage_auc(Z, a), 1)
    0.5
    >>> Z[:, 0] += 3 * a  # now the first feature encodes the group
    >>> round(leakage_auc(Z, a), 1)
    1.0
    """
    Z = check_array(Z, dtype=np.float64, input_name="Z")
    groups = check_groups(sensitive_features, Z.shape[0], against="Z")
    if y is not None:
        y = check_1d(y, "y", Z.shape[0], against="Z")
    if not (isinstance(test_size, numbers.Real) and 0 < test_size < 1):
        raise ValueError(f"test_size must be a float in (0, 1); got {test_size!r}.")
    rng = check_random_state(random_state)

    if Z_test is None:
        if sensitive_features_test is not None or y_test is not None:
            raise ValueError(
                "sensitive_features_test and y_test are only used together with Z_test."
            )
        strata = groups.codes
        if y is not None:
            strata = pd.factorize(y)[0] * groups.n_groups + groups.codes
        train, test = _stratified_split(strata, test_size, rng)
        Z_train, a_train, Z_te, a_te = Z[train], groups.codes[train], Z[test], groups.codes[test]
        if y is not None:
            y_train, y_te = y[train], y[test]
    else:
        Z_te = check_array(Z_test, dtype=np.float64, input_name="Z_test")
        if Z_te.shape[1] != Z.shape[1]:
            raise ValueError(f"Z_test has {Z_te.shape[1]} features but Z has {Z.shape[1]}.")
        if sensitive_features_test is None:
            raise ValueError("sensitive_features_test is required when Z_test is given.")
        if (y is None) != (y_test is None):
            raise ValueError("Pass y and y_test together (conditional leakage) or neither.")
        test_groups = check_groups(
            sensitive_features_test,
            Z_te.shape[0],
            name="sensitive_features_test",
            against="Z_test",
            min_groups=2 if y is None else 1,
        )
        a_te = groups.labels.get_indexer(test_groups.labels)[test_groups.codes]
        if (a_te < 0).any():
            unseen = sorted(map(plain, set(test_groups.labels) - set(groups.labels)), key=str)
            raise ValueError(
                f"sensitive_features_test contains groups not present in "
                f"sensitive_features: {unseen}."
            )
        Z_train, a_train = Z, groups.codes
        y_train = y
        if y is not None:
            y_te = check_1d(y_test, "y_test", Z_te.shape[0], against="Z_test")
    if np.unique(a_train).size < 2:
        raise ValueError(
            "Leakage needs at least two groups with two or more samples each; got "
            f"{np.bincount(groups.codes).tolist()} samples per group."
        )
    seed = int(rng.randint(np.iinfo(np.int32).max))

    if y is None:
        return _probe_auc(probe, seed, Z_train, a_train, Z_te, a_te)

    aucs, weights = [], []
    for c in pd.unique(y_train):
        c = plain(c)
        tr, te = y_train == c, y_te == c
        shared = np.intersect1d(a_train[tr], a_te[te])
        tr &= np.isin(a_train, shared)
        te &= np.isin(a_te, shared)
        if shared.size < 2:
            warnings.warn(
                f"Class y={c!r} is skipped in the conditional leakage: it has fewer than "
                "two groups with samples on both the train and the test side.",
                UserWarning,
                stacklevel=2,
            )
            continue
        aucs.append(_probe_auc(probe, seed, Z_train[tr], a_train[tr], Z_te[te], a_te[te]))
        weights.append(te.sum())
    if not aucs:
        raise ValueError(
            "Conditional leakage is undefined: no class of y has two or more groups with "
            "samples to train and score a probe."
        )
    return float(np.average(aucs, weights=weights))

