"""Ship a learned edit between sites in a file that runs no code on load.

:func:`export_noise` writes an ``.npz`` archive holding only numeric arrays and a JSON
string of metadata; :func:`load_noise` reads it with ``allow_pickle=False`` and returns a
fitted :class:`~fairnoise.DebiasedNoiseTransformer` whose ``transform`` reproduces the
original exactly (given the same encoder). The sensitive-attribute probe is not shipped:
the receiving site needs only the edit.

File contents
-------------
``noise``, ``noise_param`` and, for the masked edit, ``mask`` (float32 arrays); for an
edit with a per-image standardisation, ``standardize_mean`` and ``standardize_std``
(float32, one per channel) and ``standardize_eps`` (a float64 number); for an edit with an
embedding eraser, ``eraser_mean``, ``eraser_left`` and ``eraser_right`` (float64, of
``n_features_out`` rows); and ``metadata``: JSON with ``format`` (``"fairnoise-noise"``),
``format_version`` (1, or 2 when the standardisation or eraser arrays are present: a
fairnoise that reads only version 1 refuses such a file rather than drop them),
``fairnoise_version``, ``estimator``, ``edit``, ``input_shape``, ``n_features_out``,
``channel_shared``, ``noise_resolution`` (the grid the edit was learned on),
``feature_names`` (or null), ``input_scaling`` (uint8 images are divided by 255 and
uint16 ones by 65535 before the edit; other integer types are refused) and ``params``: the
estimator's training parameters (``get_params()`` without the encoder, those JSON can
hold). Files written before
``params`` existed load as before, with default parameters.

A loaded transformer is fitted; scikit-learn's ``fit`` would learn a new edit and discard
the shipped one. In a ``Pipeline``, wrap it in :class:`sklearn.frozen.FrozenEstimator`
(``load_noise(path, frozen=True)`` returns it so wrapped): the pipeline's ``fit`` then
fits the steps after it and leaves the edit as shipped.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.utils._param_validation import InvalidParameterError

from .dne import DebiasedNoiseTransformer
from .edits._file import FORMAT, FORMAT_VERSION, load_edit  # noqa: F401 (the format's names)
from .gezo import GeZONoiseTransformer

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
    "fairnoise.edits.IntensityStandardization",
    "fairnoise.edits.ConditionalEraser",
    "fairnoise.optim.SearchState",
]

#: the classes a file can name as its ``estimator``; another name loads as the first
_ESTIMATORS = {cls.__name__: cls for cls in (DebiasedNoiseTransformer, GeZONoiseTransformer)}
#: parameters of how to run on the receiving machine, not of what was learned: they keep
#: their defaults (or the caller's values) rather than the training site's
_NOT_RESTORED = frozenset({"encoder", "output", "device", "precision", "verbose", "n_jobs",
                           "max_retries", "warm_start"})


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
               input_shape: tuple[int, ...] | None = None, frozen: bool = False) -> Any:
    """Load an edit written by :func:`export_noise` as a fitted transformer.

    The transformer is of the class that learned the edit (a
    :class:`~fairnoise.DebiasedNoiseTransformer`, or a
    :class:`~fairnoise.GeZONoiseTransformer` for a black-box edit, so that a callable
    encoder works), with the parameters it was trained with (``get_params()`` reports
    them), except those about running it here (``device``, ``precision``, ``n_jobs``,
    ``verbose``, ...), which keep their defaults.

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
    frozen : bool, default=False
        Return the transformer wrapped in :class:`sklearn.frozen.FrozenEstimator`, the
        form a prefit step takes in a ``Pipeline``: ``fit`` leaves the edit as shipped,
        ``transform`` applies it, ``clone`` (``GridSearchCV``) shares it.

    Returns
    -------
    transformer : DebiasedNoiseTransformer, GeZONoiseTransformer or FrozenEstimator
        Fitted: ``transform`` applies the edit (and the encoder). ``sa_probe_`` is None.
        Calling its ``fit`` learns a new edit (see ``frozen``).

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
    >>> loaded.get_params()["max_epochs"]  # the parameters it was trained with
    5

    In a pipeline, the shipped edit stays as it is while the classifier is fitted:

    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> pipe = make_pipeline(load_noise(path, frozen=True), LogisticRegression())
    >>> pipe = pipe.fit(X, a)                    # fits the classifier only
    >>> np.array_equal(pipe[0].edit_.param, dne.edit_.param)
    True
    """
    edit, meta = load_edit(path)
    path = os.fspath(path)
    if input_shape is not None and tuple(input_shape) != edit.input_shape:
        raise ValueError(f"{path} holds an edit for inputs of shape "
                         f"{edit.input_shape}, not {tuple(input_shape)}.")
    cls = _ESTIMATORS.get(meta.get("estimator"), DebiasedNoiseTransformer)
    t = cls(encoder=encoder, output=output, **_trained_params(cls, edit, meta))
    try:
        t._validate_params()
    except InvalidParameterError as exc:
        raise ValueError(f"{path} holds training parameters that {cls.__name__} rejects: "
                         f"{exc}") from exc
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
    if isinstance(t, GeZONoiseTransformer):
        t.n_queries_, t.search_state_ = 0, None  # nothing queried here; nothing to resume
    t._loaded_from = path  # named by fit's warning, should fit replace the edit
    return FrozenEstimator(t) if frozen else t


def _trained_params(cls: type, edit: Any, meta: dict[str, Any]) -> dict[str, Any]:
    """The parameters to build ``cls`` with: the stored training ones (``params``, absent
    from older files), those of the edit's own entries winning where they overlap."""
    names = set(cls().get_params(deep=False)) - _NOT_RESTORED
    stored = meta.get("params")
    params = {k: _tuples(v) for k, v in (stored if isinstance(stored, dict) else {}).items()
              if k in names}
    if "noise_resolution" not in params:
        params["noise_resolution"] = _tuples(meta["noise_resolution"])
    return {**params, "edit": edit.kind, "channel_shared": meta["channel_shared"]}


def _tuples(value: Any) -> Any:
    """JSON has no tuples: a list parameter (``noise_resolution``) was one."""
    return tuple(value) if isinstance(value, list) else value
