"""Loss curves of the default white-box fit through a pretrained encoder.

The efficacy issue saw the previous defaults diverge through EfficientNet-Lite0 (epoch
losses 5.9, 583, 16, 90, ...): the per-coordinate standardisation of ``"mean_gap"``
divided by the near-zero spread of the network's dead units. This script fits today's
defaults (``mean_gap`` whitened by the within-cell covariance, best held-out iterate,
the validation guard) on the marker scenario at 64 px and records, per seed, the training
loss of every epoch, ``validation_loss_curve_`` (the held-out loss the fit kept its best
iterate by) and the guard's verdicts (``validation_``).

Usage::

    python benchmarks/convergence.py               # Lite0, 3 seeds, 400 images (~15 min, 2 cores)
    python benchmarks/convergence.py --quick       # the stand-in, 1 seed, 200 images (~1 min)

Writes ``benchmarks/results/convergence.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from fairnoise import DebiasedNoiseTransformer, NoSafeEditWarning
from fairnoise.datasets import make_spurious_images
from fairnoise.encoders import efficientnet_lite0, make_standin_encoder


def _fit(encoder, data, seed):
    """One default fit: the transformer, its wall time, and what it warned about."""
    t = DebiasedNoiseTransformer(encoder, random_state=seed)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t.fit(data.images, data.y, sensitive_features=data.sensitive_features)
    seconds = time.perf_counter() - start
    refused = any(issubclass(w.category, NoSafeEditWarning) for w in caught)
    diverged = [str(w.message) for w in caught if "diverged" in str(w.message)]
    return t, seconds, refused, diverged


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.n = 1, 200
    lines = ["# Convergence of the default fit", "",
             f"Command: `python benchmarks/convergence.py {' '.join(sys.argv[1:])}`; "
             f"encoder {'stand-in (32 px)' if args.quick else 'EfficientNet-Lite0 (64 px)'}, "
             f"marker shortcut, {args.n} training images, correlation 0.8.", ""]
    for seed in range(args.seeds):
        if args.quick:
            encoder, size, channels = make_standin_encoder(1, random_state=seed), 32, 1
        else:
            encoder, size, channels = efficientnet_lite0(), 64, 3
        data = make_spurious_images(args.n, image_size=size, n_channels=channels,
                                    marker_jitter=2, random_state=seed)
        t, seconds, refused, diverged = _fit(encoder, data, seed)
        lines += [f"## Seed {seed} ({seconds:.0f} s)", ""]
        held = getattr(t, "validation_loss_curve_", [])
        lines.append(f"- validation loss (unedited first, then per epoch, λ path in turn): "
                     f"{', '.join(f'{v:.3f}' for v in held)}")
        lines.append(f"- training loss per epoch: "
                     f"{', '.join(f'{v:.3f}' for v in t.loss_curve_)}")
        if diverged:
            lines.append(f"- warning: {diverged[0]}")
        lines.append(f"- identity kept by the guard: {'yes' if refused else 'no'}")
        if hasattr(t, "validation_"):
            table = t.validation_.round(3).astype(str)
            lines += ["", "| " + " | ".join(table.columns) + " |",
                      "|" + "---|" * len(table.columns)]
            lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.to_numpy()]
            lines.append("")
        print("\n".join(lines[-12:]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "convergence_quick.md" if args.quick else "convergence.md"
    (out / name).write_text("\n".join(lines) + "\n")
    print(f"wrote {out / name}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
