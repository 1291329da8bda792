"""A learned universal edit as a frozen value object: :class:`FittedEdit`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

KINDS = ("additive", "masked")


def _frozen(value: Any, name: str, input_shape: tuple[int, ...]) -> np.ndarray:
    """A read-only float32 copy of one of the edit's arrays, checked against the input."""
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"the edit's {name} must hold real numbers; got dtype {array.dtype}.")
    array = array.astype(np.float32)  # always a copy: the caller's array is never shared
    if not np.isfinite(array).all():
        raise ValueError(f"the edit's {name} holds NaN or infinity.")
    if name != "param":
        try:
            if np.broadcast_shapes(array.shape, input_shape) != tuple(input_shape):
                raise ValueError
        except ValueError:
            raise ValueError(
                f"the edit's {name} of shape {array.shape} does not broadcast against one "
                f"input of shape {tuple(input_shape)}."
            ) from None
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class FittedEdit:
    r"""One learned universal edit: the same change applied to every input.

    ``kind="additive"``: :math:`\mathrm{edit}(x) = x + \varepsilon`.
    ``kind="masked"``: :math:`\mathrm{edit}(x) = m \odot x + (1 - m) \odot f`.

    The arrays are read-only float32 copies, broadcastable against one input; the object
    holds no torch state, so it pickles and persists (see :func:`fairnoise.export_noise`).
    The transformers create it at the end of ``fit`` (``edit_``); :meth:`apply` and
    :meth:`torch_op` are what ``transform``, the plots and the file format use.

    Parameters
    ----------
    kind : {"additive", "masked"}
    input_shape : tuple of int
        Shape of one input: ``(D,)``, ``(H, W)`` or ``(C, H, W)``.
    param : ndarray
        The learned parameter at the resolution it was learned at, before upsampling:
        :math:`\varepsilon`, or :math:`1 - m` for the mask.
    noise : ndarray or None
        :math:`\varepsilon` at full resolution (``"additive"``), else None.
    mask : ndarray or None
        :math:`m \in [0, 1]` at full resolution (``"masked"``), else None.
    fill : ndarray or None
        :math:`f`, what the mask lets through where it is 0 (``"masked"``), else None.

    Examples
    --------
    >>> import numpy as np
    >>> from fairnoise.edits import FittedEdit
    >>> mask = np.array([1.0, 1.0, 0.0], np.float32)  # blank the third feature
    >>> edit = FittedEdit("masked", (3,), param=1 - mask, mask=mask,
    ...                   fill=np.zeros(3, np.float32))
    >>> edit.apply(np.array([[1.0, 2.0, 3.0]], np.float32))
    array([[1., 2., 0.]], dtype=float32)
    >>> edit.is_identity
    False
    """

    kind: str
    input_shape: tuple[int, ...]
    param: np.ndarray
    noise: np.ndarray | None = None
    mask: np.ndarray | None = None
    fill: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"the edit's kind must be one of {KINDS}; got {self.kind!r}.")
        shape = self.input_shape
        if (not isinstance(shape, (tuple, list)) or not 1 <= len(shape) <= 3
                or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                           and s >= 1 for s in shape)):
            raise ValueError(
                "the edit's input_shape must be 1 to 3 positive integers ((D,), (H, W) or "
                f"(C, H, W)); got {shape!r}."
            )
        shape = tuple(int(s) for s in shape)
        object.__setattr__(self, "input_shape", shape)
        needed = ("noise",) if self.kind == "additive" else ("mask", "fill")
        unused = ("mask", "fill") if self.kind == "additive" else ("noise",)
        for name in needed:
            if getattr(self, name) is None:
                raise ValueError(f"a {self.kind} edit needs its {name} array.")
        for name in unused:
            if getattr(self, name) is not None:
                raise ValueError(f"a {self.kind} edit has no {name} array.")
        for name in ("param", *needed):
            object.__setattr__(self, name, _frozen(getattr(self, name), name, shape))
        if self.mask is not None and not (self.mask.min() >= 0 and self.mask.max() <= 1):
            raise ValueError("the edit's mask leaves [0, 1].")

    # -- what the edit does ------------------------------------------------------------
    @property
    def is_identity(self) -> bool:
        """Whether the edit changes nothing (zero noise, or a mask of ones)."""
        if self.kind == "additive":
            return not self.noise.any()
        return bool((self.mask == 1).all())

    @property
    def replaced(self) -> np.ndarray:
        r"""What the edit puts in: :math:`\varepsilon`, or the fill where :math:`m < 1`.

        For the masked edit this is the fill broadcast to the mask's shape (what
        ``noise_`` holds on a fitted transformer).
        """
        if self.kind == "additive":
            return self.noise
        shape = np.broadcast_shapes(self.fill.shape, self.mask.shape)
        out = np.broadcast_to(self.fill, shape).copy()
        out.flags.writeable = False
        return out

    def apply(self, X: np.ndarray) -> np.ndarray:
        """Edit a NumPy batch ``N×input_shape`` (a new array; ``X`` is not changed)."""
        if self.kind == "additive":
            return X + self.noise.astype(X.dtype, copy=False)
        inv = (1.0 - self.mask).astype(X.dtype, copy=False)
        return X - inv * (X - self.replaced.astype(X.dtype, copy=False))

    def torch_op(self, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
        """The edit as one fused, out-of-place torch op per batch on ``device``.

        ``m ⊙ x + (1 − m) ⊙ f`` is ``addcmul((1 − m) ⊙ f, x, m)`` with the first term
        precomputed; the additive edit is ``x + ε``. Same values as :meth:`apply` up to
        float rounding.
        """
        if self.kind == "additive":
            eps = torch.as_tensor(np.array(self.noise), device=device)
            return lambda x: x + eps
        m = torch.as_tensor(np.array(self.mask), device=device)
        base = (1.0 - m) * torch.as_tensor(np.array(self.replaced), device=device)
        return lambda x: torch.addcmul(base, x, m)

    # -- (de)serialisation ---------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays a file stores: ``noise`` (ε, or the broadcast fill), ``noise_param``
        and, for the masked edit, ``mask``."""
        out = {"noise": self.replaced, "noise_param": self.param}
        if self.mask is not None:
            out["mask"] = self.mask
        return out

    @classmethod
    def from_arrays(cls, kind: str, input_shape: tuple[int, ...],
                    arrays: dict[str, np.ndarray]) -> FittedEdit:
        """The inverse of :meth:`arrays`; raises ``ValueError`` naming what is wrong."""
        names = ("noise", "noise_param") + (("mask",) if kind == "masked" else ())
        missing = [n for n in names if n not in arrays]
        if missing:
            raise ValueError(f"the {missing[0]!r} array is missing.")
        if kind == "masked":
            return cls(kind, input_shape, param=arrays["noise_param"], mask=arrays["mask"],
                       fill=arrays["noise"])
        return cls(kind, input_shape, param=arrays["noise_param"], noise=arrays["noise"])
