"""The black-box wrapper and query engine: :class:`CallableEncoder`, budgets and errors."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .._idle import work_while_waiting
from .._threads import per_worker, torch_threads
from ..edits import FittedEdit
from ._checks import check_embeddings
from ._torch import _ModuleFunction

#: most call results a :class:`CallableEncoder` keeps from interrupted jobs (oldest dropped)
_SALVAGE_LIMIT = 256


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


class MalformedResponseError(QueryError, ValueError):
    """The encoder kept returning something that is not one finite row of numbers per input.

    A response with NaN or infinite values, a row too many or too few, another width than
    the earlier ones, complex numbers or non-numbers is a fault of that call: it is
    retried like a transient error (``retry_malformed``), and this is raised once the
    retries are exhausted. It is a :class:`QueryError` (a black-box fit keeps its
    progress and says how to resume) and a ``ValueError`` (what was returned is wrong).
    The last check that failed is the ``__cause__``.

    Examples
    --------
    >>> import numpy as np
    >>> enc = CallableEncoder(lambda b: np.full((len(b), 2), np.nan), retry_delay=0)
    >>> try:
    ...     enc.embed(np.zeros((3, 2), np.float32), max_retries=1)
    ... except MalformedResponseError as err:
    ...     print(str(err).split(": the encoder")[0], "|", err.__cause__)  # doctest: +ELLIPSIS
    malformed response 2 times in a row (max_retries=1) | ... returned NaN or infinite embeddings.
    >>> enc.n_queries, enc.n_queries_attempted  # nothing usable came back; 6 images went out
    (0, 6)
    """


class QueryMeter:
    """Images sent during one job, against an optional hard budget.

    Thread-safe. Every call first :meth:`reserve` s its images, which fails with
    :class:`QueryBudgetExceeded` (nothing sent) when the images already counted plus those
    in flight plus these could exceed ``limit``; :meth:`settle` then releases the
    reservation and counts the images: in :attr:`attempted` whenever the call was made,
    in :attr:`spent` only if it returned well-formed embeddings. A shared
    :class:`CallableEncoder` keeps its own running totals across jobs; the meter is what
    one fit spent.

    Parameters
    ----------
    limit : int or None, default=None
        Most images this job may send; ``None`` is no limit.
    count_failed : bool, default=False
        Whether the budget counts the images of failed calls too (a transient error, a
        malformed response): ``limit`` then bounds :attr:`attempted` instead of
        :attr:`spent`. For providers that bill every call.

    Attributes
    ----------
    spent : int
        Images sent in calls that returned well-formed embeddings.
    attempted : int
        Images sent in any call, failed ones included.

    Examples
    --------
    >>> import numpy as np
    >>> enc = CallableEncoder(lambda b: b, batch_size=4)
    >>> meter = QueryMeter(limit=100)
    >>> enc.embed(np.zeros((10, 2), np.float32), meter=meter).shape
    (10, 2)
    >>> meter.spent, meter.attempted, meter.remaining
    (10, 10, 90)
    """

    def __init__(self, limit: int | None = None, *, count_failed: bool = False) -> None:
        self.limit = limit
        self.count_failed = count_failed
        self.spent = 0
        self.attempted = 0
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def counted(self) -> int:
        """The images the budget counts: :attr:`attempted` or :attr:`spent`."""
        return self.attempted if self.count_failed else self.spent

    @property
    def remaining(self) -> float:
        """Images that may still be sent (``inf`` without a limit)."""
        return np.inf if self.limit is None else self.limit - self.counted

    def reserve(self, n: int) -> None:
        """Reserve ``n`` images for a call about to be sent; refuse past the budget."""
        with self._lock:
            if self.limit is not None and self.counted + self._in_flight + n > self.limit:
                raise QueryBudgetExceeded(
                    f"sending {n} more images would exceed the budget of {self.limit} "
                    f"({self.counted} spent, {self._in_flight} in flight); nothing was sent."
                )
            self._in_flight += n

    def settle(self, n: int, *, sent: bool) -> None:
        """Release a reservation of ``n`` images after the call was made; ``sent``: it
        returned well-formed embeddings (the images count as spent, not only attempted)."""
        with self._lock:
            self._in_flight -= n
            self.attempted += n
            if sent:
                self.spent += n


def _thread_map(task: Callable[[int], Any], n_tasks: int, n_jobs: int | None,
                share_torch_threads: bool = True,
                on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
    """``[task(i) for i in range(n_tasks)]``, on up to ``n_jobs`` threads, results in order.

    On the first failure (in task order) the tasks not yet started are cancelled, the
    running ones are waited for, and the exception propagates. With
    ``share_torch_threads``, each thread gets an equal share of the caller's torch
    intra-op threads (a task may run a local torch model), so threads × torch threads
    stays within what the caller allowed; restored afterwards. While it waits for the
    threads, the calling thread runs its deferred client work (:mod:`fairnoise._idle`).
    ``on_result(i, value)`` is called as each task succeeds (also those that succeeded
    when another failed): in the calling thread while tasks are still queued, so the
    threads go on to the next task at once, and in the task's own thread once none is
    left to start, so the last round's results are handled side by side.
    """
    if n_jobs is None or n_jobs <= 1 or n_tasks <= 1:
        out = []
        for i in range(n_tasks):
            out.append(task(i))
            if on_result is not None:
                on_result(i, out[-1])
        return out
    workers = min(n_jobs, n_tasks)
    lock, started, handled = threading.Lock(), [0], set()

    def run(i: int) -> Any:
        with lock:
            started[0] += 1
        value = task(i)
        if on_result is not None and started[0] == n_tasks:  # nothing left to start
            on_result(i, value)
            handled.add(i)
        return value

    def hand(i: int, value: Any) -> None:
        if i not in handled:
            on_result(i, value)

    with torch_threads(per_worker(workers) if share_torch_threads else None), \
            ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run, i) for i in range(n_tasks)]
        try:
            # the caller's deferred client work, if any, and its handling of each result
            work_while_waiting(futures, workers, None if on_result is None else hand)
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


class CallableEncoder:
    """A black-box encoder: any function from a batch array to a 2-D embedding array.

    This is the query engine for paid, slow, flaky embedding APIs:

    * every image sent to ``fn`` is counted: in :attr:`n_queries` when the call returned
      well-formed embeddings, in :attr:`n_queries_attempted` whatever happened (all
      jobs), and likewise in the :class:`QueryMeter` passed to :meth:`embed` (one job,
      with an optional hard budget checked *before* each call);
    * an exception of a type in :attr:`transient_errors` is retried up to ``max_retries``
      times, after ``retry_delay``, ``2 * retry_delay``, ``4 * retry_delay``, ... seconds.
      Any other exception, or a transient one that outlives the retries, raises
      :class:`QueryError` naming it (the original is ``__cause__``);
    * a *malformed* response (not one finite row of real numbers per input, of the width
      of the earlier responses) is a fault of that call too: with ``retry_malformed`` it
      is retried in the same way, and raises :class:`MalformedResponseError` once the
      retries are exhausted;
    * ``n_jobs`` threads issue independent calls concurrently (an API is latency-bound);
      results always come back in input order, so they do not depend on ``n_jobs``;
    * nothing paid for is lost: when a call of :meth:`embed` fails for good, the responses
      of its calls that succeeded are kept, and a later call with exactly the same inputs
      (a resumed fit replaying the interrupted step) uses them instead of sending the
      images again. At most 256 responses are kept; they are not pickled.

    Parameters
    ----------
    fn : callable
        ``fn(batch) -> embeddings`` where ``batch`` is a float32 NumPy array of shape
        ``(n, *input_shape)`` (a copy of its own, which ``fn`` may modify) and
        ``embeddings`` is array-like of shape ``(n, E)``. With ``n_jobs > 1`` it is called
        from several threads at once.
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
    retry_malformed : bool, default=True
        Retry a call whose response is malformed, as a transient error. ``False`` raises
        :class:`MalformedResponseError` at the first one (for a function whose output is
        deterministic, where a retry would return the same).

    Attributes
    ----------
    n_queries : int
        Number of inputs sent to ``fn`` in calls that returned well-formed embeddings,
        over all jobs.
    n_queries_attempted : int
        Number of inputs sent to ``fn`` in any call, failed and malformed ones included:
        what a provider that bills every call charges.

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
        retry_malformed: bool = True,
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
        if not isinstance(retry_malformed, (bool, np.bool_)):
            raise TypeError(f"retry_malformed must be True or False; got {retry_malformed!r}.")
        self.fn = fn
        self.batch_size = int(batch_size)
        self.retry_delay = float(retry_delay)
        self.retry_malformed = bool(retry_malformed)
        self.n_queries = 0
        self.n_queries_attempted = 0
        self._lock = threading.Lock()
        # responses of calls whose job failed, by digest of the inputs (see _salvage)
        self._salvaged: dict[bytes, np.ndarray] = {}

    def __sklearn_clone__(self) -> CallableEncoder:
        return self

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        state["_salvaged"] = {}  # keyed by this process's function: no use elsewhere
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # encoders pickled by fairnoise 0.1 predate the attempted count and malformed retries
        self.__dict__.update({"n_queries_attempted": state.get("n_queries", 0),
                              "retry_malformed": True, "_salvaged": {}, **state})
        self._lock = threading.Lock()

    # -- responses kept from failed jobs ---------------------------------------------------
    def _digest(self, batch: np.ndarray) -> bytes:
        """Key of a call's inputs (and of the function that answers them)."""
        head = f"{id(self.fn)}:{batch.dtype.str}:{batch.shape}".encode()
        return hashlib.blake2b(head + batch.tobytes(), digest_size=16).digest()

    def _salvage(self, batches: dict[int, np.ndarray], responses: dict[int, np.ndarray]) -> None:
        """Keep the responses of a failed job's successful calls, for a retry of the job."""
        keys = {self._digest(batches[i]): Z for i, Z in responses.items()}
        with self._lock:
            self._salvaged.update(keys)
            while len(self._salvaged) > _SALVAGE_LIMIT:
                self._salvaged.pop(next(iter(self._salvaged)))

    def _salvaged_response(self, batch: np.ndarray, n_features: int | None) -> np.ndarray | None:
        """A kept response to exactly these inputs (taken out), or None."""
        if not self._salvaged:  # the usual case: no hashing at all
            return None
        key = self._digest(batch)
        with self._lock:
            Z = self._salvaged.pop(key, None)
        if Z is None or (n_features is not None and Z.shape[1] != n_features):
            return None
        return Z

    def __repr__(self) -> str:
        name = getattr(self.fn, "__name__", type(self.fn).__name__)
        return f"CallableEncoder({name}, batch_size={self.batch_size})"

    def _call(self, batch: np.ndarray, max_retries: int, meter: QueryMeter | None,
              n_features: int | None) -> np.ndarray:
        """One call of ``fn``, retried on transient errors and malformed responses.

        Every attempt is counted as attempted; only a well-formed response counts its
        images in :attr:`n_queries` and the meter's ``spent``.
        """
        n = len(batch)
        for attempt in range(max_retries + 1):
            if meter is not None:
                meter.reserve(n)
            Z = failure = None
            malformed = False
            try:
                # a copy per attempt: fn may write to its input, and a retry must send the
                # same images; the caller's arrays are never handed out
                response = self.fn(batch.copy())
            except self.transient_errors as exc:
                failure = exc
            except Exception as exc:
                raise QueryError(
                    f"the encoder raised {type(exc).__name__}: {exc} (not a transient "
                    f"error, so not retried; transient_errors={self._transient_names()})"
                ) from exc
            else:
                try:
                    Z = check_embeddings(response, n, f"the encoder {self!r}", n_features)
                except (ValueError, TypeError) as exc:
                    failure, malformed = exc, True
            finally:  # the call was made: its images count as attempted, whatever came back
                with self._lock:
                    self.n_queries_attempted += n
                    self.n_queries += n if Z is not None else 0
                if meter is not None:
                    meter.settle(n, sent=Z is not None)
            if Z is not None:
                return Z
            if malformed and not self.retry_malformed:
                raise MalformedResponseError(
                    "malformed response (retry_malformed=False, so not retried): "
                    f"{failure}") from failure
            if attempt < max_retries:
                time.sleep(self.retry_delay * 2**attempt)
                continue
            if malformed:
                raise MalformedResponseError(
                    f"malformed response {attempt + 1} times in a row (max_retries="
                    f"{max_retries}): {failure}") from failure
            raise QueryError(
                f"the encoder failed {attempt + 1} times in a row (max_retries="
                f"{max_retries}); last error: {type(failure).__name__}: {failure}"
            ) from failure
        raise AssertionError("unreachable")  # pragma: no cover

    def _transient_names(self) -> str:
        return "(" + ", ".join(t.__name__ for t in self.transient_errors) + ")"

    def embed(self, X: np.ndarray, *, edit: FittedEdit | None = None,
              n_jobs: int | None = None, max_retries: int = 3,
              meter: QueryMeter | None = None, n_features: int | None = None) -> np.ndarray:
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
            Retries of a call that raised a transient error or returned a malformed
            response.
        meter : QueryMeter or None, default=None
            Counts this job's images and enforces its budget.
        n_features : int or None, default=None
            The width the embeddings must have; a response of another width is malformed.
            ``None``: the first call is sent alone and its response fixes the width for
            the others (so the result does not depend on which call returns first).
        """
        starts = range(0, len(X), self.batch_size)
        if not starts:
            return np.zeros((0, 0), np.float32)
        done: dict[int, np.ndarray] = {}

        def inputs(i: int) -> np.ndarray:
            rows = X[starts[i] : starts[i] + self.batch_size]
            return np.ascontiguousarray(rows if edit is None else edit.apply(rows), np.float32)

        def call(i: int, width: int | None) -> np.ndarray:
            batch = inputs(i)
            Z = self._salvaged_response(batch, width)
            if Z is None:
                Z = self._call(batch, max_retries, meter, width)
            done[i] = Z
            return Z

        try:
            first = [] if n_features is not None else [call(0, None)]
            width = n_features if n_features is not None else first[0].shape[1]
            rest = _thread_map(lambda i: call(len(first) + i, width), len(starts) - len(first),
                               n_jobs, self._calls_overlap)
        except BaseException:
            # what was paid for is not lost with the job (the inputs are rebuilt to key it)
            self._salvage({i: inputs(i) for i in done}, done)
            raise
        return np.concatenate([*first, *rest])

    def embed_many(
        self,
        batches: Sequence[np.ndarray],
        *,
        n_jobs: int | None = None,
        max_retries: int = 3,
        meter: QueryMeter | None = None,
        on_result: Callable[[int, np.ndarray], None] | None = None,
        n_features: int | None = None,
    ) -> list[np.ndarray]:
        """Embed independent batches, concurrently on ``n_jobs`` threads, in input order.

        ``batches[i]`` is read inside the worker thread, so a lazy sequence holds only
        ``n_jobs`` batches in memory at a time. ``on_result(i, Z)`` is called in the
        calling thread as each batch completes (while the others are in flight), so the
        caller keeps what succeeded even when another batch fails.
        Other parameters are as in :meth:`embed`; pass ``n_features`` so that every
        batch is held to the same width.
        """
        def task(i: int) -> np.ndarray:
            return self.embed(batches[i], max_retries=max_retries, meter=meter,
                              n_features=n_features)

        return _thread_map(task, len(batches), n_jobs, self._calls_overlap, on_result)

    @property
    def _calls_overlap(self) -> bool:
        """Whether concurrent calls of ``fn`` run at once (a module's are serialised)."""
        return not isinstance(self.fn, _ModuleFunction)
