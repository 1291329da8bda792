"""The black-box wrapper and query engine: :class:`CallableEncoder`, budgets and errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .._threads import per_worker, torch_threads
from ..edits import FittedEdit
from ._checks import check_embeddings
from ._torch import _ModuleFunction


class QueryError(RuntimeError):
    """A black-box encoder call failed for good.

    Raised for an exception the encoder does not treat as transient, and for transient
    ones that persisted through ``max_retries`` retries. The original exception is the
    ``__cause__``.

    Examples
    --------
    >>> import numpy as np
    >>> def api(batch):
    ...     raise PermissionError("invalid API key")
    >>> try:
    ...     CallableEncoder(api).embed(np.zeros((2, 3), np.float32))
    ... except QueryError as err:
    ...     print(type(err.__cause__).__name__)
    PermissionError
    """


class QueryBudgetExceeded(QueryError):
    """A call would have taken the images sent past the budget; it was not sent.

    Examples
    --------
    >>> import numpy as np
    >>> enc = CallableEncoder(lambda b: b, batch_size=4)
    >>> try:
    ...     enc.embed(np.zeros((10, 2), np.float32), meter=QueryMeter(limit=6))
    ... except QueryBudgetExceeded as err:
    ...     print("stopped;", enc.n_queries, "images were sent")
    stopped; 4 images were sent
    """


class QueryMeter:
    """Images sent in successful calls during one job, against an optional hard budget.

    Thread-safe. Every call first :meth:`reserve` s its images, which fails with
    :class:`QueryBudgetExceeded` (nothing sent) when the images already spent plus those in
    flight plus these could exceed ``limit``; :meth:`settle` then releases the reservation
    and counts the images if the call succeeded. A shared :class:`CallableEncoder` keeps
    its own running total across jobs; the meter is what one fit spent.

    Parameters
    ----------
    limit : int or None, default=None
        Most images this job may send; ``None`` is no limit.

    Attributes
    ----------
    spent : int
        Images sent in successful calls so far.

    Examples
    --------
    >>> import numpy as np
    >>> enc = CallableEncoder(lambda b: b, batch_size=4)
    >>> meter = QueryMeter(limit=100)
    >>> enc.embed(np.zeros((10, 2), np.float32), meter=meter).shape
    (10, 2)
    >>> meter.spent, meter.remaining
    (10, 90)
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.spent = 0
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def remaining(self) -> float:
        """Images that may still be sent (``inf`` without a limit)."""
        return np.inf if self.limit is None else self.limit - self.spent

    def reserve(self, n: int) -> None:
        with self._lock:
            if self.limit is not None and self.spent + self._in_flight + n > self.limit:
                raise QueryBudgetExceeded(
                    f"sending {n} more images would exceed the budget of {self.limit} "
                    f"({self.spent} spent, {self._in_flight} in flight); nothing was sent."
                )
            self._in_flight += n

    def settle(self, n: int, *, sent: bool) -> None:
        with self._lock:
            self._in_flight -= n
            if sent:
                self.spent += n


def _thread_map(task: Callable[[int], Any], n_tasks: int, n_jobs: int | None,
                share_torch_threads: bool = True) -> list[Any]:
    """``[task(i) for i in range(n_tasks)]``, on up to ``n_jobs`` threads, results in order.

    On the first failure (in task order) the tasks not yet started are cancelled, the
    running ones are waited for, and the exception propagates. With
    ``share_torch_threads``, each thread gets an equal share of the caller's torch
    intra-op threads (a task may run a local torch model), so threads × torch threads
    stays within what the caller allowed; restored afterwards.
    """
    if n_jobs is None or n_jobs <= 1 or n_tasks <= 1:
        return [task(i) for i in range(n_tasks)]
    workers = min(n_jobs, n_tasks)
    with torch_threads(per_worker(workers) if share_torch_threads else None), \
            ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(task, i) for i in range(n_tasks)]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


