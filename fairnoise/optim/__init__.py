"""The optimiser seam: how an edit's parameter is learned, apart from any estimator.

Both transformers learn the parameter ``θ`` of a :class:`~fairnoise.edits.NoiseSpace` by
minimising the same batch loss, :class:`EditLoss`:

    L_B(θ) = ℓ_adv(φ(edit(x_B, θ)), B) + λ · R(θ)

* white-box (:class:`~fairnoise.DebiasedNoiseTransformer`): :func:`minimise_minibatch`,
  minibatch Adam on the differentiable form of the loss (``_first_order.py``);
* black-box (:class:`~fairnoise.GeZONoiseTransformer`): :func:`zeroth_order_search`, one
  batch per iteration, on the evaluation form :class:`QueryLoss`, which pays for each
  (batch, point) at most once; how it moves is a :class:`Strategy` from
  :data:`STRATEGIES` (``_zeroth_order.py``).

The optimisers know nothing about estimators, encoders or budgets beyond what they are
passed, so a new optimiser or strategy is written and tested here, over a loss oracle,
and the estimators only glue it to their parameters. A new strategy subclasses
:class:`Strategy` and registers itself in :data:`STRATEGIES`.
"""

from ._first_order import NonFiniteLoss, Trace, minimise_minibatch
from ._loss import EditLoss, Evaluate, QueryLoss
from ._zeroth_order import (
    STRATEGIES,
    GaussNewtonSearch,
    GreedySearch,
    SearchState,
    SPSASearch,
    Strategy,
    adam_proposal,
    greedy_update,
    numpy_projection,
    spsa_update,
    zeroth_order_search,
)

__all__ = [
    "STRATEGIES",
    "EditLoss",
    "Evaluate",
    "GaussNewtonSearch",
    "GreedySearch",
    "NonFiniteLoss",
    "QueryLoss",
    "SPSASearch",
    "SearchState",
    "Strategy",
    "Trace",
    "adam_proposal",
    "greedy_update",
    "minimise_minibatch",
    "numpy_projection",
    "spsa_update",
    "zeroth_order_search",
]

# the public path of the classes (pickles, skops' trusted types, the API reference)
for _cls in (EditLoss, QueryLoss, SearchState, Strategy, GreedySearch, SPSASearch,
             GaussNewtonSearch):
    _cls.__module__ = __name__
del _cls
