"""Scorers for model selection: group metrics that receive ``sensitive_features`` by routing.

scikit-learn hands metadata to a scorer only through metadata routing; with routing off
(or the groups not passed to ``fit``) the scorer gets no groups. It then raises
:class:`SensitiveFeaturesNotRoutedError`, which scikit-learn's search and
cross-validation let through whatever ``error_score`` is, instead of recording NaN
scores and still choosing a model.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import numpy as np
from sklearn import config_context, get_config
from sklearn.metrics import make_scorer

from .._groups import check_groups, plain
from ._ranking import auc_gap, binary_auc, worst_group_auc
from ._rates import equal_opportunity_difference, equalized_odds_difference
from ._validation import (
    check_1d,
    check_binary,
    check_sample_weight,
    check_scores,
    check_threshold,
)

_RESPONSE_METHODS = ("predict_proba", "decision_function", "predict")


class SensitiveFeaturesNotRoutedError(BaseException):
    """A fairness scorer was called without ``sensitive_features``.

    scikit-learn's ``GridSearchCV``, ``cross_validate`` and friends catch every
    :class:`Exception` a scorer raises and, unless ``error_score="raise"``, record the
    score as ``error_score`` (NaN by default) with a "Scoring failed" warning, and still
    choose ``best_params_``. A tuned model must not be chosen without its fairness
    score, so this error derives from :class:`BaseException` (as ``SystemExit`` and
    ``KeyboardInterrupt`` do) and stops the search at the first fold; its message says
    how to route the groups. Catch it by name where needed.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from fairnoise.metrics import SensitiveFeaturesNotRoutedError, equalized_odds_scorer
    >>> X, y = np.arange(8.0).reshape(-1, 1), np.array([0, 0, 0, 1, 0, 1, 1, 1])
    >>> clf = LogisticRegression().fit(X, y)
    >>> try:
    ...     equalized_odds_scorer(clf, X, y)
    ... except SensitiveFeaturesNotRoutedError as error:
    ...     print(str(error).split(":")[0])
    sensitive_features did not reach the scorer equalized_odds_difference
    """


def _not_routed(scorer_name: str) -> SensitiveFeaturesNotRoutedError:
    if get_config()["enable_metadata_routing"]:
        why = (
            "metadata routing is on, but the groups did not come. Pass them to fit: "
            "GridSearchCV(...).fit(X, y, sensitive_features=a), or cross_validate(..., "
            "params={'sensitive_features': a}); and keep the scorer's request for them "
            "(set_score_request replaces the whole request, so weights are requested with "
            "set_score_request(sensitive_features=True, sample_weight=True))"
        )
    else:
        why = (
            "scikit-learn passes it to scorers only through metadata routing, which is off. "
            "Enable it with sklearn.set_config(enable_metadata_routing=True) and pass the "
            "groups to fit: GridSearchCV(...).fit(X, y, sensitive_features=a), or "
            "cross_validate(..., params={'sensitive_features': a})"
        )
    return SensitiveFeaturesNotRoutedError(
        f"sensitive_features did not reach the scorer {scorer_name}: {why}. Called "
        "directly, a scorer takes them as scorer(estimator, X, y, sensitive_features=a)."
    )


def _positive(y_true, pos_label, scorer_name: str) -> tuple[np.ndarray, object]:
    """``y_true`` as 0/1 (1: the positive class), and the positive class's label.

    Without ``pos_label``: 0/1 labels are kept, and of two other labels the larger is the
    positive one, as scikit-learn's classifiers order ``classes_`` and as its scorers take
    the response of ``classes_[-1]``.
    """
    y = check_1d(y_true, "y_true")
    if pos_label is not None:
        return (y == pos_label).astype(np.int64), pos_label
    if y.dtype.kind in "biuf" and np.isin(y, (0, 1)).all():
        return y, 1
    labels = np.unique(y)
    if labels.size == 2:
        return (y == labels[1]).astype(np.int64), labels[1]
    shown = ", ".join(repr(plain(v)) for v in labels[:5]) + (", ..." if labels.size > 5 else "")
    raise ValueError(
        f"y_true holds the labels {shown}, so {scorer_name} cannot tell which is the "
        "positive class (0/1 labels need nothing, and of two others the larger is taken). "
        "Name it: make_fairness_scorer(..., pos_label=...) or "
        "make_utility_fairness_scorer(..., pos_label=...), as the estimator's classes_ "
        "spell it."
    )


class _MetricOnResponse:
    """Score function: threshold the estimator's response, then apply a group metric."""

    def __init__(self, metric: Callable, labels: bool = False):
        self.metric = metric
        self.labels = labels  # the response is predicted labels ("predict")
        self.__name__ = getattr(metric, "__name__", type(metric).__name__)

    def __call__(self, y_true, y_score, *, sensitive_features=None, threshold=None,
                 sample_weight=None, pos_label=None):
        if sensitive_features is None:
            raise _not_routed(self.__name__)
        y_true, positive = _positive(y_true, pos_label, self.__name__)
        if self.labels:
            y_score = (check_1d(y_score, "y_pred") == positive).astype(np.int64)
        elif threshold is not None:
            y_score = (np.asarray(y_score) >= threshold).astype(np.int64)
        weight = {} if sample_weight is None else {"sample_weight": sample_weight}
        return self.metric(y_true, y_score, sensitive_features=sensitive_features, **weight)


