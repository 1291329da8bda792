"""The class-conditional eraser: group means equal inside each class, the task kept."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from fairnoise.edits import ConditionalEraser, fit_conditional_eraser

SHORTCUT, TASK = 0, 1  # the coordinates the group and the class shift


def shortcut_data(n=600, d=8, seed=0, shift=4.0, agreement=0.8):
    """Gaussian embeddings; the class moves coordinate TASK, the group coordinate SHORTCUT,
    and the group agrees with the class for ``agreement`` of the samples."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = np.where(rng.uniform(size=n) < agreement, y, 1 - y)
    Z = rng.normal(size=(n, d))
    Z[:, TASK] += 3.0 * y
    Z[:, SHORTCUT] += shift * a
    return Z, a, y


def cell_means(Z, a, y):
    return {(g, c): Z[(a == g) & (y == c)].mean(axis=0)
            for g in np.unique(a) for c in np.unique(y)}


def test_the_group_means_inside_each_class_are_equal_after_the_edit():
    Z, a, y = shortcut_data()
    Zt = fit_conditional_eraser(Z, a, y, rank=None).apply(Z)
    means = cell_means(Zt, a, y)
    for c in (0, 1):
        np.testing.assert_allclose(means[0, c], means[1, c], rtol=1e-6,
                                   atol=1e-6 * np.abs(Zt).mean())


def test_without_classes_the_marginal_group_means_are_equal():
    Z, a, _ = shortcut_data()
    Zt = fit_conditional_eraser(Z, a).apply(Z)
    np.testing.assert_allclose(Zt[a == 0].mean(0), Zt[a == 1].mean(0), atol=1e-9)


def test_the_edit_is_idempotent():
    Z, a, y = shortcut_data()
    eraser = fit_conditional_eraser(Z, a, y)
    once = eraser.apply(Z)
    np.testing.assert_allclose(eraser.apply(once), once, rtol=0, atol=1e-12)


def test_the_class_difference_inside_a_group_is_kept():
    # the group predicts the class, so erasing the marginal group difference would
    # remove part of the task direction; the conditional eraser keeps it
    Z, a, y = shortcut_data(n=4000, seed=1)
    Zt = fit_conditional_eraser(Z, a, y).apply(Z)
    before, after = cell_means(Z, a, y), cell_means(Zt, a, y)
    for g in (0, 1):
        task = before[g, 1] - before[g, 0]
        kept = after[g, 1] - after[g, 0]
        assert abs(kept[TASK] - task[TASK]) < 0.05 * abs(task[TASK])
    marginal = fit_conditional_eraser(Z, a).apply(Z)  # for contrast: the task is lost
    task_left = marginal[y == 1, TASK].mean() - marginal[y == 0, TASK].mean()
    assert task_left < 0.8 * (Z[y == 1, TASK].mean() - Z[y == 0, TASK].mean())


def within_class_auc(Z_train, a_train, Z_test, a_test, y_test):
    probe = LogisticRegression(max_iter=1000).fit(Z_train, a_train)
    score = probe.decision_function(Z_test)
    return [roc_auc_score(a_test[y_test == c], score[y_test == c]) for c in (0, 1)]


def test_a_fresh_linear_probe_reads_the_group_at_chance_inside_each_class():
    Z, a, y = shortcut_data(n=2000, seed=2)
    Z_test, a_test, y_test = shortcut_data(n=2000, seed=3)
    assert min(within_class_auc(Z, a, Z_test, a_test, y_test)) > 0.97
    eraser = fit_conditional_eraser(Z, a, y)
    aucs = within_class_auc(eraser.apply(Z), a, eraser.apply(Z_test), a_test, y_test)
    assert max(abs(auc - 0.5) for auc in aucs) < 0.06


def test_three_groups_and_three_classes():
    rng = np.random.default_rng(4)
    n, d = 1800, 12
    a, y = rng.integers(0, 3, n), rng.integers(0, 3, n)
    shifts = rng.normal(size=(3, 3, d))  # a different shortcut in every cell
    Z = rng.normal(size=(n, d)) + shifts[a, y]
    eraser = fit_conditional_eraser(Z, a, y)
    assert eraser.rank == 3 * (3 - 1)
    means = cell_means(eraser.apply(Z), a, y)
    for c in range(3):
        for g in (1, 2):
            np.testing.assert_allclose(means[g, c], means[0, c], atol=1e-9)


def test_the_rank_is_at_most_the_groups_per_class_minus_one():
    rng = np.random.default_rng(5)
    Z = rng.normal(size=(300, 10))
    y = np.repeat([0, 1, 2], 100)
    a = np.r_[rng.integers(0, 3, 100), rng.integers(0, 2, 100), np.zeros(100, int)]
    a[150] = 2  # a cell of one sample (class 1, group 2): it says nothing of its group
    Z += 3.0 * np.eye(10)[a]
    eraser = fit_conditional_eraser(Z, a, y, rank=None)
    # class 0: 3 groups; class 1: 2 groups (the singleton left out); class 2: one group
    assert eraser.rank == (3 - 1) + (2 - 1) + 0


