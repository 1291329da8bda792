"""Ship a learned edit between sites in a file that runs no code on load.

:func:`export_noise` writes an ``.npz`` archive holding only numeric arrays and a JSON
string of metadata; :func:`load_noise` reads it with ``allow_pickle=False`` and returns a
fitted :class:`~fairnoise.DebiasedNoiseTransformer` whose ``transform`` reproduces the
original exactly (given the same encoder). The sensitive-attribute probe is not shipped:
the receiving site needs only the edit.

File contents
-------------
``noise``, ``noise_param`` and, for the masked edit, ``mask`` (float32 arrays), and
``metadata``: JSON with ``format`` (``"fairnoise-noise"``), ``format_version``,
``fairnoise_version``, ``estimator``, ``edit``, ``input_shape``, ``n_features_out``,
``channel_shared``, ``noise_resolution``, ``feature_names`` (or null) and
``input_scaling`` (uint8 images are divided by 255 and uint16 ones by 65535 before the
edit; other integer types are refused).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .dne import DebiasedNoiseTransformer
from .edits._file import FORMAT, FORMAT_VERSION, load_edit  # noqa: F401 (the format's names)

__all__ = ["SKOPS_TRUSTED_TYPES", "export_noise", "load_noise"]

#: Types a skops file of a fitted fairnoise transformer holds beyond scikit-learn's own,
#: in feature mode with a scikit-learn probe: pass them as ``skops.io.load(path,
#: trusted=...)`` after checking ``skops.io.get_untrusted_types(file=path)`` lists nothing
#: else. A torch encoder or probe cannot be stored by skops; ship those separately and
#: the edit with :func:`export_noise`.
SKOPS_TRUSTED_TYPES = [
    "fairnoise.dne.DebiasedNoiseTransformer",
    "fairnoise.gezo.GeZONoiseTransformer",
    "fairnoise.edits.NoiseSpace",
    "fairnoise.edits.FittedEdit",
    "fairnoise.optim.SearchState",
]


def export_noise(transformer: Any, path: str | os.PathLike) -> str:
    """Write a fitted transformer's edit to ``path`` (``.npz`` is appended if missing).

    Parameters
    ----------
    transformer : DebiasedNoiseTransformer or GeZONoiseTransformer
        A fitted noise transformer.
    path : str or path-like
        Destination file.

    Returns
    -------
    path : str
        The file written.

    Examples
    --------
    >>> import numpy as np, tempfile, os, warnings
    >>> from fairnoise import DebiasedNoiseTransformer, load_noise
    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 2, 100)
    >>> X = np.c_[rng.normal(size=(100, 2)), a]
    >>> t = DebiasedNoiseTransformer(random_state=0).fit(X, sensitive_features=a)
    >>> path = t.export_noise(os.path.join(tempfile.mkdtemp(), "edit"))
    >>> bool(np.array_equal(load_noise(path).transform(X), t.transform(X)))
    True
    """
    return transformer.export_noise(path)


def load_noise(path: str | os.PathLike, *, encoder: Any = None, output: str = "embeddings",
               input_shape: tuple[int, ...] | None = None) -> Any:
    """Load an edit written by :func:`export_noise` as a fitted transformer.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file.
    encoder : None, torch.nn.Module or callable, default=None
        The encoder to apply after the edit; must be the one the edit was learned for
        (its output dimension is checked on the first ``transform``). ``None`` for an edit
        learned on features.
    output : {"embeddings", "images"}, default="embeddings"
        What ``transform`` returns.
    input_shape : tuple of int, default=None
        If given, the shape of one input the caller will pass; a file learned for another
        shape is rejected here rather than at ``transform``.

    Returns
    -------
    transformer : DebiasedNoiseTransformer
        Fitted: ``transform`` applies the edit (and the encoder). ``sa_probe_`` is None.

    Raises
    ------
    ValueError
        If the file is not a fairnoise noise file, is corrupted, or does not match
        ``input_shape``.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from fairnoise import DebiasedNoiseTransformer, export_noise, load_noise
    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 2, 200)
    >>> X = np.c_[rng.normal(size=(200, 3)), a + rng.normal(scale=0.3, size=200)]
    >>> dne = DebiasedNoiseTransformer(max_epochs=5, random_state=0)
    >>> dne = dne.fit(X, sensitive_features=a)
    >>> path = export_noise(dne, os.path.join(tempfile.mkdtemp(), "edit"))
    >>> path.endswith(".npz")
    True
    >>> loaded = load_noise(path)  # no pickle: nothing in the file is executed
    >>> np.array_equal(loaded.transform(X), dne.transform(X))
    True
    """
    edit, meta = load_edit(path)
    if input_shape is not None and tuple(input_shape) != edit.input_shape:
        raise ValueError(f"{os.fspath(path)} holds an edit for inputs of shape "
                         f"{edit.input_shape}, not {tuple(input_shape)}.")
    t = DebiasedNoiseTransformer(encoder=encoder, output=output, edit=edit.kind,
                                 channel_shared=meta["channel_shared"],
                                 noise_resolution=_resolution(meta["noise_resolution"]))
    t._validate_params()
    t.input_shape_ = edit.input_shape
    t.n_features_in_ = int(np.prod(edit.input_shape))
    t.n_features_out_ = meta["n_features_out"]
    if meta.get("feature_names") is not None:
        t.feature_names_in_ = np.asarray(meta["feature_names"], dtype=object)
    t.edit_ = edit
    t.sa_probe_ = None
    t.classes_sensitive_ = None
    t.loss_curve_ = []
    t.n_iter_ = 0
    return t


def _resolution(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
