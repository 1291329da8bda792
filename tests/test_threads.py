"""fairnoise._threads: thread pools limited for a scope, never changed for good."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info

from fairnoise import GeZONoiseTransformer
from fairnoise._threads import blas_within_torch, per_worker, torch_threads, use_threads
from fairnoise.encoders import CallableEncoder, as_black_box


def blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_torch_threads_lowers_for_the_scope_and_restores():
    before = torch.get_num_threads()
    with torch_threads(4, lower_only=False):
        with torch_threads(2):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 4
        with torch_threads(8), torch_threads(None):  # only ever lowers by default
            assert torch.get_num_threads() == 4
    assert torch.get_num_threads() == before


def test_torch_threads_restores_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(before + 1, lower_only=False):
        raise RuntimeError
    assert torch.get_num_threads() == before


def test_use_threads_sets_torch_and_blas_and_restores():
    torch_before, blas_before = torch.get_num_threads(), blas_threads()
    with use_threads(1):
        assert torch.get_num_threads() == 1 and blas_threads() == {1}
    assert torch.get_num_threads() == torch_before and blas_threads() == blas_before
    with use_threads(None):
        assert torch.get_num_threads() == torch_before


def test_blas_within_torch_caps_blas_at_torchs_threads_only():
    before = blas_threads()
    with torch_threads(1, lower_only=False), blas_within_torch():
        assert blas_threads() == {1}
    assert blas_threads() == before
    with torch_threads(64, lower_only=False), blas_within_torch():
        assert blas_threads() == before  # never raised


def test_the_probe_fit_follows_torchs_thread_setting(monkeypatch, features):
    from fairnoise import DebiasedNoiseTransformer

    seen = []
    import fairnoise._base

    real = fairnoise._base.fit_probe
    monkeypatch.setattr(fairnoise._base, "fit_probe",
                        lambda *args: seen.append(blas_threads()) or real(*args))
    X, y, a = features
    with torch_threads(1, lower_only=False):
        DebiasedNoiseTransformer(max_epochs=1, random_state=0).fit(X, y, sensitive_features=a)
    assert seen and all(s == {1} for s in seen)


def test_per_worker_shares_the_callers_threads():
    with torch_threads(4, lower_only=False):
        assert [per_worker(n) for n in (1, 2, 3, 4, 8)] == [4, 2, 1, 1, 1]


def _recording(seen: list[int]):
    def fn(batch: np.ndarray) -> np.ndarray:
        seen.append(torch.get_num_threads())  # read in the query thread
        return batch.reshape(len(batch), -1)

    return fn


def test_query_threads_share_the_callers_torch_threads():
    seen: list[int] = []
    encoder = CallableEncoder(_recording(seen), batch_size=2)
    batches = [np.zeros((2, 3), np.float32)] * 4
    with torch_threads(4, lower_only=False):
        encoder.embed_many(batches, n_jobs=2)
        assert seen and set(seen) == {2}  # 2 threads x 2 torch threads: within the caller's 4
        assert torch.get_num_threads() == 4  # the caller's setting is back
        seen.clear()
        encoder.embed_many(batches, n_jobs=1)  # no threads started: nothing to share
        assert set(seen) == {4}


def test_a_modules_serialised_calls_keep_all_the_callers_threads():
    seen: list[int] = []

    class Recording(torch.nn.Module):
        def forward(self, x):
            seen.append(torch.get_num_threads())
            return x.reshape(len(x), -1)

    encoder = as_black_box(Recording(), batch_size=2)
    with torch_threads(4, lower_only=False):
        encoder.embed_many([np.zeros((2, 3), np.float32)] * 4, n_jobs=2)
    assert set(seen) == {4}  # one forward at a time: each may use every thread


def test_a_gezo_fit_with_query_threads_leaves_torch_threads_as_they_were():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, 64)
    X = rng.normal(0.5, 0.1, (64, 1, 8, 8)).astype(np.float32)
    X[a == 1, 0, :2, :2] += 1.0
    before = torch.get_num_threads()
    GeZONoiseTransformer(lambda b: b.reshape(len(b), 4, 16).mean(axis=2), noise_resolution=4,
                         batch_size=32, max_queries=1_500, n_jobs=2,
                         random_state=0).fit(X, sensitive_features=a)
    assert torch.get_num_threads() == before
