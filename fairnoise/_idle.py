"""Client work done while the encoder's calls are in flight.

A guarded fit judges its candidates with probes and erasers fitted on the client: CPU
work that needs no encoder. While GeZO's queries run on ``n_jobs`` threads the calling
thread only waits for them; work deferred here runs in that thread during such waits, one
step at a time and in the order it was deferred, and whatever is left runs when its
result is asked for. Everything runs in the thread that deferred it, so the values and
their order are those of running it at once: only the wall time changes. Work that fails
stops the fit at the next wait. (The guard's embedding erasers, NumPy work that touches
no process-wide state, are the exception: with ``n_jobs`` they are fitted on threads of
their own, see ``BaseNoiseTransformer._eraser_threads``.) Work that silences warnings
must do so with :func:`fairnoise._quiet.ignoring`, not :class:`warnings.catch_warnings`:
the query threads running the user's encoder meanwhile share the process-wide filters.

Work is a callable or a generator function: a generator yields between its steps, so
that a waiting thread returns to its calls after one step (tens of milliseconds) rather
than after a whole job.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextvars import ContextVar
from typing import Any

__all__ = ["IdleWork", "collecting", "work_while_waiting"]

_UNSET = object()


class Deferred:
    """One piece of deferred work; :meth:`result` finishes it if it has not run yet."""

    def __init__(self, owner: IdleWork, fn: Callable[..., Any], args: tuple,
                 kwargs: dict) -> None:
        self._owner, self._fn, self._args, self._kwargs = owner, fn, args, kwargs
        self._steps: Iterator[Any] | None = None
        self._value: Any = _UNSET
        self._error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._value is not _UNSET or self._error is not None

    def step(self) -> None:
        """Run the next step (the whole call for a plain function)."""
        try:
            if self._steps is None:
                if not inspect.isgeneratorfunction(self._fn):
                    self._value = self._fn(*self._args, **self._kwargs)
                    return
                self._steps = self._fn(*self._args, **self._kwargs)
            next(self._steps)
        except StopIteration as stop:
            self._value = stop.value
        except Exception as exc:  # kept: raised at the next wait, by drain() or by result()
            self._error = exc

    def result(self) -> Any:
        """The value, running this work (and what was deferred before it) to the end."""
        self._owner.run_until(self)
        if self._error is not None:
            raise self._error
        return self._value


class IdleWork:
    """A first-in, first-out queue of deferred work of one thread."""

    def __init__(self) -> None:
        self._queue: deque[Deferred] = deque()
        #: the first error a piece of work raised, if any
        self.failure: BaseException | None = None
        #: seconds a step takes and a call takes to land (smoothed; 0 before the first)
        self.step_time = self.call_time = 0.0
        self._last_step = -float("inf")

    def time_call(self, seconds: float) -> None:
        """Record how long a wait's first call took to land."""
        self.call_time = _smoothed(self.call_time, seconds)

    def stepped_since(self, moment: float) -> bool:
        """Whether a step ended after ``moment`` (a ``time.perf_counter()`` value)."""
        return self._last_step > moment

    def defer(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Deferred:
        item = Deferred(self, fn, args, kwargs)
        self._queue.append(item)
        return item

    @property
    def pending(self) -> bool:
        return bool(self._queue)

    def step(self) -> None:
        """One step of the oldest unfinished work."""
        item = self._queue[0]
        begun = time.perf_counter()
        item.step()
        self._last_step = time.perf_counter()
        # how long a step takes: whether one fits in the wait that is left
        self.step_time = _smoothed(self.step_time, self._last_step - begun)
        if item.done:
            self._queue.popleft()
            if item._error is not None and self.failure is None:
                self.failure = item._error

    def run_until(self, item: Deferred) -> None:
        while not item.done:
            self.step()

    def drain(self) -> None:
        """Run all the work now; the first failure is raised (the rest is not run)."""
        while self._queue and self.failure is None:
            self.step()
        if self.failure is not None:
            raise self.failure


_current: ContextVar[IdleWork | None] = ContextVar("fairnoise_idle_work", default=None)


@contextlib.contextmanager
def collecting() -> Iterator[IdleWork]:
    """A queue of deferred work that this thread (and only this one) runs while it waits
    for concurrent calls; what has not run when the scope ends is left to
    :meth:`Deferred.result`."""
    work = IdleWork()
    token = _current.set(work)
    try:
        yield work
    finally:
        _current.reset(token)


def work_while_waiting(futures: Iterable[Future], workers: int = 0,
                       on_done: Callable[[int, Any], None] | None = None) -> None:
    """Wait for the futures, running this thread's deferred work meanwhile, if any.

    One step runs as the calls go out; after that a step runs only while the calls still
    queued behind the running ones (``workers``: the threads carrying them) would take at
    least as long as a step takes (both timed over the waits so far: a call by the first
    of each wait to land), so a step (tens of milliseconds) does not hold up the caller
    once the last call lands. The work left over runs at later waits (at least one step
    each, so it always advances), or when its result is asked for. ``workers=0``: no
    estimate, steps until the futures are done.

    ``on_done(i, value)``, if given, is called here, in the calling thread, for each
    future ``futures[i]`` that succeeded, as soon as it has landed and before any further
    step: the worker threads only carry the calls, and the caller's handling of one
    result overlaps the calls still in flight. When one failed (or ``on_done`` raised),
    the queued ones are cancelled, the running ones land and are handed on all the same,
    and the first failure in task order is raised.

    When a piece of work has failed, its error is raised here once the futures are done
    (what is in flight is paid for and lands first): the fit fails now, as it would when
    the result is asked for, without spending more queries. Worker threads start with an
    empty context, so they never run the caller's work.
    """
    futures = list(futures)
    work = _current.get()
    if work is None and on_done is None:
        return
    index = {f: i for i, f in enumerate(futures)}
    pending, errors = set(futures), []
    started, timed = time.perf_counter(), False

    def hand(landed: set[Future]) -> None:
        """``on_done`` for the successful ones, in task order; errors kept, not raised."""
        for f in sorted(landed, key=index.__getitem__):
            if f.cancelled():
                continue
            if f.exception() is not None:
                errors.append((index[f], f.exception()))
            elif on_done is not None:
                try:
                    on_done(index[f], f.result())
                except BaseException as exc:  # noqa: BLE001 - raised below, after the rest
                    errors.append((index[f], exc))

    while pending:
        landed = {f for f in pending if f.done()}
        if landed:
            if not timed and work is not None:  # a call's time: till the first landed
                work.time_call(time.perf_counter() - started)
                timed = True
            pending -= landed
            hand(landed)
            if errors:  # stop sending: what is queued is cancelled, what runs lands first
                for f in pending:
                    f.cancel()
                wait(pending)
                hand(pending)
                raise min(errors, key=lambda e: e[0])[1]
            continue
        if work is not None and work.pending and work.failure is None and (
                not workers or not work.stepped_since(started)
                or _rounds_left(len(pending), workers) * work.call_time >= work.step_time):
            work.step()
            continue
        wait(pending, return_when=FIRST_COMPLETED)
    if work is not None and work.failure is not None:
        raise work.failure


def _rounds_left(pending: int, workers: int) -> int:
    """Full rounds of calls still queued behind the running ones (at ``workers`` at once)."""
    return max(0, -(-pending // max(workers, 1)) - 1)


def _smoothed(average: float, value: float) -> float:
    """A running average of timings that halves the weight of the past (0: none yet)."""
    return value if average == 0.0 else 0.5 * (average + value)
