"""Universal input edits and their parametrisation.

An edit maps a batch ``x`` and a small set of learned parameters to an edited batch of the
same shape. The parameters live at ``noise_resolution`` and are upsampled bilinearly to
the input size, so the search space can be orders of magnitude smaller than the input.

``"additive"`` (the paper's edit)
    ``edit(x) = x + ε``, with ``ε = up(θ)``; regulariser ``‖ε‖₂`` (Euclidean norm of the
    full-resolution noise, in input units). ``max_norm`` projects ``ε`` back onto the ball
    ``‖ε‖₂ ≤ max_norm`` after every step.

``"masked"``
    ``edit(x) = m ⊙ x + (1 − m) ⊙ f`` with ``m = 1 − up(r)``, ``r ∈ [0, 1]`` (projected after
    every step) and a *fixed* fill ``f``: the per-channel (image) or per-feature (vector)
    mean of the training inputs. Regulariser ``mean(1 − m)``, the fraction of the input
    masked, so it pushes the mask towards ones and keeps only the part that pays off.
    The fill is fixed on purpose: a learned fill can move the objective without masking.

A universal *additive* shift of feature vectors only moves a linear model's intercept, so
it cannot remove linearly decodable information; in feature mode use ``"masked"``.

Where each part lives:

* :class:`NoiseSpace` (``_space.py``): the learning side, the parameter ``θ`` of an edit,
  its upsampling, projection, regulariser and differentiable ``apply``;
* :class:`FittedEdit` (``_fitted.py``): the result, a frozen value object with the
  full-resolution arrays, ``apply`` (NumPy) and ``torch_op`` (torch), which
  ``transform``, the plots and the file format use;
* ``_file.py``: the ``.npz`` file format of :func:`fairnoise.export_noise`;
* two fixed, label-free parts a fitted edit may carry around the learned one, judged by
  the transformers' validation guard: :class:`IntensityStandardization`
  (``_standardize.py``, before it: each image's intensity mapped to the training
  average, against a global brightness or contrast shortcut) and
  :class:`ConditionalEraser` (``_eraser.py``, after the encoder: the within-class
  group-mean differences of the embeddings removed by one linear map, against shortcuts
  no input edit reaches).

A new kind of edit adds its parametrisation to :class:`NoiseSpace`, its arrays to
:class:`FittedEdit`, and its name to ``EDITS``.
"""

from __future__ import annotations

import numpy as np

from ._eraser import ConditionalEraser, fit_conditional_eraser
from ._fitted import FittedEdit
from ._space import EDITS, UPSAMPLINGS, NoiseSpace
from ._standardize import IntensityStandardization, fit_standardization

__all__ = ["EDITS", "UPSAMPLINGS", "ConditionalEraser", "FittedEdit", "IntensityStandardization",
           "NoiseSpace", "apply_numpy", "fit_conditional_eraser", "fit_standardization",
           "input_mean"]

# the public path of the classes (pickles, skops' trusted types, the API reference)
for _cls in (ConditionalEraser, FittedEdit, IntensityStandardization, NoiseSpace,
             fit_conditional_eraser, fit_standardization):
    _cls.__module__ = __name__
del _cls


def apply_numpy(X: np.ndarray, noise: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """An edit given by its arrays on a NumPy batch (:meth:`FittedEdit.apply`'s arithmetic)."""
    if mask is None:
        return X + noise.astype(X.dtype, copy=False)
    inv = (1.0 - mask).astype(X.dtype, copy=False)
    return X - inv * (X - noise.astype(X.dtype, copy=False))


def input_mean(X_mean: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """The masked edit's fill: per-channel mean for ``C×H×W`` images, else as given."""
    if len(input_shape) == 3:
        return X_mean.reshape(input_shape).mean(axis=(1, 2), keepdims=True).astype(np.float32)
    if len(input_shape) == 2:
        return np.full((1, 1), X_mean.mean(), dtype=np.float32)
    return X_mean.astype(np.float32)
