"""Linear algebra that does not fail where LAPACK's fastest driver does."""

from __future__ import annotations

import numpy as np

__all__ = ["ledoit_wolf_shrinkage", "thin_svd"]


def thin_svd(A: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``U, s, Vt`` of ``A`` (``full_matrices=False``).

    NumPy's SVD (LAPACK ``gesdd``, divide and conquer) fails to converge on some
    rank-deficient matrices, such as the within-cell residuals of embeddings with few
    samples per cell; the slower QR-iteration driver ``gesvd`` is then used instead.

    Examples
    --------
    >>> U, s, Vt = thin_svd(np.array([[3.0, 0.0], [0.0, 4.0], [0.0, 0.0]]))
    >>> s.tolist(), U.shape, Vt.shape
    ([4.0, 3.0], (3, 2), (2, 2))
    """
    try:
        return np.linalg.svd(A, full_matrices=False)
    except np.linalg.LinAlgError:
        import scipy.linalg

        return scipy.linalg.svd(A, full_matrices=False, lapack_driver="gesvd")


def ledoit_wolf_shrinkage(X: np.ndarray) -> float:
    r"""The Ledoit–Wolf (2004) shrinkage of the covariance :math:`S = X^\top X / n` of
    centred rows ``X`` (n, d) towards :math:`\operatorname{tr}(S)/d \cdot I`.

    The estimate of :func:`sklearn.covariance.ledoit_wolf_shrinkage`, computed from the
    n × n Gram matrix instead of d × d products: :math:`\|S\|_F^2 = \|X X^\top\|_F^2 /
    n^2` and :math:`\sum_{jk} (X^{\circ 2})^\top X^{\circ 2} = \sum_i \|x_i\|^4`, so it
    costs :math:`O(n^2 d)`, not :math:`O(n d^2)` (for 320 embeddings of 1,024 features,
    about 4 ms against 60). One feature: 0, as scikit-learn's.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(50, 200))
    >>> alpha = ledoit_wolf_shrinkage(X - X.mean(0))   # few samples, many features
    >>> 0.5 < alpha <= 1.0
    True
    """
    n, d = X.shape
    if d == 1:
        return 0.0
    gram = X @ X.T if n <= d else X.T @ X  # the same Frobenius norm either way
    norms = np.einsum("ij,ij->i", X, X)  # ‖x_i‖²
    trace = norms.sum() / n
    mu = trace / d
    frob = float(np.sum(gram**2)) / n**2  # ‖S‖²_F
    delta = (frob - 2.0 * mu * trace + d * mu**2) / d  # ‖S − μI‖²_F / d
    beta = min((float(np.sum(norms**2)) / n - frob) / (d * n), delta)
    return 0.0 if beta == 0 else float(beta / delta)
