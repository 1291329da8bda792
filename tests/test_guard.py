"""The do-no-harm guard: validated candidates, the identity fallback, erasers, overflow."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from conftest import make_encoder, make_marker_images

from fairnoise import DebiasedNoiseTransformer, GeZONoiseTransformer, NoSafeEditWarning
from fairnoise._guard import balancing_weights, holdout_split
from fairnoise.metrics import leakage_auc
from fairnoise.optim import Trace, minimise_minibatch

FAST = dict(max_epochs=3, batch_size=64, random_state=0)
#: the "spread" shortcut's disease and group directions (orthogonal, over every feature)
DISEASE = np.array([1, 1, 1, -1, -1, -1]) / np.sqrt(6)
SHIFT = np.ones(6) / np.sqrt(6)


def _confounded_features(n=600, shortcut="column", seed=0, prevalence=0.8):
    """Features with a disease column and a group shortcut (one column, spread, or none);
    the disease's ``prevalence`` in group 1 is its absence in group 0."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n)
    y = (rng.random(n) < np.where(a == 1, prevalence, 1 - prevalence)).astype(int)
    X = rng.normal(size=(n, 6))
    X[:, 0] += 1.5 * y
    if shortcut == "column":
        X[:, 5] += 2.0 * a
    elif shortcut == "spread":  # the disease and the group shift spread over every column:
        X[:, 0] -= 1.5 * y          # a mask keeps part of the shift or loses the disease
        X += np.outer(1.5 * y, DISEASE) + np.outer(2.0 * a, SHIFT)
    return X, y, a


# -- the split and the weights ------------------------------------------------------------------
def test_holdout_split_is_stratified_and_keeps_every_cell_in_training():
    a = np.r_[np.zeros(90, int), np.ones(20, int)]
    y = np.r_[np.arange(90) % 2, np.arange(20) % 2]
    tr, va = holdout_split(a, y, 0.2, seed=0)
    assert np.intersect1d(tr, va).size == 0 and len(tr) + len(va) == 110
    for g in (0, 1):
        for c in (0, 1):
            cell = (a == g) & (y == c)
            assert cell[va].sum() == round(0.2 * cell.sum()) and cell[tr].sum() >= 1


def test_holdout_split_refuses_a_validation_part_too_small_to_judge():
    a, y = np.array([0, 1] * 20), np.repeat([0, 1], 20)
    assert holdout_split(a, y, 0.2, seed=0) is None  # 8 validation samples


def test_balancing_weights_make_group_and_class_independent():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 3, 500)
    y = (rng.random(500) < 0.2 + 0.3 * a).astype(int)
    w = balancing_weights(a, y)
    mass = np.array([[w[(a == g) & (y == c)].sum() for c in (0, 1)] for g in range(3)])
    np.testing.assert_allclose(mass, mass.mean())


# -- the verdicts -------------------------------------------------------------------------------
def test_without_a_shortcut_the_identity_is_kept_with_a_plain_warning():
    rng = np.random.default_rng(1)
    n = 600
    a = rng.integers(0, 2, n)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, 6))
    X[:, 0] += 1.5 * y
    t = DebiasedNoiseTransformer(edit="masked", **FAST)
    with pytest.warns(NoSafeEditWarning, match="kept the identity edit"):
        t.fit(X, y, sensitive_features=a)
    assert t.edit_.is_identity
    assert t.validation_["selected"].tolist()[0]
    np.testing.assert_array_equal(t.transform(X), X.astype(t.transform(X).dtype))


def test_a_local_shortcut_is_removed_and_the_choice_is_recorded():
    X, y, a = _confounded_features()
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoSafeEditWarning)
        t = DebiasedNoiseTransformer(**FAST).fit(X, y, sensitive_features=a)
    table = t.validation_
    assert list(table.columns) == ["candidate", "lambda_reg", "erase", "cond_leakage",
                                   "task_auc", "selected"]
    assert table["selected"].sum() == 1
    chosen = table[table["selected"]].iloc[0]
    assert chosen["cond_leakage"] <= table.iloc[0]["cond_leakage"] - 0.02
    Xt, yt, at = _confounded_features(seed=5)
    before = leakage_auc(X, a, y=y, Z_test=Xt, sensitive_features_test=at, y_test=yt)
    after = leakage_auc(t.transform(X), a, y=y, Z_test=t.transform(Xt),
                        sensitive_features_test=at, y_test=yt)
    assert after < before - 0.2


