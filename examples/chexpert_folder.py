"""Load a CheXpert-style folder (CSV + images) and debias a classifier on it.

``load_chexpert_style`` reads the CSV (``Path``, ``Sex``, ``Age``, ``Frontal/Lateral`` and
one column per finding holding 1, 0, -1 = uncertain, or blank), maps the uncertain labels,
picks the sensitive attribute, and returns the images as a ``LazyImageArray``: files are
read (and resized) only when a batch is needed, so a data set larger than memory streams
through the transformer.

Without arguments the example first writes a tiny CheXpert-look-alike folder to a
temporary directory (synthetic images whose corner marker follows the patient's sex), so
it runs anywhere. Point it at the real thing with ``--csv``:

    python examples/chexpert_folder.py --quick
    python examples/chexpert_folder.py --csv data/CheXpert-v1.0-small/train.csv \\
        --image-root data --finding "Pleural Effusion" --sensitive-column Sex

Reading image files needs Pillow (``pip install pillow``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from fairnoise import DebiasedNoiseTransformer
from fairnoise.datasets import load_chexpert_style, make_spurious_images
from fairnoise.encoders import make_standin_encoder
from fairnoise.metrics import fairness_report


def write_fake_chexpert(root: Path, n: int, seed: int = 0) -> Path:
    """A folder laid out like CheXpert-v1.0-small: ``train.csv`` and PNG files."""
    from PIL import Image

    data = make_spurious_images(n, image_size=64, correlation=0.7, random_state=seed)
    rng = np.random.default_rng(seed)
    rows = []
    for i, (image, label, group) in enumerate(zip(data.images, data.y, data.sensitive_features,
                                                  strict=True)):
        relative = Path("CheXpert-v1.0-small", "train", f"patient{i:05d}", "study1",
                        "view1_frontal.png")
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image[0] * 255).round().astype(np.uint8)).save(root / relative)
        finding = float(label)
        if rng.random() < 0.1:  # some uncertain and some unmentioned findings, as in CheXpert
            finding = -1.0
        elif label == 0 and rng.random() < 0.3:
            finding = np.nan
        rows.append({
            "Path": relative.as_posix(),
            "Sex": "Female" if group == 0 else "Male",
            "Age": int(rng.integers(20, 90)),
            "Frontal/Lateral": "Frontal",
            "AP/PA": "PA",
            "Pleural Effusion": finding,
        })
    csv = root / "CheXpert-v1.0-small" / "train.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def main(quick: bool = False, csv: str | None = None, image_root: str | None = None,
         finding: str = "Pleural Effusion", sensitive_column: str = "Sex") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if csv is None:
            csv = write_fake_chexpert(Path(tmp), n=240 if quick else 1200)
            image_root = tmp  # the CSV's paths start with CheXpert-v1.0-small/
            print(f"wrote a CheXpert-style folder to {tmp}")
        data = load_chexpert_style(csv, image_root, finding=finding, uncertain="zeros",
                                   sensitive_column=sensitive_column, frontal_only=True,
                                   image_size=32)
        print(f"{len(data.y)} frontal images, {data.y.mean():.0%} positive for {finding!r}; "
              f"groups: {pd.Series(data.sensitive_features).value_counts().to_dict()}")
        print(f"images: {data.images!r} (read lazily)")

        # Split by row; stratify on (label, group) so both halves hold every cell.
        cells = pd.Series(data.y).astype(str) + "/" + pd.Series(data.sensitive_features).astype(str)
        train_idx, test_idx = train_test_split(np.arange(len(data.y)), test_size=0.3,
                                               stratify=cells, random_state=0)
        X_train, X_test = data.images[train_idx], data.images[test_idx]  # reads those files
        y_train, y_test = data.y[train_idx], data.y[test_idx]
        a_train, a_test = data.sensitive_features[train_idx], data.sensitive_features[test_idx]

        pipe = Pipeline([
            ("noise", DebiasedNoiseTransformer(make_standin_encoder(random_state=0),
                                               max_epochs=10 if quick else 30,
                                               random_state=0)),
            ("scale", StandardScaler()),
            ("clf", LogisticRegression(max_iter=2000)),
        ])
        pipe.fit(X_train, y_train, noise__sensitive_features=a_train)
        report = fairness_report(y_test, pipe.predict_proba(X_test)[:, 1],
                                 sensitive_features=a_test)
        print(report.to_markdown(digits=3))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny folder, for CI")
    parser.add_argument("--csv", help="a CheXpert-style CSV (default: write a fake one)")
    parser.add_argument("--image-root", help="folder the CSV's Path column is relative to "
                        "(default: the CSV's folder)")
    parser.add_argument("--finding", default="Pleural Effusion", help="label column")
    parser.add_argument("--sensitive-column", default="Sex", help='"Sex", "Age" or any column')
    args = parser.parse_args()
    main(args.quick, args.csv, args.image_root, args.finding, args.sensitive_column)
