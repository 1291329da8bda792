"""Renamed arguments and keys, still accepted for one release with a ``FutureWarning``.

fairnoise 0.2 calls the groups ``sensitive_features`` everywhere (as ``fit`` and the
metrics always did); the old names (``sensitive``, ``group_column``, ``groups``) keep
working until 0.3 and say what to write instead.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

from sklearn.utils import Bunch

#: the release that removes the deprecated names
REMOVED_IN = "0.3"

#: the default of a deprecated argument: "not passed"
UNSET: Any = type("Unset", (), {"__repr__": lambda self: "<unset>"})()


def renamed_argument(new_value: Any, old_value: Any, *, new: str, old: str, func: str,
                     default: Any) -> Any:
    """The value of an argument renamed from ``old`` to ``new``.

    The new name's value, unless the caller passed the old name: then that value, with a
    ``FutureWarning``. Passing both (the new one away from its ``default``) is a
    ``TypeError``.
    """
    if old_value is UNSET:
        return new_value
    if not (new_value is default or (isinstance(new_value, str) and new_value == default)):
        raise TypeError(f"{func}() got both {new}= and its deprecated name {old}=; pass "
                        f"{new}= only.")
    warnings.warn(f"{func}({old}=...) is deprecated and will be removed in fairnoise "
                  f"{REMOVED_IN}; use {new}=... instead.", FutureWarning, stacklevel=3)
    return old_value


class RenamedKeyBunch(Bunch):
    """A :class:`~sklearn.utils.Bunch` whose renamed keys still read under their old names.

    ``bunch.sensitive`` (or ``bunch["sensitive"]``) returns ``bunch.sensitive_features``
    with a ``FutureWarning``. The old names are not keys: they are not listed, and
    ``"sensitive" in bunch`` is False.
    """

    #: old key -> new key
    renamed_keys = {"sensitive": "sensitive_features"}

    def __missing__(self, key: str) -> Any:
        new = self.renamed_keys.get(key)
        if new is None or new not in self:
            raise KeyError(key)
        warnings.warn(f"the {key!r} entry of fairnoise's datasets is deprecated and will be "
                      f"removed in fairnoise {REMOVED_IN}; read {new!r} instead.",
                      FutureWarning, stacklevel=_caller_level())
        return self[new]


def _caller_level() -> int:
    """``stacklevel`` of the first frame outside this file and scikit-learn's Bunch, so the
    warning names the user's line for ``bunch.old`` and ``bunch["old"]`` alike."""
    here = {os.path.normcase(__file__),
            os.path.normcase(sys.modules[Bunch.__module__].__file__ or "")}
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.normcase(frame.f_code.co_filename) in here:
        frame, level = frame.f_back, level + 1
    return level
