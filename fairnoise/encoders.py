"""Encoder adapters: the frozen foundation model behind a small, uniform face.

Two wrappers cover the two ways a user holds a foundation model:

* :class:`TorchEncoder` wraps a differentiable ``torch.nn.Module`` (white-box). It runs
  the module in eval mode without parameter gradients, in batches, on a chosen device and
  precision, and restores the module's own state afterwards.
* :class:`CallableEncoder` wraps any function from a batch array to a 2-D array
  (black-box, e.g. a web API). It counts every image it sends (``n_queries``).

Both define ``__sklearn_clone__`` so that :func:`sklearn.base.clone` (which
``GridSearchCV`` calls once per candidate) shares one frozen model instead of copying it.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

__all__ = ["TorchEncoder", "CallableEncoder", "check_encoder"]


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

    def embed(self, X: np.ndarray) -> np.ndarray:
        """Embed a float array batch by batch, without gradients. Returns float32 ``N×E``."""
        out = []
        device = self.torch_device
        with self.frozen() as module, torch.no_grad():
            for start in range(0, len(X), self.batch_size):
                xb = torch.as_tensor(np.asarray(X[start : start + self.batch_size]))
                z = self.forward(module, xb.to(device, torch.float32, non_blocking=True))
                out.append(z.cpu().numpy())
        Z = np.concatenate(out) if out else np.zeros((0, 0), np.float32)
        return _check_embeddings(Z, len(X), "encoder")


class CallableEncoder:
    """A black-box encoder: any function from a batch array to a 2-D embedding array.

    Every image sent to ``fn`` is counted in :attr:`n_queries` (thread-safe), which is
    what a paid embedding API bills.

    Parameters
    ----------
    fn : callable
        ``fn(batch) -> embeddings`` where ``batch`` is a float32 NumPy array of shape
        ``(n, *input_shape)`` and ``embeddings`` is array-like of shape ``(n, E)``.
    batch_size : int, default=256
        Maximum number of inputs per call of ``fn``.

    Attributes
    ----------
    n_queries : int
        Number of inputs sent to ``fn`` in successful calls so far.

    Examples
    --------
    >>> import numpy as np
    >>> enc = CallableEncoder(lambda b: b.reshape(len(b), -1).mean(axis=1, keepdims=True))
    >>> enc.embed(np.ones((5, 1, 2, 2), dtype=np.float32)).shape
    (5, 1)
    >>> enc.n_queries
    5
    """

    differentiable = False

    def __init__(self, fn: Callable[[np.ndarray], Any], *, batch_size: int = 256) -> None:
        if not callable(fn):
            raise TypeError(f"CallableEncoder needs a callable; got {type(fn).__name__}.")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
        self.fn = fn
        self.batch_size = int(batch_size)
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

    def _call(self, batch: np.ndarray) -> np.ndarray:
        Z = _check_embeddings(self.fn(batch), len(batch), "encoder")
        with self._lock:
            self.n_queries += len(batch)
        return Z

    def embed(self, X: np.ndarray) -> np.ndarray:
        """Embed ``X`` in batches of :attr:`batch_size`; returns ``N×E``."""
        out = [
            self._call(np.ascontiguousarray(X[start : start + self.batch_size], np.float32))
            for start in range(0, len(X), self.batch_size)
        ]
        if not out:
            return np.zeros((0, 0), np.float32)
        return np.concatenate(out)


def check_encoder(encoder: Any) -> TorchEncoder | CallableEncoder | None:
    """Wrap what a user passed as ``encoder``: ``None``, a module, a callable or a wrapper."""
    if encoder is None or isinstance(encoder, (TorchEncoder, CallableEncoder)):
        return encoder
    if isinstance(encoder, torch.nn.Module):
        return TorchEncoder(encoder)
    if callable(encoder):
        return CallableEncoder(encoder)
    raise TypeError(
        "encoder must be None (inputs are features), a torch.nn.Module, a callable mapping a "
        f"batch array to a 2-D array, or a fairnoise.encoders wrapper; got {type(encoder).__name__}."
    )