def test_nothing_to_erase_is_the_identity():
    Z = np.random.default_rng(6).normal(size=(50, 4))
    eraser = fit_conditional_eraser(Z, np.zeros(50, int), np.arange(50) % 2)
    assert eraser.rank == 0 and eraser.left.shape == (4, 0)
    out = eraser.apply(Z)
    assert out is not Z and np.array_equal(out, Z)


def test_dead_features_are_left_exactly_as_they_are():
    Z, a, y = shortcut_data()
    Z[:, 3], Z[:, 5] = 0.0, 0.1
    for dtype in (np.float64, np.float32):
        out = fit_conditional_eraser(Z.astype(dtype), a, y).apply(Z.astype(dtype))
        assert (out[:, 3] == 0).all() and (out[:, 5] == dtype(0.1)).all()


def test_every_unit_dead_is_the_identity_not_an_error():
    Z = np.full((20, 3), 0.5)
    eraser = fit_conditional_eraser(Z, np.arange(20) % 2, np.arange(20) // 10)
    assert eraser.rank == 0 and np.array_equal(eraser.apply(Z), Z)


def dense_map(Z, a, y, metric):
    """T's linear part I - L Rᵀ as the module docstring defines it, with the d × d shrunk
    covariance formed and whitened by eigh (the reference, for small d)."""
    from sklearn.covariance import ledoit_wolf_shrinkage

    cells = [(a == g) & (y == c) for c in np.unique(y) for g in np.unique(a)]
    resid = np.concatenate([Z[m] - Z[m].mean(0) for m in cells])
    base = resid if metric == "within" else Z - Z.mean(0)
    d = Z.shape[1]
    S = base.T @ base / len(base)
    alpha = ledoit_wolf_shrinkage(base, assume_centered=True)
    vals, vecs = np.linalg.eigh((1 - alpha) * S + alpha * np.trace(S) / d * np.eye(d))
    W = (vecs / np.sqrt(vals)) @ vecs.T
    columns = []
    for c in np.unique(y):
        in_c = [m for m in cells if (m & (y == c)).any()]
        n_y = sum(m.sum() for m in in_c)
        mu_y = sum(Z[m].sum(0) for m in in_c) / n_y
        columns += [(Z[m].mean(0) - mu_y) / np.sqrt(1 / m.sum() - 1 / n_y) for m in in_c]
    U = np.linalg.svd(W @ np.stack(columns, 1), full_matrices=False)[0][:, :2]
    return np.eye(d) - np.linalg.solve(W, U) @ (W @ U).T


@pytest.mark.parametrize("metric", ["within", "marginal"])
@pytest.mark.parametrize("n, d", [(400, 12), (60, 150)])  # more samples than units, fewer
def test_the_low_rank_whitening_is_the_dense_one(metric, n, d):
    Z, a, y = shortcut_data(n=n, d=d, seed=11)
    Z *= np.random.default_rng(3).uniform(0.1, 3.0, d)  # unequal scales: W matters
    eraser = fit_conditional_eraser(Z, a, y, metric=metric, rank=None)
    assert eraser.rank == 2
    np.testing.assert_allclose(np.eye(d) - eraser.left @ eraser.right.T,
                               dense_map(Z, a, y, metric), atol=1e-9)


def test_an_svd_that_does_not_converge_falls_back_to_the_slower_driver(monkeypatch):
    # LAPACK's gesdd fails on some rank-deficient residuals (seen with four groups of a
    # few samples each); which matrices depends on the LAPACK build, so it is simulated
    Z, a, y = shortcut_data(n=80, d=120, seed=12)
    expected = fit_conditional_eraser(Z, a, y).apply(Z)

    def fails(*args, **kwargs):
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(np.linalg, "svd", fails)
    np.testing.assert_allclose(fit_conditional_eraser(Z, a, y).apply(Z), expected, atol=1e-9)


@pytest.mark.parametrize("n, d", [(300, 20), (40, 500), (5, 2), (30, 1)])
def test_the_gram_ledoit_wolf_shrinkage_is_scikit_learns(n, d):
    from sklearn.covariance import ledoit_wolf_shrinkage

    from fairnoise._linalg import ledoit_wolf_shrinkage as gram_shrinkage

    X = np.random.default_rng(n).normal(size=(n, d)) * np.linspace(0.2, 2.0, d)
    X -= X.mean(0)
    assert gram_shrinkage(X) == pytest.approx(
        ledoit_wolf_shrinkage(X, assume_centered=True), rel=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_dtype_is_kept_and_the_input_not_changed(dtype):
    Z, a, y = shortcut_data()
    Z = Z.astype(dtype)
    copy = Z.copy()
    eraser = fit_conditional_eraser(Z, a, y)
    out = eraser.apply(Z)
    assert out.dtype == dtype and np.array_equal(Z, copy)
    assert eraser.mean.dtype == np.float64  # fitted and applied in float64


@pytest.mark.parametrize("metric", ["within", "marginal", "euclidean"])
def test_every_metric_equalises_the_group_means(metric):
    Z, a, y = shortcut_data(seed=7)
    Zt = fit_conditional_eraser(Z, a, y, metric=metric, rank=None).apply(Z)
    means = cell_means(Zt, a, y)
    for c in (0, 1):
        np.testing.assert_allclose(means[0, c], means[1, c], atol=1e-9)


def test_the_euclidean_metric_is_an_orthogonal_projection():
    Z, a, y = shortcut_data(seed=8)
    eraser = fit_conditional_eraser(Z, a, y, metric="euclidean")
    np.testing.assert_allclose(eraser.left, eraser.right, atol=1e-12)


def test_the_arrays_are_read_only_and_round_trip():
    Z, a, y = shortcut_data()
    eraser = fit_conditional_eraser(Z, a, y)
    with pytest.raises(ValueError, match="read-only"):
        eraser.left[0, 0] = 1.0
    again = ConditionalEraser.from_arrays(eraser.arrays())
    assert np.array_equal(again.apply(Z), eraser.apply(Z))


@pytest.mark.parametrize("call, message", [
    (lambda Z, a, y: fit_conditional_eraser(np.where(Z > 2, np.nan, Z), a, y),
     "Z holds NaN"),
    (lambda Z, a, y: fit_conditional_eraser(Z[:, 0], a, y), "Z must be a non-empty 2-D"),
    (lambda Z, a, y: fit_conditional_eraser(Z, a[:-1], y), "groups must be a vector"),
    (lambda Z, a, y: fit_conditional_eraser(Z, a, y[:-1]), "classes must be a vector"),
    (lambda Z, a, y: fit_conditional_eraser(Z, a + 0.5, y), "groups must hold integer"),
    (lambda Z, a, y: fit_conditional_eraser(Z, a - 1, y), "groups must hold integer"),
    (lambda Z, a, y: fit_conditional_eraser(Z, a, y, metric="cosine"), "metric must be"),
    (lambda Z, a, y: fit_conditional_eraser(Z, a, y).apply(Z[:, :-1]), "with 8 features"),
    (lambda Z, a, y: fit_conditional_eraser(Z, a, y).apply(np.full_like(Z, np.nan)),
     "Z holds NaN"),
])
def test_bad_input_is_a_value_error_naming_the_argument(call, message):
    Z, a, y = shortcut_data(n=100)
    with pytest.raises(ValueError, match=message):
        call(Z, a, y)


@pytest.mark.parametrize("arrays, message", [
    (dict(mean=np.zeros((2, 2)), left=np.zeros((2, 0)), right=np.zeros((2, 0))),
     "mean must be a non-empty vector"),
    (dict(mean=np.zeros(2), left=np.eye(3)[:, :1], right=np.eye(3)[:, :1]),
     r"left must have shape \(d, r\) with d = 2"),
    (dict(mean=np.zeros(2), left=np.eye(2)[:, :1], right=np.eye(2)),
     "left .* and right .* must have the same shape"),
    (dict(mean=[np.nan, 0], left=np.zeros((2, 0)), right=np.zeros((2, 0))), "NaN"),
    (dict(mean=np.zeros(2), left=np.eye(2)[:, :1], right=2 * np.eye(2)[:, :1]),
     "must be the identity"),
])
def test_inconsistent_arrays_are_not_an_eraser(arrays, message):
    with pytest.raises(ValueError, match=message):
        ConditionalEraser(**arrays)


def test_auto_rank_erases_the_shortcut_but_not_the_noise_between_its_estimates():
    # one shortcut column, two classes: two estimates of one direction. Erasing the
    # second singular direction (their noise) on six features would take the disease
    # column along; "auto" keeps only the shortcut.
    rng = np.random.default_rng(0)
    n = 600
    a = rng.integers(0, 2, n)
    y = (rng.random(n) < np.where(a == 1, 0.8, 0.2)).astype(int)
    Z = rng.normal(size=(n, 6))
    Z[:, 0] += 1.5 * y
    Z[:, 5] += 2.0 * a
    assert fit_conditional_eraser(Z, a, y, rank=None).rank == 2
    eraser = fit_conditional_eraser(Z, a, y)
    assert eraser.rank == 1
    Zt = eraser.apply(Z)
    assert np.corrcoef(Zt[:, 0], Z[:, 0])[0, 1] > 0.99  # the disease is kept
    for c in (0, 1):
        gap = Zt[(y == c) & (a == 1)].mean(0) - Zt[(y == c) & (a == 0)].mean(0)
        assert abs(gap[5]) < 0.1


def test_a_bad_rank_is_refused():
    Z, a, y = shortcut_data()
    with pytest.raises(ValueError, match="rank must be"):
        fit_conditional_eraser(Z, a, y, rank=-1)
