"""fairnoise side by side with ERM, the oracle, LEACE and CorrelationRemover, over seeds.

For every scenario and seed, one run fits, on the same training images and the same
frozen encoder, and scores on the same unconfounded test set:

* **ERM**: the head on the encoder's embeddings of the images as they are;
* **Oracle**: the head on the same images without the shortcut (synthetic data only);
* **DNE (paper)**: ``DebiasedNoiseTransformer`` at the paper's settings: additive
  full-resolution noise, the fixed probe's negative cross-entropy, no class-conditioning,
  ``lambda_reg=1e-3``;
* **DNE (defaults)**: ``DebiasedNoiseTransformer()`` with ``y`` given (masked edit,
  ``"mean_gap"``, class-conditional);
* **GeZO (defaults)**: ``GeZONoiseTransformer()`` with ``y`` given, its query budget set
  to 5 × the images DNE (defaults) passed through the encoder in the same seed;
* **LEACE**: ``concept_erasure.LeaceEraser`` fitted on the ERM training embeddings and the
  one-hot group, applied to the training and test embeddings;
* **CorrelationRemover**: fairlearn's, ``alpha=1``, on the ERM embeddings with the
  one-hot group as the sensitive columns.

Every method ends in the same head (standardisation + logistic regression). Columns:
task AUC, worst-group AUC, EO (largest TPR gap), equalized odds, ``|1 - DI|``, leakage of
a fresh linear and MLP probe (trained on the method's training embeddings, scored on its
test embeddings), conditional leakage (linear, within each class of y), fit time of the
debiasing step, and encoder images queried (fit only). Mean ± std over seeds. Then the
targets of the efficacy issue, each met or missed with the figure.

Scenarios (``--scenario``, default both):

* ``marker``: two groups, a corner marker that jitters by up to 2 pixels (a localized
  shortcut, like a laterality marker or a burned-in tag);
* ``contrast3``: three groups, a group-dependent global contrast (a non-local shortcut).

Usage::

    python benchmarks/compare.py                 # the default run (3 seeds, ~12 min, 2 cores)
    python benchmarks/compare.py --quick         # a smoke run (1 seed, small; ~1 min)
    python benchmarks/compare.py --csv data.csv --image-root imgs/   # an on-disk data set

The on-disk mode reads a CSV of image path / label / group (see
``fairnoise.datasets.load_image_csv``), splits it 50/50 stratified by group × label, and
has no oracle row (there are no shortcut-free twins of real images).

Writes ``benchmarks/results/compare.md`` and ``compare.png`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import fairnoise
from fairnoise import DebiasedNoiseTransformer, GeZONoiseTransformer, TorchEncoder
from fairnoise.datasets import load_image_csv, make_spurious_images
from fairnoise.encoders import make_standin_encoder
from fairnoise.metrics import fairness_report, leakage_auc

ERM, ORACLE = "ERM", "Oracle"
DNE_PAPER, DNE, GEZO = "DNE (paper)", "DNE (defaults)", "GeZO (defaults)"
LEACE, CR = "LEACE", "CorrelationRemover"
METHODS = (ERM, DNE_PAPER, DNE, GEZO, LEACE, CR, ORACLE)
PAPER = dict(edit="additive", objective="neg_ce", conditional=False, lambda_reg=1e-3,
             noise_resolution=None)
SCENARIOS = {
    "marker": dict(shortcut="marker", n_groups=2, marker_jitter=2),
    "contrast3": dict(shortcut="contrast", n_groups=3),
}
GEZO_BUDGET_FACTOR = 5
COLUMNS = ("task AUC", "worst-group AUC", "EO gap", "EOdds gap", "|1-DI|",
           "leakage (linear)", "leakage (MLP)", "cond. leakage", "fit s", "encoder images")


def _head():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def _one_hot(a: np.ndarray, groups: np.ndarray) -> np.ndarray:
    return (a[:, None] == groups[None, :]).astype(np.float64)


def _leace(Z_tr, Z_te, a_tr, groups):
    from concept_erasure import LeaceEraser

    eraser = LeaceEraser.fit(torch.as_tensor(Z_tr, dtype=torch.float64),
                             torch.as_tensor(_one_hot(a_tr, groups)))
    return (eraser(torch.as_tensor(Z_tr, dtype=torch.float64)).numpy(),
            eraser(torch.as_tensor(Z_te, dtype=torch.float64)).numpy())


def _correlation_remover(Z_tr, Z_te, a_tr, a_te, groups):
    from fairlearn.preprocessing import CorrelationRemover

    names = [f"a={g}" for g in groups]

    def frame(Z, a):
        out = pd.DataFrame(Z, columns=[f"z{i}" for i in range(Z.shape[1])])
        out[names] = _one_hot(a, groups)
        return out

    remover = CorrelationRemover(sensitive_feature_ids=names, alpha=1.0)
    return (remover.fit_transform(frame(Z_tr, a_tr)),
            np.asarray(remover.transform(frame(Z_te, a_te))))


def _score(Z_tr, Z_te, tr, te, seed, mlp=True):
    head = _head().fit(Z_tr, tr["y"])
    proba = head.predict_proba(Z_te)[:, 1]
    s = fairness_report(te["y"], proba, sensitive_features=te["a"]).summary
    row = {"task AUC": s["overall_auc"], "worst-group AUC": s["worst_group_auc"],
           "EO gap": s["equal_opportunity_difference"],
           "EOdds gap": s["equalized_odds_difference"],
           "|1-DI|": s["disparate_impact_distance"]}
    common = dict(Z_test=Z_te, sensitive_features_test=te["a"], random_state=seed)
    row["leakage (linear)"] = leakage_auc(Z_tr, tr["a"], **common)
    row["leakage (MLP)"] = leakage_auc(Z_tr, tr["a"], probe="mlp", **common) if mlp else np.nan
    row["cond. leakage"] = leakage_auc(Z_tr, tr["a"], y=tr["y"], y_test=te["y"], **common)
    return row


def run_seed(tr: dict, te: dict, encoder: torch.nn.Module, seed: int, *, oracle: bool,
             dne_epochs: int | None, mlp: bool, log) -> list[dict]:
    """Fit every method on one training set and score it on the test set."""
    enc = TorchEncoder(encoder, batch_size=256)
    groups = np.unique(tr["a"])
    rows = []

    def add(method, Z_tr, Z_te, seconds, images):
        row = {"method": method, "seed": seed, **_score(Z_tr, Z_te, tr, te, seed, mlp)}
        row.update({"fit s": seconds, "encoder images": images})
        rows.append(row)
        log(f"  seed {seed} {method:<20} EOdds {row['EOdds gap']:.3f}  AUC "
            f"{row['task AUC']:.3f}  cond. leakage {row['cond. leakage']:.3f}  "
            f"({seconds:.1f} s)")

    Z_tr, Z_te = enc.embed(tr["X"]), enc.embed(te["X"])
    add(ERM, Z_tr, Z_te, 0.0, 0)
    if oracle:
        add(ORACLE, enc.embed(tr["X_oracle"]), enc.embed(te["X_oracle"]), 0.0, 0)

    extra = {} if dne_epochs is None else {"max_epochs": dne_epochs}
    dne_images = 0
    for name, params, with_y in ((DNE_PAPER, PAPER, False), (DNE, {}, True)):
        t0 = time.perf_counter()
        dne = DebiasedNoiseTransformer(encoder, random_state=seed, **params, **extra)
        dne.fit(tr["X"], tr["y"] if with_y else None, sensitive_features=tr["a"])
        seconds = time.perf_counter() - t0
        images = len(tr["X"]) * (1 + dne.n_iter_)  # the probe's pass + one per epoch
        if name == DNE:
            dne_images = images
        add(name, dne.transform(tr["X"]), dne.transform(te["X"]), seconds, images)

    t0 = time.perf_counter()
    # a module given to GeZO is only ever run forward, like an API (no weights, no gradients)
    gezo = GeZONoiseTransformer(encoder, max_queries=GEZO_BUDGET_FACTOR * dne_images,
                                max_epochs=1000, random_state=seed)
    gezo.fit(tr["X"], tr["y"], sensitive_features=tr["a"])
    seconds = time.perf_counter() - t0
    add(GEZO, gezo.transform(tr["X"]), gezo.transform(te["X"]), seconds, gezo.n_queries_)

    t0 = time.perf_counter()
    L_tr, L_te = _leace(Z_tr, Z_te, tr["a"], groups)
    add(LEACE, L_tr, L_te, time.perf_counter() - t0, 0)
    t0 = time.perf_counter()
    C_tr, C_te = _correlation_remover(Z_tr, Z_te, tr["a"], te["a"], groups)
    add(CR, C_tr, C_te, time.perf_counter() - t0, 0)
    return rows


def synthetic_split(scenario: str, n: int, seed: int, image_size: int):
    params = SCENARIOS[scenario]
    train = make_spurious_images(n, image_size=image_size, correlation=0.8,
                                 random_state=seed, **params)
    test = make_spurious_images(n, image_size=image_size, correlation=0.0,
                                random_state=seed + 1000, **params)

    def pack(b):
        return {"X": b.images, "X_oracle": b.oracle_images, "y": b.y, "a": b.sensitive_features}

    return pack(train), pack(test)


def csv_split(path: str, image_root: str | None, image_size: int, seed: int):
    data = load_image_csv(path, image_root=image_root, image_size=image_size)
    X = np.asarray(data.images[np.arange(len(data.images))], dtype=np.float32)
    strata = pd.Series(data.y).astype(str) + "|" + pd.Series(data.sensitive_features).astype(str)
    idx_tr, idx_te = train_test_split(np.arange(len(X)), test_size=0.5, random_state=seed,
                                      stratify=strata)

    def pack(i):
        return {"X": X[i], "y": np.asarray(data.y)[i], "a": np.asarray(data.sensitive_features)[i]}

    return pack(idx_tr), pack(idx_te)


# --------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    order = [m for m in METHODS if m in set(frame["method"])]
    stats = frame.groupby("method")[list(COLUMNS)].agg(["mean", "std"]).reindex(order)
    return stats


def _cell(mean: float, std: float, column: str) -> str:
    if np.isnan(mean):
        return "–"
    if column == "encoder images":
        return f"{mean:,.0f}"
    if column == "fit s":
        return f"{mean:.1f}"
    return f"{mean:.3f} ± {0.0 if np.isnan(std) else std:.3f}"


def markdown_table(stats: pd.DataFrame) -> str:
    lines = ["| method | " + " | ".join(COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for method, row in stats.iterrows():
        cells = [_cell(row[(c, "mean")], row[(c, "std")], c) for c in COLUMNS]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _closed(frame: pd.DataFrame, method: str, column: str) -> tuple[float, float]:
    """Share of the ERM → oracle gap a method closes, per seed: mean and std."""
    wide = frame.pivot(index="seed", columns="method", values=column)
    gap = wide[ERM] - wide[ORACLE]
    share = (wide[ERM] - wide[method]) / gap.where(gap.abs() > 1e-9)
    return float(share.mean()), float(share.std())


def targets(frame: pd.DataFrame, scenario: str) -> list[str]:
    """The efficacy issue's targets on this scenario, each met or missed with the figure."""
    if ORACLE not in set(frame["method"]):
        return []
    m = frame.groupby("method")[list(COLUMNS)].mean()
    out = []

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    eo, eo_sd = _closed(frame, DNE, "EOdds gap")
    lk, lk_sd = _closed(frame, DNE, "cond. leakage")
    auc_ok = m.loc[DNE, "task AUC"] >= m.loc[ERM, "task AUC"] - 0.01
    if scenario.startswith("marker"):
        out.append(
            f"- DNE (defaults) closes ≥ 70 % of the ERM → oracle gap (localized shortcut): "
            f"equalized odds {100 * eo:.0f} % ± {100 * eo_sd:.0f}, conditional leakage "
            f"{100 * lk:.0f} % ± {100 * lk_sd:.0f}, task AUC "
            f"{m.loc[DNE, 'task AUC']:.3f} vs ERM {m.loc[ERM, 'task AUC']:.3f}: "
            f"{verdict(eo >= 0.7 and lk >= 0.7 and auc_ok)}")
    else:
        le, _ = _closed(frame, LEACE, "EOdds gap")
        out.append(
            f"- DNE (defaults) closes at least as much of the equalized-odds gap as LEACE "
            f"(non-local shortcut): DNE {100 * eo:.0f} % ± {100 * eo_sd:.0f}, LEACE "
            f"{100 * le:.0f} %: {verdict(eo >= le)}")
    for other in (LEACE, CR):
        ok = (m.loc[DNE, "EOdds gap"] < m.loc[other, "EOdds gap"]
              and m.loc[DNE, "task AUC"] >= m.loc[other, "task AUC"] - 1e-3)
        out.append(
            f"- DNE's equalized odds beats {other}'s at equal or better task AUC: "
            f"EOdds {m.loc[DNE, 'EOdds gap']:.3f} vs {m.loc[other, 'EOdds gap']:.3f}, AUC "
            f"{m.loc[DNE, 'task AUC']:.3f} vs {m.loc[other, 'task AUC']:.3f}: {verdict(ok)}")
    gain = m.loc[ERM, "EOdds gap"] - m.loc[DNE, "EOdds gap"]
    g_gain = m.loc[ERM, "EOdds gap"] - m.loc[GEZO, "EOdds gap"]
    budget = (f"≤ {GEZO_BUDGET_FACTOR} × DNE's encoder images "
              f"({m.loc[GEZO, 'encoder images']:,.0f} vs {m.loc[DNE, 'encoder images']:,.0f})")
    if gain > 1e-9:
        ratio = g_gain / gain
        out.append(f"- GeZO reaches 90 % of DNE's equalized-odds improvement with {budget}: "
                   f"{100 * ratio:.0f} % of DNE's improvement: {verdict(ratio >= 0.9)}")
    else:
        out.append(f"- GeZO against DNE's equalized-odds improvement with {budget}: not "
                   f"defined, DNE does not improve on ERM here (GeZO's change: "
                   f"{-g_gain:+.3f}).")
    paper_gain = m.loc[ERM, "EOdds gap"] - m.loc[DNE_PAPER, "EOdds gap"]
    out.append(
        f"- For reference, the paper's settings: equalized odds "
        f"{m.loc[DNE_PAPER, 'EOdds gap']:.3f} (ERM {m.loc[ERM, 'EOdds gap']:.3f}, change "
        f"{-paper_gain:+.3f}), conditional leakage {m.loc[DNE_PAPER, 'cond. leakage']:.3f}.")
    return out


