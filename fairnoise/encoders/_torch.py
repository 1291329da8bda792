"""The white-box wrapper: a frozen, differentiable ``torch.nn.Module`` (:class:`TorchEncoder`)."""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..edits import FittedEdit
from ._checks import check_embeddings


def _resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``; a device this machine lacks is a ``ValueError``."""
    if not isinstance(device, torch.device):
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device={device!r} is not a valid torch device.") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={str(device)!r}, but CUDA is not available here "
                "(torch.cuda.is_available() is False). Use device='cpu', or 'auto' "
                "(CUDA when present, else the CPU)."
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={str(device)!r}, but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)."
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={str(device)!r}, but MPS is not available here. Use "
                         "device='cpu' or 'auto'.")
    return device


def _input_dtype(module: torch.nn.Module) -> torch.dtype:
    """The floating dtype of the module's first parameter (or buffer): what it computes in."""
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


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
        _resolve_device(device)  # an unknown or absent device is refused here, by name
        self.module = module
        self.device = device
        self.precision = precision
        self.batch_size = int(batch_size)
        self._moved: torch.nn.Module | None = None
        # width of the embeddings of the latest embed(): the forward passes that follow
        # (the white-box optimisation) must return the same
        self._width: int | None = None

    # -- scikit-learn / pickling ------------------------------------------------------------
    def __sklearn_clone__(self) -> TorchEncoder:
        return self  # one frozen model shared by every clone

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_moved"] = None  # the device copy is a cache, rebuilt on demand
        state["_width"] = None
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
        """Differentiable forward of a batch already on :attr:`torch_device`, in float32.

        The batch is cast to the dtype the module computes in (a ``.double()`` or
        ``.half()`` module runs as it is, and is not changed); the embeddings come back
        as float32, and must have the width of the latest :meth:`embed`.
        """
        dtype = _input_dtype(module)
        with self._autocast():
            z = module(x if x.dtype == dtype else x.to(dtype))
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[0] != x.shape[0]:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(
                "encoder must return a 2-D tensor (n_samples, n_features) of embeddings; "
                f"it returned {shape} for a batch of shape {tuple(x.shape)}."
            )
        if z.is_complex():
            raise ValueError(f"the encoder {self!r} returned complex embeddings ({z.dtype}); "
                             "they must be real numbers.")
        width = getattr(self, "_width", None)
        if width is not None and z.shape[1] != width:
            raise ValueError(
                f"the encoder {self!r} returned embeddings of {z.shape[1]} features, but "
                f"{width} on an earlier call: an encoder must return the same number of "
                "features for every input."
            )
        return z.float()

    def embed(self, X: np.ndarray, *, edit: FittedEdit | None = None) -> np.ndarray:
        """Embed a float array batch by batch, without gradients. Returns float32 ``N×E``.

        ``edit``, if given, is applied to each batch on the device, as one fused op
        (:meth:`FittedEdit.torch_op <fairnoise.edits.FittedEdit.torch_op>`): the edit's
        temporaries stay the size of a batch, in cache and on the device, instead of
        whole-array copies on the host. The module always receives a batch of its own,
        never memory shared with ``X``, so a module that edits its input in place
        cannot change the caller's data. Every batch must give embeddings of the same
        width; that width is what later :meth:`forward` passes are held to.
        """
        out = []
        device = self.torch_device
        op = None if edit is None else edit.torch_op(device)
        self._width = None
        with self.frozen() as module, torch.no_grad():
            for start in range(0, len(X), self.batch_size):
                # a copy (any strides, any real dtype): the module may write to its input
                xb = torch.from_numpy(np.array(X[start : start + self.batch_size], np.float32))
                xb = xb.to(device, non_blocking=True)
                try:
                    z = self.forward(module, xb if op is None else op(xb))
                except _MODULE_ERRORS as exc:
                    if out or isinstance(exc, _OUT_OF_MEMORY):  # not about the inputs
                        raise
                    raise ValueError(
                        f"the encoder {self!r} failed on the first batch, of shape "
                        f"{tuple(xb.shape)}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}. It must take "
                        "batches of this shape: check the encoder against X (its channels "
                        "and size) or, for a loaded edit, that it is the encoder the edit "
                        "was learned for."
                    ) from exc
                self._width = z.shape[1]
                out.append(z.cpu().numpy())
        Z = np.concatenate(out) if out else np.zeros((0, 0), np.float32)
        return check_embeddings(Z, len(X), "encoder")


#: what a module raises on inputs it cannot take (a wrong channel count or size)
_MODULE_ERRORS = (RuntimeError, TypeError, IndexError)
_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


class _ModuleFunction:
    """A module behind a plain ``batch -> embeddings`` function: forward passes only.

    Calls are serialised, because :meth:`TorchEncoder.frozen` toggles the module's flags
    for the duration of each call.
    """

    def __init__(self, encoder: TorchEncoder) -> None:
        self.encoder = encoder
        self._lock = threading.Lock()

    @property
    def __name__(self) -> str:  # how CallableEncoder names the function it wraps
        return repr(self.encoder)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            return self.encoder.embed(batch)

    def __getstate__(self) -> dict[str, Any]:
        return {"encoder": self.encoder}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["encoder"])