def test_a_spread_shortcut_is_left_to_the_embedding_eraser():
    # the group shift is spread over every column, with the disease: no mask removes one
    # without the other; the eraser can, and beats every input edit by the eraser margin
    X, y, a = _confounded_features(shortcut="spread")
    t = DebiasedNoiseTransformer(**FAST).fit(X, y, sensitive_features=a)
    chosen = t.validation_[t.validation_["selected"]].iloc[0]
    assert chosen["erase"]
    assert t.edit_.eraser is not None
    Z = t.transform(X)
    for c in (0, 1):  # the within-class group gap (2.0 along one direction) is down to noise
        gap = Z[(y == c) & (a == 1)].mean(0) - Z[(y == c) & (a == 0)].mean(0)
        assert np.linalg.norm(gap) < 0.3
    # the disease direction survives: a task head still reads it
    assert np.corrcoef(Z @ DISEASE, y)[0, 1] > 0.4


@pytest.mark.parametrize("cls", [DebiasedNoiseTransformer, GeZONoiseTransformer])
def test_the_unconditional_adversary_is_guarded_too(cls):
    # no shortcut, but the group predicts the disease: an adversary blind to y hides the
    # group by hiding the disease column, and only the guard (which judges within each
    # class of y whatever `conditional` is) stops that edit
    X, y, a = _confounded_features(shortcut=None, prevalence=0.9)
    params = dict(conditional=False, **FAST)
    unguarded = cls(validation_fraction=None, **params).fit(X, y, sensitive_features=a)
    assert abs(np.corrcoef(unguarded.transform(X)[:, 0], y)[0, 1]) < 0.1  # the disease gone
    with pytest.warns(NoSafeEditWarning, match="kept the identity edit"):
        t = cls(**params).fit(X, y, sensitive_features=a)
    assert not isinstance(t.sa_probe_, dict)  # the adversary stayed unconditional
    table = t.validation_
    assert table["selected"].tolist()[0] and t.edit_.is_identity
    assert (table["task_auc"].iloc[1:] < table["task_auc"].iloc[0] - 0.01).any()
    np.testing.assert_array_equal(t.transform(X), X.astype(t.transform(X).dtype))


def test_erase_false_and_no_validation_keep_the_plain_edit():
    X, y, a = _confounded_features(shortcut="spread")
    t = DebiasedNoiseTransformer(erase=False, **FAST).fit(X, y, sensitive_features=a)
    assert not t.validation_["erase"].any() and t.edit_.eraser is None
    t = DebiasedNoiseTransformer(validation_fraction=None, **FAST).fit(
        X, y, sensitive_features=a)
    assert not hasattr(t, "validation_") and t.edit_.eraser is None


def test_too_little_data_to_validate_says_so_and_learns_one_edit():
    X, y, a = _confounded_features(n=60)
    X, y, a = X[:40], y[:40], a[:40]
    with pytest.warns(UserWarning, match="too few samples per group and class"):
        t = DebiasedNoiseTransformer(**FAST).fit(X, y, sensitive_features=a)
    assert not hasattr(t, "validation_")


def test_erase_true_where_it_cannot_apply_is_refused_naming_why():
    X, y, a = _confounded_features()
    with pytest.raises(ValueError, match="erase=True.*; here output='images'"):
        DebiasedNoiseTransformer(erase=True, output="images", **FAST).fit(
            X, y, sensitive_features=a)
    with pytest.raises(ValueError, match="standardize=True.*; here the inputs are feature"):
        DebiasedNoiseTransformer(standardize=True, **FAST).fit(X, y, sensitive_features=a)
    with pytest.raises(ValueError, match="erase=True.*; here validation_fraction=None\\. Use"):
        DebiasedNoiseTransformer(erase=True, validation_fraction=None, **FAST).fit(
            X, y, sensitive_features=a)
    continuous = np.linspace(0, 1, len(X))  # accepted with conditional=False, not judged
    with pytest.raises(ValueError, match="erase=True.*; here y is a continuous target"):
        DebiasedNoiseTransformer(erase=True, conditional=False, **FAST).fit(
            X, continuous, sensitive_features=a)
    with pytest.raises(ValueError, match="erase=True.*; here y was not given"):
        DebiasedNoiseTransformer(erase=True, **FAST).fit(X, sensitive_features=a)


