"""What the validation guard's embedding eraser costs per embedding width, side by side.

The guard judges each candidate followed by a class-conditional embedding eraser, fitted
four times per candidate (once on the training part, once per cross-fitting fold). This
measures, in one run and on the same embeddings (Gaussian, a group shortcut and a class
direction, ``n`` training rows, widths ``d`` of real foundation models):

* ``dense``: the eraser as earlier versions fitted it, with the d × d shrunk covariance
  formed and whitened by ``eigh`` (:math:`O(d^3)`), kept here as the reference;
* ``low-rank``: :func:`fairnoise.edits.fit_conditional_eraser`, which whitens through a
  thin SVD of the n × d data and a Gram-matrix Ledoit–Wolf estimate (:math:`O(n^2 d)`);
* ``judged row``: one erased row of the guard's judge (the eraser fitted four times, the
  leakage probes and the task head), with the low-rank eraser.

"max |Δ|" is the largest difference between the two erasers' outputs on the training
embeddings (the maps are the same up to rounding).

Usage::

    python benchmarks/guard_cost.py            # widths 256 to 4096
    python benchmarks/guard_cost.py --quick    # a smoke run

Writes ``benchmarks/results/guard_cost.md``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.covariance import ledoit_wolf_shrinkage

from fairnoise._guard import Judge, holdout_split
from fairnoise.edits import fit_conditional_eraser


def dense_eraser(Z: np.ndarray, a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``apply`` of the dense reference eraser on ``Z`` (within-cell metric, rank "auto")."""
    mean = Z.mean(0)
    cells = [(a == g) & (y == c) for c in np.unique(y) for g in np.unique(a)]
    cells = [m for m in cells if m.sum() >= 2]
    resid = np.concatenate([Z[m] - Z[m].mean(0) for m in cells])
    n, d = resid.shape
    S = resid.T @ resid / n
    alpha = ledoit_wolf_shrinkage(resid, assume_centered=True)
    vals, vecs = np.linalg.eigh((1 - alpha) * S + alpha * np.trace(S) / d * np.eye(d))
    vals = np.maximum(vals, 1e-10 * vals.max())
    W, W_inv = (vecs / np.sqrt(vals)) @ vecs.T, (vecs * np.sqrt(vals)) @ vecs.T
    columns = []
    for c in np.unique(y):
        in_c = [m for m in cells if (m & (y == c)).any()]
        n_y = sum(m.sum() for m in in_c)
        mu_y = sum(Z[m].sum(0) for m in in_c) / n_y
        columns += [(Z[m].mean(0) - mu_y) / np.sqrt(1 / m.sum() - 1 / n_y) for m in in_c]
    U, s, _ = np.linalg.svd(W @ np.stack(columns, 1), full_matrices=False)
    noise = np.sum((resid @ W) ** 2) / n
    independent = sum(max(len([m for m in cells if (m & (y == c)).any()]) - 1, 0)
                      for c in np.unique(y))
    m = max(min(int((s > 1e-8 * s.max()).sum()), independent), 1)
    U = U[:, s**2 > noise * (1 + np.sqrt(m / d)) ** 2]
    return Z - ((Z - mean) @ (W @ U)) @ (W_inv @ U).T


def data(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = np.where(rng.uniform(size=n) < 0.8, y, 1 - y)
    Z = rng.normal(size=(n, d)) * rng.uniform(0.2, 2.0, d)
    Z[:, 0] += 2.0 * a
    Z[:, 1] += 2.0 * y
    return Z, a, y


def timed(repeats: int, fn, *args, **kwargs) -> tuple[float, object]:
    """The fastest of ``repeats`` calls ``fn(*args, **kwargs)``, and its result."""
    best, out = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best, out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    widths, repeats = ([256, 1024], 1) if args.quick else ([256, 512, 1024, 2048, 4096], 3)
    n = 400  # the guard fits on 80 %: 320 training rows
    rows = []
    for d in widths:
        Z, a, y = data(n, d)
        tr, va = holdout_split(a, y, 0.2, seed=0)
        Ztr, atr, ytr = Z[tr], a[tr], y[tr]
        t_dense, out_dense = timed(repeats, dense_eraser, Ztr, atr, ytr)
        t_low, eraser = timed(repeats, fit_conditional_eraser, Ztr, atr, ytr)
        judge = Judge(tr, va, a, y, 0, fit_eraser=fit_conditional_eraser)
        t_row, _ = timed(repeats, judge.add, "edit", Z, erase=True)
        rows.append((d, len(tr), t_dense, t_low, t_dense / t_low, t_row,
                     float(np.abs(eraser.apply(Ztr) - out_dense).max())))
        print(f"d={d}: dense {t_dense:.3f} s, low-rank {t_low:.3f} s, row {t_row:.3f} s",
              flush=True)
    command = " ".join(["python benchmarks/guard_cost.py",
                        *(argv if argv is not None else sys.argv[1:])])
    lines = [
        "# The guard's embedding eraser: cost per embedding width", "",
        f"Produced by `{command}` on {platform.machine()} (Python "
        f"{platform.python_version()}, NumPy {np.__version__}). Fastest of {repeats} "
        "each. See the script's docstring for what is timed.", "",
        "| width d | training rows | dense eraser s | low-rank eraser s | speed-up | "
        "judged erased row s | max \\|Δ\\| |", "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {d:,} | {m} | {td:.3f} | {tl:.3f} | {r:.1f} × | {trow:.3f} | {diff:.1e} |"
              for d, m, td, tl, r, trow, diff in rows]
    out = args.out or Path(__file__).parent / "results" / (
        "guard_cost_quick.md" if args.quick else "guard_cost.md")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
