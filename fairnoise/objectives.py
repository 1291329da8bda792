"""Adversarial objectives: how much the edited embeddings still reveal about the group.

Each objective scores a batch of edited embeddings ``z = φ(edit(x))`` with group codes
``a`` and class codes ``c`` (the class of ``y`` for the class-conditional adversary, else
all zero). ``π(k | c)`` is the share of group ``k`` within class ``c`` in the training set.

``"neg_ce"`` (the paper's)
    ``−CE(g(z), a)`` for the fixed probe ``g``. Unbounded below: it rewards flipping the
    probe to confidently wrong answers, which leaves the attribute just as decodable by a
    re-trained probe.
``"confusion"``
    ``KL(π(· | c) ‖ softmax g(z))``. Bounded below by 0, reached when the probe's output
    equals the base rate, i.e. it knows nothing about the group beyond ``c``.
``"mean_gap"``
    ``Σ_c Σ_k p(c, k) ‖μ_ck − μ_c‖² / E``, relative to its value on the clean training
    embeddings: the mean squared difference between the mean standardised embedding of
    each group and that of its class (``E`` embedding dimensions), estimated without the
    bias of the batch's sampling noise. It needs no probe, so it cannot be gamed by
    fooling one; the mean differences are what a re-trained linear probe reads first.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from .probe import TorchProbe

OBJECTIVES = ("neg_ce", "confusion", "mean_gap")

#: The sampling-noise correction of ``"mean_gap"`` uses at most this multiple of the clean
#: embeddings' within-cell variance: loose enough that a batch's natural fluctuation
#: (about ±25 % with 30 samples per cell) is corrected, tight enough that inflating the
#: spread buys next to nothing.
VAR_CAP_FACTOR = 2.0


def neg_ce(logits: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Negative cross-entropy of the probe on the true groups (mean over the batch)."""
    return -F.cross_entropy(logits, a)


