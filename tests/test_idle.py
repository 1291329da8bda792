"""fairnoise._idle: client work that runs while the caller waits for the encoder's calls."""

from __future__ import annotations

import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from conftest import make_encoder, make_marker_images

import fairnoise.encoders._query as query
from fairnoise import GeZONoiseTransformer
from fairnoise._guard import NoSafeEditWarning
from fairnoise._idle import IdleWork, collecting, work_while_waiting
from fairnoise.encoders import CallableEncoder


def test_work_runs_in_order_in_the_waiting_thread_while_calls_are_in_flight():
    log = []
    with collecting() as work, ThreadPoolExecutor(2) as pool:
        call = pool.submit(time.sleep, 0.3)
        items = [work.defer(lambda i=i: log.append((i, threading.get_ident(), call.done())))
                 for i in range(3)]
        work_while_waiting([call])  # returns once the call has landed, the work done
        assert not work.pending and call.done()
    assert [i for i, _, _ in log] == [0, 1, 2]
    assert {tid for _, tid, _ in log} == {threading.get_ident()}
    assert not any(done for _, _, done in log)  # all of it while the call was in flight
    assert [item.result() for item in items] == [None] * 3


def test_a_generator_runs_one_step_per_turn_and_returns_its_value():
    steps = []

    def job(n):
        for k in range(n):
            steps.append(k)
            yield
        return n * 10

    work = IdleWork()
    item = work.defer(job, 3)
    work.step()
    assert steps == [0] and not item.done
    assert item.result() == 30 and steps == [0, 1, 2]


def test_nothing_runs_once_the_calls_are_back_and_result_runs_what_is_left():
    ran = []
    with collecting() as work, ThreadPoolExecutor(1) as pool:
        call = pool.submit(lambda: None)
        call.result()
        first = work.defer(ran.append, 1)
        second = work.defer(ran.append, 2)
        work_while_waiting([call])
        assert ran == []
        second.result()  # runs what was deferred before it first
        assert ran == [1, 2] and first.done


def test_with_workers_the_work_stops_once_only_the_running_calls_are_left():
    # two threads, four calls: once two have landed, the last two are running and none
    # is queued; a step now could outlast them, so the caller waits for them instead
    with collecting() as work, ThreadPoolExecutor(2) as pool:
        for _ in range(2000):
            work.defer(time.sleep, 0.001)
        calls = [pool.submit(time.sleep, 0.2) for _ in range(4)]
        work_while_waiting(calls, workers=2)
        landed = sum(call.done() for call in calls)
        assert landed >= 2 and work.pending  # returned after the first round, work left
        for call in calls:
            call.result()
        work.drain()


def test_worker_threads_and_other_scopes_do_not_see_the_queue():
    ran = []
    with collecting() as work, ThreadPoolExecutor(1) as pool:
        work.defer(ran.append, "main")
        slow = [pool.submit(time.sleep, 0.05)]
        # a worker waiting on calls of its own must not run the caller's work
        pool.submit(work_while_waiting, slow).result()
        assert ran == [] and work.pending
    work_while_waiting(slow)  # outside the scope: nothing to run
    assert ran == []


class SlowAPI:
    def __init__(self, latency: float) -> None:
        self.encoder, self.latency = make_encoder(), latency

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        time.sleep(self.latency)
        with torch.no_grad():
            return self.encoder(torch.as_tensor(batch)).numpy()


def test_a_guarded_threaded_fit_judges_while_it_waits_and_equals_the_serial_fit(monkeypatch):
    X, y, a = make_marker_images(n=240)
    steps = {"in wait": 0, "all": 0}
    inside = threading.Event()
    wait, step = query.work_while_waiting, IdleWork.step

    def watched_wait(*args):
        inside.set()
        try:
            wait(*args)
        finally:
            inside.clear()

    def counted_step(self):
        steps["all"] += 1
        steps["in wait"] += inside.is_set()
        step(self)

    monkeypatch.setattr(query, "work_while_waiting", watched_wait)
    monkeypatch.setattr(IdleWork, "step", counted_step)
    fits, counts = [], []
    for n_jobs in (None, 4):
        steps.update({"in wait": 0, "all": 0})
        t = GeZONoiseTransformer(CallableEncoder(SlowAPI(0.01), batch_size=64), max_epochs=2,
                                 batch_size=64, n_directions=2, n_jobs=n_jobs, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoSafeEditWarning)
            fits.append(t.fit(X, y, sensitive_features=a))
        counts.append(dict(steps))
    serial, threaded = fits
    assert counts[0]["in wait"] == 0 < counts[0]["all"]  # serial: judged before the search
    assert counts[1]["in wait"] > 0  # threaded: judged while calls were in flight
    # the same work, only at other times (and the erasers' fits on threads of their own)
    assert 0 < counts[1]["all"] < counts[0]["all"]
    assert serial.validation_.equals(threaded.validation_)
    np.testing.assert_array_equal(serial.transform(X), threaded.transform(X))
    assert serial.n_queries_ == threaded.n_queries_
    names = list(serial.validation_["candidate"])
    assert names[:2] == ["identity", "identity"] and names[-1] == "standardize"


def test_a_failure_is_raised_at_the_next_wait_once_the_calls_have_landed():
    def boom():
        raise ValueError("from the deferred work")

    ran = []
    with collecting() as work, ThreadPoolExecutor(2) as pool:
        work.defer(boom)
        work.defer(ran.append, "after the failure")
        calls = [pool.submit(time.sleep, 0.1) for _ in range(2)]
        with pytest.raises(ValueError, match="from the deferred work"):
            work_while_waiting(calls)
        assert all(call.done() for call in calls)  # what was in flight landed first
        with pytest.raises(ValueError, match="from the deferred work"):
            work.drain()
    assert ran == []  # nothing more runs once something failed


