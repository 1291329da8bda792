"""Encoder adapters: the frozen foundation model behind a small, uniform face.

Two wrappers cover the two ways a user holds a foundation model:

* :class:`TorchEncoder` wraps a differentiable ``torch.nn.Module`` (white-box). It runs
  the module in eval mode without parameter gradients, in batches, on a chosen device and
  precision, and restores the module's own state afterwards.
* :class:`CallableEncoder` wraps any function from a batch array to a 2-D array
  (black-box, e.g. a web API). It is the query engine of the black-box estimator: it
  counts every image sent (``n_queries`` for calls that returned well-formed embeddings,
  ``n_queries_attempted`` for all, and per job in a :class:`QueryMeter` that can hold a
  hard budget), retries transient failures and malformed responses with exponential
  backoff, and issues independent calls concurrently from threads.

Both define ``__sklearn_clone__`` so that :func:`sklearn.base.clone` (which
``GridSearchCV`` calls once per candidate) shares one frozen model instead of copying it.
The estimators use an encoder by its capabilities (the :class:`Encoder` protocol), not by
its type; :func:`check_encoder` and :func:`as_black_box` turn what a user passed into one.

Where each part lives: ``_torch.py`` (:class:`TorchEncoder`), ``_query.py``
(:class:`CallableEncoder`, :class:`QueryMeter` and the query errors), ``_checks.py`` (what
every wrapper checks of an encoder's output), ``_standin.py``
(:func:`make_standin_encoder`, the random CNN the demo, tests and benchmarks share). A new
kind of encoder implements the :class:`Encoder` protocol in a module of its own.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from ..edits import FittedEdit
from ._pretrained import efficientnet_lite0
from ._query import (
    CallableEncoder,
    MalformedResponseError,
    QueryBudgetExceeded,
    QueryError,
    QueryMeter,
)
from ._standin import make_standin_encoder
from ._torch import TorchEncoder, _ModuleFunction
from ._zoo import from_open_clip, from_timm, from_torchvision, from_transformers

__all__ = [
    "CallableEncoder",
    "Encoder",
    "MalformedResponseError",
    "QueryBudgetExceeded",
    "QueryError",
    "QueryMeter",
    "TorchEncoder",
    "as_black_box",
    "check_encoder",
    "efficientnet_lite0",
    "from_open_clip",
    "from_timm",
    "from_torchvision",
    "from_transformers",
    "make_standin_encoder",
]


class Encoder(Protocol):
    """What fairnoise needs of an encoder wrapper: a structural type, no base class needed.

    The estimators decide what they may do with an encoder by these capabilities, not by
    its type: the white-box transformer needs ``differentiable`` (it then also calls
    ``frozen()``, ``forward(module, x)`` and ``torch_device``, see :class:`TorchEncoder`);
    the black-box one only ``embed``.
    """

    #: whether gradients flow from the embeddings back to the input
    differentiable: bool
    #: inputs per forward pass or call
    batch_size: int

    def embed(self, X: np.ndarray, *, edit: FittedEdit | None = None) -> np.ndarray:
        """``φ(edit(X))`` (``φ(X)`` without an edit) as a float ``N×E`` array."""
        ...


def check_encoder(encoder: Any, *, batch_size: int | None = None, device: Any = "auto",
                  precision: str = "auto") -> TorchEncoder | CallableEncoder | None:
    """Wrap what a user passed as ``encoder``: ``None``, a module, a callable or a wrapper.

    A module becomes a :class:`TorchEncoder` (on ``device``, at ``precision``), a plain
    callable a :class:`CallableEncoder`, each with calls of ``batch_size`` inputs (256 if
    None); a wrapper is used as it is. What an estimator may do with the result is decided
    by its capabilities (:class:`Encoder`), not by its type.

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
    size = 256 if batch_size is None else batch_size
    if isinstance(encoder, torch.nn.Module):
        return TorchEncoder(encoder, device=device, precision=precision, batch_size=size)
    if callable(encoder):
        return CallableEncoder(encoder, batch_size=size)
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
    wrapped = check_encoder(encoder, batch_size=batch_size)
    if wrapped is not None and wrapped.differentiable:  # forward passes only, counted
        return CallableEncoder(_ModuleFunction(wrapped), batch_size=batch_size)
    return wrapped


# the public path of the classes (pickles, skops, the API reference)
for _cls in (CallableEncoder, MalformedResponseError, QueryBudgetExceeded, QueryError,
             QueryMeter, TorchEncoder, Encoder):
    _cls.__module__ = __name__
del _cls
