r"""Class-conditional linear erasure of a group from embeddings: :class:`ConditionalEraser`.

The map
-------
Fitted on training embeddings :math:`Z \in \mathbb{R}^{n \times d}` with group codes
:math:`a` and class codes :math:`y`, then applied to any embedding, *without* its group
or class: one fixed affine map

.. math:: T(z) = z - L R^\top (z - \mu), \qquad L, R \in \mathbb{R}^{d \times r},

a rank-:math:`r` oblique projection (:math:`R^\top L = I_r`, so :math:`T \circ T = T`).

What is erased. With cells :math:`c = (a, y)` of :math:`n_c` samples and mean
:math:`\mu_c`, and :math:`\mu_y`, :math:`n_y` the mean and size of class :math:`y` (over
its cells that take part), the within-class group differences are
:math:`\delta_c = \mu_c - \mu_y`. A linear probe cannot beat chance at reading the group
inside a class iff they are zero (linear guardedness; Belrose et al. 2023, LEACE), so
:math:`T` is built to satisfy :math:`T(\mu_c) = T(\mu_y)`: it annihilates the span of
the :math:`\delta_c`, at most :math:`K_y - 1` directions per class of :math:`K_y`
groups. A difference between classes that is not one of them (the task direction) is
kept; erasing the marginal :math:`\operatorname{Cov}(Z, a)` instead would also remove
the task direction whenever the group predicts the class.

The metric. In the whitened space of a shrunk covariance :math:`\Sigma_s`, with
:math:`W = \Sigma_s^{-1/2}`, the columns

.. math:: g_c = W \delta_c \,/\, \sqrt{1/n_c - 1/n_y}

are the cell differences in units of their standard error. With the thin SVD
:math:`G = U S V^\top`, keeping the columns of :math:`U` with a non-zero singular value,
:math:`L = W^{-1} U` and :math:`R = W U`: orthogonal erasure in whitened space, the
smallest change of the embeddings (least squares in the metric :math:`\Sigma_s^{-1}`)
that removes the differences. :math:`\Sigma_s` is the Ledoit-Wolf shrinkage, towards
:math:`\operatorname{tr}(\Sigma)/d \cdot I`, of the pooled within-cell covariance
(``metric="within"``, the default), of the covariance of :math:`Z` (``"marginal"``), or
:math:`I` (``"euclidean"``, an orthogonal projection, :math:`L = R`).

Which samples count. A cell of one sample says nothing about its group (it is left out,
as is a class left with fewer than two cells), and a feature constant in training (a
dead unit) is left exactly as it is: rounding noise written into it would be blown up by
a downstream ``StandardScaler``. When nothing is left to erase, :math:`r = 0` and
:math:`T` is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._linalg import ledoit_wolf_shrinkage, thin_svd
from ._arrays import freeze, real_copy

METRICS = ("within", "marginal", "euclidean")
#: singular values below this fraction of the largest (or of the noise level) are zero
_RANK_TOL = 1e-8


@dataclass(frozen=True, eq=False)
class ConditionalEraser:
    r"""A fitted eraser :math:`T(z) = z - L R^\top (z - \mu)`; see :func:`fit_conditional_eraser`.

    The arrays are read-only float64 copies; :meth:`apply` computes in float64 and
    returns the input's float dtype.

    Parameters
    ----------
    mean : ndarray of shape (d,)
        :math:`\mu`, the mean training embedding.
    left : ndarray of shape (d, r)
        :math:`L`, the erased directions.
    right : ndarray of shape (d, r)
        :math:`R`, the functionals that measure them; :math:`R^\top L = I_r`.

    Examples
    --------
    >>> import numpy as np
    >>> from fairnoise.edits import ConditionalEraser
    >>> eraser = ConditionalEraser(mean=np.zeros(2), left=np.array([[1.0], [0.0]]),
    ...                            right=np.array([[1.0], [0.0]]))
    >>> eraser.rank
    1
    >>> eraser.apply(np.array([[3.0, 4.0]]))  # the first coordinate is erased
    array([[0., 4.]])
    """

    mean: np.ndarray
    left: np.ndarray
    right: np.ndarray

    def __post_init__(self) -> None:
        for name in ("mean", "left", "right"):
            object.__setattr__(self, name, _frozen_float64(getattr(self, name), name))
        if self.mean.ndim != 1 or self.mean.size == 0:
            raise ValueError(f"the eraser's mean must be a non-empty vector (d,); got shape "
                             f"{self.mean.shape}.")
        d = self.mean.shape[0]
        for name in ("left", "right"):
            shape = getattr(self, name).shape
            if len(shape) != 2 or shape[0] != d or shape[1] > d:
                raise ValueError(f"the eraser's {name} must have shape (d, r) with d = {d} "
                                 f"(the mean's length) and r <= d; got {shape}.")
        if self.left.shape != self.right.shape:
            raise ValueError(f"the eraser's left {self.left.shape} and right "
                             f"{self.right.shape} must have the same shape.")
        gram = self.right.T @ self.left
        if not np.allclose(gram, np.eye(self.rank), rtol=0, atol=1e-6):
            raise ValueError("the eraser's right.T @ left must be the identity (the map is a "
                             "projection); these arrays are not a fitted eraser.")

    @property
    def rank(self) -> int:
        """:math:`r`, the number of erased directions (0: the identity)."""
        return int(self.left.shape[1])

    def apply(self, Z: Any) -> np.ndarray:
        """Erase from embeddings ``Z`` of shape (n, d): a new array of ``Z``'s float dtype
        (float64 for integer input); ``Z`` is not changed."""
        Z = np.asarray(Z)
        d = self.mean.shape[0]
        if Z.ndim != 2 or Z.shape[1] != d:
            raise ValueError(f"Z must be a 2-D array of embeddings with {d} features (the "
                             f"eraser's width); got shape {Z.shape}.")
        if not (np.issubdtype(Z.dtype, np.floating) or np.issubdtype(Z.dtype, np.integer)):
            raise ValueError(f"Z must hold real numbers; got dtype {Z.dtype}.")
        dtype = Z.dtype if np.issubdtype(Z.dtype, np.floating) else np.dtype(np.float64)
        if self.rank == 0:
            return Z.astype(dtype, copy=True)
        Z64 = Z.astype(np.float64, copy=False)
        if not np.isfinite(Z64).all():
            raise ValueError("Z holds NaN or infinity.")
        out = Z64 - ((Z64 - self.mean) @ self.right) @ self.left.T  # z - L Rᵀ (z - μ)
        return out.astype(dtype, copy=False)

    # -- (de)serialisation ---------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays a file stores: ``mean``, ``left`` and ``right``."""
        return {"mean": self.mean, "left": self.left, "right": self.right}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ConditionalEraser:
        """The inverse of :meth:`arrays`; raises ``ValueError`` naming what is wrong."""
        missing = [n for n in ("mean", "left", "right") if n not in arrays]
        if missing:
            raise ValueError(f"the eraser's {missing[0]!r} array is missing.")
        return cls(mean=arrays["mean"], left=arrays["left"], right=arrays["right"])


