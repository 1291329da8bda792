"""Silence fairnoise's own expected warnings without touching other threads' warnings.

:class:`warnings.catch_warnings` swaps the process-wide filter list for a copy and puts the
old list back when it ends. Every thread shares that list, so while one thread is inside
the scope the warnings of all the others meet its filters: a guarded GeZO fit judges its
candidates while its query threads run the user's encoder (:mod:`fairnoise._idle`), and a
``simplefilter("ignore", UserWarning)`` there swallowed the encoder's own warnings. A
thread that enters and leaves a ``catch_warnings`` of its own in between can even put back
a list that keeps the scope's filters for good.

:func:`ignoring` is narrower on both counts. Its filters match only what fairnoise expects
from its own probes (scikit-learn's :class:`~sklearn.exceptions.ConvergenceWarning`, or one
message), and they are added to the current list in place and taken out again one by one,
from whichever list is current when the scope ends and from the one they went into: no
list is swapped, none is put back, and whatever else is in the list stays as it is, down
to which of the user's "default" warnings count as already shown.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator

from sklearn.exceptions import ConvergenceWarning

__all__ = ["ignoring", "SKLEARN_CONVERGENCE"]

#: a regex comment that matches any text: it keeps fairnoise's filters distinct from equal
#: ones a user may have added, so that leaving the scope never removes one of theirs
_TAG = "(?#fairnoise)"

#: scikit-learn's "did not converge" warning, from scikit-learn's own modules
SKLEARN_CONVERGENCE = (ConvergenceWarning, "", r"sklearn(\.|$)")


@contextlib.contextmanager
def ignoring(*specs: tuple[type[Warning], str, str]) -> Iterator[None]:
    """Ignore warnings of each ``(category, message regex, module regex)`` in this scope.

    The regexes match as in :func:`warnings.filterwarnings` (from the start; the message
    case-insensitively; ``""`` matches anything). A filter an enclosing :func:`ignoring`
    already added is left to it.

    Examples
    --------
    >>> import warnings
    >>> before = list(warnings.filters)
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     with ignoring((UserWarning, "expected", "")):
    ...         warnings.warn("expected: dropped", UserWarning)
    ...         warnings.warn("anything else: kept", UserWarning)
    >>> [str(w.message) for w in seen]
    ['anything else: kept']
    >>> warnings.filters == before
    True
    """
    added = []
    try:
        for category, message, module in specs:
            item = ("ignore", re.compile(_TAG + message, re.I), category,
                    re.compile(module) if module else None, 0)
            into = warnings.filters
            if item in into:
                continue  # an enclosing scope's: it takes it out
            # inserted as it is, not with filterwarnings: that would also clear every
            # module's record of the warnings already shown, so that each "default"
            # warning of the user's would be shown again. An "ignore" filter needs no
            # clearing: a warning already shown once is not shown again anyway.
            into.insert(0, item)
            added.append((item, into))
        yield
    finally:
        for item, into in added:
            for filters in (warnings.filters, into):
                with contextlib.suppress(ValueError):
                    filters.remove(item)
