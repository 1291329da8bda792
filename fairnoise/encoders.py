"""Encoder adapters: the frozen foundation model behind a small, uniform face.

Two wrappers cover the two ways a user holds a foundation model:

* :class:`TorchEncoder` wraps a differentiable ``torch.nn.Module`` (white-box). It runs
  the module in eval mode without parameter gradients, in batches, on a chosen device and
  precision, and restores the module's own state afterwards.
* :class:`CallableEncoder` wraps any function from a batch array to a 2-D array
  (black-box, e.g. a web API). It is the query engine of the black-box estimator: it
  counts every image sent in a successful call (``n_queries``, and per job in a
  :class:`QueryMeter` that can hold a hard budget), retries transient failures with
  exponential backoff, and issues independent calls concurrently from threads.

Both define ``__sklearn_clone__`` so that :func:`sklearn.base.clone` (which
``GridSearchCV`` calls once per candidate) shares one frozen model instead of copying it.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

__all__ = [
    "CallableEncoder",
    "QueryBudgetExceeded",
    "QueryError",
    "QueryMeter",
    "TorchEncoder",
    "as_black_box",
    "check_encoder",
]


def _check_embeddings(Z: Any, n_rows: int, who: str) -> np.ndarray:
    """Validate what an encoder returned: a finite 2-D array with one row per input."""
    if isinstance(Z, torch.Tensor):
        Z = Z.detach().cpu().numpy()
    Z = np.asarray(Z)
    if Z.ndim != 2:
        raise ValueError(
            f"{who} must return a 2-D array (n_samples, n_features) of embeddings; "
            f"it returned an array of shape {Z.shape}. Flatten or pool its output."
        )
    if Z.shape[0] != n_rows:
        raise ValueError(
            f"{who} returned {Z.shape[0]} embeddings for a batch of {n_rows} inputs."
        )
    if not np.issubdtype(Z.dtype, np.number):
        raise TypeError(f"{who} must return numeric embeddings; got dtype {Z.dtype}.")
    if not np.all(np.isfinite(Z)):
        raise ValueError(f"{who} returned NaN or infinite embeddings.")
    return Z


def _resolve_device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device={device!r} is not a valid torch device.") from exc


class TorchEncoder:
    """A frozen, differentiable ``torch.nn.Module`` used as the encoder φ.

    The module is never modified: while fairnoise uses it, it runs in eval mode with
    parameter gradients off, and afterwards its train/eval mode and ``requires_grad``
    flags are put back as they were. When ``device`` differs from the module's own
    device, a private copy is moved there and the caller's module stays where it is.

    Parameters
    ----------
    module : torch.nn.Module
        Maps a float batch ``N×C×H×W`` (or ``N×D``) to embeddings ``N×E``.
    device : {"auto", "cpu", "cuda", ...} or torch.device, default="auto"
        Where to run the module. ``"auto"`` means CUDA when available, else CPU.
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        Autocast precision of the forward pass. ``"auto"`` is bf16 on CUDA, fp32 on CPU.
    batch_size : int, default=256
        Number of inputs per forward pass in :meth:`embed`.

    Examples
    --------
    >>> import numpy as np, torch
    >>> enc = TorchEncoder(torch.nn.Flatten(), device="cpu")
    >>> enc.embed(np.ones((3, 1, 2, 2), dtype=np.float32)).shape
    (3, 4)
    """

    differentiable = True

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        batch_size: int = 256,
    ) -> None:
        if not isinstance(module, torch.nn.Module):
            raise TypeError(
                f"TorchEncoder needs a torch.nn.Module; got {type(module).__name__}. "
                "Wrap a plain function with CallableEncoder instead."
            )
        if precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(
                f"precision must be one of 'auto', 'fp32', 'bf16', 'fp16'; got {precision!r}."
            )
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
        self.module = module
        self.device = device
        self.precision = precision
        self.batch_size = int(batch_size)
        self._moved: torch.nn.Module | None = None

    # -- scikit-learn / pickling ------------------------------------------------------------
    def __sklearn_clone__(self) -> TorchEncoder:
        return self  # one frozen model shared by every clone

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_moved"] = None  # the device copy is a cache, rebuilt on demand
        return state

    def __repr__(self) -> str:
        return f"TorchEncoder({type(self.module).__name__}, device={self.device!r})"

    # -- runtime ------------------------------------------------------------------------------
    @property
    def torch_device(self) -> torch.device:
        """The resolved device the forward pass runs on."""
        return _resolve_device(self.device)

    def _autocast(self) -> contextlib.AbstractContextManager:
        device = self.torch_device
        precision = self.precision
        if precision == "auto":
            precision = "bf16" if device.type == "cuda" else "fp32"
        if precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device_type=device.type, dtype=dtype)

    def _target_module(self) -> torch.nn.Module:
        device = self.torch_device
        params = list(self.module.parameters()) + list(self.module.buffers())
        if not params or all(p.device == device for p in params):
            return self.module
        if self._moved is None:  # never move the caller's module: move a private copy
            self._moved = copy.deepcopy(self.module).to(device)
        return self._moved

    @contextlib.contextmanager
    def frozen(self) -> Iterator[torch.nn.Module]:
        """Yield the module in eval mode without parameter gradients; restore it after."""
        module = self._target_module()
        modes = [m.training for m in module.modules()]
        flags = [p.requires_grad for p in module.parameters()]
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        try:
            yield module
        finally:
            for m, mode in zip(module.modules(), modes, strict=True):
                m.training = mode
            for p, flag in zip(module.parameters(), flags, strict=True):
                p.requires_grad_(flag)

    def forward(self, module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Differentiable forward of a batch already on :attr:`torch_device`, in float32."""
        with self._autocast():
            z = module(x)
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[0] != x.shape[0]:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(
                "encoder must return a 2-D tensor (n_samples, n_features) of embeddings; "
                f"it returned {shape} for a batch of shape {tuple(x.shape)}."
            )
        return z.float()

    def embed(self, X: np.ndarray,
              edit: Callable[[torch.Tensor], torch.Tensor] | None = None) -> np.ndarray:
        """Embed a float array batch by batch, without gradients. Returns float32 ``N×E``.

        ``edit``, if given, maps each float32 batch on the device to the batch the encoder
        sees (out of place: the batch may share memory with ``X``). Editing batch by
        batch keeps the edit's temporaries the size of a batch, in cache and on the
        device, instead of making whole-array copies on the host.
        """
        out = []
        device = self.torch_device
        with self.frozen() as module, torch.no_grad():
            for start in range(0, len(X), self.batch_size):
                xb = torch.as_tensor(np.asarray(X[start : start + self.batch_size]))
                xb = xb.to(device, torch.float32, non_blocking=True)
                z = self.forward(module, xb if edit is None else edit(xb))
                out.append(z.cpu().numpy())
        Z = np.concatenate(out) if out else np.zeros((0, 0), np.float32)
        return _check_embeddings(Z, len(X), "encoder")


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


