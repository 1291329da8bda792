"""Thread pools for a scope: torch's intra-op threads and the BLAS / OpenMP pools.

fairnoise leaves these settings as the user set them (torch's default is one thread per
core) and changes them only for the scope of its own concurrent work, restoring them
afterwards, so that it never runs more threads than the caller allowed:

* while GeZO's ``n_jobs`` query threads run an encoder that may itself run torch (a local
  model behind a callable), each thread gets an equal share of the caller's torch threads
  (:func:`per_worker`), instead of every thread starting as many as there are cores;
* the scikit-learn probe fits use at most as many BLAS threads as torch's intra-op pool
  has (:func:`blas_within_torch`), so one setting (``torch.set_num_threads``) governs all of
  a fit's numerical work;
* the demo's ``--threads N`` sets both pools for the run (:func:`use_threads`).

See ``docs/scale.md`` (Threads) for the measurements behind these choices.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def per_worker(n_workers: int) -> int:
    """torch threads for each of ``n_workers`` concurrent workers: an equal share of the
    calling thread's, at least one."""
    return max(1, torch.get_num_threads() // max(1, n_workers))


@contextlib.contextmanager
def torch_threads(n: int | None, *, lower_only: bool = True) -> Iterator[None]:
    """``n`` torch intra-op threads in this scope; the caller's setting is restored after.

    With ``lower_only`` (the default) the setting is only ever lowered: ``None`` or an
    ``n`` above the current value changes nothing. Threads started inside the scope take
    the new value when they first run torch; restoring happens in the calling thread,
    the one that changed it.
    """
    before = torch.get_num_threads()
    if n is None or n == before or (lower_only and n > before):
        yield
        return
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def blas_within_torch() -> Iterator[None]:
    """BLAS pools (NumPy's, SciPy's) at most as many threads as torch's intra-op pool, for
    this scope; a pool already at or below that is left alone. Restored after."""
    from threadpoolctl import threadpool_info, threadpool_limits

    n = torch.get_num_threads()
    over = {pool["prefix"]: n for pool in threadpool_info()
            if pool["user_api"] == "blas" and pool["num_threads"] > n}
    if not over:
        yield
        return
    with threadpool_limits(limits=over):
        yield


@contextlib.contextmanager
def use_threads(n: int | None) -> Iterator[None]:
    """``n`` threads in torch's intra-op pool and in every BLAS and OpenMP pool (NumPy's,
    SciPy's, scikit-learn's) for this scope; everything is restored after. ``None``
    changes nothing."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(n)), torch_threads(n, lower_only=False):
        yield
