"""The never-harm verdict of benchmarks/compare.py and its paired bootstrap intervals."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairnoise.metrics import equalized_odds_difference

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def compare():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("compare")
    finally:
        sys.path.remove(str(BENCHMARKS))


def make_test_set(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = rng.integers(0, 2, n)
    return {"y": y, "a": a}


def noisy_scores(te, shift, seed):
    """Scores that read the class, plus ``shift`` for one group (an unfair head)."""
    rng = np.random.default_rng(seed)
    return 1 / (1 + np.exp(-(2.0 * (te["y"] - 0.5) + shift * te["a"]
                             + rng.normal(size=len(te["y"])))))


def test_resamples_keep_every_group_by_class_cell_and_are_seeded(compare):
    te = make_test_set()
    weights = compare.bootstrap_weights(te, seed=3, n_boot=50)
    assert weights.shape == (50, 400)
    assert np.all(weights >= 0) and np.all(weights == np.round(weights))
    for g in (0, 1):
        for c in (0, 1):
            cell = (te["a"] == g) & (te["y"] == c)
            np.testing.assert_array_equal(weights[:, cell].sum(axis=1), cell.sum())
    np.testing.assert_array_equal(weights, compare.bootstrap_weights(te, seed=3, n_boot=50))
    assert not np.array_equal(weights, compare.bootstrap_weights(te, seed=4, n_boot=50))


def test_unit_weights_give_the_test_sets_own_figures(compare):
    from sklearn.metrics import roc_auc_score

    te = make_test_set()
    proba = noisy_scores(te, 1.0, seed=1)
    got = compare.resampled_scores(te, proba, np.ones((1, 400)))
    expected = (equalized_odds_difference(te["y"], (proba >= 0.5).astype(int),
                                          sensitive_features=te["a"]),
                roc_auc_score(te["y"], proba))
    np.testing.assert_allclose(got[0], expected)


def test_identical_methods_have_a_zero_interval_and_a_worse_one_a_positive_one(compare):
    te = make_test_set(n=1000)
    weights = compare.bootstrap_weights(te, seed=0, n_boot=200)
    erm = compare.resampled_scores(te, noisy_scores(te, 0.0, seed=1), weights)
    same = compare.harm_interval(erm, erm)
    assert all(value == 0.0 for value in same.values())
    unfair = compare.resampled_scores(te, noisy_scores(te, 3.0, seed=1), weights)
    worse = compare.harm_interval(erm, unfair)
    assert worse["EOdds harm lower"] > 0.1
    assert worse["EOdds harm lower"] < worse["EOdds harm upper"]
    assert set(worse) == set(compare.HARM_COLUMNS)


def frame(compare, harm_eo, lower):
    """ERM and DNE (defaults) on two seeds, DNE's EOdds gap ``harm_eo`` above ERM's."""
    rows = []
    for seed in (0, 1):
        rows.append({"method": compare.ERM, "seed": seed, "EOdds gap": 0.2, "task AUC": 0.9,
                     **dict.fromkeys(compare.HARM_COLUMNS, np.nan)})
        rows.append({"method": compare.DNE, "seed": seed, "EOdds gap": 0.2 + harm_eo[seed],
                     "task AUC": 0.9, "EOdds harm lower": lower[seed],
                     "EOdds harm upper": harm_eo[seed] + 0.05, "AUC drop lower": -0.01,
                     "AUC drop upper": 0.01})
    return {("standin", "marker"): pd.DataFrame(rows)}


def test_never_harm_judges_the_point_estimate_and_counts_harm_beyond_noise(compare):
    (line,) = compare.never_harm(frame(compare, [0.005, 0.03], [-0.04, -0.02]))
    assert "+0.030 (standin, marker, seed 1; paired 95 % interval [-0.020, +0.080])" in line
    assert "**missed**" in line
    assert "0 of 2 (equalized odds)" in line
    (line,) = compare.never_harm(frame(compare, [0.005, 0.03], [-0.04, 0.02]))
    assert "1 of 2 (equalized odds)" in line
    (line,) = compare.never_harm(frame(compare, [0.005, -0.03], [-0.04, -0.08]))
    assert "+0.005 (standin, marker, seed 0" in line and "**met**" in line


def test_never_harm_reads_reports_written_before_the_intervals(compare):
    frames = frame(compare, [0.0, 0.0], [0.0, 0.0])
    old = {k: f.drop(columns=list(compare.HARM_COLUMNS)) for k, f in frames.items()}
    (line,) = compare.never_harm(old)
    assert "interval" not in line and line.endswith("**met**")
