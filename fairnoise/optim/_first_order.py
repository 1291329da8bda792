"""First-order optimisation of the edit: minibatch Adam, :func:`minimise_minibatch`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm


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
) -> tuple[torch.Tensor, list[float]]:
    """Minibatch Adam on a parameter ``θ``, with projection and early stopping.

    ``batch_loss(idx, θ)`` returns the differentiable loss of the samples ``idx``. An epoch
    visits every sample once in a fresh random order drawn from ``generator``. Training
    stops after ``max_epochs``, or once the epoch loss has not improved on the best by more
    than ``tol`` for ``n_iter_no_change`` epochs in a row.

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
    best, stale = np.inf, 0
    bar = tqdm(range(max_epochs), desc="fitting noise", disable=not verbose, leave=False)
    for _ in bar:
        order = torch.randperm(n_samples, generator=generator).numpy()
        total = torch.zeros((), device=theta.device)  # summed on device: no per-step sync
        for start in range(0, n_samples, batch_size):
            idx = order[start : start + batch_size]
            loss = batch_loss(idx, theta)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                project(theta)
            total += loss.detach() * len(idx)
        curve.append(float(total) / n_samples)
        bar.set_postfix(loss=f"{curve[-1]:.4f}")
        if curve[-1] < best - tol:
            best, stale = curve[-1], 0
        else:
            stale += 1
            if stale >= n_iter_no_change:
                break
    if state is not None:
        state.update({k: v.detach().cpu().numpy() for k, v in opt.state[theta].items()})
    return theta.detach(), curve
