"""Group-fairness metrics, sensitive-attribute leakage, scorers and reports.

Every group metric has the scikit-learn metric signature
``metric(y_true, y_pred_or_score, *, sensitive_features)`` and compares the groups with
each other (*between groups*): a difference is the largest minus the smallest group
value, a ratio the smallest over the largest, over all K >= 2 groups. Where fairlearn has
the same metric it has the same name and value, and takes ``sample_weight`` as there.

``sensitive_features`` is a 1-D array-like of hashable group labels (strings, integers)
or a 2-D array / :class:`pandas.DataFrame` whose columns are combined into
intersectional groups, as in fairlearn. Rates that are undefined for a group (a true
positive rate in a group without positives) follow scikit-learn's ``zero_division``
convention, which is also what fairlearn computes: by default they count as 0 and an
:class:`~sklearn.exceptions.UndefinedMetricWarning` says so; ``zero_division=np.nan``
leaves such groups out of the comparison instead.
"""

# One concern per private module: _validation (inputs), _aggregate (between-group
# difference / ratio), _rates (per-group rates of predictions), _ranking (AUC),
# _leakage (the probe and its split), _registry (the report's columns and summary
# metrics, read by the report and fairnoise.plotting), _report (FairnessReport, the
# bootstrap, MetricFrame conversion), _scorers (scikit-learn scorers). Sensitive
# features are parsed by fairnoise._groups, shared with the estimators.

from ._leakage import leakage_auc
from ._ranking import auc_gap, group_auc, worst_group_auc
from ._rates import (
    demographic_parity_difference,
    demographic_parity_ratio,
    disparate_impact_distance,
    disparate_impact_ratio,
    equal_opportunity_difference,
    equal_opportunity_ratio,
    equalized_odds_difference,
    group_accuracy,
    true_negative_rate_difference,
)
from ._report import FairnessReport, fairness_report
from ._scorers import (
    SensitiveFeaturesNotRoutedError,
    auc_gap_scorer,
    equal_opportunity_scorer,
    equalized_odds_scorer,
    make_fairness_scorer,
    make_utility_fairness_scorer,
    worst_group_auc_scorer,
)

__all__ = [
    "FairnessReport",
    "SensitiveFeaturesNotRoutedError",
    "auc_gap",
    "auc_gap_scorer",
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "disparate_impact_distance",
    "disparate_impact_ratio",
    "equal_opportunity_difference",
    "equal_opportunity_ratio",
    "equal_opportunity_scorer",
    "equalized_odds_difference",
    "equalized_odds_scorer",
    "fairness_report",
    "group_accuracy",
    "group_auc",
    "leakage_auc",
    "make_fairness_scorer",
    "make_utility_fairness_scorer",
    "true_negative_rate_difference",
    "worst_group_auc",
    "worst_group_auc_scorer",
]
