"""GeZONoiseTransformer: black-box search, query accounting, failures and resume."""

from __future__ import annotations

import pickle
import threading
import time
import warnings

import numpy as np
import pytest
import sklearn
import torch
from conftest import make_encoder, make_marker_images
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from fairnoise import GeZONoiseTransformer, QueryError
from fairnoise.encoders import CallableEncoder
from fairnoise.optim import SearchState

ENC = make_encoder()
X, Y, A = make_marker_images(n=160)
N, B = len(X), 64  # an epoch: batches of 64, 64 and 32 inputs
SMALL = dict(batch_size=B, n_directions=3, noise_resolution=4, random_state=0)


class FakeAPI:
    """A paid embedding API: counts the images of successful calls, can be slow, fails on purpose.

    ``fail`` maps a call number (1-based) to the exception raised on that call; once
    ``dead`` is set, every call raises ``ConnectionError``.
    """

    def __init__(self, fail: dict[int, BaseException] | None = None, latency: float = 0.0,
                 dead_from: int | None = None):
        self.fail = fail or {}
        self.latency = latency
        self.dead_from = dead_from
        self.calls = self.images = 0
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self.lock:
            self.calls += 1
            call = self.calls
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                time.sleep(self.latency)
            if self.dead_from is not None and call >= self.dead_from:
                raise ConnectionError("embedding service unavailable")
            if call in self.fail:
                raise self.fail[call]
            with torch.no_grad():
                Z = ENC(torch.as_tensor(batch)).numpy()
            with self.lock:
                self.images += len(batch)
            return Z
        finally:
            with self.lock:
                self.in_flight -= 1


def gezo(api=None, validation_fraction=None, **kw) -> GeZONoiseTransformer:
    encoder = CallableEncoder(api if api is not None else FakeAPI(), batch_size=B,
                              retry_delay=0)
    return GeZONoiseTransformer(encoder, **{**SMALL, **kw},
                                validation_fraction=validation_fraction)


def leakage(Z_train, a_train, Z_test, a_test) -> float:
    """AUC of a probe re-trained on the (edited) training embeddings, on held-out ones."""
    probe = LogisticRegression(max_iter=2000).fit(Z_train, a_train)
    return roc_auc_score(a_test, probe.predict_proba(Z_test)[:, 1])


# -- query accounting and the budget -----------------------------------------------------
@pytest.mark.parametrize(("strategy", "losses_per_iteration", "first_saves"),
                         [("greedy", 2 * 3 + 1, 0), ("spsa", 2 * 3 + 2, 1)])
def test_n_queries_counts_every_image_sent(strategy, losses_per_iteration, first_saves):
    api = FakeAPI()
    t = gezo(api, strategy=strategy, max_epochs=2).fit(X, Y, sensitive_features=A)
    assert t.n_iter_ == 2 * 3
    # the probe's embedding, then each epoch scores every input once per loss; SPSA's
    # first iteration has no proposal yet (its place holds the current point, paid once)
    assert t.n_queries_ == api.images == N + 2 * losses_per_iteration * N - first_saves * B


