"""The loss of a batch, written once for both optimisers: :class:`EditLoss`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..edits import NoiseSpace, apply_numpy

#: ``evaluate(points) -> losses``: the losses of parameter points on one batch
Evaluate = Callable[[Sequence[np.ndarray]], np.ndarray]
#: ``embed_many(batches, on_result)``: the black-box encoder's embeddings of several batches,
#: ``on_result(i, Z)`` called as batch ``i`` completes
EmbedMany = Callable[[Sequence[np.ndarray], Callable[[int, np.ndarray], None]], Any]


class EditLoss:
    r"""The objective of a batch :math:`B` as a function of the edit's parameter :math:`\theta`.

    .. math::

        L_B(\theta) = \ell_{adv}\big(\varphi(\mathrm{edit}(x_B, \theta)), B\big)
        + \lambda \, R(\theta)

    with :math:`\ell_{adv}` the data loss (an :class:`~fairnoise.objectives.Adversary`, or
    any callable ``(z, idx) -> scalar tensor``) and :math:`R` the edit's regulariser. The
    first-order optimiser calls it on tensors (:meth:`__call__`, differentiable); the
    zeroth-order search evaluates it from query results (:class:`QueryLoss`), with the
    same formula.

    Parameters
    ----------
    space : NoiseSpace
        The edit's parametrisation.
    data_loss : callable
        ``data_loss(z, idx)``: the adversarial loss of the embeddings ``z`` of the
        training samples ``idx``.
    lambda_reg : float
        Weight :math:`\lambda` of the regulariser.
    fill : ndarray
        The masked edit's fixed fill (ignored by the additive edit).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from fairnoise.edits import NoiseSpace
    >>> space = NoiseSpace((3,), "masked", None, True)
    >>> loss = EditLoss(space, lambda z, idx: z[:, 2].abs().mean(), 0.1,
    ...                 fill=np.zeros(3, np.float32))
    >>> x = torch.ones(4, 3)
    >>> theta = torch.tensor([0.0, 0.0, 1.0])           # mask the third feature
    >>> float(loss(loss.edit(x, theta), np.arange(4), theta))  # 0 + 0.1 * mean(1 - m)
    0.03333333507180214
    """

    def __init__(self, space: NoiseSpace, data_loss: Callable[[torch.Tensor, Any], torch.Tensor],
                 lambda_reg: float, fill: np.ndarray) -> None:
        self.space = space
        self.data_loss = data_loss
        self.lambda_reg = lambda_reg
        self.fill = fill
        self._fill_on: dict[torch.device, torch.Tensor] = {}

    def edit(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """The batch ``x`` edited with ``θ`` (differentiable in ``θ``)."""
        fill = self._fill_on.get(x.device)
        if fill is None:
            fill = self._fill_on[x.device] = torch.as_tensor(self.fill, device=x.device)
        return self.space.apply(x, theta, fill)

    def __call__(self, z: torch.Tensor, idx: Any, theta: torch.Tensor) -> torch.Tensor:
        """:math:`L_B(\\theta)` from the edited batch's embeddings ``z`` (a tensor)."""
        return self.data_loss(z, idx) + self.lambda_reg * self.space.penalty(theta)

    def total(self, data_loss: float, theta: np.ndarray) -> float:
        """:math:`L_B(\\theta)` from a data loss already computed (a float)."""
        return data_loss + self.lambda_reg * float(self.space.penalty(torch.from_numpy(theta)))


def _digest(idx: np.ndarray, theta: np.ndarray) -> str:
    """Key of a (batch, point) pair, for the losses already paid for."""
    return hashlib.blake2b(idx.tobytes() + theta.tobytes(), digest_size=16).hexdigest()


