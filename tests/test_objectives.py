"""Specification tests for fairnoise.objectives: the adversarial losses and the Adversary."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from fairnoise.objectives import Adversary, confusion, mean_gap, neg_ce
from fairnoise.probe import TorchProbe, fit_probe

CPU = torch.device("cpu")


def _batches(mu, sd, counts, n_batches, seed=0):
    """``n_batches`` batches with ``counts[j]`` samples of cell ``j`` ~ N(mu[j], sd[j]²)."""
    g = torch.Generator().manual_seed(seed)
    cell = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    z = mu[cell] + sd[cell, None] * torch.randn(n_batches, len(cell), mu.shape[1], generator=g)
    return z, cell


def _true_gap(mu, counts, n_groups):
    """``Σ_c Σ_k p(c, k) ‖μ_ck − μ_c‖² / E`` for cells ``c * n_groups + k`` of fixed sizes."""
    counts = np.asarray(counts, float).reshape(-1, n_groups)
    mu = mu.numpy().reshape(counts.shape[0], n_groups, -1)
    p = counts / counts.sum(axis=1, keepdims=True)
    cls_mean = (p[..., None] * mu).sum(axis=1, keepdims=True)
    return float((counts[..., None] / counts.sum() * (mu - cls_mean) ** 2).sum(axis=(0, 1)).mean())


def _naive_gap(z, cell, counts, n_groups):
    """The plug-in squared gap of the sample means, without the sampling-noise correction."""
    counts = torch.tensor(counts, dtype=z.dtype).reshape(-1, n_groups)
    means = torch.stack([z[cell == j].mean(0) for j in range(counts.numel())])
    means = means.reshape(*counts.shape, -1)
    p = counts / counts.sum(dim=1, keepdim=True)
    cls_mean = (p[..., None] * means).sum(dim=1, keepdim=True)
    return float((counts[..., None] / counts.sum() * (means - cls_mean) ** 2).sum((0, 1)).mean())


def _grouped_embeddings(n=600, seed=0):
    """Embeddings whose first coordinate is shifted by the group (two groups, one class)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n)
    Z = rng.normal(size=(n, 6))
    Z[:, 0] += 0.8 * a
    return Z, a


# --------------------------------------------------------------------------------------
# mean_gap
# --------------------------------------------------------------------------------------


def test_mean_gap_is_unbiased_when_the_groups_do_not_differ():
    mu, sd, counts = torch.zeros(2, 16), torch.tensor([1.0, 2.0]), [6, 10]
    z, cell = _batches(mu, sd, counts, n_batches=1000)
    est = np.array([float(mean_gap(zb, cell, n_groups=2, n_classes=1)) for zb in z])
    se = est.std() / np.sqrt(len(est))
    assert abs(est.mean()) < 4 * se
    # the uncorrected squared gap is positive: sampling noise alone separates the means
    naive = np.mean([_naive_gap(zb, cell, counts, 2) for zb in z[:200]])
    assert naive > 50 * se


def test_mean_gap_is_unbiased_for_a_known_gap_within_classes():
    # two classes × three groups, unequal sizes, spreads and group means
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(6, 16, generator=g) * 0.5
    sd = torch.tensor([1.0, 0.5, 2.0, 1.5, 1.0, 0.7])
    counts = [5, 12, 8, 20, 3, 9]
    z, cell = _batches(mu, sd, counts, n_batches=1000, seed=2)
    est = np.array([float(mean_gap(zb, cell, n_groups=3, n_classes=2)) for zb in z])
    se = est.std() / np.sqrt(len(est))
    truth = _true_gap(mu, counts, n_groups=3)
    assert abs(est.mean() - truth) < 4 * se
    assert se < 0.05 * truth  # precise enough to tell a biased estimate apart


def test_mean_gap_of_a_single_group_per_class_is_zero():
    z = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
    cell = torch.tensor([0] * 5 + [3] * 5)  # class 0: group 0 only; class 1: group 1 only
    assert float(mean_gap(z, cell, n_groups=2, n_classes=2)) == pytest.approx(0.0, abs=1e-7)


def test_mean_gap_leaves_out_cells_with_fewer_than_two_samples():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(13, 4, generator=g)
    z[:6, 0] += 2.0
    cell = torch.tensor([0] * 6 + [1] * 6 + [2])  # cell 2 (group 2) holds one sample
    values = []
    for far in (0.0, 1e3, -1e6):
        z[12] = far
        values.append(float(mean_gap(z, cell, n_groups=3, n_classes=1)))
    assert np.isfinite(values).all()
    assert values[0] == values[1] == values[2]
    assert values[0] > 0.1  # the two groups that count still differ (true gap 0.25)