@pytest.mark.parametrize("strategy", ["greedy", "spsa", "gauss_newton"])
@pytest.mark.parametrize("budget", [N + 3 * B, 777, 1500])
def test_the_budget_is_never_exceeded_and_used_up(strategy, budget):
    api = FakeAPI()
    t = gezo(api, strategy=strategy, max_queries=budget, max_epochs=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a budget may leave no room at all
        t.fit(X, Y, sensitive_features=A)
    assert t.n_queries_ == api.images <= budget
    cheapest = (3 if strategy == "greedy" else 4) * B  # one direction, both signs
    assert budget - t.n_queries_ < cheapest  # stopped only when no iteration fitted


def test_a_budget_below_the_training_set_is_a_value_error():
    api = FakeAPI()
    with pytest.raises(ValueError, match=r"max_queries=100 leaves 100 images, too few to "
                                         r"embed the 160 training inputs"):
        gezo(api, max_queries=100).fit(X, Y, sensitive_features=A)
    assert api.calls == 0


def test_a_budget_without_room_for_an_iteration_warns():
    with pytest.warns(UserWarning, match="leaves no room for a search iteration"):
        t = gezo(max_queries=N + B).fit(X, Y, sensitive_features=A)
    assert t.n_iter_ == 0 and not t.edit_.param.any()


def test_a_search_that_ends_where_it_started_says_so():
    # SPSA scores a step on the next iteration's batch: one iteration cannot move the edit
    per_iteration = (2 * SMALL["n_directions"] + 2) * B
    with pytest.warns(UserWarning, match=r"ran 1 iteration\(s\) and ended where it started, "
                                         r"so the edit is the identity.* up to 512 images"):
        t = gezo(max_queries=N + per_iteration).fit(X, Y, sensitive_features=A)
    assert t.n_iter_ == 1 and t.edit_.is_identity
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a search that moves says nothing
        moved = gezo(max_queries=N + 4 * per_iteration).fit(X, Y, sensitive_features=A)
    assert moved.n_iter_ > 1 and not moved.edit_.is_identity


def test_output_images_queries_nothing():
    api = FakeAPI()
    t = gezo(api, output="images", max_epochs=1).fit(X, Y, sensitive_features=A)
    sent = api.images
    assert t.transform(X).shape == X.shape and api.images == sent
    assert t.n_queries_ == sent


def test_feature_mode_queries_nothing(features):
    Xf, yf, af = features
    t = GeZONoiseTransformer(max_epochs=15, random_state=0,
                             validation_fraction=None).fit(Xf, yf, sensitive_features=af)
    assert t.n_queries_ == 0
    assert t.mask_[3] < t.mask_[[1, 2, 4]].min()  # the group column is masked most


# -- failures, retries and resume -----------------------------------------------------------
def test_transient_failures_are_retried_and_change_nothing():
    flaky = FakeAPI(fail={3: ConnectionError("reset"), 9: TimeoutError("slow"),
                          10: ConnectionError("reset")})
    steady = FakeAPI()
    t1 = gezo(flaky, max_epochs=1).fit(X, Y, sensitive_features=A)
    t2 = gezo(steady, max_epochs=1).fit(X, Y, sensitive_features=A)
    np.testing.assert_array_equal(t1.edit_.param, t2.edit_.param)
    assert t1.n_queries_ == flaky.images == steady.images
    assert flaky.calls == steady.calls + 3


@pytest.mark.parametrize("n_jobs", [None, 4])
def test_a_long_fit_with_5_percent_failing_calls_completes_with_exact_accounting(n_jobs):
    # About 5 % of the calls fail with a transient error (drawn once, seeded); the fit
    # runs hundreds of calls, retries each failure, and counts exactly the images of the
    # calls that succeeded, which is what the same fit costs against a reliable API.
    rng = np.random.default_rng(0)
    fail = {int(c): ConnectionError("reset") for c in np.flatnonzero(rng.random(5000) < 0.05) + 1}
    flaky, steady = FakeAPI(fail=dict(fail)), FakeAPI()
    kwargs = dict(max_epochs=12, n_jobs=n_jobs, max_retries=5)
    t1 = gezo(flaky, **kwargs).fit(X, Y, sensitive_features=A)
    t2 = gezo(steady, **kwargs).fit(X, Y, sensitive_features=A)
    failed = flaky.calls - steady.calls
    assert steady.calls > 200  # long: hundreds of calls
    assert failed == sum(1 for c in fail if c <= flaky.calls) > 10
    assert t1.n_queries_ == flaky.images == steady.images == t2.n_queries_
    assert t1.n_iter_ == t2.n_iter_ == 12 * 3  # every iteration of every epoch ran
    np.testing.assert_array_equal(t1.edit_.param, t2.edit_.param)


def test_exhausted_retries_keep_the_progress_and_say_how_to_resume():
    api = FakeAPI(dead_from=20)
    t = gezo(api, max_epochs=50, max_retries=2)
    with pytest.raises(QueryError) as info:
        t.fit(X, Y, sensitive_features=A)
    message = str(info.value)
    assert "failed 3 times in a row (max_retries=2)" in message
    assert "ConnectionError: embedding service unavailable" in message
    assert "set warm_start=True and call fit again" in message
    assert isinstance(info.value.__cause__, ConnectionError)
    assert t.n_queries_ == api.images and t.n_iter_ > 0
    api.dead_from = None
    assert t.transform(X).shape[0] == N  # the best edit so far is usable


def test_a_non_transient_error_is_not_retried():
    api = FakeAPI(fail={20: PermissionError("invalid API key")})
    with pytest.raises(QueryError, match="PermissionError: invalid API key") as info:
        gezo(api, max_epochs=50).fit(X, Y, sensitive_features=A)
    assert isinstance(info.value.__cause__, PermissionError)
    assert api.calls == 20


def test_a_failure_while_embedding_for_the_probe_leaves_nothing_fitted():
    api = FakeAPI(dead_from=2)
    t = gezo(api, max_retries=0)
    with pytest.raises(QueryError, match="No edit was learned yet"):
        t.fit(X, Y, sensitive_features=A)
    assert t.n_queries_ == api.images == B
    with pytest.raises(NotFittedError):
        t.transform(X)


@pytest.mark.parametrize("strategy", ["greedy", "spsa", "gauss_newton"])
def test_resume_after_a_failure_equals_an_uninterrupted_fit(strategy):
    """Replaying the interrupted iteration reuses every loss it had already paid for."""
    reference = gezo(strategy=strategy, max_epochs=2).fit(X, Y, sensitive_features=A)
    api = FakeAPI(dead_from=25)
    t = gezo(api, strategy=strategy, max_epochs=2, max_retries=0, warm_start=True)
    with pytest.raises(QueryError):
        t.fit(X, Y, sensitive_features=A)
    stopped_at = t.n_iter_
    api.dead_from = None  # the service is back
    t.fit(X, Y, sensitive_features=A)
    assert 0 < stopped_at < t.n_iter_ == 6
    np.testing.assert_array_equal(t.edit_.param, reference.edit_.param)
    assert t.loss_curve_ == reference.loss_curve_
    assert t.n_queries_ == api.images == reference.n_queries_  # nothing paid twice


@pytest.mark.parametrize("strategy", ["greedy", "spsa", "gauss_newton"])
def test_warm_start_continues_where_fit_stopped(strategy):
    reference = gezo(strategy=strategy, max_epochs=4).fit(X, Y, sensitive_features=A)
    api = FakeAPI()
    t = gezo(api, strategy=strategy, max_epochs=2, warm_start=True).fit(
        X, Y, sensitive_features=A)
    first = (t.n_queries_, t.search_state_.step_size, t.edit_.param.copy())
    t.set_params(max_epochs=4).fit(X, Y, sensitive_features=A)
    assert first[0] < t.n_queries_ == api.images == reference.n_queries_  # probe not redone
    assert t.search_state_.step_size == reference.search_state_.step_size <= first[1]
    np.testing.assert_array_equal(t.edit_.param, reference.edit_.param)
    assert t.loss_curve_ == reference.loss_curve_


def test_warm_start_after_a_budget_stop_spends_the_new_budget():
    api = FakeAPI()
    t = gezo(api, max_queries=800, max_epochs=1000, warm_start=True).fit(
        X, Y, sensitive_features=A)
    q1, it1, curve1 = t.n_queries_, t.n_iter_, list(t.loss_curve_)
    t.set_params(max_queries=1600).fit(X, Y, sensitive_features=A)
    assert q1 < t.n_queries_ == api.images <= 1600
    assert t.n_iter_ > it1 and t.loss_curve_[:it1] == curve1


def guarded(api=None, **kw) -> GeZONoiseTransformer:
    return gezo(api, validation_fraction=0.25, **kw)


def test_a_budget_below_the_guards_passes_is_a_value_error_before_anything_is_sent():
    # the guard embeds the inputs twice before the search: as they are and standardised
    api = FakeAPI()
    with pytest.raises(ValueError, match=r"max_queries=250 leaves 250 images, too few to "
                                         r"embed the 160 training inputs twice.*standardize"):
        guarded(api, max_queries=250).fit(X, Y, sensitive_features=A)
    assert api.images == 0
    with pytest.warns(UserWarning, match="leaves no room for a search iteration"):
        t = guarded(api, max_queries=250, standardize=False).fit(X, Y, sensitive_features=A)
    assert t.n_queries_ == api.images == N


def test_the_guards_candidate_passes_send_their_calls_at_once():
    # the clean pass's first call fixes the width, alone; the standardised and the
    # searched edit's passes know it, so their three calls go out together
    class Recording(FakeAPI):
        def __call__(self, batch):
            with self.lock:
                self.others.append(self.in_flight)  # calls in flight as this one starts
            return super().__call__(batch)

    api = Recording(latency=0.2)
    api.others = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        t = guarded(api, n_jobs=3, max_queries=3 * N + 24 * B)
        t.fit(X, Y, sensitive_features=A)
    assert "masked edit" in set(t.validation_["candidate"])  # the search moved: it is judged
    per_pass = -(-N // B)
    clean, standardised, searched = (api.others[:per_pass],
                                     api.others[per_pass: 2 * per_pass],
                                     api.others[-per_pass:])
    assert clean == [0, 0, 1]
    assert standardised == searched == [0, 1, 2]


def test_a_guarded_resume_after_a_failure_equals_an_uninterrupted_fit():
    # the clean and the standardised passes are not bought again, so the search has the
    # same budget and the guard judges the same candidates
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # (a refusal by the guard, say)
        reference = guarded(max_queries=3000).fit(X, Y, sensitive_features=A)
        for dead_from in (3, 20):  # during the standardised pass; during the search
            api = FakeAPI(dead_from=dead_from)
            t = guarded(api, max_queries=3000, max_retries=0, warm_start=True)
            with pytest.raises(QueryError):
                t.fit(X, Y, sensitive_features=A)
            api.dead_from = None
            t.fit(X, Y, sensitive_features=A)
            assert t.n_queries_ == api.images == reference.n_queries_
            assert t.loss_curve_ == reference.loss_curve_
            assert t.validation_.equals(reference.validation_)
            np.testing.assert_array_equal(t.edit_.param, reference.edit_.param)


@pytest.mark.parametrize("strategy", ["greedy", "spsa", "gauss_newton"])
def test_a_warm_start_continues_the_search_not_the_edit_the_guard_kept(monkeypatch, strategy):
    import fairnoise._guard as guard

    monkeypatch.setattr(guard.Judge, "choose", lambda self, *args: 0)  # the identity
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        reference = guarded(max_queries=4000, strategy=strategy).fit(
            X, Y, sensitive_features=A)
        t = guarded(max_queries=2500, strategy=strategy, warm_start=True).fit(
            X, Y, sensitive_features=A)
        first = list(t.loss_curve_)
        assert t.edit_.is_identity and len(first) > 1
        t.set_params(max_queries=4000).fit(X, Y, sensitive_features=A)
    # the same search, from where it stood (one pass of the searched edit fewer images)
    assert len(first) < len(t.loss_curve_) <= len(reference.loss_curve_)
    assert t.loss_curve_ == reference.loss_curve_[: len(t.loss_curve_)]


@pytest.mark.parametrize("change", [{"edit": "additive"}, {"strategy": "greedy"},
                                    {"objective": "neg_ce"}, {"validation_fraction": 0.3}])
def test_a_warm_start_refuses_settings_the_search_cannot_keep(change):
    t = gezo(max_epochs=1, warm_start=True).fit(X, Y, sensitive_features=A)
    (name, _), = change.items()
    original = t.get_params()[name]
    with pytest.raises(ValueError, match=f"settings it was started with have changed "
                                         f"\\({name}="):
        t.set_params(**change).fit(X, Y, sensitive_features=A)
    # set back, it continues; the budget, the epochs, the threads and the steps may change
    t.set_params(**{name: original}, max_epochs=2, n_jobs=2, step_size=0.1)
    t.fit(X, Y, sensitive_features=A)
    assert t.n_iter_ == 6


def test_a_guarded_warm_start_keeps_the_validation_split_of_a_random_state_none():
    # random_state=None draws a seed per fit; a resumed fit keeps the first one, whose
    # training part the kept clean adversary was fitted on
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        t = guarded(max_queries=2000, random_state=None, warm_start=True).fit(
            X, Y, sensitive_features=A)
        unedited = t.validation_.iloc[:2].copy()  # the identity's verdicts: the split's
        t.set_params(max_queries=3000).fit(X, Y, sensitive_features=A)
    assert t.validation_.iloc[:2].drop(columns="selected").equals(
        unedited.drop(columns="selected"))


def test_warm_start_with_other_groups_is_a_value_error():
    t = gezo(max_epochs=1, warm_start=True).fit(X, Y, sensitive_features=A)
    with pytest.raises(ValueError, match="sensitive_features or y differ"):
        t.fit(X, Y, sensitive_features=1 - A)


def test_an_unconditional_guarded_warm_start_with_another_y_is_a_value_error():
    # the adversary ignores y here, but the guard's training part is drawn by class of y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        t = guarded(max_queries=2000, conditional=False, warm_start=True).fit(
            X, Y, sensitive_features=A)
    with pytest.raises(ValueError, match="sensitive_features or y differ"):
        t.set_params(max_queries=3000).fit(X, np.roll(Y, 1), sensitive_features=A)


def test_warm_start_after_unpickling_embeds_the_training_set_again():
    t = GeZONoiseTransformer(ENC, **SMALL, max_epochs=1, warm_start=True, validation_fraction=None)
    t.fit(X, Y, sensitive_features=A)
    q, epoch = t.n_queries_, (2 * 3 + 2) * N
    t2 = pickle.loads(pickle.dumps(t))
    t2.set_params(max_epochs=2).fit(X, Y, sensitive_features=A)
    assert t2.n_iter_ == 6 and t2.n_queries_ == q + N + epoch
    t.set_params(max_epochs=2).fit(X, Y, sensitive_features=A)  # pickling kept its cache
    assert t.n_queries_ == q + epoch
    np.testing.assert_array_equal(t.edit_.param, t2.edit_.param)


# -- the search itself ------------------------------------------------------------------------



def test_n_jobs_gives_the_same_result_as_serial():
    apis = [FakeAPI(latency=0.005), FakeAPI(latency=0.005)]
    serial = gezo(apis[0], max_epochs=1).fit(X, Y, sensitive_features=A)
    threaded = gezo(apis[1], max_epochs=1, n_jobs=4).fit(X, Y, sensitive_features=A)
    np.testing.assert_array_equal(serial.edit_.param, threaded.edit_.param)
    assert serial.loss_curve_ == threaded.loss_curve_
    assert serial.n_queries_ == threaded.n_queries_
    assert apis[0].max_in_flight == 1 < apis[1].max_in_flight


def test_three_directions_make_an_iteration_one_round_trip_at_eight_threads():
    # the current point, the last proposal and 3 pairs: all independent, all in flight
    api = FakeAPI(latency=0.02)
    GeZONoiseTransformer(CallableEncoder(api, batch_size=64, retry_delay=0),
                         n_directions=3, batch_size=48, step_size=0.3, max_epochs=1,
                         n_jobs=8, validation_fraction=None,
                         random_state=0).fit(X, Y, sensitive_features=A)
    assert api.max_in_flight == 2 * 3 + 2


def test_random_state_gives_bit_identical_fits():
    t1 = gezo(max_epochs=1).fit(X, Y, sensitive_features=A)
    t2 = gezo(max_epochs=1).fit(X, Y, sensitive_features=A)
    t3 = gezo(max_epochs=1, random_state=1).fit(X, Y, sensitive_features=A)
    np.testing.assert_array_equal(t1.noise_, t2.noise_)
    np.testing.assert_array_equal(t1.transform(X), t2.transform(X))
    assert not np.array_equal(t1.edit_.param, t3.edit_.param)


@pytest.mark.parametrize("strategy", ["greedy", "spsa", "gauss_newton"])
def test_the_edit_lowers_a_retrained_probes_leakage(strategy):
    Xtr, ytr, atr = make_marker_images(n=300, seed=1)
    Xte, _, ate = make_marker_images(n=300, seed=2)
    t = GeZONoiseTransformer(ENC, strategy=strategy, noise_resolution=4, batch_size=64,
                             max_queries=10_000, random_state=0, validation_fraction=None)
    t.fit(Xtr, ytr, sensitive_features=atr)
    with torch.no_grad():
        clean = [ENC(torch.as_tensor(x)).numpy() for x in (Xtr, Xte)]
    before = leakage(clean[0], atr, clean[1], ate)
    after = leakage(t.transform(Xtr), atr, t.transform(Xte), ate)
    assert before > 0.95 and after < before - 0.1


def test_three_string_groups_and_a_module_encoder():
    X3, y3, a3 = make_marker_images(n=150, groups=3)
    groups = np.array(["f", "m", "x"])[a3]
    t = GeZONoiseTransformer(ENC, max_epochs=1, batch_size=B, random_state=0,
                             validation_fraction=None)
    Z = t.fit(X3, y3, sensitive_features=groups).transform(X3)
    assert Z.shape == (150, 64) and list(t.classes_sensitive_) == ["f", "m", "x"]
    # the probe's pass, then 2 * 10 + 2 losses per input (one fewer on the first batch)
    assert t.n_queries_ == 150 + (2 * 10 + 2) * 150 - B


def test_verbose_shows_the_loss_and_the_queries(capsys):
    gezo(max_epochs=1, verbose=1).fit(X, Y, sensitive_features=A)
    err = capsys.readouterr().err
    assert "loss=" in err and "queries=" in err


# -- scikit-learn integration ----------------------------------------------------------------
@parametrize_with_checks([
    GeZONoiseTransformer(max_epochs=2, random_state=0, validation_fraction=None),
    GeZONoiseTransformer(edit="additive", objective="neg_ce", strategy="greedy", max_epochs=2,
                         random_state=0, validation_fraction=None),
])
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fit(X, y) without groups warns
        check(estimator)


def test_fit_without_groups_warns_and_learns_no_edit():
    api = FakeAPI()
    with pytest.warns(UserWarning, match="without sensitive_features"):
        t = gezo(api).fit(X, Y)
    assert not t.edit_.param.any() and t.n_iter_ == 0
    assert t.n_queries_ == api.images == 1  # one image tells the embedding size


def pipeline(**kw) -> Pipeline:
    noise = GeZONoiseTransformer(ENC, **{**SMALL, "max_epochs": 1, **kw}, validation_fraction=None)
    return Pipeline([("noise", noise), ("clf", LogisticRegression(max_iter=500))])


def test_pickle_round_trip():
    t = GeZONoiseTransformer(ENC, **SMALL, max_epochs=1,
                             validation_fraction=None).fit(X, Y, sensitive_features=A)
    copy = pickle.loads(pickle.dumps(t))
    np.testing.assert_array_equal(copy.transform(X), t.transform(X))
    assert isinstance(copy.noise_, np.ndarray) and isinstance(copy.search_state_, SearchState)


def test_pipeline_and_grid_search_pass_the_groups():
    pipe = pipeline().fit(X, Y, noise__sensitive_features=A)
    direct = GeZONoiseTransformer(ENC, **SMALL, max_epochs=1,
                                  validation_fraction=None).fit(X, Y, sensitive_features=A)
    np.testing.assert_array_equal(pipe["noise"].edit_.param, direct.edit_.param)
    search = GridSearchCV(pipeline(), {"noise__strategy": ["greedy", "spsa"]}, cv=2)
    search.fit(X, Y, noise__sensitive_features=A)
    assert search.best_params_["noise__strategy"] in ("greedy", "spsa")


def test_metadata_routing_without_set_fit_request():
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(pipeline(), {"clf__C": [0.1, 1.0]}, cv=2)
        search.fit(X, Y, sensitive_features=A)
    assert search.best_estimator_["noise"].n_iter_ == 3  # refit on all 160 inputs


# -- the search space -------------------------------------------------------------------------
def test_the_default_search_space_is_a_four_by_four_grid_of_cells():
    t = gezo(noise_resolution="auto", max_epochs=1).fit(X, Y, sensitive_features=A)
    assert t.edit_.param.shape == (1, 4, 4)
    h, w = X.shape[-2] // 4, X.shape[-1] // 4
    cells = np.kron(t.edit_.param, np.ones((1, h, w), np.float32))
    np.testing.assert_array_equal(t.mask_, 1.0 - cells)  # each cell masks its block alike
    assert t.edit_.param.any()  # the search moved


def test_bilinear_upsampling_is_still_available_to_the_search():
    t = gezo(upsampling="bilinear", max_epochs=1).fit(X, Y, sensitive_features=A)
    up = torch.nn.functional.interpolate(torch.tensor(t.edit_.param)[None], size=X.shape[-2:],
                                         mode="bilinear", align_corners=False)[0].numpy()
    np.testing.assert_allclose(t.mask_, 1.0 - up, rtol=1e-6)


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(n_jobs=-1), "'n_jobs' parameter"),
    (dict(strategy="adam"), "'strategy' parameter"),
    (dict(max_queries=0), "'max_queries' parameter"),
    (dict(step_decay=1.5), "'step_decay' parameter"),
    (dict(momentum=1.0), "'momentum' parameter"),
    (dict(noise_resolution="high"), "'noise_resolution' parameter"),
    (dict(upsampling="bicubic"), "'upsampling' parameter"),
])
def test_bad_parameters_are_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gezo(**kwargs).fit(X, Y, sensitive_features=A)