def test_an_erased_edit_refuses_output_images_instead_of_dropping_the_eraser():
    X, y, a = _confounded_features(shortcut="spread")
    t = DebiasedNoiseTransformer(**FAST).fit(X, y, sensitive_features=a)
    assert t.edit_.eraser is not None
    with pytest.raises(ValueError, match="embedding eraser"):
        t.set_params(output="images").transform(X)


def test_the_erased_edit_pickles_and_ships(tmp_path):
    from fairnoise import load_noise

    X, y, a = _confounded_features(shortcut="spread")
    t = DebiasedNoiseTransformer(**FAST).fit(X, y, sensitive_features=a)
    expected = t.transform(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(t)).transform(X), expected)
    path = t.export_noise(tmp_path / "edit.npz")
    np.testing.assert_allclose(load_noise(path).transform(X), expected, rtol=1e-6, atol=1e-6)


def test_images_judge_standardisation_and_report_every_candidate():
    X, y, a = make_marker_images(n=240)
    t = DebiasedNoiseTransformer(make_encoder(), **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoSafeEditWarning)
        t.fit(X, y, sensitive_features=a)
    names = set(t.validation_["candidate"])
    assert {"identity", "standardize"} <= names
    assert t.validation_["erase"].any()
    assert t.transform(X).shape == (len(X), t.n_features_out_)
    curve = t.validation_loss_curve_  # the unedited inputs' loss first, then each epoch's
    assert len(curve) > len(t.validation_["lambda_reg"].dropna().unique())
    assert np.isfinite(curve).all()


def test_gezo_is_guarded_too_and_the_guard_stays_within_the_budget():
    X, y, a = make_marker_images(n=240)
    budget = 240 * 12  # less than the search alone would spend (10 epochs)
    t = GeZONoiseTransformer(make_encoder(), max_epochs=10, batch_size=64, n_directions=2,
                             max_queries=budget, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "ran out" warning
        warnings.simplefilter("ignore", NoSafeEditWarning)
        t.fit(X, y, sensitive_features=a)
    assert "standardize" in set(t.validation_["candidate"])
    assert budget - 64 * 6 < t.n_queries_ <= budget  # the search used what the guard left


def test_a_guarded_warm_start_with_other_groups_is_a_value_error():
    X, y, a = make_marker_images(n=240)
    t = GeZONoiseTransformer(make_encoder(), max_epochs=1, batch_size=64, n_directions=2,
                             warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoSafeEditWarning)
        t.fit(X, y, sensitive_features=a)
    spent = t.n_queries_
    with pytest.raises(ValueError, match="sensitive_features or y differ"):
        t.fit(X, y, sensitive_features=1 - a)
    assert t.n_queries_ == spent  # refused before anything was sent


def test_a_guarded_gezo_budget_below_one_pass_is_refused_before_sending():
    X, y, a = make_marker_images(n=240)
    for standardize, times in [("auto", "twice"), (False, "once")]:
        t = GeZONoiseTransformer(make_encoder(), max_queries=100, random_state=0,
                                 standardize=standardize)
        with pytest.raises(ValueError, match=f"too few to embed the 240 training inputs "
                                             f"{times} for the sensitive-attribute probe and "
                                             "the validation part"):
            t.fit(X, y, sensitive_features=a)
        assert t.n_queries_ == 0


# -- overflow and divergence ----------------------------------------------------------------------
def test_an_overflowing_edit_stops_fit_with_its_cause_and_keeps_a_finite_edit():
    X, y, a = make_marker_images(n=120)
    t = DebiasedNoiseTransformer(make_encoder(), edit="additive", learning_rate=1e30,
                                 validation_fraction=None, max_epochs=2, batch_size=64,
                                 random_state=0)
    with pytest.raises(ValueError, match="the edit overflowed.*learning_rate=1e\\+30"):
        t.fit(X, y, sensitive_features=a)
    assert np.isfinite(t.noise_).all()
    assert np.isfinite(t.transform(X)).all()


class _NaNOnEdited(torch.nn.Module):
    """Finite on the clean images, NaN once any pixel is changed by the edit."""

    def __init__(self, clean: np.ndarray) -> None:
        super().__init__()
        self.inner = make_encoder()
        self.register_buffer("clean_sum", torch.as_tensor(float(clean.sum())))
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.inner(x)
        self.seen += 1
        return z if self.seen <= 2 else z * float("nan")


def test_an_encoder_returning_nan_on_edited_inputs_is_named():
    X, y, a = make_marker_images(n=120)
    t = DebiasedNoiseTransformer(_NaNOnEdited(X), validation_fraction=None, max_epochs=2,
                                 batch_size=64, random_state=0)
    with pytest.raises(ValueError, match="the encoder returned NaN or infinity"):
        t.fit(X, y, sensitive_features=a)
    assert np.isfinite(t.mask_).all()


def test_minimise_minibatch_keeps_the_best_held_out_iterate_and_stops_on_divergence():
    data = torch.linspace(0.0, 1.0, 50)

    def batch_loss(idx, theta):
        return ((data[idx] - theta) ** 2).mean()

    # the held-out loss is best at the start and explodes: the start is returned
    values = iter([1.0, 0.9, 5.0, 0.1])
    trace = Trace()
    theta, curve = minimise_minibatch(
        batch_loss, torch.zeros(()), 50, batch_size=10, learning_rate=0.1, max_epochs=10,
        tol=0.0, n_iter_no_change=5, project=lambda t: t, held_out=lambda t: next(values),
        generator=torch.Generator().manual_seed(0), trace=trace)
    assert trace.diverged_at == 2 and trace.best_epoch == 1 and len(curve) == 2
    assert trace.held_out == [1.0, 0.9, 5.0]
    assert float(theta) != 0.0  # epoch 1's iterate, not the last (diverged) one


def test_a_guarded_fit_is_bit_identical_for_a_fixed_seed():
    X, y, a = make_marker_images(n=240)
    outs = []
    for _ in range(2):
        t = DebiasedNoiseTransformer(make_encoder(), **FAST)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoSafeEditWarning)
            outs.append((t.fit(X, y, sensitive_features=a).transform(X), t.validation_))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    assert outs[0][1].equals(outs[1][1])