def confusion(logits: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """``KL(π ‖ p)`` between per-sample targets ``π`` and the probe's ``p`` (batch mean)."""
    log_p = F.log_softmax(logits, dim=1)
    log_prior = torch.log(prior.clamp_min(1e-12))
    return (prior * (log_prior - log_p)).sum(dim=1).mean()


def mean_gap(z: torch.Tensor, cell: torch.Tensor, n_groups: int, n_classes: int,
             var_cap: torch.Tensor | None = None) -> torch.Tensor:
    """Squared gap between group means and class means of ``z`` (see the module docstring).

    ``cell = c * n_groups + a`` indexes the (class, group) cell of each sample. The
    squared gap is estimated without bias: a batch's group means differ by sampling noise
    alone, and without the correction masking *any* input would look like progress
    because it removes that noise. Cells with fewer than two samples in the batch are
    left out. ``var_cap`` (shape ``(n_classes, n_groups, E)``, a multiple of the clean
    embeddings' within-cell variances) bounds the variance the correction uses, so inflating the
    spread is never rewarded; the estimate is then conservative (biased upwards) for
    edits that inflate it.
    """
    n, e = z.shape
    n_cells = n_groups * n_classes
    zeros = torch.zeros(n_cells, dtype=z.dtype, device=z.device)
    cnt = zeros.index_add(0, cell, torch.ones(n, dtype=z.dtype, device=z.device))
    s1 = torch.zeros(n_cells, e, dtype=z.dtype, device=z.device).index_add(0, cell, z)
    flat_mean = s1 / cnt.clamp_min(1)[:, None]
    # two-pass variance: Σz² − n·mean² cancels catastrophically in float32 once an edit
    # inflates the embeddings, and the spurious variance then swamps the correction
    dev = z - flat_mean.index_select(0, cell)  # backward: index_add, deterministic on CPU
    s2 = torch.zeros(n_cells, e, dtype=z.dtype, device=z.device).index_add(0, cell, dev * dev)
    ok = cnt >= 2
    cnt = torch.where(ok, cnt, torch.zeros_like(cnt)).reshape(n_classes, n_groups)
    safe = cnt.clamp_min(2)[..., None]
    mean = flat_mean.reshape(n_classes, n_groups, e)
    var = s2.reshape(n_classes, n_groups, e) / (safe - 1)
    if var_cap is not None:
        # A spread far above the clean one is not corrected for. Uncapped, an edit
        # can "win" by inflating the within-group spread until chance alignment of the
        # sample means is rewarded (seen with the additive edit: the estimate fell to
        # about -150 clean gaps while a fresh probe still read the group perfectly).
        var = torch.minimum(var, var_cap)
    p = cnt / cnt.sum(dim=1, keepdim=True).clamp_min(1)  # group shares within each class
    cls_mean = (p[..., None] * mean).sum(dim=1, keepdim=True)
    a_j = (p**2)[..., None] * var / safe  # variance each cell mean brings to its class mean
    noise = ((1 - p) ** 2)[..., None] * var / safe + a_j.sum(dim=1, keepdim=True) - a_j
    gap2 = ((mean - cls_mean) ** 2 - noise).mean(dim=2)  # unbiased per-cell squared gap
    return ((cnt / n) * gap2).sum()


class Adversary:
    """The adversarial loss of a batch, everything but the embeddings fixed at fit time.

    Parameters
    ----------
    objective : {"neg_ce", "confusion", "mean_gap"}
    probe : TorchProbe
        The fitted sensitive-attribute probe (used by ``"neg_ce"`` and ``"confusion"``).
    a, cls : ndarray of int
        Group and class codes of every training sample.
    Z : ndarray of shape (n_samples, n_features_out)
        The clean training embeddings. ``"mean_gap"`` standardises with their mean and
        standard deviation and reports the gap relative to theirs, so its loss starts
        near 1 and 0 means no group difference is left.
    device : torch.device
    """

    def __init__(self, objective: str, probe: TorchProbe, a: np.ndarray, cls: np.ndarray,
                 Z: np.ndarray, device: torch.device) -> None:
        self.objective = objective
        self.probe = probe
        self.n_groups = int(a.max()) + 1
        self.n_classes = int(cls.max()) + 1
        counts = np.zeros((self.n_classes, self.n_groups))
        np.add.at(counts, (cls, a), 1.0)
        prior = counts / counts.sum(axis=1, keepdims=True)
        self.prior = torch.as_tensor(prior, dtype=torch.float32, device=device)
        self.a = torch.as_tensor(a, device=device)
        self.cls = torch.as_tensor(cls, device=device)
        scale = Z.std(axis=0)
        self.z_mean = torch.as_tensor(Z.mean(axis=0), dtype=torch.float32, device=device)
        self.z_scale = torch.as_tensor(np.where(scale > 0, scale, 1.0), dtype=torch.float32,
                                       device=device)
        self.gap0 = 1.0
        self.var_cap = None
        if objective == "mean_gap":
            self.var_cap = self._cell_variance(Z, a, cls)
            clean = float(self._gap(torch.as_tensor(Z, dtype=torch.float32, device=device),
                                    self.a, self.cls))
            self.gap0 = clean if clean > 1e-12 else 1.0
        self.device = device

    def with_samples(self, a: np.ndarray, cls: np.ndarray) -> Adversary:
        """The same adversary (probe, prior, scale) judging another set of samples."""
        other = copy.copy(self)
        other.a = torch.as_tensor(a, device=self.device)
        other.cls = torch.as_tensor(cls, device=self.device)
        return other

    def _cell_variance(self, Z: np.ndarray, a: np.ndarray, cls: np.ndarray) -> torch.Tensor:
        """Cap on the within-(class, group) variance of the standardised embeddings."""
        zs = (Z - self.z_mean.cpu().numpy()) / self.z_scale.cpu().numpy()
        var = np.zeros((self.n_classes, self.n_groups, Z.shape[1]), dtype=np.float32)
        for c in range(self.n_classes):
            for k in range(self.n_groups):
                rows = zs[(cls == c) & (a == k)]
                if len(rows) >= 2:
                    var[c, k] = rows.var(axis=0, ddof=1)
        # floored at the dimension's overall clean variance (1 once standardised): a cell
        # that was nearly constant may legitimately spread out as the edit changes it
        return torch.as_tensor(VAR_CAP_FACTOR * np.maximum(var, 1.0), device=self.z_mean.device)

    def _gap(self, z: torch.Tensor, a: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        zs = (z - self.z_mean) / self.z_scale
        cell = cls * self.n_groups + a
        return mean_gap(zs, cell, self.n_groups, self.n_classes, self.var_cap) / self.gap0

    def __call__(self, z: torch.Tensor, idx: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Loss of the embeddings ``z`` of the training samples ``idx`` (differentiable)."""
        idx = torch.as_tensor(idx, device=self.device)
        a, cls = self.a[idx], self.cls[idx]
        if self.objective == "mean_gap":
            return self._gap(z, a, cls)
        logits = self.probe.logits(z, cls)
        if self.objective == "neg_ce":
            return neg_ce(logits, a)
        return confusion(logits, self.prior[cls])