def _thread_map(task: Callable[[int], Any], n_tasks: int, n_jobs: int | None) -> list[Any]:
    """``[task(i) for i in range(n_tasks)]``, on up to ``n_jobs`` threads, results in order.

    On the first failure (in task order) the tasks not yet started are cancelled, the
    running ones are waited for, and the exception propagates.
    """
    if n_jobs is None or n_jobs <= 1 or n_tasks <= 1:
        return [task(i) for i in range(n_tasks)]
    with ThreadPoolExecutor(max_workers=min(n_jobs, n_tasks)) as pool:
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
                Z = self.fn(batch)
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
            return _check_embeddings(Z, n, "encoder")
        raise AssertionError("unreachable")  # pragma: no cover

    def _transient_names(self) -> str:
        return "(" + ", ".join(t.__name__ for t in self.transient_errors) + ")"

    def embed(self, X: np.ndarray, *, n_jobs: int | None = None, max_retries: int = 3,
              meter: QueryMeter | None = None) -> np.ndarray:
        """Embed ``X`` in calls of at most :attr:`batch_size` inputs; returns ``N×E``.

        Parameters
        ----------
        X : ndarray of shape (n_samples, ...)
            Inputs, sent as float32.
        n_jobs : int or None, default=None
            Threads issuing calls concurrently; ``None`` is one.
        max_retries : int, default=3
            Retries of a call that raised a transient error.
        meter : QueryMeter or None, default=None
            Counts this job's images and enforces its budget.
        """
        starts = range(0, len(X), self.batch_size)
        out = _thread_map(
            lambda i: self._call(
                np.ascontiguousarray(X[starts[i] : starts[i] + self.batch_size], np.float32),
                max_retries, meter),
            len(starts), n_jobs,
        )
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

        return _thread_map(task, len(batches), n_jobs)


class _ModuleFunction:
    """A module behind a plain ``batch -> embeddings`` function: forward passes only.

    Calls are serialised, because :meth:`TorchEncoder.frozen` toggles the module's flags
    for the duration of each call.
    """

    def __init__(self, encoder: TorchEncoder) -> None:
        self.encoder = encoder
        self._lock = threading.Lock()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            return self.encoder.embed(batch)

    def __getstate__(self) -> dict[str, Any]:
        return {"encoder": self.encoder}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["encoder"])


def check_encoder(encoder: Any) -> TorchEncoder | CallableEncoder | None:
    """Wrap what a user passed as ``encoder``: ``None``, a module, a callable or a wrapper.

    Examples
    --------
    >>> import torch
    >>> type(check_encoder(torch.nn.Flatten())).__name__
    'TorchEncoder'
    >>> type(check_encoder(lambda batch: batch)).__name__
    'CallableEncoder'
    >>> check_encoder(None) is None  # feature mode
    True
    >>> check_encoder("resnet50")
    Traceback (most recent call last):
    ...
    TypeError: encoder must be None (inputs are features), a torch.nn.Module, ...
    """
    if encoder is None or isinstance(encoder, (TorchEncoder, CallableEncoder)):
        return encoder
    if isinstance(encoder, torch.nn.Module):
        return TorchEncoder(encoder)
    if callable(encoder):
        return CallableEncoder(encoder)
    raise TypeError(
        "encoder must be None (inputs are features), a torch.nn.Module, a callable mapping a "
        "batch array to a 2-D array, or a fairnoise.encoders wrapper; got "
        f"{type(encoder).__name__}."
    )


def as_black_box(encoder: Any, *, batch_size: int) -> CallableEncoder | None:
    """The black-box view of any encoder: every call goes through a :class:`CallableEncoder`.

    A module (or :class:`TorchEncoder`) is used through forward passes only, and a plain
    callable gets calls of ``batch_size`` inputs; a :class:`CallableEncoder` is used as
    it is, and ``None`` (feature mode) stays ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> enc = as_black_box(torch.nn.Flatten(), batch_size=2)
    >>> enc.embed(np.zeros((5, 1, 2, 2), np.float32)).shape
    (5, 4)
    >>> enc.n_queries  # forward passes only, counted like API calls
    5
    """
    if isinstance(encoder, (torch.nn.Module, TorchEncoder)):
        return CallableEncoder(_ModuleFunction(check_encoder(encoder)), batch_size=batch_size)
    if callable(encoder) and not isinstance(encoder, CallableEncoder):
        return CallableEncoder(encoder, batch_size=batch_size)
    return check_encoder(encoder)