@pytest.mark.parametrize("n_jobs", [None, 4])
def test_a_failing_verdict_stops_a_guarded_fit_before_the_search_spends_the_budget(
        monkeypatch, n_jobs):
    import fairnoise._guard as guard

    def broken(self, name, Z, **kw):
        raise RuntimeError("the guard's probe broke")
        yield  # a generator, as the real verdict is

    monkeypatch.setattr(guard.Judge, "evaluate", broken)
    X, y, a = make_marker_images(n=240)
    t = GeZONoiseTransformer(CallableEncoder(SlowAPI(0.002), batch_size=64), max_epochs=10,
                             batch_size=64, n_directions=2, n_jobs=n_jobs, random_state=0)
    with pytest.raises(RuntimeError, match="the guard's probe broke"):
        t.fit(X, y, sensitive_features=a)
    # the clean and the standardised passes, and at most one search iteration (6 losses)
    assert t.n_queries_ <= 2 * len(X) + 6 * 64


class WarningAPI(SlowAPI):
    """A slow API whose every call warns (as a user's encoder code may)."""

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = super().__call__(batch)  # the warning comes after the wait, while the
        warnings.warn("from the user's encoder", UserWarning, stacklevel=1)  # fit may judge
        return out


@pytest.mark.parametrize("n_jobs", [None, 4])
def test_the_guard_judging_during_the_calls_hides_none_of_the_encoders_warnings(n_jobs):
    # the verdicts silence their probes' expected warnings while the query threads run
    # the user's encoder: that must not silence the encoder's own (it used to, with a
    # catch_warnings in the waiting thread: about one call in five went unreported)
    X, y, a = make_marker_images(n=240)
    api = WarningAPI(0.01)
    calls = []
    encoder = CallableEncoder(lambda b: calls.append(len(b)) or api(b), batch_size=64)
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        GeZONoiseTransformer(encoder, max_epochs=2, batch_size=64, n_directions=2,
                             n_jobs=n_jobs, random_state=0).fit(X, y, sensitive_features=a)
    from_encoder = [w for w in seen if str(w.message) == "from the user's encoder"]
    assert len(calls) > 20 and len(from_encoder) == len(calls)
    assert warnings.filters == before


def test_erasers_fitted_on_threads_give_the_verdict_of_erasers_fitted_in_place():
    from fairnoise._guard import Judge
    from fairnoise.edits import fit_conditional_eraser

    rng = np.random.default_rng(0)
    a, y = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    Z = rng.normal(size=(300, 12)) + 0.7 * a[:, None] * (np.arange(12) < 3)
    tr, va = np.arange(240), np.arange(240, 300)
    judge = Judge(tr, va, a, y, 0, fit_eraser=fit_conditional_eraser)
    here = IdleWork().defer(judge.evaluate, "c", Z, erase=True).result()
    with ThreadPoolExecutor(2) as pool:
        there = IdleWork().defer(judge.evaluate, "c", Z, erase=True,
                                 erasers=judge.start_erasers(Z, pool)).result()
    assert here[0] == there[0]
    np.testing.assert_array_equal(here[1].apply(Z), there[1].apply(Z))


def test_an_eraser_failing_on_its_thread_stops_the_fit_and_leaves_no_thread(monkeypatch):
    import fairnoise.edits as edits

    X, y, a = make_marker_images(n=240)
    fit, calls = edits.fit_conditional_eraser, []

    def failing(*args, **kwargs):
        calls.append(threading.current_thread().name)
        if len(calls) == 3:
            raise FloatingPointError("eraser failed")
        return fit(*args, **kwargs)

    monkeypatch.setattr(edits, "fit_conditional_eraser", failing)
    t = GeZONoiseTransformer(CallableEncoder(SlowAPI(0.01), batch_size=64), max_epochs=2,
                             batch_size=64, n_directions=2, n_jobs=4, random_state=0)
    with pytest.raises(FloatingPointError, match="eraser failed"):
        t.fit(X, y, sensitive_features=a)
    assert all(name.startswith("fairnoise-eraser") for name in calls)
    assert not [th for th in threading.enumerate() if th.name.startswith("fairnoise-eraser")]


def test_results_are_handed_on_once_each_and_kept_when_a_call_fails():
    caller, handed, ran = threading.get_ident(), [], []

    def task(i):
        ran.append(i)
        time.sleep(0.05)
        if i == 1:
            raise ConnectionError("call 1 failed")
        return i * 10

    def on_result(i, value):
        handed.append((i, value, threading.get_ident()))

    values = query._thread_map(lambda i: (time.sleep(0.02), i * 10)[1], 9, 3,
                               on_result=on_result)
    assert values == [i * 10 for i in range(9)]
    assert sorted((i, v) for i, v, _ in handed) == [(i, i * 10) for i in range(9)]
    # while calls were queued, the caller took the results, so the threads went on to
    # the next call; the last round's were handled by the threads that carried them
    assert {tid for i, _, tid in handed if i < 3} == {caller}
    handed.clear()
    with pytest.raises(ConnectionError, match="call 1 failed"):
        query._thread_map(task, 12, 2, on_result=on_result)
    # what landed was handed on; what was queued was never sent
    assert sorted(i for i, _, _ in handed) == sorted(set(ran) - {1})
    assert 0 in ran and len(ran) < 12


def test_a_failing_result_handler_stops_the_calls_like_a_failing_call():
    def on_result(i, value):
        if i == 0:
            raise ValueError("the edit overflowed")

    sent = []
    with pytest.raises(ValueError, match="overflowed"):
        query._thread_map(lambda i: (sent.append(i), time.sleep(0.05)), 12, 2,
                          on_result=on_result)
    assert len(sent) < 12