def test_bad_encoders_and_inputs_are_rejected(features):
    with pytest.raises(ValueError, match="'encoder' parameter"):
        GeZONoiseTransformer("resnet", validation_fraction=None).fit(X, Y, sensitive_features=A)
    with pytest.raises(ValueError, match="noise_resolution applies to images"):
        GeZONoiseTransformer(noise_resolution=4, validation_fraction=None).fit(
            features[0], sensitive_features=features[2])
    with pytest.raises(ValueError, match="returned 1 embeddings for a batch of 64"):
        GeZONoiseTransformer(lambda b: np.zeros((1, 3)), batch_size=B, max_retries=0,
                             validation_fraction=None).fit(
            X, Y, sensitive_features=A)


class _RecordingBar:
    """A stand-in for tqdm that records its total at the start and at the end."""

    bars: list[_RecordingBar] = []

    def __init__(self, total=None, initial=0, **kwargs):
        self.total, self.n, self.first_total = total, initial, total
        _RecordingBar.bars.append(self)

    def update(self, n=1):
        self.n += n

    def set_postfix(self, **kwargs):
        pass

    def refresh(self):
        pass

    def close(self):
        self.final_total = self.total


@pytest.mark.parametrize("strategy", ["spsa", "greedy", "gauss_newton"])
@pytest.mark.parametrize("budget", [N + 3_000, N + 7_777, None])
def test_progress_bar_total_is_what_the_budget_lets_run(monkeypatch, strategy, budget):
    # max_queries caps the run long before max_epochs: the bar's total must be the
    # iterations that will actually run, from the start, not max_epochs' count
    import fairnoise.gezo as gezo_module

    monkeypatch.setattr(gezo_module, "tqdm", _RecordingBar)
    _RecordingBar.bars = []
    api = FakeAPI()
    epochs = 2 if budget is None else 1000
    t = GeZONoiseTransformer(CallableEncoder(api, batch_size=B), max_queries=budget,
                             max_epochs=epochs, strategy=strategy, verbose=1, **SMALL)
    t.fit(X, Y, sensitive_features=A)
    (bar,) = _RecordingBar.bars
    assert bar.first_total == bar.final_total == bar.n == t.n_iter_ > 0
    # max_epochs' count of iterations (over the training part the search uses: N at most)
    if budget is not None:
        assert t.n_iter_ < epochs * -(-N // B) and t.n_queries_ <= budget
    else:
        assert t.n_iter_ <= epochs * -(-N // B)


def test_progress_bar_of_a_resumed_search_counts_from_where_it_stopped(monkeypatch):
    import fairnoise.gezo as gezo_module

    monkeypatch.setattr(gezo_module, "tqdm", _RecordingBar)
    _RecordingBar.bars = []
    t = GeZONoiseTransformer(CallableEncoder(FakeAPI(), batch_size=B), max_queries=N + 2_000,
                             max_epochs=1000, verbose=1, **SMALL)
    t.fit(X, Y, sensitive_features=A)
    first = t.n_iter_
    t.set_params(max_queries=N + 5_000, warm_start=True)
    t.fit(X, Y, sensitive_features=A)
    bar = _RecordingBar.bars[-1]
    assert bar.first_total == bar.final_total == t.n_iter_ > first
