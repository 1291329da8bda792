"""Linear algebra that does not fail where LAPACK's fastest driver does."""

from __future__ import annotations

import numpy as np

__all__ = ["thin_svd"]


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
