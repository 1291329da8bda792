"""Peak resident memory of fitting on a uint8 memmap far larger than the budget.

Writes a memmap of ``--n`` 3×224×224 uint8 images (20,000 by default: 3.0 GB) with a
group marker, then, in a fresh process, fits ``DebiasedNoiseTransformer`` on it with a
small frozen CNN (one epoch) and transforms it, and reports that process's peak resident
set size (``VmHWM``). Target (issue 7): under 1.5 GB.

Usage::

    python benchmarks/memory.py                # 20,000 images
    python benchmarks/memory.py --n 2000       # a quicker run

Writes ``benchmarks/results/memory.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_memmap(path: str, n: int) -> None:
    rng = np.random.default_rng(0)
    mm = np.lib.format.open_memmap(path, "w+", np.uint8, (n, 3, 224, 224))
    for start in range(0, n, 500):
        stop = min(start + 500, n)
        block = rng.integers(60, 140, (stop - start, 3, 224, 224), dtype=np.uint8)
        block[np.arange(start, stop) % 2 == 1, :, 8:40, 8:40] = 250  # group marker
        mm[start:stop] = block
    mm.flush()
    del mm


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM).

    ``getrusage``'s ``ru_maxrss`` is not used: Linux carries it across ``execve``, so a
    child would report the parent's peak (here: writing the memmap).
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fit_in_this_process(path: str) -> dict:
    import torch

    from fairnoise import DebiasedNoiseTransformer

    torch.manual_seed(0)
    encoder = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 7, stride=4, padding=3), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
    ).eval()
    X = np.load(path, mmap_mode="r")
    a = np.arange(len(X)) % 2
    start = time.perf_counter()
    t = DebiasedNoiseTransformer(encoder=encoder, max_epochs=1, batch_size=64,
                                 noise_resolution=28, random_state=0)
    t.fit(X, sensitive_features=a)
    Z = t.transform(X)
    seconds = time.perf_counter() - start
    peak_mb = peak_rss_mb()
    return {"n": len(X), "file_mb": os.path.getsize(path) / 2**20, "peak_rss_mb": peak_mb,
            "seconds": seconds, "embeddings": list(Z.shape)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="number of images")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "memory.md"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(fit_in_this_process(args.child)))
        return
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "images.npy")
        write_memmap(path, args.n)
        out = subprocess.run([sys.executable, __file__, "--child", path], check=True,
                             capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    verdict = "met" if r["peak_rss_mb"] < 1536 else "missed"
    lines = [
        "# Peak memory of fitting on a uint8 memmap",
        "",
        f"Command: `python benchmarks/memory.py --n {args.n}`",
        "",
        "| images | file (MB) | peak RSS of the fitting process (MB) | fit + transform (s) "
        "| target < 1536 MB |",
        "|---|---|---|---|---|",
        f"| {r['n']} × 3×224×224 uint8 | {r['file_mb']:.0f} | {r['peak_rss_mb']:.0f} | "
        f"{r['seconds']:.0f} | {verdict} |",
        "",
        "One epoch of DebiasedNoiseTransformer (default masked edit, noise_resolution=28, "
        "batch 64) with a small strided CNN, then transform of the whole memmap. The peak "
        "includes the Python interpreter, torch and scikit-learn.",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
