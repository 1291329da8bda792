"""Between-group aggregations: every gap and ratio of the package is one of these.

Groups whose value is undefined (nan) are left out of the comparison.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def difference(values: Any) -> float:
    """Largest minus smallest defined group value (nan when fewer than two defined)."""
    values = np.asarray(values, dtype=float)
    defined = values[~np.isnan(values)]
    if defined.size < 2:
        return float("nan")
    return float(defined.max() - defined.min())


def ratio(values: Any) -> float:
    """Smallest over largest defined group value (nan when undefined, as in fairlearn)."""
    values = np.asarray(values, dtype=float)
    defined = values[~np.isnan(values)]
    if defined.size < 2 or defined.max() == 0:
        return float("nan")
    return float(defined.min() / defined.max())


def worst_case(tpr_gap: float, fpr_gap: float) -> float:
    """Equalized odds: the larger gap, nan if either is undefined."""
    return float("nan") if math.isnan(tpr_gap) or math.isnan(fpr_gap) else max(tpr_gap, fpr_gap)


def group_min(values: Any) -> float:
    """Smallest defined group value (nan when none is defined)."""
    values = np.asarray(values, dtype=float)
    return float(np.nanmin(values)) if not np.isnan(values).all() else float("nan")