def test_variance_cap_keeps_an_inflated_spread_from_lowering_the_estimate():
    # The edit keeps every group's mean and multiplies the spread around it by s. Uncapped,
    # the sampling-noise correction grows like s² and rewards this (the additive edit drove
    # the estimate to about -150 clean gaps while a fresh probe still read the group).
    Z, a = _grouped_embeddings()
    cls = np.zeros(len(a), int)
    adv = Adversary("mean_gap", None, a, cls, Z, CPU)
    cell_mean = np.stack([Z[a == k].mean(0) for k in range(2)])[a]
    rng = np.random.default_rng(0)
    batches = [rng.choice(len(a), 64, replace=False) for _ in range(40)]

    def average_loss(s, capped=True):
        Ze = torch.as_tensor(cell_mean + s * (Z - cell_mean), dtype=torch.float32)
        if capped:
            return np.mean([float(adv(Ze[idx], idx)) for idx in batches])
        zs = adv.whiten(Ze)
        return np.mean([float(mean_gap(zs[idx], torch.as_tensor(a[idx]), 2, 1)) / adv.gap0
                        for idx in batches])

    clean = average_loss(1.0)
    assert average_loss(100.0, capped=False) < clean - 100  # the exploit the cap closes
    for s in (3.0, 10.0, 100.0):
        assert average_loss(s) >= clean


def test_variance_cap_still_corrects_a_coordinate_that_was_constant_within_groups():
    # Coordinate 0 is the group itself (no spread within a cell). An edit that replaces it
    # by group-independent noise removes the gap; the cap, floored at the coordinate's
    # overall variance, must still let the sampling noise be corrected (estimate ≈ 0).
    rng = np.random.default_rng(0)
    n = 2000
    a = rng.integers(0, 2, n)
    Z = rng.normal(size=(n, 3))
    Z[:, 0] = a
    adv = Adversary("mean_gap", None, a, np.zeros(n, int), Z, CPU)
    Z_edit = Z.copy()
    Z_edit[:, 0] = rng.normal(0.5, 0.5, n)
    ze = torch.as_tensor(Z_edit, dtype=torch.float32)
    losses = []
    for _ in range(200):
        idx = rng.choice(n, 32, replace=False)
        losses.append(float(adv(ze[idx], idx)))
    se = np.std(losses) / np.sqrt(len(losses))
    assert abs(np.mean(losses)) < 4 * se


# --------------------------------------------------------------------------------------
# The Adversary with mean_gap
# --------------------------------------------------------------------------------------


def test_mean_gap_adversary_is_one_on_the_clean_training_embeddings():
    Z, a = _grouped_embeddings()
    adv = Adversary("mean_gap", None, a, np.zeros(len(a), int), Z, CPU)
    loss = adv(torch.as_tensor(Z, dtype=torch.float32), np.arange(len(a)))
    assert float(loss) == pytest.approx(1.0, abs=1e-5)


