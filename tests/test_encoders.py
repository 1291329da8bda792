"""CallableEncoder, the black-box query engine: counting, budget, retries, concurrency."""

from __future__ import annotations

import pickle
import threading
import time

import numpy as np
import pytest
import torch
from conftest import make_encoder

from fairnoise.encoders import (
    CallableEncoder,
    QueryBudgetExceeded,
    QueryError,
    QueryMeter,
    TorchEncoder,
    as_black_box,
)

BATCH = np.arange(20 * 3, dtype=np.float32).reshape(20, 3)


class Flaky:
    """``batch -> row sums``; raises ``errors[k]`` on call ``k`` (1-based) when given."""

    def __init__(self, errors: dict[int, BaseException] | None = None, latency: float = 0.0):
        self.errors = errors or {}
        self.latency = latency
        self.calls = 0
        self.images = 0
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self.lock:
            self.calls += 1
            error = self.errors.get(self.calls)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                time.sleep(self.latency)
            if error is not None:
                raise error
            with self.lock:
                self.images += len(batch)
            return batch.reshape(len(batch), -1).sum(axis=1, keepdims=True)
        finally:
            with self.lock:
                self.in_flight -= 1


def test_counts_every_image_in_calls_of_batch_size():
    fn = Flaky()
    enc = CallableEncoder(fn, batch_size=8)
    Z = enc.embed(BATCH)
    np.testing.assert_allclose(Z[:, 0], BATCH.sum(axis=1))
    assert (fn.calls, enc.n_queries) == (3, 20)


def test_the_meter_counts_one_job_while_the_encoder_counts_all():
    enc = CallableEncoder(Flaky(), batch_size=8)
    enc.embed(BATCH)
    meter = QueryMeter()
    enc.embed(BATCH[:5], meter=meter)
    assert (meter.spent, enc.n_queries) == (5, 25)


def test_the_budget_is_checked_before_a_call_is_sent():
    fn = Flaky()
    meter = QueryMeter(limit=12)
    enc = CallableEncoder(fn, batch_size=8)
    with pytest.raises(QueryBudgetExceeded, match="exceed the budget of 12"):
        enc.embed(BATCH, meter=meter)
    assert fn.images == meter.spent == 8  # the second call (8 more) was never sent


def test_transient_errors_are_retried_with_exponential_backoff(monkeypatch):
    delays = []
    monkeypatch.setattr(time, "sleep", delays.append)
    fn = Flaky({1: ConnectionError("reset"), 2: TimeoutError("slow")})
    enc = CallableEncoder(fn, batch_size=32, retry_delay=0.25)
    meter = QueryMeter()
    Z = enc.embed(BATCH, max_retries=2, meter=meter)
    assert Z.shape == (20, 1)
    assert delays == [0.25, 0.5]
    assert fn.calls == 3 and meter.spent == enc.n_queries == 20  # failed calls not counted


def test_exhausted_retries_raise_a_query_error_naming_the_cause():
    fn = Flaky({k: ConnectionError("service unavailable") for k in range(1, 10)})
    enc = CallableEncoder(fn, retry_delay=0)
    with pytest.raises(QueryError, match=r"failed 3 times in a row \(max_retries=2\).*"
                       r"ConnectionError: service unavailable") as info:
        enc.embed(BATCH, max_retries=2)
    assert isinstance(info.value.__cause__, ConnectionError)
    assert fn.calls == 3 and enc.n_queries == 0


def test_other_errors_are_not_retried():
    fn = Flaky({1: PermissionError("invalid API key")})
    enc = CallableEncoder(fn, retry_delay=0)
    with pytest.raises(QueryError, match="PermissionError: invalid API key.*not retried"):
        enc.embed(BATCH)
    assert fn.calls == 1