def plot(frames: dict[str, pd.DataFrame], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(frames), figsize=(5.5 * len(frames), 4.2), squeeze=False)
    for ax, (scenario, frame) in zip(axes[0], frames.items(), strict=True):
        stats = summarise(frame)
        for method, row in stats.iterrows():
            ax.errorbar(row[("task AUC", "mean")], row[("EOdds gap", "mean")],
                        xerr=np.nan_to_num(row[("task AUC", "std")]),
                        yerr=np.nan_to_num(row[("EOdds gap", "std")]),
                        fmt="o", capsize=3, label=method)
        ax.set_xlabel("task AUC (test, higher is better)")
        ax.set_ylabel("equalized-odds gap (lower is better)")
        ax.set_title(scenario)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append",
                        help="synthetic scenario (repeatable); default: all")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    parser.add_argument("--n-samples", type=int, default=1000,
                        help="training images, and as many test images (default 1000)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--csv", help="an on-disk data set: CSV of path, label, group")
    parser.add_argument("--image-root", help="folder the CSV's paths start from")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 seed, 200 images, 3 DNE epochs, no MLP probe")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.n_samples = 1, 200
    dne_epochs = 3 if args.quick else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    warnings.filterwarnings("ignore", category=ConvergenceWarning)

    def log(message: str) -> None:
        print(message, flush=True)

    start = time.perf_counter()
    frames: dict[str, pd.DataFrame] = {}
    if args.csv:
        rows = []
        for seed in range(args.seeds):
            tr, te = csv_split(args.csv, args.image_root, args.image_size, seed)
            encoder = make_standin_encoder(tr["X"].shape[1], random_state=seed)
            rows += run_seed(tr, te, encoder, seed, oracle=False, dne_epochs=dne_epochs,
                             mlp=not args.quick, log=log)
        frames[Path(args.csv).name] = pd.DataFrame(rows)
    else:
        for scenario in args.scenario or list(SCENARIOS):
            log(f"scenario {scenario}")
            rows = []
            for seed in range(args.seeds):
                tr, te = synthetic_split(scenario, args.n_samples, seed, args.image_size)
                encoder = make_standin_encoder(1, random_state=seed)
                rows += run_seed(tr, te, encoder, seed, oracle=True, dne_epochs=dne_epochs,
                                 mlp=not args.quick, log=log)
            frames[scenario] = pd.DataFrame(rows)
    minutes = (time.perf_counter() - start) / 60

    command = "python benchmarks/compare.py " + " ".join(argv if argv is not None
                                                         else sys.argv[1:])
    text = [
        "# fairnoise side by side",
        "",
        f"Produced by `{command.strip()}` in {minutes:.1f} min on "
        f"{platform.processor() or 'a CPU'} "
        f"({torch.get_num_threads()} torch threads), fairnoise {fairnoise.__version__}, "
        f"torch {torch.__version__}, scikit-learn {sklearn.__version__}, "
        f"Python {platform.python_version()}. {args.seeds} seed(s), mean ± std; "
        f"{args.n_samples} training and as many unconfounded test images of "
        f"{args.image_size}×{args.image_size} pixels; the encoder is the demo's stand-in "
        "(a frozen random CNN, not a foundation model), re-drawn per seed.",
        "",
        "Methods and columns are described in the docstring of `benchmarks/compare.py`. "
        "Leakage and conditional leakage: ROC AUC of a fresh probe (0.5 = the group "
        "cannot be read). Fit s: the debiasing step only. Encoder images: images sent "
        "through the encoder while fitting (DNE: one pass for the probe plus one per "
        "epoch; GeZO: counted by the transformer).",
        "",
    ]
    for scenario, frame in frames.items():
        frame.to_csv(out / f"compare_{scenario}.csv", index=False)
        text += [f"## {scenario}", "", markdown_table(summarise(frame)), ""]
        verdicts = targets(frame, scenario)
        if verdicts:
            text += ["Targets (efficacy issue):", "", *verdicts, ""]
    if plot(frames, out / "compare.png"):
        text += [f"Plot of equalized-odds gap against task AUC: `{out.name}/compare.png`.", ""]
    (out / "compare.md").write_text("\n".join(text))
    log(f"wrote {out / 'compare.md'} ({minutes:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
