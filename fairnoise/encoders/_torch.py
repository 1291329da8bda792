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

    def embed(self, X: np.ndarray, *, edit: FittedEdit | None = None) -> np.ndarray:
        """Embed a float array batch by batch, without gradients. Returns float32 ``N×E``.

        ``edit``, if given, is applied to each batch on the device, as one fused op
        (:meth:`FittedEdit.torch_op <fairnoise.edits.FittedEdit.torch_op>`): the edit's
        temporaries stay the size of a batch, in cache and on the device, instead of
        whole-array copies on the host. The module always receives a batch of its own,
        never memory shared with ``X``, so a module that edits its input in place
        cannot change the caller's data.
        """
        out = []
        device = self.torch_device
        op = None if edit is None else edit.torch_op(device)
        with self.frozen() as module, torch.no_grad():
            for start in range(0, len(X), self.batch_size):
                # a copy (any strides, any real dtype): the module may write to its input
                xb = torch.from_numpy(np.array(X[start : start + self.batch_size], np.float32))
                xb = xb.to(device, non_blocking=True)
                z = self.forward(module, xb if op is None else op(xb))
                out.append(z.cpu().numpy())
        Z = np.concatenate(out) if out else np.zeros((0, 0), np.float32)
        return check_embeddings(Z, len(X), "encoder")


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
