"""Bad input to fairnoise.metrics raises ValueError naming the argument, with plain values."""

import numpy as np
import pytest

from fairnoise import metrics as fm


def test_sensitive_features_length_mismatch_is_rejected():
    with pytest.raises(ValueError, match="sensitive_features has 3 entries but y_true has 4"):
        fm.equalized_odds_difference([0, 1, 0, 1], [0, 1, 1, 1], sensitive_features=[0, 1, 0])


def test_missing_group_labels_are_rejected():
    with pytest.raises(ValueError, match=r"sensitive_features contains missing values .* in 1 "):
        fm.demographic_parity_difference(
            [0, 1, 0, 1], [0, 1, 1, 1], sensitive_features=["a", None, "b", "b"]
        )
    with pytest.raises(ValueError, match="missing values"):
        fm.group_auc([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], sensitive_features=[0, np.nan, 1, 1])


def test_non_binary_y_true_is_rejected_naming_plain_values():
    with pytest.raises(ValueError, match=r"y_true must contain binary labels 0/1; got values "
                                         r"0, 1, 2\."):
        fm.equal_opportunity_difference(
            np.array([0, 1, 2, 1]), [0, 1, 1, 1], sensitive_features=[0, 0, 1, 1]
        )


def test_scores_passed_as_predictions_get_a_thresholding_hint():
    with pytest.raises(ValueError, match=r"y_pred must contain binary labels.*Threshold"):
        fm.equalized_odds_difference(
            [0, 1, 0, 1], [0.2, 0.7, 0.1, 0.9], sensitive_features=[0, 0, 1, 1]
        )


def test_non_finite_scores_are_rejected():
    with pytest.raises(ValueError, match="y_score contains NaN or infinite values"):
        fm.auc_gap([0, 1, 0, 1], [0.2, np.inf, 0.1, 0.9], sensitive_features=[0, 0, 1, 1])


def test_single_group_is_rejected_for_gaps_naming_it_plainly():
    with pytest.raises(ValueError, match=r"holds a single group \(7\); at least 2 groups are "
                                         "needed to compare"):
        fm.demographic_parity_difference([0, 1], [0, 1], sensitive_features=np.array([7, 7]))


def test_three_dimensional_sensitive_features_are_rejected():
    with pytest.raises(ValueError, match="sensitive_features must be 1-D .* or 2-D"):
        fm.demographic_parity_difference([0, 1], [0, 1], sensitive_features=np.zeros((2, 1, 1)))


def test_invalid_zero_division_is_rejected():
    with pytest.raises(ValueError, match="zero_division must be 'warn', 0.0, 1.0 or np.nan"):
        fm.equal_opportunity_difference(
            [0, 1, 0, 1], [0, 1, 1, 1], sensitive_features=[0, 0, 1, 1], zero_division=0.5
        )


@pytest.mark.parametrize(
    ("sample_weight", "message"),
    [
        ([1.0, 2.0, 1.0], "sample_weight has 3 samples but y_true has 4"),
        ([1.0, -1.0, 1.0, 1.0], "sample_weight must be finite and non-negative"),
        ([1.0, np.inf, 1.0, 1.0], "sample_weight must be finite and non-negative"),
        (["a", "b", "c", "d"], "sample_weight must be numeric"),
        ([0.0, 0.0, 1.0, 1.0], r"sample_weight is 0 for every sample of group\(s\) \[0\]"),
    ],
)
def test_invalid_sample_weight_is_rejected(sample_weight, message):
    with pytest.raises(ValueError, match=message):
        fm.equal_opportunity_difference([0, 1, 0, 1], [0, 1, 1, 1], sensitive_features=[0, 0, 1, 1],
                                        sample_weight=sample_weight)