class QueryLoss:
    """The evaluation form of an :class:`EditLoss` for a black-box encoder.

    :meth:`on` gives the loss oracle of one batch: the losses of parameter points, each
    (batch, point) pair paid for at most once. The data losses go into ``known`` as each
    query completes, so a failure midway keeps what was paid for, and a point whose loss
    is known is not queried again (also after a resume, when ``known`` is restored).

    Parameters
    ----------
    loss : EditLoss
    read : callable
        ``read(idx)``: the training inputs ``idx`` as a float32 NumPy batch.
    embed_many : callable or None
        ``embed_many(batches, on_result)`` queries the encoder on several edited batches
        (see ``EmbedMany``); ``None`` means the inputs already are embeddings.
    known : dict
        Data losses already paid for, keyed by a digest of (batch, point); filled in here.
    residuals : dict or None, default=None
        Where to keep, under the same keys, the residual vector of each data loss paid
        for (``loss.data_loss.residuals(z, idx)``, or both at once by its
        ``loss_and_residuals(z, idx)`` where it has one; see
        :meth:`~fairnoise.objectives.Adversary.residuals`), for a strategy that models
        them (:class:`~fairnoise.optim.GaussNewtonSearch`); ``None``: losses only.
    """

    def __init__(self, loss: EditLoss, read: Callable[[np.ndarray], np.ndarray],
                 embed_many: EmbedMany | None, known: dict[str, float],
                 residuals: dict[str, np.ndarray] | None = None) -> None:
        self.loss = loss
        self.read = read
        self.embed_many = embed_many
        self.known = known
        self.known_residuals = residuals

    def unpaid(self, idx: np.ndarray, points: Sequence[np.ndarray]) -> np.ndarray:
        """``out[k]``: how many distinct unpaid points are among ``points[: k + 1]``.

        One pass over the points, so a budget check over every prefix is linear in the
        number of points.
        """
        seen, count, out = set(self.known), 0, np.zeros(len(points), np.int64)
        for k, p in enumerate(points):
            key = _digest(idx, p)
            if key not in seen:
                seen.add(key)
                count += 1
            out[k] = count
        return out

    def on(self, idx: np.ndarray) -> Evaluate:
        """The loss oracle of the batch ``idx``."""
        xb = self.read(idx)
        loss, known, kept = self.loss, self.known, self.known_residuals
        space, fill = loss.space, loss.fill

        def edited(theta: np.ndarray) -> np.ndarray:
            # not a FittedEdit: the search's probing points may leave the feasible set
            noise, mask = space.full_arrays(torch.from_numpy(theta), fill)
            return apply_numpy(xb, noise, mask)

        def record(key: str, Z: np.ndarray) -> None:
            with torch.no_grad():
                z = torch.as_tensor(np.asarray(Z, np.float32), device=_device(loss.data_loss))
                # residuals first: a key in known then has them too (both are cleared
                # together), so known alone says what is paid for
                if kept is None:
                    known[key] = float(loss.data_loss(z, idx))
                    return
                both = getattr(loss.data_loss, "loss_and_residuals", None)
                if both is None:
                    value, r = loss.data_loss(z, idx), loss.data_loss.residuals(z, idx)
                else:  # the embeddings transformed once for both (whitened, for mean_gap)
                    value, r = both(z, idx)
                kept[key] = r.cpu().numpy()
                known[key] = float(value)

        def evaluate(points: Sequence[np.ndarray]) -> np.ndarray:
            keys = [_digest(idx, p) for p in points]
            todo = dict(zip(keys, points, strict=True))  # unique points, in order
            todo = {k: p for k, p in todo.items() if k not in known}
            if self.embed_many is None:
                for key, p in todo.items():
                    record(key, edited(p))
            elif todo:
                names = list(todo)
                self.embed_many(_EditedBatches(edited, list(todo.values())),
                                lambda i, Z: record(names[i], Z))
            return np.array([loss.total(known[k], p) for k, p in zip(keys, points, strict=True)])

        def residuals(points: Sequence[np.ndarray]) -> np.ndarray:
            """The residual vectors of ``points`` on the batch (paid for if not yet)."""
            if kept is None:
                raise RuntimeError("this QueryLoss keeps no residuals (residuals=None)")
            evaluate(points)
            return np.stack([kept[_digest(idx, p)] for p in points])

        evaluate.residuals = residuals  # type: ignore[attr-defined]
        return evaluate


def _device(data_loss: Any) -> torch.device:
    return getattr(data_loss, "device", torch.device("cpu"))


class _EditedBatches(Sequence):
    """``batch`` edited with each point, built lazily (in the worker thread that sends it)."""

    def __init__(self, edit: Callable[[np.ndarray], np.ndarray], points: list[np.ndarray]):
        self.edit, self.points = edit, points

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        return self.edit(self.points[i])