def _class_linked_groups(n=4000, seed=0):
    """Group shifts coordinate 1; the class shifts coordinate 0 and changes the group shares."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = (rng.random(n) < np.where(y == 1, 0.8, 0.2)).astype(int)
    noise = rng.normal(size=(n, 4))
    Z = noise.copy()
    Z[:, 0] += 2.0 * y
    Z[:, 1] += 1.0 * a
    Z_no_group = noise.copy()  # the group effect removed, the class effect kept
    Z_no_group[:, 0] += 2.0 * y
    return Z, Z_no_group, a, y


def test_conditional_mean_gap_is_zero_when_groups_coincide_within_each_class():
    Z, Z_edit, a, y = _class_linked_groups()
    adv = Adversary("mean_gap", None, a, y, Z, CPU)
    rng = np.random.default_rng(1)
    ze = torch.as_tensor(Z_edit, dtype=torch.float32)
    losses = []
    for _ in range(200):
        idx = rng.choice(len(a), 128, replace=False)
        losses.append(float(adv(ze[idx], idx)))
    se = np.std(losses) / np.sqrt(len(losses))
    assert abs(np.mean(losses)) < 4 * se


def test_unconditional_mean_gap_still_sees_the_group_the_class_explains():
    Z, Z_edit, a, y = _class_linked_groups()
    adv = Adversary("mean_gap", None, a, np.zeros(len(a), int), Z, CPU)
    full = np.arange(len(a))
    loss = float(adv(torch.as_tensor(Z_edit, dtype=torch.float32), full))
    assert loss > 0.2  # the group still shifts coordinate 0, through the class


# --------------------------------------------------------------------------------------
# neg_ce and confusion
# --------------------------------------------------------------------------------------


def test_neg_ce_is_minus_the_mean_cross_entropy():
    logits = torch.tensor([[0.0, np.log(3.0)], [0.0, 0.0]])
    a = torch.tensor([1, 0])
    expected = (np.log(3 / 4) + np.log(1 / 2)) / 2
    assert float(neg_ce(logits, a)) == pytest.approx(expected, rel=1e-6)


def test_confusion_is_zero_when_the_probe_outputs_the_prior():
    prior = torch.tensor([[0.3, 0.7, 0.0], [0.5, 0.25, 0.25]])
    logits = torch.log(prior.clamp_min(1e-30)) + torch.tensor([[4.0], [-2.0]])
    logits[0, 2] = -30.0  # an absent group, as TorchProbe gives it
    assert float(confusion(logits, prior)) == pytest.approx(0.0, abs=1e-6)


def test_confusion_is_the_kl_divergence_from_the_prior_and_positive_otherwise():
    prior = torch.tensor([[0.3, 0.7, 0.0], [0.5, 0.25, 0.25], [0.5, 0.25, 0.25]])
    logits = torch.randn(3, 3, generator=torch.Generator().manual_seed(0))
    p, q = torch.softmax(logits, 1).numpy(), prior.numpy()
    kl = np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0) / p), 0.0).sum(axis=1)
    value = float(confusion(logits, prior))
    assert value == pytest.approx(np.mean(kl), rel=1e-5)
    assert value > 0


# --------------------------------------------------------------------------------------
# The Adversary with a probe
# --------------------------------------------------------------------------------------


def _probe_setup(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = (rng.random(n) < np.where(y == 1, 0.75, 0.25)).astype(int)
    Z = rng.normal(size=(n, 3))
    Z[:, 0] += 1.5 * a
    probes = [fit_probe(LogisticRegression(), Z[y == j], a[y == j]) for j in range(2)]
    probe = TorchProbe(probes, 2, np.ones((2, 2), bool), CPU)
    return Z, a, y, probe


def test_adversary_prior_is_the_share_of_each_group_within_each_class():
    Z, a, y, probe = _probe_setup()
    adv = Adversary("confusion", probe, a, y, Z, CPU)
    expected = [[np.mean(a[y == c] == k) for k in range(2)] for c in range(2)]
    np.testing.assert_allclose(adv.prior.numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("objective", ["neg_ce", "confusion"])
def test_adversary_scores_each_sample_with_its_group_class_and_probe(objective):
    Z, a, y, probe = _probe_setup()
    adv = Adversary(objective, probe, a, y, Z, CPU)
    idx = np.array([5, 17, 3, 250, 99, 42])
    z = torch.as_tensor(Z[idx], dtype=torch.float32)
    logits = probe.logits(z, torch.as_tensor(y[idx]))
    if objective == "neg_ce":
        expected = -F.cross_entropy(logits, torch.as_tensor(a[idx]))
    else:
        expected = confusion(logits, adv.prior[torch.as_tensor(y[idx])])
    assert float(adv(z, idx)) == pytest.approx(float(expected), rel=1e-6)


def test_with_samples_keeps_probe_prior_and_scale_and_replaces_the_labels():
    Z, a = _grouped_embeddings()
    cls = np.zeros(len(a), int)
    adv = Adversary("mean_gap", None, a, cls, Z, CPU)
    Z_val, a_val = _grouped_embeddings(n=200, seed=1)
    Z_val = 3.0 * Z_val + 1.0  # a different scale: the training standardisation must stay
    other = adv.with_samples(a_val, np.zeros(200, int))
    for name in ("probe", "prior", "whiten", "var_cap", "gap0"):
        assert getattr(other, name) is getattr(adv, name)
    np.testing.assert_array_equal(adv.a.numpy(), a)  # the original still judges its own
    zv = torch.as_tensor(Z_val, dtype=torch.float32)
    zs = adv.whiten(zv)
    expected = mean_gap(zs, torch.as_tensor(a_val), 2, 1, adv.var_cap) / adv.gap0
    assert float(other(zv, np.arange(200))) == pytest.approx(float(expected), rel=1e-6)


def test_mean_gap_does_not_depend_on_the_encoders_scale_or_rotation():
    # Whitened by the within-cell covariance, the loss of an edit is the same whether the
    # encoder outputs Z, 1000·Z or a rotation of Z (a probe reads them all the same).
    Z, a = _grouped_embeddings()
    cls = np.zeros(len(a), int)
    rng = np.random.default_rng(3)
    rot, _ = np.linalg.qr(rng.normal(size=(Z.shape[1], Z.shape[1])))
    edited = Z + rng.normal(scale=0.3, size=Z.shape)
    losses = []
    for f in (lambda M: M, lambda M: 1000.0 * M, lambda M: M @ rot):
        adv = Adversary("mean_gap", None, a, cls, f(Z), CPU)
        z = torch.as_tensor(f(edited), dtype=torch.float32)
        losses.append(float(adv(z, np.arange(len(a)))))
    np.testing.assert_allclose(losses, losses[0], rtol=1e-3)


def test_mean_gap_is_not_blown_up_by_near_dead_dimensions():
    # A pretrained encoder's dead units have a clean spread near 0; an edit that moves
    # them a little must not look hundreds of times worse than the identity (seen through
    # EfficientNet-Lite0 with a per-coordinate standardisation).
    Z, a = _grouped_embeddings()
    n = len(a)
    rng = np.random.default_rng(4)
    Z = np.c_[Z, 1e-6 * rng.normal(size=(n, 20))]
    adv = Adversary("mean_gap", None, a, np.zeros(n, int), Z, CPU)
    edited = Z.copy()
    edited[:, -20:] += 1e-3 * rng.normal(size=(n, 20))  # the dead units wake up a little
    assert float(adv(torch.as_tensor(edited, dtype=torch.float32), np.arange(n))) < 3.0
