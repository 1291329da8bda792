"""Specification tests for fairnoise.probe: the sensitive-attribute probe and its torch logits."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from fairnoise.probe import TorchProbe, TorchProbeClassifier, check_probe, fit_probe

CPU = torch.device("cpu")
ABSENT = -30.0


def _embeddings(n=120, n_groups=2, seed=0):
    """Embeddings off-centre and of unequal scales (so the folded scaler matters)."""
    rng = np.random.default_rng(seed)
    a = np.arange(n) % n_groups
    Z = rng.normal(size=(n, 4)) * [1.0, 10.0, 0.1, 3.0] + [5.0, -2.0, 0.0, 1.0]
    Z[:, 0] += 0.8 * a
    return Z, a


def _torch(Z):
    return torch.as_tensor(Z, dtype=torch.float32)


def _single_probe(pipe, n_groups):
    return TorchProbe([pipe], n_groups, np.ones((1, n_groups), bool), CPU)


# --------------------------------------------------------------------------------------
# TorchProbe reproduces scikit-learn
# --------------------------------------------------------------------------------------


def test_binary_logits_are_zero_and_the_decision_function():
    Z, a = _embeddings()
    pipe = fit_probe(LogisticRegression(), Z, a)
    logits = _single_probe(pipe, 2).logits(_torch(Z), torch.zeros(len(Z), dtype=torch.long))
    assert torch.equal(logits[:, 0], torch.zeros(len(Z)))
    np.testing.assert_allclose(logits[:, 1].numpy(), pipe.decision_function(Z),
                               rtol=1e-4, atol=1e-4)


def test_binary_log_softmax_is_predict_log_proba():
    Z, a = _embeddings()
    pipe = fit_probe(LogisticRegression(), Z, a)
    logits = _single_probe(pipe, 2).logits(_torch(Z), torch.zeros(len(Z), dtype=torch.long))
    np.testing.assert_allclose(torch.log_softmax(logits, 1).numpy(), pipe.predict_log_proba(Z),
                               rtol=1e-4, atol=1e-4)


def test_multinomial_logits_are_the_decision_function():
    Z, a = _embeddings(n_groups=3)
    pipe = fit_probe(LogisticRegression(), Z, a)
    logits = _single_probe(pipe, 3).logits(_torch(Z), torch.zeros(len(Z), dtype=torch.long))
    np.testing.assert_allclose(logits.numpy(), pipe.decision_function(Z), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(torch.log_softmax(logits, 1).numpy(), pipe.predict_log_proba(Z),
                               rtol=1e-4, atol=1e-4)


def test_logits_are_differentiable_with_the_folded_coefficients_as_gradient():
    Z, a = _embeddings()
    pipe = fit_probe(LogisticRegression(), Z, a)
    z = _torch(Z[:5]).requires_grad_(True)
    logits = _single_probe(pipe, 2).logits(z, torch.zeros(5, dtype=torch.long))
    logits[:, 1].sum().backward()
    expected = pipe[-1].coef_[0] / pipe[0].scale_
    np.testing.assert_allclose(z.grad.numpy(), np.tile(expected, (5, 1)), rtol=1e-5)


def _conditional_probe():
    """Class 0 holds groups 0, 1, 2; class 1 holds 0 and 2; class 2 holds only group 1."""
    Z, a = _embeddings(n=180, n_groups=3)
    y = np.zeros(len(a), int)
    y[(np.arange(len(a)) % 2 == 1) & (a != 1)] = 1
    y[(np.arange(len(a)) % 2 == 1) & (a == 1)] = 2
    present = np.array([[True, True, True], [True, False, True], [False, True, False]])
    probes = [fit_probe(LogisticRegression(), Z[y == 0], a[y == 0]),
              fit_probe(LogisticRegression(), Z[y == 1], a[y == 1]), None]
    return Z, a, y, probes, TorchProbe(probes, 3, present, CPU)


def test_each_sample_is_judged_by_the_probe_of_its_class():
    Z, a, y, probes, probe = _conditional_probe()
    logits = probe.logits(_torch(Z), torch.as_tensor(y)).numpy()
    np.testing.assert_allclose(logits[y == 0], probes[0].decision_function(Z[y == 0]),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(logits[y == 1][:, 2], probes[1].decision_function(Z[y == 1]),
                               rtol=1e-4, atol=1e-4)


def test_a_group_absent_from_a_class_gets_the_absent_logit():
    Z, a, y, probes, probe = _conditional_probe()
    logits = probe.logits(_torch(Z), torch.as_tensor(y)).numpy()
    assert (logits[y == 1][:, 1] == ABSENT).all()
    np.testing.assert_allclose(
        torch.log_softmax(torch.as_tensor(logits[y == 1][:, [0, 2]]), 1).numpy(),
        probes[1].predict_log_proba(Z[y == 1]), rtol=1e-4, atol=1e-4)


def test_a_multinomial_probe_missing_a_group_fills_the_columns_of_its_groups():
    Z, a = _embeddings(n_groups=3)
    codes = np.array([0, 1, 3])[a]  # group 2 of four never occurs
    pipe = fit_probe(LogisticRegression(), Z, codes)
    probe = TorchProbe([pipe], 4, np.array([[True, True, False, True]]), CPU)
    logits = probe.logits(_torch(Z), torch.zeros(len(Z), dtype=torch.long)).numpy()
    np.testing.assert_allclose(logits[:, [0, 1, 3]], pipe.decision_function(Z),
                               rtol=1e-4, atol=1e-4)
    assert (logits[:, 2] == ABSENT).all()


def test_a_class_with_a_single_group_always_names_that_group():
    Z, a, y, probes, probe = _conditional_probe()
    logits = probe.logits(_torch(Z), torch.as_tensor(y))[torch.as_tensor(y == 2)]
    assert torch.equal(logits, torch.tensor([[ABSENT, 0.0, ABSENT]]).expand_as(logits))


def test_logits_when_every_class_holds_a_single_group():
    # the group is fully determined by y: a conditional fit with a probe objective
    # (neg_ce/confusion) and y == sensitive_features reaches this
    present = np.array([[True, False], [False, True]])
    probe = TorchProbe([None, None], 2, present, CPU)
    logits = probe.logits(torch.zeros(4, 3), torch.tensor([0, 1, 0, 1]))
    assert torch.equal(logits, torch.tensor([[0.0, ABSENT], [ABSENT, 0.0]] * 2))


# --------------------------------------------------------------------------------------
# A torch module as probe
# --------------------------------------------------------------------------------------


def _module(seed=0, dropout=0.0):
    """A small MLP probe with weights drawn from a local generator."""
    g = torch.Generator().manual_seed(seed)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(dropout),
                                 torch.nn.Tanh(), torch.nn.Linear(8, 2))
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return module


def test_torch_probe_classifier_does_not_touch_the_callers_module():
    module = _module().eval().requires_grad_(False)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    Z, a = _embeddings()
    clf = TorchProbeClassifier(module, max_epochs=20).fit(Z, a)
    assert clf.module_ is not module
    assert not module.training
    assert not any(p.requires_grad for p in module.parameters())
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k])
    assert not torch.equal(clf.module_.state_dict()["0.weight"], before["0.weight"])


def test_torch_probe_classifier_learns_the_groups_and_keeps_their_labels():
    Z, a = _embeddings()
    Zs = StandardScaler().fit_transform(Z)
    Zs[:, 0] += 3.0 * a  # well separated groups
    labels = np.array(["F", "M"])[a]
    clf = TorchProbeClassifier(_module(), max_epochs=200).fit(Zs, labels)
    assert clf.classes_.tolist() == ["F", "M"]
    assert clf.predict_proba(Zs).shape == (len(Z), 2)
    assert clf.score(Zs, labels) > 0.9


def test_torch_probe_classifier_draws_from_its_own_seed_not_the_global_one():
    Z, a = _embeddings()
    module = _module(dropout=0.5)
    state = torch.get_rng_state()
    first = TorchProbeClassifier(module, max_epochs=5).fit(Z, a)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is untouched
    torch.rand(10)  # move the global generator on: the result must not depend on it
    second = TorchProbeClassifier(module, max_epochs=5).fit(Z, a)
    other_seed = TorchProbeClassifier(module, max_epochs=5, random_state=1).fit(Z, a)
    w = [c.module_.state_dict()["3.weight"] for c in (first, second, other_seed)]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])


def test_clone_of_torch_probe_classifier_shares_the_module():
    module = _module()
    assert clone(TorchProbeClassifier(module, max_epochs=3)).module is module


def test_torch_probe_evaluates_a_fitted_module_on_standardised_embeddings():
    Z, a = _embeddings()
    pipe = fit_probe(TorchProbeClassifier(_module(), max_epochs=20), Z, a)
    logits = _single_probe(pipe, 2).logits(_torch(Z), torch.zeros(len(Z), dtype=torch.long))
    with torch.no_grad():
        expected = pipe[-1].module_(_torch(pipe[0].transform(Z)))
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_torch_probe_classifier_rejects_a_module_with_too_few_outputs():
    Z, a = _embeddings(n_groups=3)
    with pytest.raises(ValueError, match=r"sa_probe module must map embeddings to "
                       r"\(n_samples, n_groups\) logits; it returned shape \(120, 2\)"):
        TorchProbeClassifier(_module(), max_epochs=2).fit(Z, a)


# --------------------------------------------------------------------------------------
# check_probe and fit_probe
# --------------------------------------------------------------------------------------


def test_check_probe_defaults_to_logistic_regression():
    probe = check_probe(None)
    assert isinstance(probe, LogisticRegression) and not hasattr(probe, "coef_")


def test_check_probe_wraps_a_module_and_passes_a_classifier_through():
    module = _module()
    wrapped = check_probe(module)
    assert isinstance(wrapped, TorchProbeClassifier) and wrapped.module is module
    lr = LogisticRegression(C=0.5)
    assert check_probe(lr) is lr


@pytest.mark.parametrize("bad", ["logistic", 3, object()])
def test_check_probe_rejects_what_is_not_a_classifier_or_module(bad):
    with pytest.raises(TypeError, match="sa_probe must be None, a scikit-learn classifier "
                       "exposing coef_ and intercept_ after fit, or a torch.nn.Module; got "
                       + type(bad).__name__):
        check_probe(bad)


def test_check_probe_rejects_an_estimator_class_naming_sa_probe():
    Z, a = _embeddings()
    with pytest.raises(TypeError, match="sa_probe"):
        fit_probe(check_probe(LogisticRegression), Z, a)


def test_fit_probe_standardises_then_fits_a_clone():
    Z, a = _embeddings()
    lr = LogisticRegression()
    pipe = fit_probe(lr, Z, a)
    assert isinstance(pipe, Pipeline) and isinstance(pipe[0], StandardScaler)
    assert pipe[-1] is not lr and not hasattr(lr, "coef_")
    np.testing.assert_allclose(pipe[0].mean_, Z.mean(axis=0))


def test_fit_probe_rejects_a_classifier_without_coefficients():
    Z, a = _embeddings()
    with pytest.raises(TypeError, match="sa_probe DecisionTreeClassifier has no "
                       "coef_/intercept_ after fit"):
        fit_probe(DecisionTreeClassifier(), Z, a)


def test_a_regressor_is_rejected_as_probe_with_a_type_error():
    Z, a = _embeddings()
    with pytest.raises(TypeError, match="sa_probe"):
        pipe = fit_probe(check_probe(Ridge()), Z, a)
        _single_probe(pipe, 2)