def test_transient_errors_can_be_chosen_per_encoder():
    class RateLimited(Exception):
        pass

    assert CallableEncoder.transient_errors == (ConnectionError, TimeoutError)
    fn = Flaky({1: RateLimited("429")})
    enc = CallableEncoder(fn, retry_delay=0, transient_errors=(RateLimited,))
    assert enc.embed(BATCH).shape == (20, 1)
    with pytest.raises(QueryError, match="not retried"):  # no longer in the list
        CallableEncoder(Flaky({1: ConnectionError()}), transient_errors=(RateLimited,)).embed(BATCH)


def test_embed_many_runs_concurrently_and_keeps_the_input_order():
    fn = Flaky(latency=0.05)
    enc = CallableEncoder(fn)
    batches = [BATCH + i for i in range(6)]
    seen = []
    out = enc.embed_many(batches, n_jobs=6, on_result=lambda i, Z: seen.append(i))
    for b, Z in zip(batches, out, strict=True):
        np.testing.assert_allclose(Z[:, 0], b.sum(axis=1))
    assert sorted(seen) == list(range(6))
    assert fn.max_in_flight > 1


def test_embed_splits_into_concurrent_calls():
    fn = Flaky(latency=0.05)
    Z = CallableEncoder(fn, batch_size=5).embed(BATCH, n_jobs=4)
    np.testing.assert_allclose(Z[:, 0], BATCH.sum(axis=1))
    assert fn.calls == 4 and fn.max_in_flight > 1


def test_a_failed_batch_keeps_the_results_of_the_others():
    fn = Flaky({2: ValueError("boom")})
    enc = CallableEncoder(fn)
    done = {}
    with pytest.raises(QueryError, match="boom"):
        enc.embed_many([BATCH] * 4, on_result=done.__setitem__)
    assert list(done) == [0] and enc.n_queries == 20  # serial: the failure stops the rest


def test_bad_output_is_a_value_error():
    enc = CallableEncoder(lambda b: np.zeros((len(b) + 1, 2)), retry_malformed=False)
    with pytest.raises(ValueError, match="returned 21 embeddings for a batch of 20"):
        enc.embed(BATCH)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(fn=42), TypeError, "needs a callable"),
    (dict(batch_size=0), ValueError, "batch_size must be a positive integer"),
    (dict(retry_delay=-1), ValueError, "retry_delay must be a number of seconds"),
    (dict(transient_errors=("ConnectionError",)), TypeError, "tuple of exception classes"),
])
def test_bad_arguments_are_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        CallableEncoder(**{"fn": np.sum, **kwargs})


def test_pickle_keeps_the_count():
    enc = CallableEncoder(np.asarray, batch_size=4)
    enc.embed(BATCH)
    copy = pickle.loads(pickle.dumps(enc))
    assert copy.n_queries == 20
    copy.embed(BATCH)  # the lock is rebuilt
    assert copy.n_queries == 40


def test_as_black_box_runs_a_module_forward_only_and_leaves_it_as_it_was():
    module = make_encoder().train()
    flags = [p.requires_grad for p in module.parameters()]
    enc = as_black_box(module, batch_size=64)
    assert isinstance(enc, CallableEncoder) and enc.batch_size == 64
    X = np.random.default_rng(0).normal(size=(5, 1, 16, 16)).astype(np.float32)
    with torch.no_grad():
        expected = module.eval()(torch.as_tensor(X)).numpy()
    module.train()
    np.testing.assert_allclose(enc.embed(X), expected, rtol=1e-5)
    assert module.training and flags == [p.requires_grad for p in module.parameters()]
    assert enc.n_queries == 5
    assert isinstance(pickle.loads(pickle.dumps(enc)), CallableEncoder)


def test_as_black_box_wraps_callables_and_keeps_wrappers():
    fn = CallableEncoder(np.asarray)
    assert as_black_box(fn, batch_size=3) is fn
    assert as_black_box(None, batch_size=3) is None
    assert as_black_box(np.asarray, batch_size=3).batch_size == 3
    assert isinstance(as_black_box(TorchEncoder(make_encoder()), batch_size=3), CallableEncoder)
    with pytest.raises(TypeError, match="encoder must be None"):
        as_black_box("resnet", batch_size=3)
