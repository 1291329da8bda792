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
    ``Σ_c Σ_k p(c, k) ‖W(μ_ck − μ_c)‖² / E``, relative to its value on the clean training
    embeddings: the mean squared difference between the mean whitened embedding of
    each group and that of its class (``E`` embedding dimensions), estimated without the
    bias of the batch's sampling noise. It needs no probe, so it cannot be gamed by
    fooling one; the mean differences are what a re-trained linear probe reads first.

    ``W = Σ^{-1/2}`` whitens with the Ledoit–Wolf-shrunk pooled within-(class, group)
    covariance ``Σ`` of the clean embeddings (:func:`within_cell_whitening`), so the gap
    is measured in the geometry a re-trained linear probe reads (Mahalanobis, not per
    coordinate) and does not depend on the encoder's scale. A per-coordinate
    standardisation would divide by the near-zero spread of a pretrained network's dead
    units (236 of EfficientNet-Lite0's 1,280) and rate a perfect edit hundreds of times
    worse than the identity; the shrinkage bounds every direction's weight.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from ._linalg import ledoit_wolf_shrinkage, thin_svd
from .probe import TorchProbe

OBJECTIVES = ("neg_ce", "confusion", "mean_gap")
#: the objectives whose loss is a squared norm of residuals (:meth:`Adversary.residuals`)
SUM_OF_SQUARES = ("mean_gap",)

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


def _cell_means(z: torch.Tensor, cell: torch.Tensor, n_groups: int,
                n_classes: int) -> tuple[torch.Tensor, ...]:
    """What :func:`mean_gap` and :func:`mean_gap_residuals` share, per (class, group) cell:
    the sample means (one row per cell), the counts (``n_classes × n_groups``, zero for a
    cell with fewer than two samples), the means as ``n_classes × n_groups × E``, the
    group shares within each class and the class means (``n_classes × 1 × E``)."""
    n, e = z.shape
    n_cells = n_groups * n_classes
    zeros = torch.zeros(n_cells, dtype=z.dtype, device=z.device)
    cnt = zeros.index_add(0, cell, torch.ones(n, dtype=z.dtype, device=z.device))
    s1 = torch.zeros(n_cells, e, dtype=z.dtype, device=z.device).index_add(0, cell, z)
    flat_mean = s1 / cnt.clamp_min(1)[:, None]
    cnt = torch.where(cnt >= 2, cnt, torch.zeros_like(cnt)).reshape(n_classes, n_groups)
    mean = flat_mean.reshape(n_classes, n_groups, e)
    p = cnt / cnt.sum(dim=1, keepdim=True).clamp_min(1)  # group shares within each class
    cls_mean = (p[..., None] * mean).sum(dim=1, keepdim=True)
    return flat_mean, cnt, mean, p, cls_mean


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
    flat_mean, cnt, mean, p, cls_mean = _cell_means(z, cell, n_groups, n_classes)
    # two-pass variance: Σz² − n·mean² cancels catastrophically in float32 once an edit
    # inflates the embeddings, and the spurious variance then swamps the correction
    dev = z - flat_mean.index_select(0, cell)  # backward: index_add, deterministic on CPU
    s2 = torch.zeros(n_groups * n_classes, e, dtype=z.dtype,
                     device=z.device).index_add(0, cell, dev * dev)
    safe = cnt.clamp_min(2)[..., None]
    var = s2.reshape(n_classes, n_groups, e) / (safe - 1)
    if var_cap is not None:
        # A spread far above the clean one is not corrected for. Uncapped, an edit
        # can "win" by inflating the within-group spread until chance alignment of the
        # sample means is rewarded (seen with the additive edit: the estimate fell to
        # about -150 clean gaps while a fresh probe still read the group perfectly).
        var = torch.minimum(var, var_cap)
    a_j = (p**2)[..., None] * var / safe  # variance each cell mean brings to its class mean
    noise = ((1 - p) ** 2)[..., None] * var / safe + a_j.sum(dim=1, keepdim=True) - a_j
    gap2 = ((mean - cls_mean) ** 2 - noise).mean(dim=2)  # unbiased per-cell squared gap
    return ((cnt / n) * gap2).sum()


def mean_gap_residuals(z: torch.Tensor, cell: torch.Tensor, n_groups: int,
                       n_classes: int) -> torch.Tensor:
    """The vector ``r`` whose squared norm is :func:`mean_gap` before its noise correction.

    ``r[c, k] = sqrt(n_ck / (n E)) (μ_ck − μ_c)`` over the cells with two samples or more
    (the others are zero, as :func:`mean_gap` leaves them out), flattened: ``mean_gap =
    ‖r‖² − (the sampling-noise correction)``. A Gauss–Newton search models how ``r``
    moves with the edit, which says far more per query than the loss alone.
    """
    n, e = z.shape
    _, cnt, mean, _, cls_mean = _cell_means(z, cell, n_groups, n_classes)
    weight = torch.sqrt(cnt / (n * e))[..., None]
    return (weight * (mean - cls_mean)).reshape(-1)


class Whitening:
    r"""The map :math:`z \mapsto W (z - \mu)`, :math:`W = \Sigma^{-1/2}`, without a d × d matrix.

    :math:`\Sigma = (1 - \alpha) S + \alpha \bar s I` (``S`` the sample covariance of
    within-cell residuals, :math:`\bar s = \operatorname{tr} S / d`, :math:`\alpha` the
    Ledoit–Wolf shrinkage). With the thin SVD of the residuals, :math:`S = V D V^\top`,
    :math:`W x = c\,x + V \operatorname{diag}(w - c) V^\top x` where
    :math:`c = (\alpha \bar s)^{-1/2}` acts on the directions the data never spans and
    :math:`w = ((1 - \alpha) D + \alpha \bar s)^{-1/2}` on the others: the cost is
    :math:`O(n\,d\,r)` per batch, :math:`r \le \min(n, d)`.
    """

    def __init__(self, mean: np.ndarray, basis: np.ndarray, weights: np.ndarray,
                 complement: float, device: torch.device) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=device)
        self.basis = torch.as_tensor(basis, dtype=torch.float32, device=device)
        self.delta = torch.as_tensor(weights - complement, dtype=torch.float32, device=device)
        self.complement = float(complement)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        centred = z - self.mean
        return centred * self.complement + ((centred @ self.basis) * self.delta) @ self.basis.T


