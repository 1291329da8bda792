"""Adversarial objectives: how much the sensitive-attribute probe still knows.

Each objective maps the probe's logits ``g(φ(edit(x)))`` (``N×K``), the group codes ``a``
and a per-sample target distribution ``π`` (``N×K``: the group prior, or the prior within
the sample's class of ``y`` for the class-conditional adversary) to a scalar to minimise.

``"neg_ce"`` (the paper's)
    ``−CE(g(·), a)``. Unbounded below: it rewards flipping the probe to confidently wrong
    answers, which leaves the attribute just as decodable by a re-trained probe.
``"confusion"``
    ``KL(π ‖ softmax g(·))``. Bounded below by 0, reached when the probe's output equals
    the base rate, i.e. it knows nothing about the group beyond the prior (beyond ``y``
    for the class-conditional adversary). With balanced groups ``π`` is uniform.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Objective = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def neg_ce(logits: torch.Tensor, a: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Negative cross-entropy of the probe on the true groups (mean over the batch)."""
    return -F.cross_entropy(logits, a)


def confusion(logits: torch.Tensor, a: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """``KL(π ‖ p)`` between the target distribution and the probe's (mean over the batch)."""
    log_p = F.log_softmax(logits, dim=1)
    log_prior = torch.log(prior.clamp_min(1e-12))
    return (prior * (log_prior - log_p)).sum(dim=1).mean()


OBJECTIVES: dict[str, Objective] = {"neg_ce": neg_ce, "confusion": confusion}
