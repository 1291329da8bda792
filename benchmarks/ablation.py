"""Which of DNE's mechanisms help? One change to the library defaults at a time, over seeds.

On the two synthetic scenarios of ``benchmarks/compare.py`` (a jittering corner marker
with two groups; a group-dependent contrast with three) with the demo's stand-in encoder,
and on the marker scenario at 16 × 16 pixels with a second, smaller random CNN (64-d
embeddings), with the same head everywhere, this fits ``DebiasedNoiseTransformer`` with
its defaults and with one mechanism changed at a time, and reports equalized odds, task
AUC and conditional leakage on the unconfounded test set, with the share of the ERM →
oracle gap closed:

* the class-conditional adversary (``conditional=False`` turns it off);
* the objective (``"confusion"`` and the paper's ``"neg_ce"`` against a fixed probe,
  against the default probe-free ``"mean_gap"``);
* re-fitting the probe on the edited embeddings every 3 epochs (``"confusion"``; a
  prototype defined here, not a library option);
* the edit (``"additive"`` against the default ``"masked"``);
* low-resolution noise (``noise_resolution=8`` against full resolution);
* a utility term that keeps a task probe (fitted on the clean embeddings) accurate,
  weight 1 (a prototype defined here, not a library option);
* the paper's recipe as a whole (additive, ``neg_ce``, unconditional, ``lambda_reg=1e-3``).

Usage::

    python benchmarks/ablation.py            # 3 seeds, 800 images (~12 min, 2 cores)
    python benchmarks/ablation.py --quick    # 1 seed, 200 images, 3 epochs

Writes ``benchmarks/results/ablation.md`` (``--out`` to change).
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
from compare import ERM, ORACLE, PAPER, _score, synthetic_split
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fairnoise import DebiasedNoiseTransformer, TorchEncoder
from fairnoise.encoders import make_standin_encoder


class RefitDNE(DebiasedNoiseTransformer):
    """Prototype: re-fit the probe on the edited training embeddings every ``k`` epochs."""

    refit_every = 3

    def _optimise(self, X, adversary):
        a, ycode = adversary.a.cpu().numpy(), adversary.cls.cpu().numpy()
        curve, state = [], {}
        for r in range(math.ceil(self.max_epochs / self.refit_every)):
            theta0 = self.noise_param_ if r else None
            curve += self._descend(X, adversary, theta0=theta0, max_epochs=self.refit_every,
                                   state=state)
            self.loss_curve_, self.n_iter_ = curve, len(curve)
            adversary.probe = self._fit_probes(self.transform(X), a, ycode)
        self.loss_curve_, self.n_iter_ = curve, len(curve)


class UtilityDNE(DebiasedNoiseTransformer):
    """Prototype: add ``weight × CE`` of a task probe fitted on the clean embeddings."""

    utility_weight = 1.0

    def _optimise(self, X, adversary):
        ycode = adversary.cls.cpu().numpy()
        Z = self._embed(X)
        head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(Z, ycode)
        scaler, clf = head[0], head[-1]
        coef = clf.coef_ / scaler.scale_
        icpt = clf.intercept_ - coef @ scaler.mean_
        W = torch.as_tensor(np.vstack([np.zeros_like(coef), coef]).T, dtype=torch.float32)
        b = torch.as_tensor(np.r_[0.0, icpt[0]], dtype=torch.float32)
        y = torch.as_tensor(ycode)

        def loss(z, idx):
            idx_t = torch.as_tensor(idx)
            task = F.cross_entropy(z @ W.to(z.device) + b.to(z.device), y[idx_t].to(z.device))
            return adversary(z, idx) + self.utility_weight * task

        curve = self._descend(X, loss)
        self.loss_curve_, self.n_iter_ = curve, len(curve)


VARIANTS = {
    "defaults (masked, mean_gap, conditional)": (DebiasedNoiseTransformer, {}, True),
    "conditional=False": (DebiasedNoiseTransformer, {"conditional": False}, True),
    "objective=confusion": (DebiasedNoiseTransformer, {"objective": "confusion"}, True),
    "objective=confusion + probe re-fit every 3 epochs": (RefitDNE, {"objective": "confusion"},
                                                          True),
    "objective=neg_ce": (DebiasedNoiseTransformer, {"objective": "neg_ce"}, True),
    "edit=additive": (DebiasedNoiseTransformer, {"edit": "additive"}, True),
    "noise_resolution=8": (DebiasedNoiseTransformer, {"noise_resolution": 8}, True),
    "+ utility term (task-probe CE, weight 1)": (UtilityDNE, {}, True),
    "paper (additive, neg_ce, unconditional, λ=1e-3)": (DebiasedNoiseTransformer, PAPER, False),
}


def small_cnn(seed: int) -> torch.nn.Module:
    """A second, smaller frozen random CNN (16×16 grey image → 64-d), unlike the stand-in."""
    return make_standin_encoder(1, seed, width=8, depth=2, kernel_size=3, pooling="max",
                                grid=2, init_std=0.3)


#: scenario name → (data scenario of compare.py, image size, encoder factory of the seed)
SETUPS = {
    "marker": ("marker", 32, lambda seed: make_standin_encoder(1, random_state=seed)),
    "contrast3": ("contrast3", 32, lambda seed: make_standin_encoder(1, random_state=seed)),
    "marker, 16 px, small CNN": ("marker", 16, small_cnn),
}


def score(Z_tr, Z_te, tr, te, seed):
    """``compare.py``'s scoring (same head, same probes), the columns this table shows."""
    row = _score(Z_tr, Z_te, tr, te, seed, mlp=False)
    return {k: row[k] for k in ("EOdds gap", "task AUC", "cond. leakage")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-samples", type=int, default=800)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.n_samples = 1, 200
    extra = {"max_epochs": 3} if args.quick else {}
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    start = time.perf_counter()
    rows = []
    for scenario, (data, size, make_encoder) in SETUPS.items():
        for seed in range(args.seeds):
            tr, te = synthetic_split(data, args.n_samples, seed, size)
            encoder = make_encoder(seed)
            enc = TorchEncoder(encoder, batch_size=256)
            base = {"scenario": scenario, "seed": seed}
            rows.append({**base, "method": ERM,
                         **score(enc.embed(tr["X"]), enc.embed(te["X"]), tr, te, seed)})
            rows.append({**base, "method": ORACLE,
                         **score(enc.embed(tr["X_oracle"]), enc.embed(te["X_oracle"]), tr, te,
                                 seed)})
            for name, (cls, params, with_y) in VARIANTS.items():
                t0 = time.perf_counter()
                t = cls(encoder, random_state=seed, **{**params, **extra})
                t.fit(tr["X"], tr["y"] if with_y else None, sensitive_features=tr["a"])
                rows.append({**base, "method": name, "fit s": time.perf_counter() - t0,
                             "epochs": t.n_iter_,
                             **score(t.transform(tr["X"]), t.transform(te["X"]), tr, te, seed)})
                print(f"{scenario} seed {seed} {name}: " + ", ".join(
                    f"{k} {rows[-1][k]:.3f}" for k in ("EOdds gap", "task AUC",
                                                       "cond. leakage")), flush=True)
    frame = pd.DataFrame(rows)
    minutes = (time.perf_counter() - start) / 60
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "ablation.csv", index=False)
    command = "python benchmarks/ablation.py " + " ".join(argv if argv is not None
                                                          else sys.argv[1:])
    text = ["# Ablation of DNE's mechanisms", "",
            f"Produced by `{command.strip()}` in {minutes:.1f} min; {args.seeds} seed(s), "
            f"{args.n_samples} training and as many unconfounded test images, the "
            "encoder (frozen, random weights) re-drawn per seed; mean ± std "
            "over seeds. \"closed\": share of the ERM → oracle gap closed (per seed, then "
            "averaged). Conditional leakage: ROC AUC of a fresh linear probe within each "
            "class of y (0.5 = none).", ""]
    for scenario, part in frame.groupby("scenario", sort=False):
        wide = {c: part.pivot(index="seed", columns="method", values=c)
                for c in ("EOdds gap", "cond. leakage")}
        text += [f"## {scenario}", "",
                 "| variant | EOdds gap | closed (EOdds) | task AUC | cond. leakage | "
                 "closed (leakage) | epochs | fit s |", "|---|---|---|---|---|---|---|---|"]
        for method in [ERM, *VARIANTS, ORACLE]:
            sub = part[part["method"] == method]
            cells = []
            for column in ("EOdds gap", "closed EOdds", "task AUC", "cond. leakage",
                           "closed leakage", "epochs", "fit s"):
                if column.startswith("closed"):
                    key = "EOdds gap" if column.endswith("EOdds") else "cond. leakage"
                    w = wide[key]
                    share = (w[ERM] - w[method]) / (w[ERM] - w[ORACLE])
                    cells.append(f"{100 * share.mean():.0f} % ± {100 * share.std():.0f}"
                                 if len(share) > 1 else f"{100 * share.mean():.0f} %")
                elif column in sub and sub[column].notna().any():
                    m, s = sub[column].mean(), sub[column].std()
                    cells.append(f"{m:.1f}" if column in ("epochs", "fit s") else
                                 f"{m:.3f} ± {0 if np.isnan(s) else s:.3f}")
                else:
                    cells.append("")
            text.append(f"| {method} | " + " | ".join(cells) + " |")
        text.append("")
    (out / "ablation.md").write_text("\n".join(text))
    print(f"wrote {out / 'ablation.md'} ({minutes:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