def fit_conditional_eraser(Z: Any, groups: Any, classes: Any = None, *,
                           metric: str = "within", rank: Any = "auto") -> ConditionalEraser:
    r"""Fit the map that erases the within-class group-mean differences of ``Z``.

    See :mod:`fairnoise.edits._eraser` for the mathematics: the fitted
    :math:`T(z) = z - L R^\top (z - \mu)` makes the group means inside every class
    equal, on the training data exactly, and keeps every direction that does not
    separate the groups inside a class.

    Parameters
    ----------
    Z : array-like of shape (n, d)
        Training embeddings (finite real numbers).
    groups : array-like of int of shape (n,)
        Group codes ``0..K-1``.
    classes : array-like of int of shape (n,) or None, default=None
        Class codes ``0..C-1``; None is one class (the marginal group-mean differences
        are erased).
    metric : {"within", "marginal", "euclidean"}, default="within"
        The covariance whose whitened space the erasure is orthogonal in: the pooled
        within-cell one, that of ``Z``, or the identity.
    rank : "auto", int or None, default="auto"
        How many directions to erase. ``None``: every direction the cell differences
        span. ``"auto"``: those whose squared singular value (in standard errors) exceeds
        the largest a pure-noise set of as many differences would reach,
        :math:`\operatorname{tr}(W \Sigma_w W) (1 + \sqrt{m / d})^2` for :math:`m`
        independent differences in :math:`d` dimensions (the Marchenko–Pastur edge): with
        two classes, the direction of each class's group difference is kept, but the
        noise between two estimates of one shortcut is not erased (on few features it
        would take the disease with it). An int: at most that many.

    Returns
    -------
    eraser : ConditionalEraser
        Of rank at most :math:`\sum_y (K_y - 1)`, :math:`K_y` the groups of class
        :math:`y` with at least two samples.

    Examples
    --------
    >>> import numpy as np
    >>> from fairnoise.edits import fit_conditional_eraser
    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 2, 400)
    >>> Z = rng.normal(size=(400, 5)) + 2.0 * a[:, None] * np.eye(5)[0]  # a shortcut
    >>> eraser = fit_conditional_eraser(Z, a)
    >>> eraser.rank
    1
    >>> Zt = eraser.apply(Z)
    >>> bool(np.allclose(Zt[a == 0].mean(0), Zt[a == 1].mean(0)))
    True
    """
    Z, groups, classes = _check_fit_inputs(Z, groups, classes)
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}.")
    n, d = Z.shape
    mean = Z.mean(axis=0)
    std = Z.std(axis=0)
    # a dead unit is left out of the fit, so it is never written to
    live = std > 1e-12 * max(std.max(), 1e-300)
    columns, resid = _cell_differences(Z[:, live], groups, classes)
    left = np.zeros((d, 0))
    if columns.shape[1] and live.any():  # with every unit dead, there is nothing to erase
        cov, noise = _whitening(Z[:, live] - mean[live], resid, metric)
        U, s, _ = thin_svd(cov.power(-0.5, columns))  # W G
        keep = s > _RANK_TOL * max(s.max(), np.sqrt(noise), 1e-300)
        if rank == "auto":
            m = max(min(int(keep.sum()), _independent(groups, classes)), 1)
            keep &= s**2 > noise * (1 + np.sqrt(m / int(live.sum()))) ** 2
        elif rank is not None:
            if not isinstance(rank, (int, np.integer)) or isinstance(rank, bool) or rank < 0:
                raise ValueError(f"rank must be 'auto', None or an int >= 0; got {rank!r}.")
            keep &= np.arange(len(s)) < rank
        U = U[:, keep]
        left, right = np.zeros((d, U.shape[1])), np.zeros((d, U.shape[1]))
        left[live], right[live] = cov.power(0.5, U), cov.power(-0.5, U)  # L = W⁻¹U, R = WU
    else:
        right = left
    return ConditionalEraser(mean=mean, left=left, right=right)


