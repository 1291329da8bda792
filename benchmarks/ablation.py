"""Which of DNE's mechanisms help? One change to the library defaults at a time, over seeds.

On the synthetic scenarios of ``benchmarks/compare.py`` (localized: a jittering corner
marker, a burned-in text stripe; non-local: a three-group contrast, a brightness offset,
a blurred and noisier scanner site) through each chosen frozen encoder (the stand-in
random CNN at 32 px, re-drawn per seed; the ImageNet-pretrained EfficientNet-Lite0 at
64 px), and, for the stand-in, on the marker scenario at 16 × 16 pixels with a second,
smaller random CNN (64-d embeddings), with the same head everywhere, this fits
``DebiasedNoiseTransformer`` with its defaults and with one mechanism changed at a time,
and reports equalized odds, task AUC and conditional leakage on the unconfounded test
set, with the share of the ERM → oracle gap closed. The leakage is ``compare.py``'s
headline one: 5-fold cross-validated on the transformed *test* embeddings, so a method
fitted on the training embeddings cannot look blind on them.

* the class-conditional adversary (``conditional=False`` turns it off);
* the objective (``"confusion"`` and the paper's ``"neg_ce"`` against a fixed probe,
  against the default probe-free ``"mean_gap"``);
* the edit (``"additive"`` against the default ``"masked"``);
* low-resolution noise (``noise_resolution=8`` against full resolution);
* the paper's recipe as a whole (additive, ``neg_ce``, unconditional, ``lambda_reg=1e-3``);
* two prototypes that are not library options, built here from fairnoise's *public*
  pieces (:class:`PublicDNE`: ``fairnoise.edits.NoiseSpace`` and ``input_mean``,
  ``fairnoise.probe.fit_probe`` and ``TorchProbe``, ``fairnoise.objectives.Adversary``,
  ``fairnoise.optim.EditLoss`` and ``minimise_minibatch``, ``TorchEncoder.frozen`` /
  ``forward`` / ``embed``), compared with the same composition without the change (the
  row "public-pieces DNE (no change)": DNE's previous defaults, masked edit,
  ``"mean_gap"``, class-conditional, without any validation step the library adds):

  - re-fitting the probe on the edited embeddings every 3 epochs (``"confusion"``);
  - a utility term that keeps a task probe (fitted on the clean embeddings) accurate,
    weight 1.

  Earlier versions subclassed the transformer and overrode its private methods; no
  ablation had to be dropped to avoid them.

The leakage of the ablation's variants is measured with the cross-validated probe of
``compare.py``; the encoder images of every variant are given as ``compare.py`` gives
them (the transformer's own count if it keeps one, else one pass for the probe plus one
per epoch; the prototype's include its probe re-fits) and as counted by a wrapper around
the encoder (every image it was run on during the fit).

Usage and wall time on 2 otherwise idle CPU cores (the script prints its estimate first;
a machine loaded by other jobs takes several times longer)::

    python benchmarks/ablation.py --encoder standin       # 6 setups, 3 seeds: ~1 h
    python benchmarks/ablation.py --encoder standin --scenario marker \
        --scenario contrast3    # the committed report: 3 setups, 33 min (cores shared)
    python benchmarks/ablation.py --encoder lite0 --n-train 300 --scenario marker \
        --scenario contrast3                              # ~50 min
    python benchmarks/ablation.py                         # both encoders, 800 images: ~5.5 h
    python benchmarks/ablation.py --lite0-n-train 300 --lite0-scenario marker \
        --lite0-scenario contrast3                        # standin all, lite0 two: ~75 min
    python benchmarks/ablation.py --quick --encoder standin   # 1 seed, 200 images, 3 epochs: ~4 min
    python benchmarks/ablation.py --quick --encoder lite0 --n-train 60 --scenario marker  # ~1 min

Writes ``benchmarks/results/ablation.md``, ``ablation.csv`` and ``ablation.png`` (the
default's trade-off with every variant, mean ± std over seeds, the default marked;
``--out`` to change the folder).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from compare import (
    ENCODERS,
    ERM,
    METHOD_COLOURS,
    ORACLE,
    PAPER,
    SCENARIOS,
    CountingEncoder,
    check_encoders,
    clean_embeddings,
    encoder_images,
    head,
    load_encoder,
    score_embeddings,
    synthetic_split,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from fairnoise import DebiasedNoiseTransformer, TorchEncoder
from fairnoise.edits import NoiseSpace, input_mean
from fairnoise.encoders import make_standin_encoder
from fairnoise.objectives import Adversary
from fairnoise.optim import EditLoss, minimise_minibatch
from fairnoise.probe import TorchProbe, fit_probe


class PublicDNE:
    """DNE's two steps composed from fairnoise's public pieces, with two prototype changes.

    Step 1 fits one linear probe of the group per class of y on the clean embeddings
    (``fit_probe``, ``TorchProbe``) and builds the adversarial loss (``Adversary``);
    step 2 learns a full-resolution, channel-shared mask (``NoiseSpace``, fill: the mean
    training image per channel, ``input_mean``) by minibatch Adam through the frozen
    encoder (``EditLoss``, ``minimise_minibatch``), with the library's default
    settings. ``refit_every`` re-fits the probe on the edited training embeddings every
    that many epochs (Adam's state carried over); ``utility_weight`` adds that weight
    times the cross-entropy of a task probe fitted on the clean embeddings.
    """

    def __init__(self, encoder: torch.nn.Module, *, objective: str = "mean_gap",
                 refit_every: int | None = None, utility_weight: float = 0.0,
                 lambda_reg: float = 0.1, learning_rate: float = 5e-2, max_epochs: int = 30,
                 batch_size: int = 128, tol: float = 1e-4, n_iter_no_change: int = 5,
                 random_state: int = 0) -> None:
        self.encoder = encoder
        self.objective = objective
        self.refit_every = refit_every
        self.utility_weight = utility_weight
        self.lambda_reg = lambda_reg
        self.learning_rate = learning_rate
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state

    @staticmethod
    def probes(Z: np.ndarray, a: np.ndarray, c: np.ndarray, n_groups: int,
               device: torch.device) -> TorchProbe:
        present = np.zeros((c.max() + 1, n_groups), bool)
        fitted = []
        for j in range(c.max() + 1):
            present[j, np.unique(a[c == j])] = True
            fitted.append(fit_probe(LogisticRegression(max_iter=1000), Z[c == j], a[c == j])
                          if present[j].sum() > 1 else None)
        return TorchProbe(fitted, n_groups, present, device)

    def task_loss(self, Z: np.ndarray, c: np.ndarray, device: torch.device):
        """Cross-entropy of a task probe fitted on the clean embeddings (differentiable)."""
        fitted = head().fit(Z, c)
        scaler, clf = fitted[0], fitted[-1]
        coef = clf.coef_ / scaler.scale_
        icpt = clf.intercept_ - coef @ scaler.mean_
        W = torch.as_tensor(np.vstack([np.zeros_like(coef), coef]).T, dtype=torch.float32,
                            device=device)
        b = torch.as_tensor(np.r_[0.0, icpt[0]], dtype=torch.float32, device=device)
        target = torch.as_tensor(c, device=device)

        def loss(z: torch.Tensor, idx) -> torch.Tensor:
            return F.cross_entropy(z @ W + b, target[torch.as_tensor(idx, device=device)])

        return loss

    def fit(self, X: np.ndarray, y: np.ndarray, *, sensitive_features: np.ndarray) -> PublicDNE:
        enc = TorchEncoder(self.encoder, batch_size=256)
        device = enc.torch_device
        a = pd.factorize(np.asarray(sensitive_features), sort=True)[0]
        c = pd.factorize(np.asarray(y), sort=True)[0]
        n_groups = int(a.max()) + 1
        space = NoiseSpace(tuple(X.shape[1:]), "masked", None, True)
        fill = input_mean(X.mean(axis=0, dtype=np.float64), tuple(X.shape[1:]))
        Z = enc.embed(X)
        passes = 1
        adversary = Adversary(self.objective, self.probes(Z, a, c, n_groups, device), a, c, Z,
                              device)
        data_loss = adversary
        if self.utility_weight:
            task = self.task_loss(Z, c, device)

            def data_loss(z, idx):
                return adversary(z, idx) + self.utility_weight * task(z, idx)

        loss = EditLoss(space, data_loss, self.lambda_reg, fill)
        theta = space.init_param().to(device)
        generator = torch.Generator().manual_seed(self.random_state)
        state: dict = {}
        curve: list[float] = []
        step = self.refit_every or self.max_epochs
        for r in range(math.ceil(self.max_epochs / step)):
            with enc.frozen() as module:

                def batch_loss(idx: np.ndarray, theta: torch.Tensor) -> torch.Tensor:
                    idx = np.sort(idx)
                    xe = loss.edit(torch.from_numpy(X[idx]).to(device), theta)
                    return loss(enc.forward(module, xe), idx, theta)

                theta, part = minimise_minibatch(
                    batch_loss, theta, len(X), batch_size=self.batch_size,
                    learning_rate=self.learning_rate, max_epochs=step, tol=self.tol,
                    n_iter_no_change=self.n_iter_no_change,
                    project=lambda t: space.project(t, None), generator=generator,
                    state=state)
            curve += part
            if self.refit_every and (r + 1) * step < self.max_epochs:
                edited = enc.embed(X, edit=space.fitted(theta, fill))
                passes += 1
                adversary.probe = self.probes(edited, a, c, n_groups, device)
        self.edit_ = space.fitted(theta, fill)
        self.encoder_ = enc
        self.loss_curve_, self.n_iter_ = curve, len(curve)
        self.n_encoder_images_ = len(X) * (passes + len(curve))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return self.encoder_.embed(X, edit=self.edit_)


DEFAULT = "defaults"
NO_CHANGE = "public-pieces DNE (no change)"
VARIANTS = {
    DEFAULT: (DebiasedNoiseTransformer, {}, True),
    "conditional=False": (DebiasedNoiseTransformer, {"conditional": False}, True),
    "objective=confusion": (DebiasedNoiseTransformer, {"objective": "confusion"}, True),
    "objective=neg_ce": (DebiasedNoiseTransformer, {"objective": "neg_ce"}, True),
    "edit=additive": (DebiasedNoiseTransformer, {"edit": "additive"}, True),
    "noise_resolution=8": (DebiasedNoiseTransformer, {"noise_resolution": 8}, True),
    "paper (additive, neg_ce, unconditional, λ=1e-3)": (DebiasedNoiseTransformer, PAPER, False),
    NO_CHANGE: (PublicDNE, {}, True),
    "public pieces, objective=confusion + probe re-fit every 3 epochs": (
        PublicDNE, {"objective": "confusion", "refit_every": 3}, True),
    "public pieces + utility term (task-probe CE, weight 1)": (
        PublicDNE, {"utility_weight": 1.0}, True),
}
COLUMNS = ("EOdds gap", "task AUC", "cond. leakage", "cond. leakage (train-fit probe)")


def small_cnn(seed: int) -> torch.nn.Module:
    """A second, smaller frozen random CNN (16×16 grey image → 64-d), unlike the stand-in."""
    return make_standin_encoder(1, seed, width=8, depth=2, kernel_size=3, pooling="max",
                                grid=2, init_std=0.3)


def setups(encoders: list[str], scenarios: list[str]) -> dict:
    """Setup name → (encoder name, data scenario, image size, encoder factory of the seed)."""
    out = {}
    for encoder in encoders:
        size = ENCODERS[encoder]["image_size"]
        for scenario in scenarios:
            out[f"{scenario} ({encoder})"] = (
                encoder, scenario, size, lambda seed, e=encoder: load_encoder(e, seed))
    if "standin" in encoders and "marker" in scenarios:
        out["marker, 16 px, small CNN (standin)"] = ("standin", "marker", 16, small_cnn)
    return out


def score(Z_tr, Z_te, tr, te, seed):
    """``compare.py``'s scoring (same head, same probes), the columns this table shows."""
    row = score_embeddings(Z_tr, Z_te, tr, te, seed, mlp=False)
    return {k: row[k] for k in COLUMNS}


def plot(frame: pd.DataFrame, path: Path) -> bool:
    """Per setup, EOdds against task AUC of every variant (mean ± std), the default ringed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = [ERM, *VARIANTS, ORACLE]
    # the variants' own colours (tab20b's darker shades, apart from the methods' tab10 ones)
    palette = plt.get_cmap("tab20b").colors[::2] + plt.get_cmap("tab20b").colors[1::2]
    colours = {**{name: palette[k % len(palette)] for k, name in enumerate(VARIANTS)},
               ERM: METHOD_COLOURS[ERM], ORACLE: METHOD_COLOURS[ORACLE],
               DEFAULT: METHOD_COLOURS["DNE (defaults)"]}
    parts = list(frame.groupby("scenario", sort=False))
    fig, axes = plt.subplots(1, len(parts), figsize=(4.6 * len(parts), 5.4), squeeze=False,
                             constrained_layout=True)
    for ax, (setup, part) in zip(axes[0], parts, strict=True):
        stats = part.groupby("method")[["task AUC", "EOdds gap"]].agg(["mean", "std"])
        for name in names:
            if name not in stats.index:
                continue
            row = stats.loc[name]
            ax.errorbar(row[("task AUC", "mean")], row[("EOdds gap", "mean")],
                        xerr=np.nan_to_num(row[("task AUC", "std")]),
                        yerr=np.nan_to_num(row[("EOdds gap", "std")]), fmt="o", capsize=3,
                        color=colours[name], label=name)
            if name == DEFAULT:  # the default setting (its λ and the rest) ringed
                ax.plot(row[("task AUC", "mean")], row[("EOdds gap", "mean")], "o",
                        markersize=14, markerfacecolor="none", markeredgecolor="black")
                lam = DebiasedNoiseTransformer().lambda_reg  # "auto": the validated path
                ax.annotate(f"default (λ={lam if isinstance(lam, str) else f'{lam:g}'})",
                            (row[("task AUC", "mean")], row[("EOdds gap", "mean")]),
                            textcoords="offset points", xytext=(8, 6), fontsize=8)
        ax.set_title(setup, fontsize=9)
        ax.set_xlabel("task AUC (higher is better)")
        ax.set_ylabel("equalized-odds gap (lower is better)")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=7, frameon=False)
    fig.suptitle("Ablation: mean ± std over seeds, the default ringed", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", choices=("standin", "lite0", "both"), default="both")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append",
                        help="synthetic scenario (repeatable); default: all")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=None,
                        help="training images (default 800; --quick 200)")
    parser.add_argument("--n-test", type=int, default=None,
                        help="unconfounded test images (default: as many as --n-train)")
    parser.add_argument("--n-samples", type=int, default=None, dest="n_train",
                        help=argparse.SUPPRESS)  # the earlier name of --n-train
    parser.add_argument("--lite0-n-train", type=int, default=None,
                        help="training (and test) images for lite0 only (default: --n-train)")
    parser.add_argument("--lite0-scenario", choices=sorted(SCENARIOS), action="append",
                        help="lite0's scenarios only (repeatable; default: --scenario's)")
    parser.add_argument("--quick", action="store_true",
                        help="1 seed, 200 images, 3 epochs")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = 1
        args.n_train = args.n_train or 200
    args.n_train = args.n_train or 800
    args.n_test = args.n_test or args.n_train
    encoders = ["standin", "lite0"] if args.encoder == "both" else [args.encoder]
    check_encoders(encoders)
    extra = {"max_epochs": 3} if args.quick else {}
    scenarios = args.scenario or list(SCENARIOS)
    chosen = setups([e for e in encoders if e != "lite0"], scenarios)
    if "lite0" in encoders:
        chosen.update(setups(["lite0"], args.lite0_scenario or scenarios))
    lite0_n = args.lite0_n_train or args.n_train
    sizes_n = {"standin": (args.n_train, args.n_test),
               "lite0": (lite0_n, args.lite0_n_train or args.n_test)}
    speed = {e: ENCODERS[e]["fwd_bwd"] for e in encoders}
    epochs = 3 if args.quick else 15  # early stopping: about half of the 30 at most
    # per fit: its encoder images over the encoder's speed and ~3 s of set-up; per row, the
    # probes and the head (~1.2 s per 1,000 images)
    def per_seed(e: str) -> float:
        n_train, n_test = sizes_n[e]
        scoring = (len(VARIANTS) + 2) * 1.2 * (n_train + n_test) / 1000
        return len(VARIANTS) * (n_train * (1 + epochs) / speed[e] + 3.0) + scoring

    estimate = sum(args.seeds * per_seed(e) for e, *_ in chosen.values())
    print(f"estimated wall time on 2 cores: ~{estimate / 60:.1f} min ({len(chosen)} setups, "
          f"{args.seeds} seed(s), {len(VARIANTS)} variants)", flush=True)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    start = time.perf_counter()
    rows = []
    cache: dict = {}
    for setup, (encoder_name, data, size, make_encoder) in chosen.items():
        for seed in range(args.seeds):
            tr, te = synthetic_split(data, sizes_n[encoder_name][0], seed, size,
                                     sizes_n[encoder_name][1])
            encoder = make_encoder(seed)
            enc = TorchEncoder(encoder, batch_size=256)
            key = (setup, seed)
            base = {"scenario": setup, "encoder": encoder_name, "seed": seed}
            for method, which in ((ERM, "X"), (ORACLE, "X_oracle")):
                Z_tr = clean_embeddings(cache, (*key, "train"), enc, tr, which)
                Z_te = clean_embeddings(cache, (*key, "test"), enc, te, which)
                rows.append({**base, "method": method, **score(Z_tr, Z_te, tr, te, seed)})
            counting = CountingEncoder(encoder)
            for name, (cls, params, with_y) in VARIANTS.items():
                counting.images = 0
                t0 = time.perf_counter()
                t = cls(counting, random_state=seed, **{**params, **extra})
                t.fit(tr["X"], tr["y"] if with_y else None, sensitive_features=tr["a"])
                seconds, counted = time.perf_counter() - t0, counting.images
                rows.append({**base, "method": name, "fit s": seconds,
                             "epochs": t.n_iter_,
                             "encoder images": encoder_images(t, len(tr["X"])),
                             "encoder images (counted)": counted,
                             **score(t.transform(tr["X"]), t.transform(te["X"]), tr, te, seed)})
                print(f"{setup} seed {seed} {name}: " + ", ".join(
                    f"{k} {rows[-1][k]:.3f}" for k in COLUMNS[:3]), flush=True)
    frame = pd.DataFrame(rows)
    minutes = (time.perf_counter() - start) / 60
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "ablation.csv", index=False)
    command = "python benchmarks/ablation.py " + " ".join(argv if argv is not None
                                                          else sys.argv[1:])
    ran_lite0 = (frame["encoder"] == "lite0").any()
    lite0_sizes = (f" (Lite0: {sizes_n['lite0'][0]} and {sizes_n['lite0'][1]})"
                   if ran_lite0 else "")
    weights = [text for text, ran in (
        ("the stand-in encoders (frozen, random weights) re-drawn per seed",
         (frame["encoder"] != "lite0").any()),
        ("Lite0's ImageNet weights fixed", ran_lite0)) if ran]
    text = ["# Ablation of DNE's mechanisms", "",
            f"Produced by `{command.strip()}` in {minutes:.1f} min; {args.seeds} seed(s), "
            f"{args.n_train} training and {args.n_test} unconfounded test images"
            f"{lite0_sizes}; {'; '.join(weights)}; mean ± std over seeds. "
            "\"closed\": share of the ERM → oracle "
            "gap closed (per seed, then averaged). cond. leakage: ROC AUC of a fresh linear "
            "probe within each class of y (0.5 = none), 5-fold cross-validated on the "
            "transformed test embeddings; the train-fit probe column trains it on the "
            "transformed training embeddings instead. The variants and the public-pieces "
            "prototypes are described in the docstring of `benchmarks/ablation.py`.", ""]
    table_columns = ("EOdds gap", "closed EOdds", "task AUC", "cond. leakage",
                     "closed leakage", "cond. leakage (train-fit probe)", "epochs",
                     "encoder images", "encoder images (counted)", "fit s")
    for setup, part in frame.groupby("scenario", sort=False):
        wide = {c: part.pivot(index="seed", columns="method", values=c)
                for c in ("EOdds gap", "cond. leakage")}
        text += [f"## {setup}", "", "| variant | " + " | ".join(table_columns) + " |",
                 "|---|" + "---|" * len(table_columns)]
        for method in [ERM, *VARIANTS, ORACLE]:
            sub = part[part["method"] == method]
            cells = []
            for column in table_columns:
                if column.startswith("closed"):
                    w = wide["EOdds gap" if column.endswith("EOdds") else "cond. leakage"]
                    gap = w[ERM] - w[ORACLE]
                    share = (w[ERM] - w[method]) / gap.where(gap.abs() > 1e-9)
                    cells.append("– (no gap)" if share.isna().all() else
                                 f"{100 * share.mean():.0f} % ± {100 * share.std():.0f}"
                                 if share.notna().sum() > 1 else f"{100 * share.mean():.0f} %")
                elif column in sub and sub[column].notna().any():
                    m, s = sub[column].mean(), sub[column].std()
                    cells.append(f"{m:,.0f}" if column.startswith("encoder images") else
                                 f"{m:.1f}" if column in ("epochs", "fit s") else
                                 f"{m:.3f} ± {0 if np.isnan(s) else s:.3f}")
                else:
                    cells.append("")
            text.append(f"| {method} | " + " | ".join(cells) + " |")
        text.append("")
    if plot(frame, out / "ablation.png"):
        text += [f"Trade-off of every variant (mean ± std over seeds, the default ringed): "
                 f"`{out.name}/ablation.png`.", ""]
    (out / "ablation.md").write_text("\n".join(text))
    print(f"wrote {out / 'ablation.md'} ({minutes:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
