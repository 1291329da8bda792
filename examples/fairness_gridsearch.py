"""Fairness-aware model selection: GridSearchCV with metadata routing.

With scikit-learn's metadata routing on, one ``sensitive_features=`` argument to
``GridSearchCV.fit`` reaches both consumers that need it, fold by fold:

* the DebiasedNoiseTransformer's ``fit`` (it requests the groups by default), and
* the fairness scorers (``fairnoise.metrics`` scorers request them too).

The search refits the candidate with the best *utility* score, ROC AUC minus the
equalized-odds gap, so that a candidate that buys fairness by losing the disease signal
does not win.

    python examples/fairness_gridsearch.py          # about a minute on a laptop
    python examples/fairness_gridsearch.py --quick  # seconds (CI)
    python examples/fairness_gridsearch.py --plot tradeoff.png   # also draw the trade-off
"""

from __future__ import annotations

import argparse

import pandas as pd
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from fairnoise import DebiasedNoiseTransformer
from fairnoise.datasets import make_spurious_images
from fairnoise.encoders import make_standin_encoder
from fairnoise.metrics import (
    equal_opportunity_difference,
    equalized_odds_scorer,
    fairness_report,
    make_fairness_scorer,
    make_utility_fairness_scorer,
)


def main(quick: bool = False, plot: str | None = None) -> GridSearchCV:
    n = 300 if quick else 1500
    train = make_spurious_images(n, correlation=0.8, random_state=0)
    test = make_spurious_images(n, correlation=0.0, random_state=1)
    encoder = make_standin_encoder(random_state=0)  # stand-in: use your frozen model

    pipe = Pipeline([
        ("noise", DebiasedNoiseTransformer(encoder=encoder, random_state=0,
                                           max_epochs=5 if quick else 30)),
        ("scale", StandardScaler()),
        ("clf", LogisticRegression(max_iter=2000)),
    ])
    grid = {"noise__lambda_reg": [0.03, 1.0] if quick else [0.01, 0.03, 0.1, 0.3, 1.0]}
    scoring = {
        "auc": "roc_auc",
        # scorers built in fairnoise.metrics request sensitive_features through routing;
        # gaps are negated, like scikit-learn's neg_* scorers, so larger is better
        "neg_eod": equalized_odds_scorer,
        "neg_eop": make_fairness_scorer(equal_opportunity_difference),
        "utility": make_utility_fairness_scorer(alpha=1.0),  # AUC - 1.0 * EOdds gap
    }
    # The folds are stratified on (label, group) so that every fold holds every cell.
    cells = train.y * 2 + train.sensitive_features
    folds = list(StratifiedKFold(n_splits=2 if quick else 3, shuffle=True,
                                 random_state=0).split(train.images, cells))
    search = GridSearchCV(pipe, grid, scoring=scoring, refit="utility", cv=folds)

    # Routing on, only for this block: the same call without it would not reach the
    # transformer (it would warn and learn no edit) nor the scorers (they would raise).
    with sklearn.config_context(enable_metadata_routing=True):
        search.fit(train.images, train.y, sensitive_features=train.sensitive_features)

    results = pd.DataFrame(search.cv_results_)
    columns = ["param_noise__lambda_reg", "mean_test_auc", "mean_test_neg_eod",
               "mean_test_neg_eop", "mean_test_utility", "rank_test_utility"]
    print(results[columns].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"refit on the whole training set with {search.best_params_}")

    proba = search.predict_proba(test.images)[:, 1]
    summary = fairness_report(test.y, proba, sensitive_features=test.sensitive_features).summary
    print(f"test set: task AUC {summary['overall_auc']:.3f}, equalized-odds gap "
          f"{summary['equalized_odds_difference']:.3f}")

    if plot:
        import matplotlib

        matplotlib.use("Agg")
        from fairnoise.plotting import plot_tradeoff

        points = pd.DataFrame({
            "series": "DNE, cross-validated",
            "label": [f"λ={v:g}" for v in results["param_noise__lambda_reg"]],
            "auc": results["mean_test_auc"],
            "equalized_odds_difference": -results["mean_test_neg_eod"],  # un-negate the gap
        })
        plot_tradeoff(points).savefig(plot, dpi=110)
        print(f"trade-off figure: {plot}")
    return search


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds, for CI")
    parser.add_argument("--plot", metavar="PNG", help="save the trade-off figure here "
                        "(needs matplotlib)")
    args = parser.parse_args()
    main(args.quick, args.plot)
