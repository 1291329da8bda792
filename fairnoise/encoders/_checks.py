"""What every encoder wrapper checks of what an encoder returned."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def check_embeddings(Z: Any, n_rows: int, who: str) -> np.ndarray:
    """Validate what an encoder returned: a finite 2-D array with one row per input."""
    if isinstance(Z, torch.Tensor):
        Z = Z.detach().cpu().numpy()
    Z = np.asarray(Z)
    if Z.ndim != 2:
        raise ValueError(
            f"{who} must return a 2-D array (n_samples, n_features) of embeddings; "
            f"it returned an array of shape {Z.shape}. Flatten or pool its output."
        )
    if Z.shape[0] != n_rows:
        raise ValueError(
            f"{who} returned {Z.shape[0]} embeddings for a batch of {n_rows} inputs."
        )
    if not np.issubdtype(Z.dtype, np.number):
        raise TypeError(f"{who} must return numeric embeddings; got dtype {Z.dtype}.")
    if not np.all(np.isfinite(Z)):
        raise ValueError(f"{who} returned NaN or infinite embeddings.")
    return Z