class _UtilityMinusUnfairness:
    """Score function: ROC AUC of the scores minus ``alpha`` x a thresholded metric."""

    def __init__(self, metric: Callable):
        self.metric = metric
        self.__name__ = f"roc_auc_minus_alpha_{getattr(metric, '__name__', 'metric')}"

    def __call__(self, y_true, y_score, *, sensitive_features=None, alpha, threshold,
                 sample_weight=None, pos_label=None):
        if sensitive_features is None:
            raise _not_routed(self.__name__)
        y_true = check_binary(_positive(y_true, pos_label, self.__name__)[0], "y_true")
        y_score = check_scores(y_score, "y_score", y_true.shape[0])
        groups = check_groups(sensitive_features, y_true.shape[0], against="y_true")
        weights = check_sample_weight(sample_weight, groups)
        y_pred = (y_score >= threshold).astype(np.int64)
        weight = {} if sample_weight is None else {"sample_weight": sample_weight}
        unfairness = self.metric(y_true, y_pred, sensitive_features=sensitive_features, **weight)
        return binary_auc(y_true, y_score, weights) - alpha * unfairness


def _request_sensitive_features(scorer):
    # set_score_request is only callable with routing on; the request it stores persists.
    with config_context(enable_metadata_routing=True):
        return scorer.set_score_request(sensitive_features=True)


def _check_response_method(response_method: str) -> None:
    if response_method not in _RESPONSE_METHODS:
        raise ValueError(
            f"response_method must be one of {_RESPONSE_METHODS}; got {response_method!r}."
        )


def make_fairness_scorer(
    metric: Callable,
    *,
    greater_is_better: bool = False,
    response_method: str = "predict_proba",
    threshold: float | None = 0.5,
    pos_label: object = None,
):
    """Make a scikit-learn scorer from a group metric, requesting ``sensitive_features``.

    The scorer asks for ``sensitive_features`` through metadata routing, so with
    ``sklearn.set_config(enable_metadata_routing=True)`` it works in
    :class:`~sklearn.model_selection.GridSearchCV`, ``cross_validate`` and friends:
    ``search.fit(X, y, sensitive_features=a)`` routes each fold's groups to it. Without
    them it raises :class:`SensitiveFeaturesNotRoutedError`, which stops a search
    whatever its ``error_score``. ``sample_weight`` reaches the metric when the scorer
    requests it too: ``scorer.set_score_request(sensitive_features=True,
    sample_weight=True)`` on a scorer of your own (the call replaces the whole request,
    and the ready-made scorers are shared).

    Parameters
    ----------
    metric : callable
        ``metric(y_true, y_pred_or_score, *, sensitive_features) -> float``, e.g. any
        metric of this module; it must also take ``sample_weight=`` if weights are
        routed to the scorer.
    greater_is_better : bool, default=False
        Whether higher metric values are better. When False (gaps) the scorer returns
        the negated metric, as scikit-learn's ``neg_*`` scorers do.
    response_method : {"predict_proba", "decision_function", "predict"}, \
            default="predict_proba"
        Estimator method whose output is scored; for binary ``predict_proba`` the
        positive-class column.
    threshold : float or None, default=0.5
        Predictions are ``response >= threshold`` before ``metric`` sees them; needed for
        rate metrics on probabilities (use 0.0 with ``"decision_function"``). None passes
        the response unchanged: for score metrics such as :func:`auc_gap`, and required
        with ``response_method="predict"``.
    pos_label : label, default=None
        The positive class, as the estimator's ``classes_`` spell it (``"malignant"``):
        its response is scored and the metric sees ``y == pos_label`` as 1. None: 0/1
        labels as they are, and of two other labels the larger one (``classes_[-1]``,
        scikit-learn's default), so string labels work without it when every fold holds
        both classes.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y, sensitive_features=...)``.

    Examples
    --------
    >>> import numpy as np
    >>> import sklearn
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import cross_validate
    >>> from fairnoise.metrics import equal_opportunity_difference, make_fairness_scorer
    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 2, size=200)
    >>> X = rng.normal(size=(200, 3)) + a[:, None]
    >>> y = (X[:, 0] + rng.normal(size=200) > 0.5).astype(int)
    >>> scorer = make_fairness_scorer(equal_opportunity_difference)
    >>> with sklearn.config_context(enable_metadata_routing=True):
    ...     cv = cross_validate(LogisticRegression(), X, y, scoring=scorer, cv=3,
    ...                         params={"sensitive_features": a})
    >>> bool((cv["test_score"] <= 0).all())
    True
    """
    if not callable(metric):
        raise TypeError(f"metric must be callable; got {metric!r}.")
    _check_response_method(response_method)
    check_threshold(threshold, allow_none=True)
    if response_method == "predict" and threshold is not None:
        raise ValueError(
            "threshold must be None with response_method='predict': predictions are already labels."
        )
    kwargs = {} if threshold is None else {"threshold": threshold}
    if pos_label is not None:  # scikit-learn then scores the response of this class
        kwargs["pos_label"] = pos_label
    scorer = make_scorer(
        _MetricOnResponse(metric, labels=response_method == "predict"),
        response_method=response_method,
        greater_is_better=greater_is_better,
        **kwargs,
    )
    return _request_sensitive_features(scorer)


