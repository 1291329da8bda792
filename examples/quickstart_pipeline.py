"""Quick start: debias a frozen encoder inside a scikit-learn Pipeline.

A classifier trained on a frozen encoder's embeddings learns a shortcut when the training
data tie a sensitive group to the label. Put a DebiasedNoiseTransformer in front of it:
it learns one edit of the input image that hides the group from the encoder, and applies
the same edit to every new image (no group labels at prediction time).

    python examples/quickstart_pipeline.py          # about 30 seconds on a laptop
    python examples/quickstart_pipeline.py --quick  # a few seconds (CI)
"""

from __future__ import annotations

import argparse

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from fairnoise import DebiasedNoiseTransformer, TorchEncoder
from fairnoise.datasets import make_spurious_images
from fairnoise.encoders import make_standin_encoder
from fairnoise.metrics import fairness_report, leakage_auc


def main(quick: bool = False) -> None:
    n = 300 if quick else 2000
    # Training data: a corner marker gives the group away, and the group is correlated
    # with the disease. Test data: the same kind of images, without that correlation.
    train = make_spurious_images(n, correlation=0.8, random_state=0)
    test = make_spurious_images(n, correlation=0.0, random_state=1)

    # A stand-in for a foundation model (a small frozen random CNN). Use your own frozen
    # torch.nn.Module mapping N×C×H×W images in [0, 1] to N×E embeddings instead.
    encoder = make_standin_encoder(n_channels=1, random_state=0)

    # Plain pipeline: embeddings -> classifier.
    plain = make_pipeline(FunctionTransformer(TorchEncoder(encoder).embed),
                          StandardScaler(), LogisticRegression(max_iter=2000))
    plain.fit(train.images, train.y)

    # Debiased pipeline: edit -> embeddings -> classifier. The groups are needed by fit
    # only, routed to the "noise" step by its name.
    debiased = Pipeline([
        ("noise", DebiasedNoiseTransformer(encoder=encoder, random_state=0,
                                           max_epochs=10 if quick else 30)),
        ("scale", StandardScaler()),
        ("clf", LogisticRegression(max_iter=2000)),
    ])
    debiased.fit(train.images, train.y, noise__sensitive_features=train.sensitive_features)

    for name, pipe in (("plain", plain), ("debiased", debiased)):
        proba = pipe.predict_proba(test.images)[:, 1]  # no groups needed here
        report = fairness_report(test.y, proba, sensitive_features=test.sensitive_features)
        Z_train, Z_test = pipe[0].transform(train.images), pipe[0].transform(test.images)
        leak = leakage_auc(Z_train, train.sensitive_features, y=train.y, Z_test=Z_test,
                           sensitive_features_test=test.sensitive_features, y_test=test.y)
        s = report.summary
        print(f"{name:>9}: task AUC {s['overall_auc']:.3f}, equalized-odds gap "
              f"{s['equalized_odds_difference']:.3f}, conditional leakage {leak:.3f}")

    dne = debiased.named_steps["noise"]
    print(f"The learned mask replaces {1 - dne.mask_.mean():.1%} of the image, "
          f"after {dne.n_iter_} epochs.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, for CI")
    main(parser.parse_args().quick)