def test_an_inverted_probe_counts_as_leakage():
    # a probe whose AUC is 0.3 reads the group as well as one at 0.7: the guard folds it
    from fairnoise._guard import Judge

    X, y, a = _confounded_features()
    judge = Judge(*holdout_split(a, y, 0.2, seed=0), a, y, seed=0)
    Z = X.copy()
    flipped = np.where(np.isin(np.arange(len(a)), judge.va), -1.0, 1.0)
    Z[:, 5] = 2.0 * (a - 0.5) * flipped  # train: +group, validation: -group
    judge.add("flipped", Z)
    assert judge.rows[0]["cond_leakage"] > 0.9


def _judge_with(rows):
    from fairnoise._guard import Judge

    X, y, a = _confounded_features()
    judge = Judge(*holdout_split(a, y, 0.2, seed=0), a, y, seed=0)
    judge.rows = [{"candidate": name, "erase": erase, "cond_leakage": leak, "task_auc": auc}
                  for name, erase, leak, auc in rows]
    return judge


@pytest.mark.parametrize(("eraser_leak", "chosen"), [
    (0.5, 2),     # the eraser beats the best plain candidate by more than the margin: kept
    (0.7, 1),     # by less: the validation probe over-rates erasers, the plain one is kept
    (0.8, 1),     # worse: the plain one, as before
])
def test_an_erased_candidate_must_beat_the_best_plain_one_by_the_eraser_margin(
        eraser_leak, chosen):
    from fairnoise._guard import ERASER_MARGIN

    assert ERASER_MARGIN == pytest.approx(0.1)
    judge = _judge_with([("identity", False, 1.0, 0.9), ("masked edit", False, 0.75, 0.9),
                         ("masked edit", True, eraser_leak, 0.9),
                         ("standardize", False, 0.875, 0.9)])
    assert judge.choose(auc_tolerance=0.01, min_leakage_drop=0.02) == chosen


def test_an_erased_candidate_is_kept_where_no_plain_one_is_safe_and_useful():
    judge = _judge_with([("identity", False, 0.95, 0.90),
                         ("masked edit", False, 0.70, 0.80),  # costs task AUC
                         ("standardize", False, 0.94, 0.90),  # removes too little
                         ("identity", True, 0.69, 0.90)])
    assert judge.choose(auc_tolerance=0.01, min_leakage_drop=0.02) == 3
    # and nothing safe and useful at all: the identity
    judge.rows[3]["task_auc"] = 0.5
    assert judge.choose(auc_tolerance=0.01, min_leakage_drop=0.02) == 0
