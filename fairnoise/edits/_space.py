"""Where a universal edit's parameters live while it is learned: :class:`NoiseSpace`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ._fitted import FittedEdit

EDITS = ("additive", "masked")
"""The kinds of learned input edit (the ``edit`` parameter and its validation read this)."""

UPSAMPLINGS = ("bilinear", "nearest")
"""How a parameter grid is upsampled to the input (:attr:`NoiseSpace.upsampling`)."""


@dataclass(frozen=True)
class NoiseSpace:
    """Where the edit's parameters live and how they reach the input resolution.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one input: ``(D,)`` for vectors, ``(H, W)`` or ``(C, H, W)`` for images.
    edit : {"additive", "masked"}
    resolution : tuple of int or None
        ``(h, w)`` of the parameter grid for images; ``None`` is full resolution.
    channel_shared : bool
        One map shared by all channels (the paper's choice) or one per channel.
    upsampling : {"bilinear", "nearest"}, default="bilinear"
        How the parameter grid reaches the input resolution: a smooth bilinear field, or
        piecewise-constant *cells* (each grid value covers its block of pixels, so a cell
        of the mask at 1 replaces that block by the fill outright).
    """

    input_shape: tuple[int, ...]
    edit: str
    resolution: tuple[int, int] | None
    channel_shared: bool
    upsampling: str = "bilinear"

    def __post_init__(self) -> None:
        if self.upsampling not in UPSAMPLINGS:
            raise ValueError(f"upsampling must be one of {UPSAMPLINGS}; got {self.upsampling!r}.")

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) >= 2

    @property
    def full_shape(self) -> tuple[int, ...]:
        """Shape of the full-resolution noise, broadcastable against one input."""
        if not self.is_image:
            return self.input_shape
        if len(self.input_shape) == 2:
            return self.input_shape
        c, h, w = self.input_shape
        return (1 if self.channel_shared else c, h, w)

    @property
    def param_shape(self) -> tuple[int, ...]:
        """Shape of the learned parameter (low resolution for images)."""
        if not self.is_image:
            return self.input_shape
        h, w = self.resolution or self.input_shape[-2:]
        return (*self.full_shape[:-2], h, w)

    @property
    def n_params(self) -> int:
        return int(np.prod(self.param_shape))

    def upsample(self, theta: torch.Tensor) -> torch.Tensor:
        """A parameter (or a stack ``B×param_shape``) upsampled to full size (``upsampling``)."""
        if not self.is_image or self.param_shape == self.full_shape:
            return theta
        lead = theta.shape[: theta.ndim - len(self.param_shape)]
        grid = theta.reshape(-1, 1 if len(self.param_shape) == 2 else self.param_shape[0],
                             *self.param_shape[-2:])
        if self.upsampling == "nearest":
            up = F.interpolate(grid, size=self.full_shape[-2:], mode="nearest")
        else:
            up = F.interpolate(grid, size=self.full_shape[-2:], mode="bilinear",
                               align_corners=False)
        return up.reshape(*lead, *self.full_shape)

    def init_param(self) -> torch.Tensor:
        """Zero noise / an all-ones mask: the identity edit."""
        return torch.zeros(self.param_shape, dtype=torch.float32)

    def project(self, theta: torch.Tensor, max_norm: float | None) -> torch.Tensor:
        """Map a parameter back onto its feasible set (in place when possible)."""
        if self.edit == "masked":
            return theta.clamp_(0.0, 1.0)
        if max_norm is not None:
            # upsampling is linear, so scaling θ scales ε exactly; no host sync on a GPU
            norm = torch.linalg.vector_norm(self.upsample(theta))
            theta.mul_((max_norm / norm.clamp_min(1e-12)).clamp_max(1.0))
        return theta

    def penalty(self, theta: torch.Tensor) -> torch.Tensor:
        """Regulariser: ``‖ε‖₂`` (additive) or ``mean(1 − m)`` (masked), full resolution."""
        full = self.upsample(theta)
        if self.edit == "masked":
            return full.mean()
        return torch.linalg.vector_norm(full)

    def apply(self, x: torch.Tensor, theta: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
        """Edit a batch ``x`` (``N×input_shape``) with the parameter ``θ``."""
        full = self.upsample(theta)
        if self.edit == "masked":
            # x + full ⊙ (f − x) = m ⊙ x + (1 − m) ⊙ f with m = 1 − full, one fused kernel
            return torch.lerp(x, fill.to(x.dtype).expand_as(x), full.to(x.dtype))
        return x + full

    def fitted(self, theta: torch.Tensor, fill: np.ndarray) -> FittedEdit:
        """The learned parameter ``θ`` as a frozen :class:`FittedEdit` (NumPy, full size)."""
        noise, mask = self.full_arrays(theta, fill)
        param = theta.detach().cpu().numpy()
        if mask is None:
            return FittedEdit("additive", self.input_shape, param=param, noise=noise)
        return FittedEdit("masked", self.input_shape, param=param, mask=mask, fill=noise)

    def full_arrays(self, theta: torch.Tensor,
                    fill: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The fitted state as NumPy: ``(noise_, mask_)`` at full resolution."""
        with torch.no_grad():
            full = self.upsample(theta).cpu().numpy().astype(np.float32)
        if self.edit == "masked":
            noise = np.broadcast_to(fill, np.broadcast_shapes(fill.shape, full.shape)).copy()
            return noise, 1.0 - full
        return full, None
