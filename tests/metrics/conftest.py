"""Shared data for the fairnoise.metrics tests: small random cases of every group layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

#: Layouts of sensitive_features every agreement test runs on.
LAYOUTS = ["K2", "K3-strings", "series", "2d-array", "dataframe"]


def random_case(layout: str, n: int = 400, seed: int = 0):
    """``(y_true, y_score, y_pred, sensitive_features)`` with groups laid out as named."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, size=n)
    y_score = np.clip(0.3 * y_true + rng.uniform(size=n) * 0.7, 0, 1)
    y_pred = (y_score >= 0.5).astype(int)
    if layout == "K2":
        sf = rng.integers(0, 2, size=n)
    elif layout == "K3-strings":
        sf = rng.choice(["left", "middle", "right"], size=n)
    elif layout == "series":
        sf = pd.Series(rng.choice(["F", "M"], size=n), name="sex")
    elif layout == "2d-array":
        sf = np.column_stack([rng.integers(0, 2, size=n), rng.integers(0, 3, size=n)])
    else:  # intersectional DataFrame
        sf = pd.DataFrame(
            {"sex": rng.choice(["F", "M"], size=n), "age": rng.choice(["<60", ">=60"], size=n)}
        )
    return y_true, y_score, y_pred, sf


@pytest.fixture(params=LAYOUTS)
def case(request):
    """One random case per group layout."""
    return random_case(request.param)


@pytest.fixture
def weights():
    """Sample weights for a case of 400 samples: whole numbers 0 to 3."""
    return np.random.default_rng(11).integers(0, 4, size=400).astype(float)


@pytest.fixture
def make_case():
    """:func:`random_case`, for tests that need a given layout or size."""
    return random_case