def _independent(groups: np.ndarray, classes: np.ndarray) -> int:
    """Independent cell differences: the groups of each class (with 2+ samples) less one."""
    total = 0
    for y in np.unique(classes):
        sizes = np.bincount(groups[classes == y])
        total += max(int((sizes >= 2).sum()) - 1, 0)
    return total


def _check_fit_inputs(Z: Any, groups: Any, classes: Any
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``Z`` as finite float64 (n, d), ``groups`` and ``classes`` as integer codes (n,)."""
    Z = np.asarray(Z)
    if Z.ndim != 2 or Z.shape[0] == 0 or Z.shape[1] == 0:
        raise ValueError(f"Z must be a non-empty 2-D array (n_samples, n_features); got shape "
                         f"{Z.shape}.")
    if not (np.issubdtype(Z.dtype, np.floating) or np.issubdtype(Z.dtype, np.integer)):
        raise ValueError(f"Z must hold real numbers; got dtype {Z.dtype}.")
    Z = Z.astype(np.float64)
    if not np.isfinite(Z).all():
        raise ValueError("Z holds NaN or infinity.")
    codes = []
    for name, value in (("groups", groups), ("classes", classes)):
        if value is None:
            codes.append(np.zeros(len(Z), np.intp))
            continue
        value = np.asarray(value)
        if value.shape != (len(Z),):
            raise ValueError(f"{name} must be a vector of one code per row of Z ({len(Z)}); "
                             f"got shape {value.shape}.")
        if not (np.issubdtype(value.dtype, np.integer) or value.dtype == bool):
            raise ValueError(f"{name} must hold integer codes 0..K-1; got dtype {value.dtype}.")
        if value.min() < 0:
            raise ValueError(f"{name} must hold integer codes 0..K-1; got {value.min()}.")
        codes.append(value.astype(np.intp))
    return Z, codes[0], codes[1]


def _cell_differences(Z: np.ndarray, groups: np.ndarray, classes: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    r"""The columns :math:`(\mu_c - \mu_y) / \sqrt{1/n_c - 1/n_y}` of every cell that takes
    part, and the rows of those cells centred on their cell mean."""
    columns, resid = [], []
    for y in np.unique(classes):
        in_y = classes == y
        cells = [in_y & (groups == g) for g in np.unique(groups[in_y])]
        cells = [c for c in cells if c.sum() >= 2]  # one sample says nothing of its group
        means = [Z[c].mean(axis=0) for c in cells]
        resid += [Z[c] - m for c, m in zip(cells, means, strict=True)]
        if len(cells) < 2:  # a class with one group says nothing about the group
            continue
        sizes = np.array([c.sum() for c in cells])
        n_y = sizes.sum()
        mu_y = sizes @ np.array(means) / n_y
        columns += [(m - mu_y) / np.sqrt(1 / n_c - 1 / n_y)  # δ_c in standard errors
                    for m, n_c in zip(means, sizes, strict=True)]
    width = Z.shape[1]
    return (np.stack(columns, axis=1) if columns else np.zeros((width, 0)),
            np.concatenate(resid) if resid else np.zeros((0, width)))


@dataclass(frozen=True)
class _Spectrum:
    r"""A symmetric positive definite :math:`\Sigma_s = V \operatorname{diag}(\lambda) V^\top
    + \lambda_\perp (I - V V^\top)`, with :math:`V` of shape (d, k) orthonormal.

    Kept in this form, the whitening never needs a d × d matrix: for n samples in d > n
    dimensions the covariance has rank at most n, and everything the eraser computes
    costs :math:`O(n^2 d)` (a thin SVD of the data) instead of :math:`O(d^3)`.
    """

    basis: np.ndarray  # V, (d, k)
    values: np.ndarray  # λ, (k,)
    rest: float  # λ⊥, the eigenvalue on the complement of V's span (unused when k = d)

    def power(self, p: float, X: np.ndarray) -> np.ndarray:
        r""":math:`\Sigma_s^p X` for ``X`` of shape (d, q)."""
        V = self.basis
        inside = V.T @ X
        out = V @ (self.values[:, None] ** p * inside)
        if V.shape[1] < V.shape[0]:
            out += self.rest**p * (X - V @ inside)
        return out


def _whitening(centred: np.ndarray, resid: np.ndarray, metric: str
               ) -> tuple[_Spectrum, float]:
    r"""The shrunk covariance :math:`\Sigma_s` (:math:`W = \Sigma_s^{-1/2}` is
    ``power(-0.5, ...)``) and the noise level :math:`\operatorname{tr}(W \Sigma_w W)` of a
    column :math:`g_c` (within-cell covariance :math:`\Sigma_w`)."""
    d = centred.shape[1]
    identity = _Spectrum(np.zeros((d, 0)), np.zeros(0), 1.0)
    if metric == "euclidean":
        return identity, float(np.sum(resid**2) / max(len(resid), 1))
    base = resid if metric == "within" else centred
    trace = float(np.sum(base**2)) / len(base)  # tr(S), S = baseᵀ base / n
    if not trace > 0:  # no spread to whiten by: every row is its cell's mean
        return identity, 0.0
    alpha = ledoit_wolf_shrinkage(base)
    # S = V diag(σ² / n) Vᵀ from the thin SVD of the data, then Ledoit-Wolf towards tr(S)/d
    _, sv, vt = thin_svd(base)
    rest = alpha * trace / d  # the shrinkage target's share of every direction
    values = (1 - alpha) * sv**2 / len(base) + rest
    largest = max(values.max(), rest if len(values) < d else 0.0)
    floor = 1e-10 * max(largest, 1e-300)  # as good as singular: a tiny positive value
    spectrum = _Spectrum(vt.T, np.maximum(values, floor), max(rest, floor))
    white_resid = spectrum.power(-0.5, resid.T)  # W Σ_w W's trace from W residᵀ
    return spectrum, float(np.sum(white_resid**2) / max(len(resid), 1))


def _frozen_float64(value: Any, name: str) -> np.ndarray:
    """A read-only float64 copy of one of the eraser's arrays, checked to be finite."""
    return freeze(real_copy(value, "the eraser's", name, np.float64), "the eraser's", name)