def make_utility_fairness_scorer(
    alpha: float = 1.0,
    *,
    metric: Callable = equalized_odds_difference,
    response_method: str = "predict_proba",
    threshold: float = 0.5,
    pos_label: object = None,
):
    """Make a scorer of ``ROC AUC - alpha * metric`` for model selection (refit).

    Greater is better. It trades task performance against a fairness gap in one
    number, for ``GridSearchCV(..., refit="utility")``.

    Parameters
    ----------
    alpha : float, default=1.0
        Weight of the fairness gap; 0 gives plain ROC AUC.
    metric : callable, default=equalized_odds_difference
        Rate metric (lower is better) evaluated on ``response >= threshold``.
    response_method : {"predict_proba", "decision_function"}, default="predict_proba"
        Estimator method giving continuous scores.
    threshold : float, default=0.5
        Decision threshold for the fairness term.
    pos_label : label, default=None
        The positive class, as in :func:`make_fairness_scorer`.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y, sensitive_features=...)``.

    Examples
    --------
    >>> from fairnoise.metrics import make_utility_fairness_scorer
    >>> make_utility_fairness_scorer(alpha=0.5)
    make_scorer(roc_auc_minus_alpha_equalized_odds_difference, \
response_method='predict_proba', alpha=0.5, threshold=0.5)
    """
    if not (isinstance(alpha, numbers.Real) and alpha >= 0):
        raise ValueError(f"alpha must be a non-negative number; got {alpha!r}.")
    if not callable(metric):
        raise TypeError(f"metric must be callable; got {metric!r}.")
    if response_method not in ("predict_proba", "decision_function"):
        raise ValueError(
            "response_method must be 'predict_proba' or 'decision_function' (AUC needs "
            f"scores); got {response_method!r}."
        )
    check_threshold(threshold, allow_none=False)
    scorer = make_scorer(
        _UtilityMinusUnfairness(metric),
        response_method=response_method,
        alpha=alpha,
        threshold=threshold,
        **({} if pos_label is None else {"pos_label": pos_label}),
    )
    return _request_sensitive_features(scorer)


equalized_odds_scorer = make_fairness_scorer(equalized_odds_difference)
"""Negated :func:`equalized_odds_difference` of ``predict_proba >= 0.5``."""

equal_opportunity_scorer = make_fairness_scorer(equal_opportunity_difference)
"""Negated :func:`equal_opportunity_difference` of ``predict_proba >= 0.5``."""

worst_group_auc_scorer = make_fairness_scorer(
    worst_group_auc, greater_is_better=True, threshold=None
)
""":func:`worst_group_auc` of ``predict_proba`` (greater is better)."""

auc_gap_scorer = make_fairness_scorer(auc_gap, threshold=None)
"""Negated :func:`auc_gap` of ``predict_proba``."""
