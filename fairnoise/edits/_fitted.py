"""A learned universal edit as a frozen value object: :class:`FittedEdit`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._arrays import freeze, real_copy
from ._eraser import ConditionalEraser
from ._standardize import IntensityStandardization

KINDS = ("additive", "masked")
#: the optional parts: the prefix of their arrays in :meth:`FittedEdit.arrays`, their
#: class, and the names of their arrays
PARTS = {"standardization": ("standardize_", IntensityStandardization, ("mean", "std", "eps")),
         "eraser": ("eraser_", ConditionalEraser, ("mean", "left", "right"))}


def _frozen(value: Any, name: str, input_shape: tuple[int, ...]) -> np.ndarray:
    """A read-only float32 copy of one of the edit's arrays, checked against the input."""
    array = freeze(real_copy(value, "the edit's", name, np.float32), "the edit's", name)
    if name != "param":
        try:
            if np.broadcast_shapes(array.shape, input_shape) != tuple(input_shape):
                raise ValueError
        except ValueError:
            raise ValueError(
                f"the edit's {name} of shape {array.shape} does not broadcast against one "
                f"input of shape {tuple(input_shape)}."
            ) from None
    return array


@dataclass(frozen=True, eq=False)
class FittedEdit:
    r"""One learned universal edit: the same change applied to every input.

    ``kind="additive"``: :math:`\mathrm{edit}(x) = x + \varepsilon`.
    ``kind="masked"``: :math:`\mathrm{edit}(x) = m \odot x + (1 - m) \odot f`.

    Two optional, fixed parts come with it: a ``standardization`` :math:`S` applied to
    the input first, so that :math:`\mathrm{edit}(x)` is the above of :math:`S(x)`, and
    an ``eraser`` :math:`T` of the encoder's embeddings, so that the embeddings are
    :math:`T(\varphi(\mathrm{edit}(x)))` (:meth:`apply_embeddings`). Without them (None,
    the default) the edit is exactly the mask or noise.

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
    standardization : IntensityStandardization or None, default=None
        :math:`S`, a per-image intensity standardisation before the mask or noise
        (images only, one value per channel).
    eraser : ConditionalEraser or None, default=None
        :math:`T`, an erasure of the embeddings; see :meth:`apply_embeddings`.

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
    standardization: IntensityStandardization | None = None
    eraser: ConditionalEraser | None = None

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
        for name, (_, cls, _) in PARTS.items():
            part = getattr(self, name)
            if part is not None and not isinstance(part, cls):
                raise TypeError(f"the edit's {name} must be a {cls.__name__} or None; got "
                                f"{type(part).__name__}.")
        if self.standardization is not None:
            channels = shape[0] if len(shape) == 3 else 1
            if len(shape) == 1 or self.standardization.n_channels != channels:
                raise ValueError(
                    f"the edit's standardization has {self.standardization.n_channels} "
                    f"channel(s), but inputs of shape {shape} "
                    + ("are feature vectors, not images." if len(shape) == 1
                       else f"have {channels}."))

    # -- what the edit does ------------------------------------------------------------
    @property
    def is_identity(self) -> bool:
        """Whether the edit changes nothing: zero noise or a mask of ones, no
        standardisation, and no eraser (or one of rank 0)."""
        if self.standardization is not None or (self.eraser is not None
                                                and self.eraser.rank > 0):
            return False
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
        """Edit a NumPy batch ``N×input_shape`` (a new array; ``X`` is not changed): the
        standardisation, if any, then the mask or noise. The eraser acts on embeddings
        (:meth:`apply_embeddings`), not here."""
        if self.standardization is not None:
            X = self.standardization.apply(X)
        if self.kind == "additive":
            return X + self.noise.astype(X.dtype, copy=False)
        inv = (1.0 - self.mask).astype(X.dtype, copy=False)
        return X - inv * (X - self.replaced.astype(X.dtype, copy=False))

    def torch_op(self, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
        """The edit as one fused, out-of-place torch op per batch on ``device``.

        ``m ⊙ x + (1 − m) ⊙ f`` is ``addcmul((1 − m) ⊙ f, x, m)`` with the first term
        precomputed; the additive edit is ``x + ε``. Same values as :meth:`apply` up to
        float rounding. A standardisation, if any, runs first (out of place too).
        """
        op = self._mask_or_noise_op(device)
        if self.standardization is None:
            return op
        standardise = self.standardization.torch_op(device)
        return lambda x: op(standardise(x))

    def _mask_or_noise_op(self, device: torch.device
                          ) -> Callable[[torch.Tensor], torch.Tensor]:
        if self.kind == "additive":
            eps = torch.as_tensor(np.array(self.noise), device=device)
            return lambda x: x + eps
        m = torch.as_tensor(np.array(self.mask), device=device)
        base = (1.0 - m) * torch.as_tensor(np.array(self.replaced), device=device)
        return lambda x: torch.addcmul(base, x, m)

    def apply_embeddings(self, Z: np.ndarray) -> np.ndarray:
        r"""The eraser :math:`T` on embeddings ``Z`` (n, d) of edited inputs.

        Returns ``Z`` itself (no copy) when the edit has no eraser, else a new array of
        ``Z``'s float dtype (see :meth:`ConditionalEraser.apply
        <fairnoise.edits.ConditionalEraser.apply>`).
        """
        return Z if self.eraser is None else self.eraser.apply(Z)

    # -- (de)serialisation ---------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays a file stores: ``noise`` (ε, or the broadcast fill), ``noise_param``,
        for the masked edit ``mask``, and the arrays of the parts present, prefixed:
        ``standardize_mean``, ``standardize_std``, ``standardize_eps``; ``eraser_mean``,
        ``eraser_left``, ``eraser_right``."""
        out = {"noise": self.replaced, "noise_param": self.param}
        if self.mask is not None:
            out["mask"] = self.mask
        for name, (prefix, _, _) in PARTS.items():
            part = getattr(self, name)
            if part is not None:
                out.update({prefix + k: v for k, v in part.arrays().items()})
        return out

    @classmethod
    def from_arrays(cls, kind: str, input_shape: tuple[int, ...],
                    arrays: dict[str, np.ndarray]) -> FittedEdit:
        """The inverse of :meth:`arrays`; raises ``ValueError`` naming what is wrong."""
        names = ("noise", "noise_param") + (("mask",) if kind == "masked" else ())
        missing = [n for n in names if n not in arrays]
        if missing:
            raise ValueError(f"the {missing[0]!r} array is missing.")
        parts = {}
        for name, (prefix, part_cls, part_names) in PARTS.items():
            stored = [n for n in part_names if prefix + n in arrays]
            if not stored:
                continue
            if len(stored) < len(part_names):
                absent = next(n for n in part_names if n not in stored)
                raise ValueError(f"the {prefix + absent!r} array is missing.")
            parts[name] = part_cls.from_arrays({n: arrays[prefix + n] for n in part_names})
        if kind == "masked":
            return cls(kind, input_shape, param=arrays["noise_param"], mask=arrays["mask"],
                       fill=arrays["noise"], **parts)
        return cls(kind, input_shape, param=arrays["noise_param"], noise=arrays["noise"],
                   **parts)
