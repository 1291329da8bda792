"""Black-box GeZO against white-box DNE: held-out fairness per encoder image, and wall time.

For each shortcut of :func:`fairnoise.datasets.make_spurious_images` (localized:
``marker``, ``text``; non-local: ``contrast``, ``intensity``, ``texture``), one frozen
encoder (the stand-in of :func:`fairnoise.encoders.make_standin_encoder` at 32 px, or
ImageNet EfficientNet-Lite0 at 64 px with ``--encoder lite0``), and ``y`` passed to every
fit (class-conditional adversary):

1. ERM (no edit) and the oracle (the same images without the shortcut);
2. white-box ``DebiasedNoiseTransformer`` (its defaults);
3. ``GeZONoiseTransformer(strategy="greedy")`` at the paper's GeZO settings (10
   directions, step 0.03, momentum 0.9, decay 0.95, batch 128) on the search space of
   earlier reports (an 8 × 8 grid upsampled bilinearly), the reference of the black-box
   issue's "fewer images than the paper's greedy search";
4. ``GeZONoiseTransformer`` at its previous defaults (SPSA on an 8 × 8 grid upsampled
   bilinearly, :data:`PREVIOUS_SPACE`);
5. ``GeZONoiseTransformer`` at its defaults (SPSA on a 4 × 4 grid of cells);
6. the same search in small steps (:data:`SMALL_STEPS`: 3 directions, step 0.3, batches
   of 48, so many cheap iterations), for small budgets.

Every fit here is the search alone (``validation_fraction=None``): these rows compare
searches; ``benchmarks/compare.py`` measures the guarded defaults end to end. The
library's problem (masked edit, ``objective="mean_gap"``, ``lambda_reg=0.1``) is run
on every shortcut; the paper's edit (additive noise, ``lambda_reg=1e-3``, the bounded
``"confusion"`` objective) on the marker (stand-in only). Each black-box fit is
checkpointed at growing budgets with ``warm_start`` (one search measured as it spends its
queries), over seeds.

The stand-in is the library's builder at its defaults (as in ``compare.py`` and the demo).
It replaced the benchmark's own random CNN (3 × 3 convolutions of 16, 32 and 32 channels,
max pooling, a 2 × 2 grid, 128-d; weights N(0, 0.3²), biases N(0, 0.1²)), which
``make_standin_encoder`` cannot reproduce: its channels double with each layer (the
third would have 64) and ``init_std`` draws weights and biases alike. The closest knobs
(``width=16, kernel_size=3, pooling="max", grid=2, init_std=0.3``) give 256-d
embeddings; results differ from reports made with the old network.

Three data sets per scenario: training (``correlation=0.8``, seed 0), validation (the
training distribution, seed 2) and test (``correlation=0``, seed 1: the label no longer
follows the group, so a head that reads the shortcut shows an equalized-odds gap).
Reported per row, everything from public API:

* ``images``: encoder images the fit sent (DNE: images passed forward and backward);
* ``val. objective``: the fit's own loss (adversary rebuilt from ``sa_probe_`` and
  :class:`fairnoise.objectives.Adversary`, its regulariser from ``mask_``/``noise_``) on
  the edited *validation* embeddings;
* ``leakage in y``: conditional leakage of a re-trained probe, measured by 5-fold
  cross-validation on the edited *test* embeddings (ROC AUC of a LogisticRegression for
  the group, within each class of y, averaged; 0.5 = nothing left);
* ``EO`` and ``task AUC``: a LogisticRegression head for y trained on the edited training
  embeddings, judged on the edited test embeddings (``equalized_odds_difference`` of its
  0.5-threshold predictions; ROC AUC), and ``of DNE's EO gain`` = (EO_ERM − EO) /
  (EO_ERM − EO_DNE).

Then the images the default search needs to reach the validated objective the paper's
greedy search reaches, a small sweep of one cheap query-efficiency idea, and the wall time
of a budgeted fit against a simulated API that takes 50 ms per call, serially and with
``n_jobs=8``. The API is simulated by *replay*: the fit is first run once against the
local encoder, recording every response; the timed fits then get each response from the
recording after sleeping 50 ms. The encoder's compute thus happens "on the server", not
on the benchmark's CPU cores (on a 2-core machine, eight concurrent local forward passes
would measure the cores, not the query engine); the client's own work (editing the
batches, the losses, the search) is all in the measurement. The timed fits must agree
exactly with the recorded one.

Usage::

    python benchmarks/gezo_queries.py                  # stand-in, all shortcuts, 2 seeds
    python benchmarks/gezo_queries.py --quick          # a smoke run
    python benchmarks/gezo_queries.py --encoder lite0 --quick --shortcuts marker
    python benchmarks/gezo_queries.py --shortcuts marker,text --seeds 3

Wall time on 2 CPU cores shared with other work (``OMP_NUM_THREADS=1``), measured:
``--seeds 3`` 24 minutes; ``--quick --shortcuts marker`` 3.2 minutes (beside another
benchmark); EfficientNet-Lite0 costs about 9 ms per 64-px image on one core, and
``--encoder lite0 --quick --shortcuts marker`` took 5.4 minutes (``--shortcuts
marker,text``, with the small steps: 32 minutes beside other work).
The Markdown report goes to ``benchmarks/results/gezo_queries.md``
(``gezo_queries_lite0.md`` for Lite0; ``--out`` to change).
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fairnoise import DebiasedNoiseTransformer, GeZONoiseTransformer
from fairnoise.datasets import make_spurious_images
from fairnoise.encoders import CallableEncoder, efficientnet_lite0, make_standin_encoder
from fairnoise.metrics import equalized_odds_difference
from fairnoise.objectives import SUM_OF_SQUARES, Adversary
from fairnoise.probe import TorchProbe

PAPER_GREEDY = dict(strategy="greedy", n_directions=10, step_size=0.03, momentum=0.9,
                    step_decay=0.95, batch_size=128)
# the search itself, unguarded: compare.py measures the guarded defaults end to end
LIBRARY = dict(edit="masked", objective="mean_gap", lambda_reg=0.1, validation_fraction=None)
PAPER_EDIT = dict(edit="additive", objective="confusion", lambda_reg=1e-3,
                  validation_fraction=None)
#: the search space GeZO used before the 4 x 4 grid of cells (fairnoise <= 0.1)
PREVIOUS_SPACE = dict(noise_resolution=8, upsampling="bilinear")
#: many cheap iterations: 8 x 48 images an iteration instead of 22 x 128 (the defaults)
SMALL_STEPS = dict(n_directions=3, step_size=0.3, batch_size=48)
#: the Gauss–Newton search: the default search otherwise (the library problem only)
GAUSS_NEWTON_STEPS = dict(strategy="gauss_newton")
#: Gauss–Newton with 14 probes: 16 calls an iteration, two full rounds at n_jobs=8
GAUSS_NEWTON_14 = GAUSS_NEWTON_STEPS | dict(n_directions=14)
#: search spaces compared on the localized shortcuts, label -> parameters
SPACES = [("8 × 8 bilinear (previous default)", PREVIOUS_SPACE),
          ("4 × 4 bilinear", dict(noise_resolution=4, upsampling="bilinear")),
          ("8 × 8 cells", dict(noise_resolution=8, upsampling="nearest")),
          ("4 × 4 cells (default)", {})]
SHORTCUTS = ("marker", "text", "contrast", "intensity", "texture")
#: encoder name -> (image size, builder)
ENCODERS = {
    "standin": (32, lambda: make_standin_encoder(1, random_state=0)),
    "lite0": (64, efficientnet_lite0),
}
CPU = torch.device("cpu")


def probe_auc(Z: np.ndarray, target: np.ndarray, folds: int = 5) -> float:
    """Cross-validated ROC AUC of a re-trained LogisticRegression reading ``target``."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    cv = StratifiedKFold(folds, shuffle=True, random_state=0)
    p = cross_val_predict(probe, Z, target, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(target, p))