def within_cell_whitening(Z: np.ndarray, cell: np.ndarray,
                          device: torch.device | None = None) -> Whitening:
    """The whitening of the pooled within-cell covariance of ``Z`` (Ledoit–Wolf shrunk).

    ``cell`` labels each row's (class, group) cell; each row is centred on its cell's
    mean, so the group and class differences themselves do not count as spread.

    Examples
    --------
    >>> import numpy as np, torch
    >>> rng = np.random.default_rng(0)
    >>> Z = rng.normal(size=(400, 3)) * [1.0, 10.0, 1e-4]   # wildly different scales
    >>> white = within_cell_whitening(Z, np.zeros(400, int))
    >>> zs = white(torch.as_tensor(Z, dtype=torch.float32)).numpy()
    >>> ratio = zs[:, 1].std() / zs[:, 0].std()               # 10 before whitening
    >>> bool(0.8 < ratio < 1.25)
    True
    """
    device = torch.device("cpu") if device is None else device
    Z = np.asarray(Z, dtype=np.float64)
    n, d = Z.shape
    resid = Z.copy()
    for c in np.unique(cell):
        rows = cell == c
        resid[rows] -= Z[rows].mean(axis=0)
    mean = Z.mean(axis=0)
    total = float((resid**2).sum()) / n
    if total <= 1e-300:  # constant embeddings: nothing to whiten
        return Whitening(mean, np.zeros((d, 0)), np.zeros(0), 1.0, device)
    alpha = ledoit_wolf_shrinkage(resid)
    floor = max(alpha, 1e-3) * total / d  # the shrinkage target's share of every direction
    _, sv, vt = thin_svd(resid)
    eig = (1 - alpha) * sv**2 / n + floor
    keep = sv > 1e-10 * sv.max()
    return Whitening(mean, vt[keep].T, eig[keep] ** -0.5, floor**-0.5, device)


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
        The clean training embeddings. ``"mean_gap"`` whitens with their within-cell
        covariance (:func:`within_cell_whitening`) and reports the gap relative to
        theirs, so its loss starts near 1 and 0 means no group difference is left.
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
        self.gap0 = 1.0
        self.var_cap = None
        self.whiten = None
        if objective == "mean_gap":
            self.whiten = within_cell_whitening(Z, cls * self.n_groups + a, device)
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
        """Cap on the within-(class, group) variance of the whitened embeddings."""
        with torch.no_grad():
            zs = self.whiten(torch.as_tensor(Z, dtype=torch.float32,
                                             device=self.whiten.mean.device)).cpu().numpy()
        var = np.zeros((self.n_classes, self.n_groups, Z.shape[1]), dtype=np.float32)
        for c in range(self.n_classes):
            for k in range(self.n_groups):
                rows = zs[(cls == c) & (a == k)]
                if len(rows) >= 2:
                    var[c, k] = rows.var(axis=0, ddof=1)
        # floored at the dimension's overall clean variance: a cell that was nearly
        # constant may legitimately spread out as the edit changes it
        overall = zs.var(axis=0).astype(np.float32)
        return torch.as_tensor(VAR_CAP_FACTOR * np.maximum(var, overall),
                               device=self.whiten.mean.device)

    def _gap(self, z: torch.Tensor, a: torch.Tensor, cls: torch.Tensor,
             zs: torch.Tensor | None = None) -> torch.Tensor:
        zs = self.whiten(z) if zs is None else zs
        cell = cls * self.n_groups + a
        return mean_gap(zs, cell, self.n_groups, self.n_classes, self.var_cap) / self.gap0

    @property
    def has_residuals(self) -> bool:
        """Whether the loss is a squared norm :meth:`residuals` can give (``"mean_gap"``)."""
        return self.objective in SUM_OF_SQUARES

    def residuals(self, z: torch.Tensor, idx: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``r`` with ``loss = ‖r‖² − (noise correction)`` (``"mean_gap"`` only; see
        :func:`mean_gap_residuals`), on the loss's scale."""
        a, cls = self._residual_cells(idx)
        return self._residuals(self.whiten(z), a, cls)

    def loss_and_residuals(self, z: torch.Tensor,
                           idx: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss and :meth:`residuals` of one batch, whitened once for both
        (``"mean_gap"`` only): the same values as the two calls, at half the cost."""
        a, cls = self._residual_cells(idx)
        zs = self.whiten(z)
        return self._gap(z, a, cls, zs), self._residuals(zs, a, cls)

    def _residual_cells(self, idx: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Group and class codes of the samples ``idx``, for an objective with residuals."""
        if not self.has_residuals:
            raise ValueError(f"the {self.objective!r} objective is not a sum of squares; "
                             "only 'mean_gap' has residuals.")
        idx = torch.as_tensor(idx, device=self.device)
        return self.a[idx], self.cls[idx]

    def _residuals(self, zs: torch.Tensor, a: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        r = mean_gap_residuals(zs, cls * self.n_groups + a, self.n_groups, self.n_classes)
        return r / float(np.sqrt(self.gap0))

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
