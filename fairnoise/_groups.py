"""Sensitive features → integer group codes: the one parser the estimators and metrics share.

``sensitive_features`` is a 1-D array-like of hashable group labels (strings, integers),
a :class:`pandas.Series`, a torch tensor, or a 2-D array / :class:`pandas.DataFrame`
whose columns are combined into intersectional groups, as in fairlearn. Groups are sorted
by label, so codes do not depend on the order in which the samples arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Groups", "check_groups", "encode_groups", "plain"]


@dataclass(frozen=True)
class Groups:
    """Integer group codes for each sample and the group labels they stand for."""

    #: Code ``0..K-1`` of every sample's group.
    codes: np.ndarray
    #: Sorted group labels (a :class:`pandas.MultiIndex` for intersectional groups),
    #: named after the columns of ``sensitive_features``.
    labels: pd.Index

    @property
    def n_groups(self) -> int:
        return len(self.labels)

    def members(self) -> list[np.ndarray]:
        """Indices of the samples of each group, in code order."""
        return [np.flatnonzero(self.codes == k) for k in range(self.n_groups)]

    def classes(self) -> np.ndarray:
        """The labels as a 1-D array: values, or tuples for intersectional groups."""
        if isinstance(self.labels, pd.MultiIndex):
            classes = np.empty(self.n_groups, dtype=object)
            classes[:] = self.labels.tolist()
            return classes
        return np.asarray(self.labels)


def plain(value: Any) -> Any:
    """A NumPy scalar as the Python value it holds, so messages print ``7``, not
    ``np.int64(7)``; tuples (intersectional labels) element by element."""
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    return value.item() if isinstance(value, np.generic) else value


def _columns(sensitive_features: Any, name: str) -> tuple[list[np.ndarray], list[str]]:
    """Split ``sensitive_features`` into 1-D label columns and their names."""
    if isinstance(sensitive_features, pd.DataFrame):
        names = [str(column) for column in sensitive_features.columns]
        return [sensitive_features[c].to_numpy() for c in sensitive_features.columns], names
    if isinstance(sensitive_features, pd.Series):
        label = sensitive_features.name
        return [sensitive_features.to_numpy()], [
            "sensitive_feature_0" if label is None else str(label)
        ]
    if hasattr(sensitive_features, "detach"):  # a torch tensor, possibly on a device
        sensitive_features = sensitive_features.detach().cpu().numpy()
    array = np.asarray(sensitive_features)
    if array.ndim == 1:
        return [array], ["sensitive_feature_0"]
    if array.ndim == 2 and array.shape[1] >= 1:
        return [array[:, j] for j in range(array.shape[1])], [
            f"sensitive_feature_{j}" for j in range(array.shape[1])
        ]
    raise ValueError(
        f"{name} must be 1-D (one label per sample) or 2-D (one column per sensitive "
        f"feature); got an array of shape {array.shape}."
    )


def check_groups(
    sensitive_features: Any,
    n_samples: int,
    *,
    name: str = "sensitive_features",
    against: str = "X",
    min_groups: int = 2,
    purpose: str = "to compare",
) -> Groups:
    """Validate group labels and encode their (intersectional) groups, sorted.

    ``against`` names the argument whose length ``sensitive_features`` must match and
    ``purpose`` ends the message when there are fewer than ``min_groups`` groups.
    """
    if sensitive_features is None:
        raise ValueError(f"{name} is required; got None.")
    columns, names = _columns(sensitive_features, name)
    length = len(columns[0])
    if length != n_samples:
        raise ValueError(
            f"{name} has {length} entries but {against} has {n_samples} samples; they must "
            "be aligned row by row."
        )
    missing = np.zeros(length, dtype=bool)
    for column in columns:
        missing |= np.asarray(pd.isna(column), dtype=bool)
    if missing.any():
        raise ValueError(
            f"{name} contains missing values (NaN or None) in {int(missing.sum())} "
            "sample(s); drop those samples or give them an explicit group label."
        )
    if len(columns) == 1:
        codes, labels = pd.factorize(pd.Index(columns[0], name=names[0]), sort=True)
        labels = pd.Index(labels, name=names[0])
    else:
        codes, labels = pd.factorize(pd.MultiIndex.from_arrays(columns, names=names), sort=True)
        labels = pd.MultiIndex.from_tuples(list(labels), names=names)
    if len(labels) < min_groups:
        found = "a single group" if len(labels) == 1 else f"{len(labels)} groups"
        raise ValueError(
            f"{name} holds {found} ({', '.join(repr(plain(v)) for v in labels)}); at least "
            f"{min_groups} groups are needed {purpose}."
        )
    return Groups(codes=np.asarray(codes, dtype=np.intp), labels=labels)


def encode_groups(
    sensitive_features: Any, n_samples: int, min_groups: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Codes ``0..K-1`` and the group labels; several columns form intersectional groups.

    Returns ``(codes, classes)`` where ``classes`` is a 1-D array of labels, or of tuples
    (one entry per column) when ``sensitive_features`` has several columns.
    """
    groups = check_groups(
        sensitive_features, n_samples, min_groups=min_groups,
        purpose="to learn a debiasing edit",
    )
    return groups.codes.astype(np.int64), groups.classes()