class Bench:
    """One scenario: data, encoder, and the measurements shared by every method."""

    def __init__(self, encoder: torch.nn.Module, image_size: int, shortcut: str,
                 n: int) -> None:
        def data(seed: int, correlation: float):
            return make_spurious_images(n, image_size=image_size, shortcut=shortcut,
                                        correlation=correlation, random_state=seed)

        self.train, self.val, self.test = data(0, 0.8), data(2, 0.8), data(1, 0.0)
        self.encoder = encoder
        self.clean = [self.embed(d.images) for d in (self.train, self.val, self.test)]

    def embed(self, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return np.concatenate([self.encoder(torch.as_tensor(X[i:i + 256])).numpy()
                                   for i in range(0, len(X), 256)])

    def fit(self, t) -> None:
        t.fit(self.train.images, self.train.y, sensitive_features=self.train.sensitive_features)

    def scores(self, Z: list[np.ndarray], objective: float | None = None) -> dict:
        """Held-out measurements of edited embeddings ``[train, val, test]``."""
        (Z_tr, _, Z_te), tr, te = Z, self.train, self.test
        leak = [probe_auc(Z_te[te.y == c], te.sensitive_features[te.y == c]) for c in (0, 1)]
        head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        head.fit(Z_tr, tr.y)
        p = head.predict_proba(Z_te)[:, 1]
        eo = equalized_odds_difference(te.y, (p > 0.5).astype(int),
                                       sensitive_features=te.sensitive_features,
                                       zero_division=0.0)
        return {"val. objective": objective, "leakage in y": float(np.mean(leak)),
                "EO": float(eo), "task AUC": float(roc_auc_score(te.y, p))}

    def validated_objective(self, t, Z_val: np.ndarray) -> float:
        """The fit's loss on the edited validation embeddings, rebuilt from public parts.

        The adversary is the one the fit built (same clean training embeddings, same
        probes ``sa_probe_``), judging the validation samples instead.
        """
        tr, va = self.train, self.val
        probe = None
        if t.objective != "mean_gap":
            probes = [t.sa_probe_[c] for c in (0, 1)]
            probe = TorchProbe(probes, 2, np.ones((2, 2), bool), CPU)
        adversary = Adversary(t.objective, probe, tr.sensitive_features, tr.y, self.clean[0],
                              CPU).with_samples(va.sensitive_features, va.y)
        with torch.no_grad():
            loss = float(adversary(torch.as_tensor(Z_val), np.arange(len(Z_val))))
        # the regulariser R: mean(1 - m) for the mask, the noise's Euclidean norm
        r = (1.0 - t.mask_).mean() if t.mask_ is not None else np.linalg.norm(t.noise_)
        return loss + t.lambda_reg * float(r)

    def mean_gap_on_val(self, Z_val: np.ndarray) -> float:
        """The library problem's data loss (``mean_gap``, no regulariser) on validation."""
        tr, va = self.train, self.val
        adversary = Adversary("mean_gap", None, tr.sensitive_features, tr.y, self.clean[0],
                              CPU).with_samples(va.sensitive_features, va.y)
        with torch.no_grad():
            return float(adversary(torch.as_tensor(Z_val), np.arange(len(Z_val))))

    def score_transformer(self, t) -> dict:
        Z = [t.transform(d.images) for d in (self.train, self.val, self.test)]
        return self.scores(Z, self.validated_objective(t, Z[1]))


def mean_rows(rows: list[dict]) -> dict:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def run_gezo(bench: Bench, params: dict, budgets: list[int], seeds: list[int]) -> list[dict]:
    """One search per seed, measured at each budget (warm starts continue the search)."""
    per_budget: dict[int, list[dict]] = {b: [] for b in budgets}
    for seed in seeds:
        t = GeZONoiseTransformer(bench.encoder, max_epochs=10_000, warm_start=True,
                                 random_state=seed, **params)
        fit_time = 0.0
        for budget in budgets:
            start = time.perf_counter()
            bench.fit(t.set_params(max_queries=budget))
            fit_time += time.perf_counter() - start
            row = {"images": t.n_queries_, "iterations": t.n_iter_, "fit s": fit_time}
            per_budget[budget].append(row | bench.score_transformer(t))
    return [mean_rows(per_budget[b]) for b in budgets]


def run_dne(bench: Bench, params: dict) -> dict:
    start = time.perf_counter()
    t = DebiasedNoiseTransformer(bench.encoder, random_state=0, **params)
    bench.fit(t)
    n = len(bench.train.images)
    # white-box: the probe's embedding, then one forward and backward pass per image per epoch
    row = {"images": n * (1 + t.n_iter_), "iterations": t.n_iter_,
           "fit s": time.perf_counter() - start}
    return row | bench.score_transformer(t)


# -- wall time against a simulated API ---------------------------------------------------------
def _key(batch: np.ndarray) -> bytes:
    # every pixel: a strided sample once keyed a 32 x 32 image by its first column of
    # cells only, so two Gauss-Newton probes that differ elsewhere collided and the
    # replay answered one with the other's embeddings (hashlib releases the GIL here)
    data = np.ascontiguousarray(batch)
    return hashlib.blake2b(f"{batch.shape}{batch.dtype}".encode() + data.tobytes(),
                           digest_size=16).digest()


class Recorder:
    """The local encoder as a plain callable, keeping every response by its inputs."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        self.encoder, self.responses = encoder, {}

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            Z = self.encoder(torch.as_tensor(batch)).numpy()
        self.responses[_key(batch)] = Z
        return Z


class ReplayAPI:
    """A simulated web API: ``latency`` seconds per call, the answers from a recording."""

    def __init__(self, responses: dict, latency: float) -> None:
        self.responses, self.latency = responses, latency
        self.calls = self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self.lock:
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:  # the call takes `latency` in all, the simulation's hashing included
            start = time.perf_counter()
            response = self.responses[_key(batch)]
            time.sleep(max(self.latency - (time.perf_counter() - start), 0.0))
            return response
        finally:
            with self.lock:
                self.in_flight -= 1


def wall_time(bench: Bench, label: str, params: dict, budget: int, latency: float,
              guarded: bool = False, repeats: int = 3) -> dict:
    kwargs = params | dict(max_queries=budget, max_epochs=10_000, random_state=0)
    if not guarded:  # the search alone: the guard's probes are client work of their own
        kwargs["validation_fraction"] = None
    recorder = Recorder(bench.encoder)
    reference = GeZONoiseTransformer(CallableEncoder(recorder, batch_size=128), **kwargs)
    bench.fit(reference)
    runs = {}
    for n_jobs in (None, 8):
        # the fastest of a few fits: the client's share of the time is CPU work that
        # other jobs on a shared machine slow down at random; the waiting is not
        best = None
        for _ in range(repeats):
            api = ReplayAPI(recorder.responses, latency)
            t = GeZONoiseTransformer(CallableEncoder(api, batch_size=128), n_jobs=n_jobs,
                                     **kwargs)
            start = time.perf_counter()
            bench.fit(t)
            elapsed = time.perf_counter() - start
            if best is None or elapsed < best[0]:
                best = (elapsed, t, api)
        runs[n_jobs] = best
    (serial, t1, api1), (threaded, t8, api8) = runs[None], runs[8]
    return {"strategy": label,
            "images": t1.n_queries_, "calls": api1.calls,
            "waiting s": api1.calls * latency, "serial s": serial, "n_jobs=8 s": threaded,
            "most in flight": api8.max_in_flight, "speed-up": serial / threaded,
            "≤ 1/5": threaded <= serial / 5,
            "identical": bool(all(np.array_equal(t.edit_.param, reference.edit_.param)
                                  and t.n_queries_ == reference.n_queries_ for t in (t1, t8)))}


# -- Markdown ------------------------------------------------------------------------------
INTEGER_COLUMNS = {"images", "iterations", "calls", "most in flight", "seed"}


def fmt(v, column: str = "") -> str:
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "NO"
    if column in INTEGER_COLUMNS or isinstance(v, (int, np.integer)):
        return f"{int(round(v)):,}"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


def table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c), c) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def reach_rows(rows: list[dict], scenario: str) -> list[str]:
    """Images each other search needs to reach each validated objective greedy reaches
    (lower bounds at the checkpoint spacing)."""
    def of(method: str) -> list[dict]:
        return [r for r in rows if r["scenario"] == scenario and r["method"] == method]

    # the ERM row's objective is the library problem's mean_gap: comparable there only
    unedited = next((r["val. objective"] for r in rows if r["method"] == "ERM (no edit)"
                     and scenario == f"{r['scenario']}, library"), np.inf)
    searches = [of(SPSA), of(SMALL), of(GAUSS_NEWTON)]
    out = []
    for target in of(GREEDY):
        cells = []
        for search in searches:
            first = next((r for r in search
                          if r["val. objective"] <= target["val. objective"]), None)
            if target["val. objective"] >= unedited:  # nothing to reach: no ratio
                cells.append("greedy no better than no edit | ")
            elif first is None:
                cells.append("not reached | ")
            else:
                bound = "≥ " if first is search[0] else ""
                cells.append(f"{first['images']:,.0f} | "
                             f"{bound}{target['images'] / first['images']:.1f}")
        out.append(f"| {scenario} | {target['images']:,.0f} | "
                   f"{target['val. objective']:.3f} | {' | '.join(cells)} |")
    return out


GREEDY, SPSA = ("GeZO greedy, paper settings (8 × 8 bilinear)",
                "GeZO defaults (spsa, 4 × 4 cells)")
PREVIOUS = "GeZO previous defaults (spsa, 8 × 8 bilinear)"
SMALL = "GeZO small steps (spsa, 4 × 4 cells, C = 3, step 0.3, batch 48)"
GAUSS_NEWTON = "GeZO Gauss–Newton (4 × 4 cells, C ≤ 10, batch 128)"
#: the wall-time table's fits: label, parameters, guarded
WALL_RUNS = [("spsa, search only", dict(strategy="spsa"), False),
             ("greedy, search only", dict(strategy="greedy"), False),
             ("spsa, guarded defaults", dict(strategy="spsa"), True),
             ("spsa, small steps, search only", SMALL_STEPS, False),
             ("spsa, small steps, guarded", SMALL_STEPS, True),
             ("gauss_newton, search only", GAUSS_NEWTON_STEPS, False),
             ("gauss_newton, guarded", GAUSS_NEWTON_STEPS, True),
             ("gauss_newton, 14 probes, search only", GAUSS_NEWTON_14, False),
             ("gauss_newton, 14 probes, guarded", GAUSS_NEWTON_14, True)]
REACH_HEADER = ("| scenario | greedy: images | greedy: val. objective | defaults: images | "
                "ratio | small steps: images | ratio | Gauss–Newton: images | ratio |\n"
                "|---|---|---|---|---|---|---|---|---|")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--encoder", choices=sorted(ENCODERS), default="standin")
    parser.add_argument("--shortcuts", default=",".join(SHORTCUTS),
                        help=f"comma-separated, of {', '.join(SHORTCUTS)}")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per GeZO fit")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--reach-only", action="store_true",
                        help="skip the search-space sweep and the wall-time runs")
    args = parser.parse_args(argv)
    shortcuts = [s.strip() for s in args.shortcuts.split(",") if s.strip()]
    if unknown := set(shortcuts) - set(SHORTCUTS):
        parser.error(f"unknown shortcuts {sorted(unknown)}; choose from {SHORTCUTS}")
    out = args.out or (Path(__file__).parent / "results"
                       / ("gezo_queries.md" if args.encoder == "standin"
                          else f"gezo_queries_{args.encoder}.md"))
    warnings.filterwarnings("ignore", category=UserWarning)
    if args.quick:
        n, budgets, seeds, latency_budget = 256, [1_000, 2_000, 4_000, 8_000], 1, 6_000
    else:  # fine checkpoints early: the images to reach greedy's last objective
        n, budgets, seeds, latency_budget = (400, [1_000, 1_500, 2_000, 2_500, 5_000,
                                                   10_000, 20_000], 2, 20_000)
    if args.encoder != "standin":  # a real network: about 9 ms per image on one core
        n, budgets = min(n, 256), [b for b in budgets if b <= 8_000]
    seed_list = list(range(args.seeds or seeds))
    image_size, build = ENCODERS[args.encoder]
    encoder = build()
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:5.0f}s] {msg}", flush=True)

    cols = ["scenario", "method", "images", "iterations", "val. objective", "leakage in y",
            "EO", "of DNE's EO gain", "task AUC", "fit s"]
    rows: list[dict] = []
    problems = [(s, "library", LIBRARY) for s in shortcuts]
    if "marker" in shortcuts and args.encoder == "standin":
        problems.append(("marker", "paper's edit", PAPER_EDIT))
    benches: dict[str, Bench] = {}
    for shortcut, label, problem in problems:
        scenario = f"{shortcut}, {label}"
        if shortcut not in benches:
            log(f"{shortcut}: data and clean embeddings")
            benches[shortcut] = Bench(encoder, image_size, shortcut, n)
            b = benches[shortcut]
            oracle = [b.embed(d.oracle_images) for d in (b.train, b.val, b.test)]
            rows.append({"scenario": f"{shortcut}", "method": "ERM (no edit)", "images": 0}
                        | b.scores(b.clean, b.mean_gap_on_val(b.clean[1])))
            rows.append({"scenario": f"{shortcut}", "method": "oracle (shortcut removed)",
                         "images": 0} | b.scores(oracle, b.mean_gap_on_val(oracle[1])))
        bench = benches[shortcut]
        erm = next(r for r in rows if r["scenario"] == shortcut and r["method"] == "ERM (no edit)")
        log(f"{scenario}: DNE")
        dne = {"scenario": scenario, "method": "DNE (white-box)"} | run_dne(bench, problem)
        rows.append(dne)
        # greedy as earlier reports (and the black-box issue) ran it: on the search space
        # of the time, an 8 x 8 grid upsampled bilinearly
        for method, params in [(GREEDY, PAPER_GREEDY | PREVIOUS_SPACE),
                               (PREVIOUS, PREVIOUS_SPACE), (SPSA, {}),
                               (SMALL, SMALL_STEPS),
                               (GAUSS_NEWTON, GAUSS_NEWTON_STEPS)]:
            if method == GAUSS_NEWTON and problem["objective"] not in SUM_OF_SQUARES:
                continue  # it models mean_gap's residuals: the library problem only
            log(f"{scenario}: {method}")
            for r in run_gezo(bench, problem | params, budgets, seed_list):
                gain = erm["EO"] - dne["EO"]
                r["of DNE's EO gain"] = (erm["EO"] - r["EO"]) / gain if gain > 0.01 else None
                rows.append({"scenario": scenario, "method": method} | r)

    reach = [line for s, label, _ in problems for line in reach_rows(rows, f"{s}, {label}")]

    sweep: list[dict] = []
    for shortcut in [s for s in ("marker", "text")
                     if s in shortcuts and not args.reach_only]:
        for label, params in SPACES:
            log(f"search spaces, {shortcut}: {label}")
            for seed in seed_list:  # per seed: an idea is kept only if it wins on each
                for r in run_gezo(benches[shortcut], LIBRARY | params, budgets[-1:], [seed]):
                    sweep.append({"scenario": shortcut, "search space": label, "seed": seed}
                                 | r)

    log("wall time")
    walls = ([] if args.reach_only else
             [wall_time(benches[shortcuts[0]], label, params, latency_budget, 0.05, guarded)
              for label, params, guarded in WALL_RUNS])
    total = time.perf_counter() - started

    command = " ".join(["python benchmarks/gezo_queries.py", *(argv if argv is not None
                                                                else sys.argv[1:])])
    enc_text = ("the stand-in `make_standin_encoder(1, random_state=0)` (a frozen random "
                "CNN, 1,024-d embeddings; earlier versions of this report used the "
                "benchmark's own 128-d random CNN, which the builder's knobs cannot "
                "reproduce, so numbers differ from theirs)" if args.encoder == "standin" else
                "ImageNet EfficientNet-Lite0 (`fairnoise.encoders.efficientnet_lite0()`, "
                "1,280-d embeddings)")
    text = f"""# GeZO: held-out fairness per encoder image, and wall time

Produced by `{command}` in {total / 60:.1f} minutes on {platform.machine()} with
{torch.get_num_threads()} torch threads (Python {platform.python_version()},
torch {torch.__version__}).

Data: `make_spurious_images({n}, image_size={image_size}, shortcut=...)`: training
(`correlation=0.8`, seed 0), validation (same distribution, seed 2), test
(`correlation=0`, seed 1). Encoder: {enc_text}. `y` is passed to every fit
(class-conditional adversary). "images": encoder images the fit sent (white-box DNE:
images passed forward and backward, the probe's embedding included). "val. objective":
the fit's own loss (adversary + λ × regulariser) on the edited validation embeddings.
"leakage in y": 5-fold cross-validated ROC AUC of a re-trained LogisticRegression for the
group on the edited test embeddings, within each class of y (averaged; 0.5 = nothing
left). "EO", "task AUC": a LogisticRegression head for y trained on the edited training
embeddings, on the edited test set (equalized-odds difference at threshold 0.5; ROC AUC).
"of DNE's EO gain": (EO_ERM − EO) / (EO_ERM − EO_DNE), blank where DNE gains < 0.01.
The ERM and oracle rows' "val. objective" is the library problem's `mean_gap` on their
validation embeddings (no regulariser): relative to the clean *training* gap, so ERM is
near 1 when the training set's gap is well above its sampling noise.
GeZO rows: mean over {len(seed_list)} seed(s), one warm-started search measured at each
budget.

## Black-box against white-box

{table(rows, cols)}

## Images to reach the paper's greedy search

Images the default search, the same search in small steps (3 directions, step 0.3,
batches of 48) and `strategy="gauss_newton"` (otherwise the defaults) need to reach
the validated objective the paper's greedy search reaches
at each of its checkpoints (means over seeds; the first checkpoint of the search at or
below it, so the ratio is a lower bound at this checkpoint spacing; "≥" where already the
first checkpoint reaches it). The issue's target is a ratio ≥ 10.

{REACH_HEADER}
{chr(10).join(reach)}

## Search spaces (localized shortcuts, library problem, the default strategy)

The searched parameter's grid and how it is upsampled, per seed: one search each, straight
to the largest budget (the table above continues one search over its checkpoints, and the
budget-capped last iteration before each checkpoint, with fewer directions, changes the
path; the two tables side by side show how much a single search of ten iterations
varies).
Bilinear upsampling spreads a mask value over the neighbouring cells, so a region is only
dimmed and a fresh probe still reads a dimmed marker; cells at their bound replace their
block by the fill outright, and a 4 × 4 grid has 16 numbers where 8 × 8 has 64.

{table(sweep, ["scenario", "search space", "seed", "images", "val. objective",
               "leakage in y", "EO", "task AUC"])
 if sweep else "(not run: no localized shortcut selected)"}

## Wall time against a simulated API (50 ms per call of up to 128 images)

A budget of {latency_budget:,} images (the probe's embedding included) on
`{shortcuts[0]}`, defaults otherwise: the search alone (`validation_fraction=None`) and
the guarded defaults, whose validation probes and erasers are client work (with `n_jobs`,
the unedited and standardised candidates are judged while the search's calls are in
flight, every candidate's erasers fitted on two threads of their own; the searched edit's
verdict comes after its last call). The API replays the
responses recorded from one fit against the local encoder, after sleeping 50 ms per call
(the encoder's compute is the server's; a call's 50 ms include the simulation's lookup of
its recorded response, a hash of every pixel). Times are the fastest of three fits each
(the client's CPU work is slowed at random by other jobs on a shared machine; the waiting
is not). An iteration is 22 independent calls for the default spsa (three rounds at
`n_jobs=8`), 8 for the small steps (one round) and 12 for Gauss–Newton (its 10 probes,
the current point and the proposal: two rounds, the second a half; with 14 probes, 16:
two full rounds). "waiting s": calls
× 50 ms, the serial floor. "most in flight": the most calls the
threaded fit had open at once. "identical": both timed fits found exactly the recorded
fit's edit and spent the same images. The issue's target: n_jobs=8 at most 1/5
of serial.

{table(walls, ["strategy", "images", "calls", "waiting s", "serial s", "n_jobs=8 s",
               "most in flight", "speed-up", "≤ 1/5", "identical"])
 if walls else "(not run: --reach-only)"}
"""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
