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
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, wait
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
        item.step()
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


def work_while_waiting(futures: Iterable[Future], workers: int = 0) -> None:
    """Run steps of this thread's deferred work, if any: one step as the calls go out,
    then more while more than ``workers`` of the futures are unfinished.

    ``workers``: the threads carrying the futures. While more are unfinished than there
    are threads, at least one call is still queued behind the running ones, so a step
    (tens of milliseconds) ends before the last call lands and does not hold up the
    caller, which resumes as soon as the calls are done; the work left over runs at later
    waits (at least one step each, so it always advances), or when its result is asked
    for. ``0``: until every future is done.

    When a piece of work has failed, its error is raised here once the futures are done
    (what is in flight is paid for and lands first): the fit fails now, as it would when
    the result is asked for, without spending more queries. Worker threads start with an
    empty context, so they never run the caller's work.
    """
    work = _current.get()
    if work is None:
        return
    futures = list(futures)
    first = True
    while work.pending and work.failure is None and not all(f.done() for f in futures):
        if not first and sum(not f.done() for f in futures) <= workers:
            break
        work.step()
        first = False
    if work.failure is not None:
        wait(futures)
        raise work.failure
