"""What every encoder wrapper checks of what an encoder returned."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def check_embeddings(Z: Any, n_rows: int, who: str, n_features: int | None = None) -> np.ndarray:
    """Validate what an encoder returned: a finite, real 2-D array with one row per input.

    ``n_features``, when given, is the width the embeddings must have (the one earlier
    responses had). Raises ``ValueError`` (shape, width, complex or non-finite values) or
    ``TypeError`` (not numbers), each naming ``who``.
    """
    if isinstance(Z, torch.Tensor):
        Z = Z.detach().cpu().numpy()
    try:
        Z = np.asarray(Z)
    except (ValueError, TypeError) as exc:  # e.g. ragged nested lists
        raise ValueError(f"{who} returned something that is not an array: {exc}") from exc
    if Z.ndim != 2:
        raise ValueError(
            f"{who} must return a 2-D array (n_samples, n_features) of embeddings; "
            f"it returned an array of shape {Z.shape}. Flatten or pool its output."
        )
    if Z.shape[0] != n_rows:
        raise ValueError(
            f"{who} returned {Z.shape[0]} embeddings for a batch of {n_rows} inputs."
        )
    if n_features is not None and Z.shape[1] != n_features:
        raise ValueError(
            f"{who} returned embeddings of {Z.shape[1]} features where {n_features} were "
            "expected (the width of its earlier responses): an encoder must return the same "
            "number of features every time."
        )
    if np.iscomplexobj(Z):
        raise ValueError(f"{who} returned complex embeddings (dtype {Z.dtype}); they must "
                         "be real numbers.")
    if not np.issubdtype(Z.dtype, np.number) or Z.dtype.kind == "m":
        raise TypeError(f"{who} must return numeric embeddings; got dtype {Z.dtype}.")
    if not np.all(np.isfinite(Z)):
        raise ValueError(f"{who} returned NaN or infinite embeddings.")
    return Z