class CallableEncoder:
    """A black-box encoder: any function from a batch array to a 2-D embedding array.

    This is the query engine for paid, slow, flaky embedding APIs:

    * every image sent to ``fn`` in a successful call is counted, in :attr:`n_queries`
      (all jobs) and in the :class:`QueryMeter` passed to :meth:`embed` (one job, with an
      optional hard budget checked *before* each call);
    * an exception of a type in :attr:`transient_errors` is retried up to ``max_retries``
      times, after ``retry_delay``, ``2 * retry_delay``, ``4 * retry_delay``, ... seconds;
      failed calls are not counted. Any other exception, or a transient one that outlives
      the retries, raises :class:`QueryError` naming it (the original is ``__cause__``);
    * ``n_jobs`` threads issue independent calls concurrently (an API is latency-bound);
      results always come back in input order, so they do not depend on ``n_jobs``.

    Parameters
    ----------
    fn : callable
        ``fn(batch) -> embeddings`` where ``batch`` is a float32 NumPy array of shape
        ``(n, *input_shape)`` and ``embeddings`` is array-like of shape ``(n, E)``. With
        ``n_jobs > 1`` it is called from several threads at once.
    batch_size : int, default=256
        Maximum number of inputs per call of ``fn``.
    retry_delay : float, default=0.5
        Seconds to wait before the first retry; each further retry waits twice as long.
    transient_errors : tuple of exception types or None, default=None
        Exceptions worth retrying. ``None`` uses the class attribute
        :attr:`transient_errors`, ``(ConnectionError, TimeoutError)``. An HTTP client's
        own exceptions are not among them: list them here (for example
        ``(requests.ConnectionError, requests.Timeout)``), or raise ``ConnectionError``
        from ``fn`` for a status such as 429 or 503.

    Attributes
    ----------
    n_queries : int
        Number of inputs sent to ``fn`` in successful calls so far, over all jobs.

    Examples
    --------
    >>> import numpy as np
    >>> enc = CallableEncoder(lambda b: b.reshape(len(b), -1).mean(axis=1, keepdims=True))
    >>> enc.embed(np.ones((5, 1, 2, 2), dtype=np.float32)).shape
    (5, 1)
    >>> enc.n_queries
    5
    >>> meter = QueryMeter(limit=8)
    >>> Zs = enc.embed_many([np.ones((4, 1, 2, 2), np.float32)] * 2, n_jobs=2, meter=meter)
    >>> meter.spent, enc.n_queries
    (8, 13)
    """

    differentiable = False
    #: Exception types retried by default: the builtin network failures.
    transient_errors: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)

    def __init__(
        self,
        fn: Callable[[np.ndarray], Any],
        *,
        batch_size: int = 256,
        retry_delay: float = 0.5,
        transient_errors: tuple[type[BaseException], ...] | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"CallableEncoder needs a callable; got {type(fn).__name__}.")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
        if not isinstance(retry_delay, (int, float)) or retry_delay < 0:
            raise ValueError(f"retry_delay must be a number of seconds >= 0; got {retry_delay!r}.")
        if transient_errors is not None:
            transient_errors = tuple(transient_errors)
            if not all(isinstance(t, type) and issubclass(t, BaseException)
                       for t in transient_errors):
                raise TypeError(
                    "transient_errors must be a tuple of exception classes, e.g. "
                    f"(ConnectionError, TimeoutError); got {transient_errors!r}."
                )
            self.transient_errors = transient_errors
        self.fn = fn
        self.batch_size = int(batch_size)
        self.retry_delay = float(retry_delay)
        self.n_queries = 0
        self._lock = threading.Lock()

    def __sklearn_clone__(self) -> CallableEncoder:
        return self

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        name = getattr(self.fn, "__name__", type(self.fn).__name__)
        return f"CallableEncoder({name}, batch_size={self.batch_size})"

    def _call(self, batch: np.ndarray, max_retries: int, meter: QueryMeter | None) -> np.ndarray:
        """One call of ``fn``, retried on transient errors; counts the images if it succeeds."""
        n = len(batch)
        for attempt in range(max_retries + 1):
            if meter is not None:
                meter.reserve(n)
            sent = False
            try:
                # a copy per attempt: fn may write to its input, and a retry must send the
                # same images; the caller's arrays are never handed out
                Z = self.fn(batch.copy())
                sent = True
            except self.transient_errors as exc:
                if attempt < max_retries:
                    time.sleep(self.retry_delay * 2**attempt)
                    continue
                raise QueryError(
                    f"the encoder failed {attempt + 1} times in a row (max_retries="
                    f"{max_retries}); last error: {type(exc).__name__}: {exc}"
                ) from exc
            except Exception as exc:
                raise QueryError(
                    f"the encoder raised {type(exc).__name__}: {exc} (not a transient "
                    f"error, so not retried; transient_errors={self._transient_names()})"
                ) from exc
            finally:
                if meter is not None:
                    meter.settle(n, sent=sent)
            with self._lock:
                self.n_queries += n
            return check_embeddings(Z, n, "encoder")
        raise AssertionError("unreachable")  # pragma: no cover

    def _transient_names(self) -> str:
        return "(" + ", ".join(t.__name__ for t in self.transient_errors) + ")"

    def embed(self, X: np.ndarray, *, edit: FittedEdit | None = None,
              n_jobs: int | None = None, max_retries: int = 3,
              meter: QueryMeter | None = None) -> np.ndarray:
        """Embed ``X`` in calls of at most :attr:`batch_size` inputs; returns ``N×E``.

        Parameters
        ----------
        X : ndarray of shape (n_samples, ...)
            Inputs, sent as float32.
        edit : FittedEdit or None, default=None
            Applied to each call's inputs before they are sent.
        n_jobs : int or None, default=None
            Threads issuing calls concurrently; ``None`` is one.
        max_retries : int, default=3
            Retries of a call that raised a transient error.
        meter : QueryMeter or None, default=None
            Counts this job's images and enforces its budget.
        """
        starts = range(0, len(X), self.batch_size)

        def batch(i: int) -> np.ndarray:
            rows = X[starts[i] : starts[i] + self.batch_size]
            return np.ascontiguousarray(rows if edit is None else edit.apply(rows), np.float32)

        out = _thread_map(lambda i: self._call(batch(i), max_retries, meter), len(starts),
                          n_jobs, self._calls_overlap)
        if not out:
            return np.zeros((0, 0), np.float32)
        return np.concatenate(out)

    def embed_many(
        self,
        batches: Sequence[np.ndarray],
        *,
        n_jobs: int | None = None,
        max_retries: int = 3,
        meter: QueryMeter | None = None,
        on_result: Callable[[int, np.ndarray], None] | None = None,
    ) -> list[np.ndarray]:
        """Embed independent batches, concurrently on ``n_jobs`` threads, in input order.

        ``batches[i]`` is read inside the worker thread, so a lazy sequence holds only
        ``n_jobs`` batches in memory at a time. ``on_result(i, Z)`` is called as each batch
        completes, so the caller keeps what succeeded even when another batch fails.
        Other parameters are as in :meth:`embed`.
        """
        def task(i: int) -> np.ndarray:
            Z = self.embed(batches[i], max_retries=max_retries, meter=meter)
            if on_result is not None:
                on_result(i, Z)
            return Z

        return _thread_map(task, len(batches), n_jobs, self._calls_overlap)

    @property
    def _calls_overlap(self) -> bool:
        """Whether concurrent calls of ``fn`` run at once (a module's are serialised)."""
        return not isinstance(self.fn, _ModuleFunction)
