"""First-order optimisation of the edit: minibatch Adam, :func:`minimise_minibatch`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm


class NonFiniteLoss(FloatingPointError):
    """A batch's loss was NaN or infinite; ``theta`` is the last parameter with a finite one.

    ``reason`` says which part failed first: ``"edit"`` (the edited inputs overflowed),
    ``"encoder"`` (the encoder returned NaN or infinity for finite inputs) or ``"loss"``.
    """

    def __init__(self, message: str, theta: torch.Tensor, reason: str = "loss") -> None:
        super().__init__(message)
        self.theta, self.reason = theta, reason


class Trace:
    """What :func:`minimise_minibatch` did: the held-out curve, the best epoch, why it stopped."""

    def __init__(self) -> None:
        self.held_out: list[float] = []
        self.best_epoch = 0
        self.diverged_at: int | None = None


def minimise_minibatch(
    batch_loss: Callable[[np.ndarray, torch.Tensor], torch.Tensor],
    theta: torch.Tensor,
    n_samples: int,
    *,
    batch_size: int,
    learning_rate: float,
    max_epochs: int,
    tol: float,
    n_iter_no_change: int,
    project: Callable[[torch.Tensor], Any],
    generator: torch.Generator,
    verbose: bool = False,
    state: dict[str, Any] | None = None,
    held_out: Callable[[torch.Tensor], float] | None = None,
    diverge_factor: float = 3.0,
    trace: Trace | None = None,
) -> tuple[torch.Tensor, list[float]]:
    """Minibatch Adam on a parameter ``θ``, with projection and early stopping.

    ``batch_loss(idx, θ)`` returns the differentiable loss of the samples ``idx``. An epoch
    visits every sample once in a fresh random order drawn from ``generator``. Training
    stops after ``max_epochs``, or once the epoch loss has not improved on the best by more
    than ``tol`` for ``n_iter_no_change`` epochs in a row.

    ``held_out(θ)``, when given, is the loss of ``θ`` on samples the steps never see.
    Then the *best* iterate by that loss is returned (the starting point is a candidate
    too, so the result is never worse than where it started on the held-out samples),
    early stopping follows the held-out loss, and training stops as diverged once it is
    not finite or exceeds ``diverge_factor`` × the starting point's (``trace.diverged_at``
    records the epoch). A batch whose loss is not finite raises :class:`NonFiniteLoss`
    carrying the last parameter whose loss was finite.

    ``state``, when given, is Adam's state as NumPy (``step``, ``exp_avg``,
    ``exp_avg_sq``): training resumes from it and it is updated in place, which is how
    ``partial_fit`` carries the optimiser from one call to the next.

    Returns the parameter and the mean loss of each epoch.

    Examples
    --------
    Fit the mean of some data by minibatch Adam, keeping the parameter in [0, 1]:

    >>> import torch
    >>> data = torch.linspace(0.2, 1.0, 100)
    >>> def batch_loss(idx, theta):
    ...     return ((data[idx] - theta) ** 2).mean()
    >>> theta, curve = minimise_minibatch(
    ...     batch_loss, torch.zeros(()), 100, batch_size=20, learning_rate=0.1,
    ...     max_epochs=40, tol=1e-6, n_iter_no_change=5,
    ...     project=lambda t: t.clamp_(0, 1), generator=torch.Generator().manual_seed(0))
    >>> round(float(theta), 1), curve[-1] < curve[0]
    (0.6, True)
    """
    theta = theta.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=learning_rate)
    if state:
        opt.state[theta] = {k: torch.as_tensor(v, device=theta.device) for k, v in state.items()}
    curve: list[float] = []
    trace = trace if trace is not None else Trace()
    best, stale = np.inf, 0
    best_theta = theta.detach().clone()
    if held_out is not None:
        start_value = float(held_out(theta.detach()))
        trace.held_out.append(start_value)
        best = start_value if np.isfinite(start_value) else np.inf
    last_good = theta.detach().clone()
    bar = tqdm(range(max_epochs), desc="fitting noise", disable=not verbose, leave=False)
    for epoch in bar:
        order = torch.randperm(n_samples, generator=generator).numpy()
        total = torch.zeros((), device=theta.device)  # summed on device: no per-step sync
        for start in range(0, n_samples, batch_size):
            idx = order[start : start + batch_size]
            try:
                loss = batch_loss(idx, theta)
            except NonFiniteLoss as error:
                error.theta = best_theta if held_out is not None else last_good
                raise
            if not torch.isfinite(loss):
                raise NonFiniteLoss(
                    f"the loss of a batch is {float(loss)}",
                    best_theta if held_out is not None else last_good)
            last_good = theta.detach().clone()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                project(theta)
            total += loss.detach() * len(idx)
        curve.append(float(total) / n_samples)
        bar.set_postfix(loss=f"{curve[-1]:.4f}")
        value = curve[-1]
        if held_out is not None:
            value = float(held_out(theta.detach()))
            trace.held_out.append(value)
            if not np.isfinite(value) or value > diverge_factor * abs(trace.held_out[0]):
                trace.diverged_at = epoch + 1
                break
        if value < best - tol:
            best, stale = value, 0
            best_theta = theta.detach().clone()
            trace.best_epoch = epoch + 1
        else:
            stale += 1
            if stale >= n_iter_no_change:
                break
    if state is not None:
        state.update({k: v.detach().cpu().numpy() for k, v in opt.state[theta].items()})
    return (best_theta if held_out is not None else theta.detach()), curve
