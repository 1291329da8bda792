"""Threads: torch intra-op threads × BLAS threads × GeZO's query threads × joblib workers.

Every case runs in a fresh Python process (thread pools are per process and are set up
when torch and NumPy load), with the thread settings given on its command line; the
cases are interleaved, repetition by repetition, so that a change of the machine's load
affects them alike. The table gives, per workload, the median wall-clock seconds of the
timed work (imports and data set-up excluded), the time relative to the workload's
reference row, whether the result is bit-identical to the reference's, and the 1-minute
load average seen before the case's runs (the machine is shared: read the ratios, not
the seconds).

Workloads (the stand-in encoder of the demo, 1×32×32 images):

* ``dne fit``: ``DebiasedNoiseTransformer.fit`` (probe, then minibatch Adam through the
  encoder), 2 epochs on 250 images;
* ``dne transform``: ``transform`` of 2,000 images (edit + forward);
* ``probe fit``: step 1 of ``fit``, the scikit-learn probes (``StandardScaler`` →
  ``LogisticRegression``, one per class of ``y``) on 2,000 embeddings of 1,024 features,
  3 times, with at most torch's number of BLAS threads as fairnoise runs them (rebuilt
  here from the public ``fairnoise.probe.fit_probe`` and ``check_probe``);
* ``gezo, module``: ``GeZONoiseTransformer.fit`` through the module (forward passes,
  serialised), 200 images, a 4,000-image budget;
* ``gezo, torch callable``: the same through a plain function that runs the module (calls
  of a local model that can overlap, as a user's own callable does);
* ``grid search``: ``GridSearchCV`` over a DNE pipeline (2 candidates × 2 folds, 160
  images), sequential or on joblib's default (loky) processes.

Thread settings: ``torch`` = ``torch.set_num_threads`` (``default``: torch's own, one per
core); ``BLAS`` = ``threadpoolctl.threadpool_limits(user_api="blas")``; ``n_jobs`` = GeZO's
query threads or GridSearchCV's workers; ``share`` = whether GeZO's query threads split the
caller's torch threads between them (always ``on``, fairnoise's behaviour: the rows of the
behaviour before it, ``off``, needed a private hook patched into the library and were
dropped; their last figures are in the history of ``results/threads.md``);
``OMP_WAIT_POLICY=PASSIVE`` = the environment variable
that makes idle OpenMP threads (torch's, scikit-learn's) sleep instead of spinning.

Usage::

    python benchmarks/threads.py               # about 15 minutes on a loaded 2-core machine
    python benchmarks/threads.py --quick       # one repetition of fewer cases

Writes ``benchmarks/results/threads.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "threads.md"

# (workload, torch threads or None, BLAS threads or None, n_jobs, share, passive, reference?)
CASES = [
    ("dne fit", None, None, 1, True, False, True),
    ("dne fit", 1, None, 1, True, False, False),
    ("dne fit", None, None, 1, True, True, False),
    ("dne transform", None, None, 1, True, False, True),
    ("dne transform", 1, None, 1, True, False, False),
    ("dne transform", None, None, 1, True, True, False),
    ("probe fit", None, None, 1, True, False, True),
    ("probe fit", 1, None, 1, True, False, False),
    ("probe fit", None, 1, 1, True, False, False),
    ("probe fit", None, None, 1, True, True, False),
    ("gezo, module", None, None, 1, True, False, True),
    ("gezo, module", 1, None, 1, True, False, False),
    ("gezo, module", None, None, 1, True, True, False),
    ("gezo, torch callable", None, None, 1, True, False, True),
    ("gezo, torch callable", 1, None, 1, True, False, False),
    ("gezo, torch callable", None, None, 2, True, False, False),
    ("gezo, torch callable", None, None, 4, True, False, False),
    ("grid search", None, None, 1, True, False, True),
    ("grid search", 1, None, 1, True, False, False),
    ("grid search", None, None, 2, True, False, False),
    ("grid search", None, None, 1, True, True, False),
]
QUICK = {0, 1, 2, 13, 15}


# --------------------------------------------------------------------------------------
# One case, in its own process
# --------------------------------------------------------------------------------------
def _images(n: int, seed: int = 0):
    from fairnoise.datasets import make_spurious_images

    return make_spurious_images(n, image_size=32, random_state=seed)


def _digest(array) -> str:
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:12]


def run_case(workload: str, n_jobs: int) -> tuple[float, str]:
    """Seconds of the timed work and a digest of its result."""
    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from threadpoolctl import threadpool_limits

    from fairnoise import DebiasedNoiseTransformer, GeZONoiseTransformer
    from fairnoise.encoders import make_standin_encoder
    from fairnoise.probe import check_probe, fit_probe

    module = make_standin_encoder(1, random_state=0)
    warnings.simplefilter("ignore")
    if workload == "dne fit":
        d = _images(250)
        t = DebiasedNoiseTransformer(module, max_epochs=2, n_iter_no_change=99, random_state=0)
        start = time.perf_counter()
        t.fit(d.images, d.y, sensitive_features=d.sensitive_features)
        return time.perf_counter() - start, _digest(t.edit_.param)
    if workload == "dne transform":
        d = _images(2000)
        t = DebiasedNoiseTransformer(module, max_epochs=1, random_state=0)
        t.fit(d.images[:200], d.y[:200], sensitive_features=d.sensitive_features[:200])
        start = time.perf_counter()
        Z = t.transform(d.images)
        return time.perf_counter() - start, _digest(Z)
    if workload == "probe fit":  # step 1 of fit, as the estimator runs it
        d = _images(2000)
        t = DebiasedNoiseTransformer(module).fit(d.images)  # no groups: the encoder only
        Z = t.transform(d.images)
        start = time.perf_counter()
        for _ in range(3):  # one probe per class of y, at most torch's BLAS threads
            with threadpool_limits(torch.get_num_threads(), user_api="blas"):
                probes = [fit_probe(check_probe(None), Z[d.y == c], d.sensitive_features[d.y == c])
                          for c in (0, 1)]
        return time.perf_counter() - start, _digest(probes[0][-1].coef_.round(4))
    if workload.startswith("gezo"):
        d = _images(200)
        if workload == "gezo, module":
            encoder = module
        else:
            def encoder(batch):  # a local model behind a plain function: calls overlap
                with torch.no_grad():
                    return module(torch.from_numpy(batch)).numpy()
        t = GeZONoiseTransformer(encoder, max_queries=4_000, n_jobs=n_jobs, random_state=0)
        start = time.perf_counter()
        t.fit(d.images, d.y, sensitive_features=d.sensitive_features)
        return time.perf_counter() - start, _digest(t.edit_.param)
    if workload == "grid search":
        d = _images(160)
        pipe = Pipeline([("noise", DebiasedNoiseTransformer(module, max_epochs=1,
                                                            random_state=0)),
                         ("clf", LogisticRegression(max_iter=500))])
        search = GridSearchCV(pipe, {"clf__C": [0.1, 1.0]}, cv=2, n_jobs=n_jobs)
        start = time.perf_counter()
        search.fit(d.images, d.y, noise__sensitive_features=d.sensitive_features)
        seconds = time.perf_counter() - start
        return seconds, _digest(np.round(search.cv_results_["mean_test_score"], 6))
    raise ValueError(workload)


def child(args: argparse.Namespace) -> None:
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    if args.torch is not None:
        torch.set_num_threads(args.torch)
    limits = threadpool_limits(args.blas, user_api="blas") if args.blas else None
    seconds, digest = run_case(args.child, args.n_jobs)
    blas = sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
    print(json.dumps({"seconds": seconds, "digest": digest,
                      "torch": torch.get_num_threads(), "blas": blas}))
    del limits


# --------------------------------------------------------------------------------------
# The parent: interleaved repetitions, one table
# --------------------------------------------------------------------------------------
def launch(case: tuple) -> dict:
    workload, torch_n, blas_n, n_jobs, share, passive, _ = case
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", workload,
           "--n-jobs", str(n_jobs)]
    if torch_n is not None:
        cmd += ["--torch", str(torch_n)]
    if blas_n is not None:
        cmd += ["--blas", str(blas_n)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        env.pop(var, None)  # the defaults a user gets, unless the case sets them
    if passive:  # OpenMP threads sleep between parallel regions instead of spinning
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    load = os.getloadavg()[0]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{workload} failed:\n{done.stderr}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load": load}


def fmt_threads(value, default: str = "default") -> str:
    return default if value is None else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--torch", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--blas", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n-jobs", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    cases = [c for i, c in enumerate(CASES) if not args.quick or i in QUICK]
    repeats = args.repeats or (1 if args.quick else 3)
    runs: dict[int, list[dict]] = {i: [] for i in range(len(cases))}
    started, loads = time.strftime("%Y-%m-%d %H:%M"), [os.getloadavg()[0]]
    begin = time.perf_counter()
    for r in range(repeats):
        order = list(range(len(cases)))
        order = order[r % len(order):] + order[: r % len(order)]  # rotate the order
        for i in order:
            runs[i].append(launch(cases[i]))
            workload, torch_n, blas_n, n_jobs, share, passive, _ = cases[i]
            print(f"rep {r + 1}/{repeats} {workload:<22} torch={fmt_threads(torch_n)} "
                  f"blas={fmt_threads(blas_n)} n_jobs={n_jobs} share={'on' if share else 'off'}"
                  f"{' passive' if passive else ''}: {runs[i][-1]['seconds']:.2f} s "
                  f"(load {runs[i][-1]['load']:.1f})", flush=True)
    loads.append(os.getloadavg()[0])
    loads += [x["load"] for v in runs.values() for x in v]
    minutes = (time.perf_counter() - begin) / 60

    import torch

    reference = {c[0]: i for i, c in enumerate(cases) if c[6]}
    lines = [
        "# Threads: torch × BLAS × query threads × joblib",
        "",
        f"Command: `python benchmarks/threads.py{' --quick' if args.quick else ''}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}"
        f" (default {torch.get_num_threads()} intra-op threads), Python "
        f"{platform.python_version()}; run {started}.  ",
        f"Load (1-minute average, mostly other users' work on the same cores): "
        f"{min(loads):.1f} to {max(loads):.1f} over the run ({minutes:.0f} min).",
        "",
        f"Median of {repeats} interleaved repetitions per row. *relative time*: the row's "
        "median over its workload's reference row (marked ◆; < 1 is faster). *same result*: "
        "bit-identical to the reference's.",
        "",
        "| workload | torch | BLAS | n_jobs | share | OMP_WAIT_POLICY | seconds "
        "| relative time | same result | load |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, case in enumerate(cases):
        workload, torch_n, blas_n, n_jobs, share, passive, is_ref = case
        med = statistics.median(x["seconds"] for x in runs[i])
        ref = runs[reference[workload]]
        ref_med = statistics.median(x["seconds"] for x in ref)
        same = all(x["digest"] == ref[0]["digest"] for x in runs[i])
        load = statistics.median(x["load"] for x in runs[i])
        torch_used = runs[i][0]["torch"]
        torch_col = fmt_threads(torch_n, f"default ({torch_used})")
        lines.append(
            f"| {workload}{' ◆' if is_ref else ''} | {torch_col} | {fmt_threads(blas_n)} "
            f"| {n_jobs} | {'on' if share else 'off'} | {'PASSIVE' if passive else 'default'} "
            f"| {med:.2f} | {med / ref_med:.2f} "
            f"| {'yes' if same else 'no'} | {load:.1f} |")
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
