"""Black-box faults that cost money: malformed responses retried and counted, failed attempts
counted apart (and in the budget when asked), nothing paid for twice, overflowing edits
never sent (issue 13 #6, #7, #8, #10, #11)."""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np
import pytest
import torch
from conftest import make_encoder, make_marker_images

from fairnoise import GeZONoiseTransformer, QueryError
from fairnoise.encoders import CallableEncoder, MalformedResponseError, QueryMeter

ENC = make_encoder()
X, Y, A = make_marker_images(n=160)
N, B = len(X), 64

BLACK = dict(batch_size=B, n_directions=3, noise_resolution=4, random_state=0)

def embed(batch: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return ENC(torch.as_tensor(batch)).numpy()


def black_box(fn, **kw) -> CallableEncoder:
    return CallableEncoder(fn, batch_size=B, retry_delay=0, **kw)


def gezo(fn=embed, **kw) -> GeZONoiseTransformer:
    return GeZONoiseTransformer(CallableEncoder(fn, batch_size=B, retry_delay=0),
                                **{**BLACK, **kw}, validation_fraction=None)


# -- malformed responses (13.6) ------------------------------------------------------------
def malformed(kind: str, batch: np.ndarray) -> object:
    """What a faulty API returns instead of ``embed(batch)``."""
    Z = embed(batch)
    if kind == "nan":
        Z[len(Z) // 2] = np.nan
        return Z
    if kind == "short":
        return Z[:-1]
    if kind == "wide":
        return np.c_[Z, Z[:, :1]]
    if kind == "complex":
        return Z.astype(np.complex64)
    if kind == "text":
        return Z.astype(str)
    if kind == "ragged":
        return [list(z) for z in Z[:-1]] + [[0.0]]
    raise AssertionError(kind)


KINDS = ("nan", "short", "wide", "complex", "text", "ragged")


class FaultyAPI:
    """``embed``, returning ``malformed(faults[k])`` on call ``k`` (1-based); counts images.

    ``good`` counts the images of well-formed responses, ``sent`` those of every call.
    """

    def __init__(self, faults: dict[int, str] | None = None, broken_from: int | None = None,
                 broken_until: int | None = None, broken_batch: bytes | None = None,
                 broken_times: int = 0):
        self.faults = faults or {}
        self.broken = (broken_from, broken_until)
        # a batch (by its bytes) whose first ``broken_times`` calls fail, whatever their order
        self.broken_batch, self.broken_times = broken_batch, broken_times
        self.calls = self.sent = self.good = 0
        self.batches: list[bytes] = []
        self.lock = threading.Lock()

    def __call__(self, batch):
        with self.lock:
            self.calls += 1
            call = self.calls
            self.sent += len(batch)
            self.batches.append(batch.tobytes())
            hit = self.broken_batch is not None and batch.tobytes() == self.broken_batch
            if hit:
                self.broken_times -= 1
        lo, hi = self.broken
        kind = self.faults.get(call)
        if lo is not None and call >= lo and (hi is None or call < hi):
            kind = "nan"
        if hit and self.broken_times >= 0:
            kind = "nan"
        if kind is not None:
            return malformed(kind, batch)
        with self.lock:
            self.good += len(batch)
        return embed(batch)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_malformed_response_is_retried_and_counted(kind):
    api = FaultyAPI({1: kind})
    enc = black_box(api)
    meter = QueryMeter()
    Z = enc.embed(X[:B], meter=meter, n_features=64)
    np.testing.assert_array_equal(Z, embed(X[:B]))
    assert api.calls == 2
    assert (enc.n_queries, enc.n_queries_attempted) == (meter.spent, meter.attempted) == (B, 2 * B)


@pytest.mark.parametrize(("kind", "match"), [
    ("nan", "NaN or infinite"), ("short", "returned 63 embeddings for a batch of 64"),
    ("wide", "65 features where 64 were expected"), ("complex", "complex"), ("text", "numeric"),
    ("ragged", "not an array"),
])
def test_exhausted_retries_raise_a_malformed_response_error_naming_the_problem(kind, match):
    api = FaultyAPI({k: kind for k in range(1, 10)})
    enc = black_box(api)
    with pytest.raises(MalformedResponseError, match=rf"3 times in a row.*{match}") as info:
        enc.embed(X[:B], max_retries=2, n_features=64)
    assert isinstance(info.value, QueryError) and isinstance(info.value, ValueError)
    assert isinstance(info.value.__cause__, (ValueError, TypeError))
    assert (enc.n_queries, enc.n_queries_attempted, api.calls) == (0, 3 * B, 3)


def test_retry_malformed_false_raises_at_the_first_malformed_response():
    api = FaultyAPI({1: "nan"})
    with pytest.raises(MalformedResponseError, match="retry_malformed=False"):
        black_box(api, retry_malformed=False).embed(X[:B])
    assert api.calls == 1
    with pytest.raises(TypeError, match="retry_malformed"):
        CallableEncoder(embed, retry_malformed="yes")


def test_the_first_response_fixes_the_width_whatever_n_jobs():
    api = FaultyAPI({3: "wide"})
    enc = CallableEncoder(api, batch_size=16, retry_delay=0)
    Z = enc.embed(X[:B], n_jobs=4)  # call 1 is sent alone; call 3 (wider) is retried
    np.testing.assert_array_equal(Z, embed(X[:B]))
    assert api.calls == 5 and enc.n_queries == B


@pytest.mark.parametrize("n_jobs", [None, 4])
def test_a_long_fit_with_5_percent_malformed_responses_equals_a_clean_fit(n_jobs):
    # About 5 % of the calls return a malformed response of one of the kinds (drawn once,
    # seeded); call 1 stays well-formed, since the first response fixes the width.
    rng = np.random.default_rng(1)
    calls = np.flatnonzero(rng.random(5000) < 0.05) + 1
    faults = {int(c): KINDS[int(k)] for c, k in zip(calls, rng.integers(0, len(KINDS),
                                                                        len(calls)), strict=True)
              if c > 1}
    faulty, steady = FaultyAPI(faults), FaultyAPI()
    kwargs = dict(max_epochs=12, n_jobs=n_jobs, max_retries=5)
    t1 = gezo(faulty, **kwargs).fit(X, Y, sensitive_features=A)
    t2 = gezo(steady, **kwargs).fit(X, Y, sensitive_features=A)
    assert steady.calls > 200 and faulty.calls - steady.calls > 10
    np.testing.assert_array_equal(t1.edit_.param, t2.edit_.param)
    assert t1.n_iter_ == t2.n_iter_ == 12 * 3
    assert t1.n_queries_ == faulty.good == steady.good == t2.n_queries_
    assert t1.n_queries_attempted_ == faulty.sent > t1.n_queries_
    assert t2.n_queries_attempted_ == t2.n_queries_


def test_persistent_malformed_responses_stop_the_fit_and_a_resume_pays_nothing_twice():
    steady = FaultyAPI()
    clean = gezo(steady, max_epochs=4).fit(X, Y, sensitive_features=A)
    api = FaultyAPI(broken_from=20, broken_until=23)  # 3 malformed calls in a row
    t = gezo(api, max_epochs=4, max_retries=2)
    with pytest.raises(MalformedResponseError) as info:
        t.fit(X, Y, sensitive_features=A)
    message = str(info.value)
    assert "malformed response 3 times in a row" in message
    assert "set warm_start=True and call fit again" in message
    assert t.n_iter_ > 0 and t.n_queries_ == api.good
    t.set_params(warm_start=True).fit(X, Y, sensitive_features=A)
    np.testing.assert_array_equal(t.edit_.param, clean.edit_.param)
    assert t.n_queries_ == api.good == steady.good  # every good image bought once
    assert t.n_queries_attempted_ == api.sent > steady.sent


@pytest.mark.parametrize("n_jobs", [None, 3])
def test_a_failed_call_keeps_the_responses_its_job_already_paid_for(n_jobs):
    # calls of 16 images, so one loss of 64 images takes 4 calls; the 3rd call of a loss
    # fails for good, and the resumed fit does not buy the first two again (nor what the
    # other threads' jobs bought meanwhile)
    def fit(api, **kw):
        enc = CallableEncoder(api, batch_size=16, retry_delay=0)
        return GeZONoiseTransformer(enc, **{**BLACK, "max_epochs": 2, "n_jobs": n_jobs,
                                            "max_retries": 1, **kw}, validation_fraction=None)

    steady = FaultyAPI()
    clean = fit(steady).fit(X, Y, sensitive_features=A)
    # the probe's 10 calls, 7 losses of the first iteration (28 calls), then the 3rd call
    # of the second iteration's first loss (one call, the first on a serial run, whatever
    # the order the threads send them in): it fails on the first try and on the retry
    serial = FaultyAPI()
    fit(serial).set_params(n_jobs=None).fit(X, Y, sensitive_features=A)
    api = FaultyAPI(broken_batch=serial.batches[10 + 28 + 2], broken_times=2)
    t = fit(api)
    with pytest.raises(MalformedResponseError):
        t.fit(X, Y, sensitive_features=A)
    t.set_params(warm_start=True).fit(X, Y, sensitive_features=A)
    np.testing.assert_array_equal(t.edit_.param, clean.edit_.param)
    assert t.n_queries_ == api.good == steady.good == clean.n_queries_


def test_a_failure_while_embedding_for_the_probe_loses_nothing_either():
    enc = CallableEncoder(FaultyAPI(broken_from=2, broken_until=3), batch_size=B,
                          retry_delay=0)
    t = GeZONoiseTransformer(enc, **BLACK, max_epochs=1, max_retries=0, validation_fraction=None)
    with pytest.raises(MalformedResponseError, match="No edit was learned yet"):
        t.fit(X, Y, sensitive_features=A)
    assert t.n_queries_ == B  # the first call's images, kept by the encoder
    t.fit(X, Y, sensitive_features=A)  # a new fit: the first call is not sent again
    steady = FaultyAPI()
    clean = gezo(steady, max_epochs=1).fit(X, Y, sensitive_features=A)
    assert enc.fn.good == steady.good and t.n_queries_ == clean.n_queries_ - B
    np.testing.assert_array_equal(t.edit_.param, clean.edit_.param)


# -- failed attempts and the budget (13.7) -------------------------------------------------
class Flaky:
    """``embed``; each call fails with a ConnectionError with probability ``p`` (seeded)."""

    def __init__(self, p: float, seed: int = 0):
        self.rng, self.p = np.random.default_rng(seed), p
        self.sent = self.good = 0

    def __call__(self, batch):
        self.sent += len(batch)
        if self.rng.random() < self.p:
            raise ConnectionError("reset")
        self.good += len(batch)
        return embed(batch)


def test_failed_attempts_are_counted_apart_and_do_not_spend_the_default_budget():
    api = Flaky(0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        t = gezo(api, max_queries=1001, max_epochs=100, max_retries=10).fit(
            X, Y, sensitive_features=A)
    assert t.n_queries_ == api.good <= 1001
    assert t.n_queries_attempted_ == api.sent > 1001  # failed calls are not in the budget


def test_budget_includes_failed_bounds_every_image_sent():
    api = Flaky(0.3)
    t = gezo(api, max_queries=1001, max_epochs=100, max_retries=10, budget_includes_failed=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        t.fit(X, Y, sensitive_features=A)
    assert t.n_queries_attempted_ == api.sent <= 1001
    assert t.n_queries_ == api.good < api.sent


def test_a_budget_counting_failures_that_runs_out_mid_iteration_warns_and_keeps_the_edit():
    # calls 1-3 embed the training set; call 4 (the first loss) fails twice, which the
    # budget counts, so the iteration planned with 3 directions no longer fits
    api = FaultyAPI({4: "nan", 5: "nan"})
    t = gezo(api, max_queries=N + 8 * B, budget_includes_failed=True)
    with pytest.warns(UserWarning, match="ran out within an iteration.*warm_start=True"):
        t.fit(X, Y, sensitive_features=A)
    assert t.n_queries_attempted_ == api.sent <= N + 8 * B
    assert t.n_iter_ == 0 and t.transform(X[:2]).shape == (2, 64)


@pytest.mark.parametrize("value", ["yes", 1.5, None])
def test_budget_includes_failed_is_validated(value):
    with pytest.raises(ValueError, match="'budget_includes_failed' parameter"):
        gezo(budget_includes_failed=value).fit(X, Y, sensitive_features=A)


# -- the budget check is linear in the directions (13.8) -----------------------------------
def test_many_directions_and_a_small_budget_finish_in_seconds():
    start = time.perf_counter()
    t = gezo(n_directions=20_000, max_queries=5_000, max_epochs=3).fit(
        X, Y, sensitive_features=A)
    assert time.perf_counter() - start < 60  # quadratic: hours
    assert t.n_iter_ == 1 and t.n_queries_ <= 5_000


# -- widths and complex numbers (13.10) ----------------------------------------------------
class Narrowing(torch.nn.Module):
    """64 features on the first call, then 5: an encoder whose output width changes."""

    def __init__(self):
        super().__init__()
        self.body, self.calls = make_encoder(), 0

    def forward(self, x):
        self.calls += 1
        z = self.body(x)
        return z if self.calls == 1 else z[:, :5]


def test_an_encoder_changing_width_is_refused_by_name_in_gezo():
    with pytest.raises(MalformedResponseError, match=r"TorchEncoder\(Narrowing.*returned "
                                                     r"embeddings of 5 features where 64"):
        GeZONoiseTransformer(Narrowing(), **BLACK, max_retries=0, validation_fraction=None).fit(
            X, Y, sensitive_features=A)


def test_transform_through_another_encoder_is_refused_with_both_widths():
    t = gezo(max_epochs=1).fit(X, Y, sensitive_features=A)
    t.encoder.fn = lambda batch: embed(batch)[:, :5]  # not the encoder the edit was learned for
    with pytest.raises(ValueError, match="5 features where 64 were expected"):
        t.transform(X)


def test_a_gezo_api_returning_complex_numbers_names_the_encoder_output():
    with pytest.raises(MalformedResponseError, match="returned complex embeddings"):
        gezo(lambda b: embed(b).astype(np.complex64), max_retries=0).fit(
            X, Y, sensitive_features=A)


# -- an edit that overflows (13.11) --------------------------------------------------------
@pytest.mark.parametrize("encoder", ["api", None])
def test_a_huge_step_size_says_the_edit_overflowed(features, encoder):
    if encoder is None:
        Xf, yf, af = features
        t = GeZONoiseTransformer(edit="additive", step_size=1e30, random_state=0,
                                 validation_fraction=None)
        fit = lambda: t.fit(Xf, yf, sensitive_features=af)  # noqa: E731
    else:
        t = gezo(edit="additive", step_size=1e30)
        fit = lambda: t.fit(X, Y, sensitive_features=A)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # additive in feature mode warns
        with pytest.raises(ValueError, match=r"the edit overflowed.*step_size=1e\+30"):
            fit()
    assert np.isfinite(t.edit_.param).all()  # the last finite edit is kept


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_an_edit_that_is_not_finite_is_never_sent():
    api = FaultyAPI()
    t = gezo(api, edit="additive", step_size=1e39)  # inf in float32
    with pytest.raises(ValueError, match="edit overflowed: an edited batch holds NaN or "
                                         "infinity, so it was not sent"):
        t.fit(X, Y, sensitive_features=A)
    assert api.good == api.sent == t.n_queries_attempted_
