"""The sensitive-attribute probe ``g`` and its differentiable torch evaluation.

The probe is fitted with scikit-learn on the clean embeddings (standardised first, so one
default works for any encoder's scale), then evaluated in torch on the edited embeddings
so that the noise can be optimised against it. With the class-conditional adversary, one
probe is fitted per class of ``y`` and each sample is judged by the probe of its class.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, clone, is_classifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

# logit given to a group that is absent from a class of y: probability ~0, no gradient
_ABSENT = -30.0


class TorchProbeClassifier(ClassifierMixin, BaseEstimator):
    """A scikit-learn classifier around a user's ``torch.nn.Module`` (embeddings → logits).

    :meth:`fit` trains a private copy of ``module`` (the caller's module is not touched)
    with full-batch Adam on the cross-entropy; ``module_`` is that trained copy.

    Parameters
    ----------
    module : torch.nn.Module
        Maps ``N×E`` float32 embeddings to ``N×K`` logits, ``K`` the number of groups.
    max_epochs : int, default=200
    learning_rate : float, default=1e-2
    random_state : int, default=0
        Seed of the copy's re-initialisation-free training (the order is full batch).
    """

    def __init__(self, module: torch.nn.Module, *, max_epochs: int = 200,
                 learning_rate: float = 1e-2, random_state: int = 0) -> None:
        self.module = module
        self.max_epochs = max_epochs
        self.learning_rate = learning_rate
        self.random_state = random_state

    def __sklearn_clone__(self) -> TorchProbeClassifier:
        # clone must not deep-copy parameters through get_params; the copy happens in fit
        return TorchProbeClassifier(self.module, max_epochs=self.max_epochs,
                                    learning_rate=self.learning_rate,
                                    random_state=self.random_state)

    def fit(self, X: np.ndarray, y: np.ndarray) -> TorchProbeClassifier:
        import copy

        self.classes_, codes = np.unique(y, return_inverse=True)
        module = copy.deepcopy(self.module).float().train()
        for p in module.parameters():
            p.requires_grad_(True)
        Xt = torch.as_tensor(np.asarray(X, np.float32))
        yt = torch.as_tensor(codes, dtype=torch.long)
        with torch.random.fork_rng(devices=[]):  # any dropout draws from a local seed
            torch.manual_seed(self.random_state)
            opt = torch.optim.Adam(module.parameters(), lr=self.learning_rate)
            for _ in range(self.max_epochs):
                opt.zero_grad()
                logits = module(Xt)
                if logits.ndim != 2 or logits.shape[1] < len(self.classes_):
                    raise ValueError(
                        "sa_probe module must map embeddings to (n_samples, n_groups) logits; "
                        f"it returned shape {tuple(logits.shape)} for {len(self.classes_)} groups."
                    )
                torch.nn.functional.cross_entropy(logits, yt).backward()
                opt.step()
        self.module_ = module.eval().requires_grad_(False)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        with torch.no_grad():
            logits = self.module_(torch.as_tensor(np.asarray(X, np.float32)))
        return torch.softmax(logits[:, : len(self.classes_)], 1).numpy()

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(1)]


def check_probe(sa_probe: Any) -> BaseEstimator:
    """The unfitted classifier used as probe: default, a scikit-learn one, or a module."""
    if sa_probe is None:
        return LogisticRegression(max_iter=1000)
    if isinstance(sa_probe, type):
        raise TypeError(
            f"sa_probe must be an estimator instance, not the class {sa_probe.__name__}; "
            f"pass {sa_probe.__name__}() (with its parameters)."
        )
    if isinstance(sa_probe, torch.nn.Module):
        return TorchProbeClassifier(sa_probe)
    if isinstance(sa_probe, TorchProbeClassifier) or (
        hasattr(sa_probe, "fit") and hasattr(sa_probe, "get_params")
    ):
        if not is_classifier(sa_probe):
            raise TypeError(
                f"sa_probe must be a classifier (it predicts the group); "
                f"{type(sa_probe).__name__} is not one. Use e.g. LogisticRegression()."
            )
        return sa_probe
    raise TypeError(
        "sa_probe must be None, a scikit-learn classifier exposing coef_ and intercept_ "
        f"after fit, or a torch.nn.Module; got {type(sa_probe).__name__}."
    )


def fit_probe(probe: BaseEstimator, Z: np.ndarray, a: np.ndarray) -> Pipeline:
    """Fit ``StandardScaler → probe`` on embeddings and group codes."""
    pipe = make_pipeline(StandardScaler(), clone(probe)).fit(Z, a)
    clf = pipe[-1]
    if not isinstance(clf, TorchProbeClassifier) and not (
        hasattr(clf, "coef_") and hasattr(clf, "intercept_")
    ):
        raise TypeError(
            f"sa_probe {type(clf).__name__} has no coef_/intercept_ after fit, so it cannot "
            "be evaluated differentiably; use a linear classifier or a torch.nn.Module."
        )
    return pipe


class TorchProbe:
    """Differentiable logits of one probe per class of ``y`` (or a single probe).

    Parameters
    ----------
    probes : list of fitted Pipeline
        ``probes[j]`` judges the samples whose class code is ``j``; ``None`` for a class
        that holds a single group (nothing to hide there).
    n_groups : int
    device : torch.device
    """

    def __init__(self, probes: list[Pipeline | None], n_groups: int,
                 present: np.ndarray, device: torch.device) -> None:
        self.n_groups = n_groups
        self.modules: list[torch.nn.Module | None] = []
        dims = {p[0].mean_.shape[0] for p in probes if p is not None}
        dim = dims.pop() if dims else 0
        W = np.zeros((len(probes), n_groups, dim), np.float32)
        b = np.full((len(probes), n_groups), _ABSENT, np.float32)
        for j, pipe in enumerate(probes):
            if pipe is None:  # single group in this class: its logit wins, constantly
                b[j, present[j].argmax()] = 0.0
                self.modules.append(None)
                continue
            scaler, clf = pipe[0], pipe[-1]
            cols = np.asarray(clf.classes_, dtype=int)
            if isinstance(clf, TorchProbeClassifier):
                self.modules.append(clf.module_.to(device))
                continue
            self.modules.append(None)
            coef = np.asarray(clf.coef_, np.float64) / scaler.scale_
            icpt = np.asarray(clf.intercept_, np.float64).ravel() - coef @ scaler.mean_
            if coef.shape[0] == 1:  # binary: logits (0, w·z + b)
                W[j, cols[1]] = coef[0]
                b[j, cols] = (0.0, icpt[0])
            else:
                W[j, cols] = coef
                b[j, cols] = icpt
        self.W = torch.as_tensor(W, device=device)
        self.b = torch.as_tensor(b, device=device)
        self.probes = probes
        self.device = device

    def logits(self, z: torch.Tensor, ycode: torch.Tensor) -> torch.Tensor:
        """``N×K`` logits of each sample under the probe of its class."""
        if self.W.shape[-1] == 0:  # every class holds one group: constant logits, in z's graph
            return self.b[ycode].to(z.dtype) + 0.0 * z.sum(dim=1, keepdim=True)
        out = torch.einsum("nkd,nd->nk", self.W[ycode], z) + self.b[ycode]
        for j, module in enumerate(self.modules):
            if module is None:
                continue
            sel = ycode == j
            scaler = self.probes[j][0]
            mean = torch.as_tensor(scaler.mean_, dtype=z.dtype, device=z.device)
            scale = torch.as_tensor(scaler.scale_, dtype=z.dtype, device=z.device)
            k = len(self.probes[j][-1].classes_)
            cols = torch.as_tensor(np.asarray(self.probes[j][-1].classes_, dtype=int),
                                   device=z.device)
            sub = torch.full((z.shape[0], self.n_groups), _ABSENT, dtype=z.dtype,
                             device=z.device)
            sub[:, cols] = module((z - mean) / scale)[:, :k].float()
            out = torch.where(sel[:, None], sub, out)
        return out
