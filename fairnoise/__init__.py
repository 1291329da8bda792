"""fairnoise: Debiased Noise Editing for fairer classification with frozen foundation models.

One universal edit (additive noise or a mask), learned once and applied to every input
before a frozen encoder, so that its embeddings stop carrying a sensitive attribute as a
shortcut. :class:`DebiasedNoiseTransformer` learns it with gradients (white-box encoder),
:class:`GeZONoiseTransformer` from encoder queries alone (black-box encoder, e.g. an API).
"""

from ._guard import NoSafeEditWarning
from .dne import DebiasedNoiseTransformer
from .encoders import CallableEncoder, QueryError, TorchEncoder
from .gezo import GeZONoiseTransformer
from .persistence import export_noise, load_noise

__version__ = "0.1.0"

__all__ = [
    "CallableEncoder",
    "DebiasedNoiseTransformer",
    "GeZONoiseTransformer",
    "NoSafeEditWarning",
    "QueryError",
    "TorchEncoder",
    "__version__",
    "export_noise",
    "load_noise",
]
