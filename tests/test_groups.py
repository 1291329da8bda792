"""fairnoise._groups: the one sensitive-feature parser of the estimators and the metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fairnoise import DebiasedNoiseTransformer
from fairnoise import metrics as fm
from fairnoise._base import encode_groups
from fairnoise._groups import check_groups

RNG = np.random.default_rng(0)
LAYOUTS = {
    "integers": RNG.integers(0, 3, 40),
    "strings": RNG.choice(["b", "a"], 40),
    "series": pd.Series(RNG.choice(["F", "M"], 40), name="sex"),
    "tensor": torch.tensor(RNG.integers(0, 2, 40)),
    "2-D array": np.column_stack([RNG.integers(0, 2, 40), RNG.integers(5, 7, 40)]),
    "DataFrame": pd.DataFrame({"sex": RNG.choice(["F", "M"], 40), "age": RNG.integers(0, 2, 40)}),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_estimators_and_metrics_encode_groups_the_same_way(layout):
    groups = check_groups(LAYOUTS[layout], 40)
    codes, classes = encode_groups(LAYOUTS[layout], 40)
    np.testing.assert_array_equal(codes, groups.codes)
    assert classes.tolist() == list(groups.labels)


def test_groups_are_sorted_by_label_whatever_the_order_of_arrival():
    groups = check_groups(["m", "f", "m", "x"], 4)
    assert list(groups.labels) == ["f", "m", "x"]
    assert groups.codes.tolist() == [1, 0, 1, 2]


def test_intersectional_groups_are_tuples_named_after_the_columns():
    frame = pd.DataFrame({"sex": ["F", "M", "F"], "site": [2, 1, 2]})
    groups = check_groups(frame, 3)
    assert list(groups.labels.names) == ["sex", "site"]
    assert encode_groups(frame, 3)[1].tolist() == [("F", 2), ("M", 1)]


def test_a_single_group_is_named_with_its_plain_value():
    with pytest.raises(ValueError, match=r"holds a single group \(7\); at least 2 groups are "
                                         "needed to learn a debiasing edit") as error:
        encode_groups(np.full(5, 7), 5)
    assert "np.int64" not in str(error.value)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros(39), "sensitive_features has 39 entries but X has 40 samples"),
        (np.array(["a", None] * 20, dtype=object), r"missing values \(NaN or None\) in 20"),
        (np.zeros((40, 1, 1)), r"must be 1-D \(one label per sample\) or 2-D"),
        (None, "sensitive_features is required"),
    ],
)
def test_bad_groups_get_the_same_message_from_an_estimator_and_a_metric(bad, message):
    X = RNG.normal(size=(40, 3))
    y = RNG.integers(0, 2, 40)
    if bad is not None:  # without groups an estimator warns and learns nothing instead
        with pytest.raises(ValueError, match=message):
            DebiasedNoiseTransformer(max_epochs=1).fit(X, sensitive_features=bad)
    with pytest.raises(ValueError, match=message.replace("X has 40", "y_true has 40")):
        fm.equalized_odds_difference(y, y, sensitive_features=bad)
