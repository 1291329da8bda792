"""The demo behind ``python -m fairnoise demo``: the whole story on built-in data.

It generates synthetic medical-style images in which a corner marker (or a contrast
change) gives the sensitive group away and the group is spuriously correlated with the
disease in the training set but not in the test set, embeds them with a frozen encoder
(see below), and compares four pipelines that end in the same logistic regression:

* **ERM**: the classifier on the encoder's embeddings of the images as they are;
* **DNE (white-box)**: :class:`~fairnoise.DebiasedNoiseTransformer` with the library
  defaults, learned with gradients through the encoder;
* **GeZO (black-box)**: :class:`~fairnoise.GeZONoiseTransformer` with its defaults and a
  query budget, learned from the encoder's outputs alone;
* **Oracle**: the classifier on the same images *without* the shortcut, the target a
  debiasing method should reach.

Every pipeline is scored on the unconfounded test set: task AUC, per-group TPR and TNR,
the equal-opportunity and equalized-odds gaps, ``|1 - DI|``, and the leakage of the
group from the embeddings (a fresh probe trained on the transformed training embeddings
and scored on the transformed test embeddings), marginal and conditional on the label.
The numbers are printed as they come, whatever they show.

The encoder (:func:`choose_encoder`): with fairnoise's ``pretrained`` extra installed, the
full run goes through the ImageNet-pretrained EfficientNet-Lite0
(:func:`fairnoise.encoders.efficientnet_lite0`; an ImageNet model, not a medical one: no
installable package ships real medical images with a sex/age/site label, so the data is
synthetic). Without the extra, and always with ``quick=True`` (CI speed), it is the
built-in *stand-in*, a small frozen CNN with random weights: **not** a foundation model,
it makes the demo self-contained and fast, nothing more. Pass your own
``torch.nn.Module`` as ``encoder=`` to :func:`run_demo` (or ``--encoder
package.module:factory`` on the command line) to run the same comparison through it.
"""

from __future__ import annotations

import contextlib
import importlib
import numbers
import platform
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
import sklearn
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils import Bunch
from tqdm.auto import tqdm

from . import __version__
from ._guard import LAMBDA_UNVALIDATED, NoSafeEditWarning
from ._markdown import markdown_table
from ._threads import use_threads
from .datasets import make_spurious_images
from .dne import DebiasedNoiseTransformer
from .encoders import TorchEncoder, efficientnet_lite0, make_standin_encoder
from .encoders._pretrained import _INSTALL as PRETRAINED_INSTALL
from .gezo import GeZONoiseTransformer
from .metrics import FairnessReport, fairness_report, leakage_auc

__all__ = ["DemoResult", "EncoderChoice", "choose_encoder", "make_standin_encoder",
           "run_demo"]

#: Method names, in the order of the table.
ERM, DNE, GEZO, ORACLE = "ERM", "DNE (white-box)", "GeZO (black-box)", "Oracle"

#: Settings of the full run on the stand-in, of the full run on the pretrained
#: EfficientNet-Lite0 and of ``quick=True`` (CI: seconds, not minutes). Lite0 costs far
#: more per image than the stand-in (about 36 images/s forward+backward at 64 px on one
#: busy core), so its run uses fewer images, epochs and queries to stay within minutes.
_FULL = {"n_samples": 2000, "image_size": 32, "n_channels": 1, "max_queries": 150_000,
         "n_boot": 200, "sweep": (0.01, 0.03, 0.3, 1.0), "dne": {}, "sweep_dne": {}}
_LITE0 = {"n_samples": 500, "image_size": 64, "n_channels": 3, "max_queries": 15_000,
          "n_boot": 200, "sweep": (0.03, 0.3, 1.0), "dne": {"max_epochs": 8},
          "sweep_dne": {"max_epochs": 4}}
_QUICK = {"n_samples": 300, "image_size": 32, "n_channels": 1, "max_queries": 9_000,
          "n_boot": 0, "sweep": (1.0,), "dne": {"max_epochs": 10},
          "sweep_dne": {"max_epochs": 5}}

STANDIN_NOTICE = (
    "The encoder is a built-in STAND-IN: a small frozen CNN with random weights. It is not "
    "a foundation model; it only makes this demo self-contained. Plug in a real one with "
    "run_demo(encoder=my_model, n_channels=3) in Python, or --encoder "
    "package.module:factory on the command line."
)

LITE0_NOTICE = (
    "The encoder is EfficientNet-Lite0 pretrained on ImageNet (natural photographs), "
    "frozen: a real trained network, but NOT a medical foundation model. No installable "
    "package ships real medical images with a sex/age/site label, so the images are "
    "synthetic."
)

#: The one line shown when the default full run falls back to the stand-in.
FALLBACK_NOTE = (
    "The pretrained EfficientNet-Lite0 is not installed, so the demo uses the stand-in; "
    f"install it with: {PRETRAINED_INSTALL}"
)


@dataclass
class EncoderChoice:
    """The demo's encoder, as :func:`choose_encoder` picked it.

    Attributes
    ----------
    name : str
        ``"standin"``, ``"lite0"``, the ``package.module:factory`` it was loaded from, or
        ``"user"`` for a module passed to :func:`run_demo`.
    module : torch.nn.Module or None
        The frozen encoder; None for the stand-in, built in the run (it depends on the
        number of channels and the seed).
    note : str or None
        Why the default was replaced by the stand-in, when it was.
    requested : str or None
        What was asked for (None: the default).
    """

    name: str
    module: torch.nn.Module | None = None
    note: str | None = None
    requested: str | None = None


def choose_encoder(spec: str | None = None, *, quick: bool = False) -> EncoderChoice:
    """Pick the demo's encoder from ``--encoder``.

    Parameters
    ----------
    spec : {"standin", "lite0"}, "package.module:factory" or None, default=None
        None: the ImageNet-pretrained EfficientNet-Lite0 when its packages (fairnoise's
        ``pretrained`` extra) are installed, else the stand-in with a one-line ``note``;
        the stand-in with ``quick``. ``"lite0"`` raises :class:`ImportError` (with the
        install command) when the packages are missing.
    quick : bool, default=False
        The CI run: the default is the stand-in.

    Returns
    -------
    EncoderChoice

    Examples
    --------
    >>> from fairnoise.demo import choose_encoder
    >>> choose_encoder(quick=True).name
    'standin'
    >>> choose_encoder("standin").module is None
    True
    """
    if spec is None:
        if quick:
            return EncoderChoice("standin")
        try:
            return EncoderChoice("lite0", efficientnet_lite0())
        except ImportError:
            return EncoderChoice("standin", note=FALLBACK_NOTE)
    if spec == "standin":
        return EncoderChoice("standin", requested=spec)
    if spec == "lite0":
        return EncoderChoice("lite0", efficientnet_lite0(), requested=spec)
    return EncoderChoice(spec, _load_encoder(spec), requested=spec)


# --------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------


@dataclass
class DemoResult:
    """What :func:`run_demo` computed and wrote.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per method (ERM, DNE, GeZO, Oracle): task AUC, TPR and TNR per group, the
        equal-opportunity (``EO gap``) and equalized-odds (``EOdds gap``) gaps,
        ``|1-DI|``, and the marginal and conditional leakage of the group.
    reports : dict of str to FairnessReport
        The full :func:`~fairnoise.metrics.fairness_report` of each method on the test set.
    pipelines : dict of str to Pipeline
        The fitted pipelines (the oracle's was fitted on the oracle images).
    sweep : pandas.DataFrame or None
        Task AUC and fairness gaps of DNE across ``lambda_reg`` values, with ERM and the
        oracle as reference points (``series``, ``label``, ``lambda_reg``, ``auc``,
        ``equalized_odds_difference``, ``equal_opportunity_difference``).
    data : sklearn.utils.Bunch
        ``train`` and ``test`` as returned by
        :func:`~fairnoise.datasets.make_spurious_images`.
    settings : dict
        The settings the run used (after ``quick`` defaults were filled in).
    seconds : dict of str to float
        Wall-clock seconds of each stage.
    out : pathlib.Path or None
        The report folder, or None when nothing was written.
    files : list of pathlib.Path
        Files written to ``out``.
    encoder : EncoderChoice or None
        The encoder the run used.
    refusals : dict of str to str
        The ``fairnoise.NoSafeEditWarning`` message of each method whose
        transformer kept the identity edit (none found safe and useful on validation).

    Examples
    --------
    >>> from fairnoise.demo import run_demo
    >>> result = run_demo(n_samples=100, quick=True, gezo=False, sweep=False, out=None,
    ...                   verbose=False)
    >>> sorted(result.pipelines)
    ['DNE (white-box)', 'ERM', 'Oracle']
    >>> dne = result.transformers["DNE (white-box)"]
    >>> dne.mask_.shape                     # the learned mask, one per image pixel
    (1, 32, 32)
    >>> print(result.reports["ERM"].summary.index[0])
    equal_opportunity_difference
    """

    table: pd.DataFrame
    reports: dict[str, FairnessReport]
    pipelines: dict[str, Pipeline]
    sweep: pd.DataFrame | None
    data: Bunch
    settings: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)
    out: Path | None = None
    files: list[Path] = field(default_factory=list)
    encoder: EncoderChoice | None = None
    refusals: dict[str, str] = field(default_factory=dict)

    @property
    def transformers(self) -> dict[str, Any]:
        """The fitted noise transformers of the debiasing methods, by method name."""
        return {name: pipe.named_steps["noise"] for name, pipe in self.pipelines.items()
                if "noise" in pipe.named_steps}

    @property
    def validation(self) -> dict[str, pd.DataFrame]:
        """The ``validation_`` table of each transformer that has one, by method name."""
        tables = {name: getattr(t, "validation_", None)
                  for name, t in self.transformers.items()}
        return {name: table for name, table in tables.items() if table is not None}


def _head() -> Pipeline:
    """The task classifier every method ends in: standardisation + logistic regression."""
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def _plain_pipeline(embed: Callable[[np.ndarray], np.ndarray]) -> Pipeline:
    """ERM (and the oracle): the encoder's embeddings of the images as they are → head."""
    return Pipeline([("encoder", FunctionTransformer(embed)), ("clf", _head())])


def _load_encoder(spec: str) -> torch.nn.Module:
    """``"package.module:factory"`` → the module returned by ``factory()``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(
            f"--encoder must be standin, lite0 or package.module:factory (a function "
            f"returning a torch.nn.Module); got {spec!r}."
        )
    factory = getattr(importlib.import_module(module_name), attr)
    encoder = factory() if callable(factory) and not isinstance(factory, torch.nn.Module) \
        else factory
    if not isinstance(encoder, torch.nn.Module):
        raise TypeError(
            f"--encoder {spec} gave a {type(encoder).__name__}; the demo needs a "
            "torch.nn.Module (the white-box method differentiates through it)."
        )
    return encoder


@contextlib.contextmanager
def _timed(seconds: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = time.perf_counter() - start


def _score(pipe: Pipeline, X_train: np.ndarray, X_test: np.ndarray, data: Bunch,
           n_boot: int, seed: int, leakage: bool = True) -> tuple[FairnessReport, dict]:
    """Test-set report and leakage of one fitted pipeline (embeddings → head)."""
    Z_test = pipe[:-1].transform(X_test)
    proba = pipe[-1].predict_proba(Z_test)[:, 1]
    train, test = data.train, data.test
    report = fairness_report(test.y, proba, sensitive_features=test.sensitive_features,
                             n_boot=n_boot, random_state=seed)
    extra: dict[str, float] = {}
    if leakage:
        Z_train = pipe[:-1].transform(X_train)
        extra["leakage"] = leakage_auc(Z_train, train.sensitive_features, Z_test=Z_test,
                                       sensitive_features_test=test.sensitive_features)
        extra["cond. leakage"] = leakage_auc(
            Z_train, train.sensitive_features, y=train.y, Z_test=Z_test,
            sensitive_features_test=test.sensitive_features, y_test=test.y)
    return report, extra


def _row(report: FairnessReport, extra: dict[str, float]) -> dict[str, float]:
    s, by_group = report.summary, report.by_group
    row = {"task AUC": s["overall_auc"]}
    for metric in ("tpr", "tnr"):
        for group, value in by_group[metric].items():
            row[f"{metric.upper()} a={group}"] = value
    row["EO gap"] = s["equal_opportunity_difference"]
    row["EOdds gap"] = s["equalized_odds_difference"]
    row["|1-DI|"] = s["disparate_impact_distance"]
    row.update(extra)
    return row


def _format_table(table: pd.DataFrame) -> str:
    """The results table as fixed-width text, three decimals."""
    return table.rename_axis(None).to_string(float_format=lambda v: f"{v:.3f}", na_rep="-")


_LOWER_IS_BETTER = {"EO gap": "equal-opportunity gap", "EOdds gap": "equalized-odds gap",
                    "|1-DI|": "|1-DI|", "cond. leakage": "conditional leakage"}


def _verdict(before: float, after: float, lower_is_better: bool, tol: float = 0.005) -> str:
    if abs(after - before) <= tol:
        return "no change"
    return "better" if (after < before) == lower_is_better else "WORSE"


def _reading_notes(table: pd.DataFrame) -> list[str]:
    """One plain-language line per debiasing method: how it compares with ERM and the oracle."""
    lines = []
    if ERM not in table.index:
        return lines
    base = table.loc[ERM]
    oracle = table.loc[ORACLE] if ORACLE in table.index else None
    for method in (DNE, GEZO):
        if method not in table.index:
            continue
        row = table.loc[method]
        parts = [f"task AUC {base['task AUC']:.3f} -> {row['task AUC']:.3f} "
                 f"({_verdict(base['task AUC'], row['task AUC'], False)})"]
        for column, name in _LOWER_IS_BETTER.items():
            if column in row and not pd.isna(row[column]):
                parts.append(f"{name} {base[column]:.3f} -> {row[column]:.3f} "
                             f"({_verdict(base[column], row[column], True)})")
        line = f"{method} vs ERM: " + "; ".join(parts) + "."
        if oracle is not None:
            line += (f" The oracle reaches task AUC {oracle['task AUC']:.3f}, equalized-odds "
                     f"gap {oracle['EOdds gap']:.3f}, conditional leakage "
                     f"{oracle['cond. leakage']:.3f}.")
        lines.append(line)
    return lines


def run_demo(
    *,
    n_samples: int | None = None,
    image_size: int | None = None,
    n_channels: int | None = None,
    shortcut: str = "marker",
    correlation: float = 0.8,
    seed: int = 0,
    out: str | Path | None = "fairnoise-report",
    quick: bool = False,
    gezo: bool = True,
    max_queries: int | None = None,
    n_jobs: int | None = None,
    sweep: bool = True,
    n_boot: int | None = None,
    encoder: torch.nn.Module | str | EncoderChoice | None = None,
    plots: bool = True,
    threads: int | None = None,
    verbose: bool = True,
    stream: TextIO | None = None,
) -> DemoResult:
    """Compare ERM, white-box DNE, black-box GeZO and the oracle on synthetic shortcut images.

    The training set (``n_samples`` images) ties the group to the label with
    ``correlation``; the test set (``n_samples`` more) does not, so a classifier that
    learned the shortcut loses there, unequally across the groups. Every method ends in
    the same classifier (standardisation + logistic regression) and is scored on the test
    set. Leakage is the AUC of a *fresh* probe trained on the transformed training
    embeddings and scored on the transformed test embeddings (never the probe the edit
    was optimised against), marginal and conditional on the label.

    Parameters
    ----------
    n_samples : int, default=None
        Training images (and as many test images). None: 2000 on the stand-in, 500 on
        EfficientNet-Lite0 (far costlier per image), 300 with ``quick``.
    image_size : int, default=None
        Height and width of the images, in pixels (at least 16; 32 for Lite0). None: 64
        on Lite0, else 32.
    n_channels : int, default=None
        Channels of the images: 1, or 3 for an RGB encoder. None: 3 on Lite0, else 1.
    shortcut : {"marker", "contrast"}, default="marker"
        The group shortcut: a bright corner marker (a location-fixed tag, which the
        masked edit can blank), or a group-dependent global contrast (non-local: a
        universal edit cannot mask it away; see the limitations in the docs).
    correlation : float, default=0.8
        Group-label correlation of the training set (the test set has 0); see
        :func:`~fairnoise.datasets.make_spurious_images`.
    seed : int, default=0
        Seeds the data (test set: ``seed + 1``), the stand-in encoder's weights and the
        transformers; the same seed gives the same table.
    out : str, path or None, default="fairnoise-report"
        Folder for ``report.md``, ``results.csv`` (and the same table as text,
        ``table.txt``), ``sweep.csv`` and the PNG figures; created if needed. None
        writes nothing.
    quick : bool, default=False
        A run of seconds for CI: 300 samples, at most 10 DNE epochs, a small GeZO budget, one
        sweep point, no bootstrap. Explicit arguments still win.
    gezo : bool, default=True
        Also fit the black-box :class:`~fairnoise.GeZONoiseTransformer`.
    max_queries : int, default=None
        GeZO's budget of images sent to the encoder. None: 150,000, or 9,000 with
        ``quick``.
    n_jobs : int, default=None
        GeZO's concurrent queries (threads).
    sweep : bool, default=True
        Also fit DNE at other ``lambda_reg`` values for the trade-off figure.
    n_boot : int, default=None
        Bootstrap resamples for the confidence intervals in the report. None: 200, or 0
        with ``quick``.
    encoder : torch.nn.Module, str, EncoderChoice or None, default=None
        The frozen encoder. None: the ImageNet-pretrained EfficientNet-Lite0 when the
        ``pretrained`` extra is installed, else (and always with ``quick``) the stand-in
        :func:`make_standin_encoder`, with a one-line note on how to install the extra. A
        string is read by :func:`choose_encoder` (``"standin"``, ``"lite0"`` or
        ``"package.module:factory"``). A module of your own must map
        ``N×n_channels×image_size×image_size`` float images in [0, 1] to ``N×E``.
    plots : bool, default=True
        Write the PNG figures (needs matplotlib: ``pip install "fairnoise[plot]"``;
        without it the figures are skipped with a note).
    threads : int, default=None
        Threads of torch's intra-op pool and of the BLAS/OpenMP pools for the run; the
        settings are restored afterwards. None leaves them as they are (torch's default
        is one per core). On a machine shared with other work, 1 can be several times
        faster (see the scale guide).
    verbose : bool, default=True
        Print the header, progress bars, the table and the notes.
    stream : file-like, default=None
        Where the table and notes go; None is ``sys.stdout``.

    Returns
    -------
    DemoResult

    Examples
    --------
    >>> from fairnoise.demo import run_demo
    >>> result = run_demo(n_samples=200, quick=True, gezo=False, sweep=False, out=None,
    ...                   verbose=False)
    >>> list(result.table.index)
    ['ERM', 'DNE (white-box)', 'Oracle']
    >>> list(result.table.columns)  # doctest: +NORMALIZE_WHITESPACE
    ['task AUC', 'TPR a=0', 'TPR a=1', 'TNR a=0', 'TNR a=1', 'EO gap', 'EOdds gap',
     '|1-DI|', 'leakage', 'cond. leakage']
    """
    if threads is not None and (not isinstance(threads, numbers.Integral) or threads < 1):
        raise ValueError(f"threads must be a positive integer or None; got {threads!r}.")
    with use_threads(threads):
        return _run_demo(n_samples=n_samples, image_size=image_size, n_channels=n_channels,
                         shortcut=shortcut, correlation=correlation, seed=seed, out=out,
                         quick=quick, gezo=gezo, max_queries=max_queries, n_jobs=n_jobs,
                         sweep=sweep, n_boot=n_boot, encoder=encoder, plots=plots,
                         threads=threads, verbose=verbose, stream=stream)


def demo_preset(*, quick: bool, encoder: EncoderChoice) -> dict:
    """The demo's default settings for this run (``--quick``, Lite0, or the full run)."""
    return _QUICK if quick else _LITE0 if encoder.name == "lite0" else _FULL


def gezo_budget_floor(n_samples: int) -> int:
    """The fewest images GeZO's guarded fit can be given: its two passes before the
    search (the training images as they are and standardised)."""
    return 2 * n_samples


def _run_demo(*, n_samples: int | None, image_size: int | None, n_channels: int | None,
              shortcut: str, correlation: float, seed: int, out: str | Path | None,
              quick: bool, gezo: bool, max_queries: int | None, n_jobs: int | None,
              sweep: bool, n_boot: int | None,
              encoder: torch.nn.Module | str | EncoderChoice | None, plots: bool,
              threads: int | None, verbose: bool, stream: TextIO | None) -> DemoResult:
    """:func:`run_demo` within its thread settings."""
    if isinstance(encoder, torch.nn.Module):
        choice = EncoderChoice("user", encoder)
    elif isinstance(encoder, EncoderChoice):
        choice = encoder
    else:
        choice = choose_encoder(encoder, quick=quick)
    preset = demo_preset(quick=quick, encoder=choice)
    image_size = preset["image_size"] if image_size is None else int(image_size)
    n_channels = preset["n_channels"] if n_channels is None else int(n_channels)
    if choice.name == "lite0" and image_size < 32:
        raise ValueError(f"EfficientNet-Lite0 needs images of at least 32 pixels; got "
                         f"image_size={image_size}.")
    n_samples = preset["n_samples"] if n_samples is None else int(n_samples)
    max_queries = preset["max_queries"] if max_queries is None else int(max_queries)
    n_boot = preset["n_boot"] if n_boot is None else int(n_boot)
    if n_samples < 50:
        raise ValueError(f"n_samples must be at least 50; got {n_samples}.")
    floor = gezo_budget_floor(n_samples)
    if gezo and max_queries < floor:  # refused before minutes of white-box work
        raise ValueError(
            f"max_queries must be at least {floor}: GeZO embeds the {n_samples} training "
            "images twice before its search (as they are and standardised, for its "
            f"validation guard), and every iteration costs more; got {max_queries}.")
    stream = sys.stdout if stream is None else stream
    say = (lambda text="": print(text, file=stream, flush=True)) if verbose else (
        lambda text="": None)
    settings = dict(n_samples=n_samples, image_size=image_size, n_channels=n_channels,
                    shortcut=shortcut, correlation=correlation, seed=seed, quick=quick,
                    gezo=gezo, max_queries=max_queries, n_jobs=n_jobs, sweep=sweep,
                    n_boot=n_boot, standin_encoder=choice.name == "standin",
                    encoder=choice.name,
                    encoder_requested=choice.requested or ("standin" if choice.note else None),
                    preset=preset, threads=threads)
    seconds: dict[str, float] = {}

    say(f"fairnoise {__version__} demo: {n_samples} training + {n_samples} test synthetic "
        f"images ({n_channels}x{image_size}x{image_size}), shortcut {shortcut!r}, "
        f"group-label correlation {correlation:g} in training, 0 in test.")
    if choice.note:
        say(choice.note)
    if choice.name == "standin":
        say(STANDIN_NOTICE)
    elif choice.name == "lite0":
        say(LITE0_NOTICE)
    say()

    sweep_values = tuple(preset["sweep"]) if sweep else ()
    n_steps = 4 + bool(gezo) + len(sweep_values) + 2
    bar = tqdm(total=n_steps, desc="demo", unit="step", disable=not verbose,
               bar_format="{desc:<34}{percentage:3.0f}%|{bar:20}| {n_fmt}/{total_fmt} "
                          "[{elapsed}<{remaining}]")

    def step(text: str) -> None:
        bar.set_description_str(text)

    with _timed(seconds, "data"):
        step("generating data")
        train = make_spurious_images(n_samples, image_size=image_size, n_channels=n_channels,
                                     correlation=correlation, shortcut=shortcut,
                                     random_state=seed)
        test = make_spurious_images(n_samples, image_size=image_size, n_channels=n_channels,
                                    correlation=0.0, shortcut=shortcut, random_state=seed + 1)
        data = Bunch(train=train, test=test)
        module = make_standin_encoder(n_channels, random_state=seed) if choice.module is None \
            else choice.module
        embed = TorchEncoder(module).embed
        bar.update()

    pipelines: dict[str, Pipeline] = {}
    rows: dict[str, dict[str, float]] = {}
    reports: dict[str, FairnessReport] = {}
    refusals: dict[str, str] = {}

    def evaluate(name: str, X_train: np.ndarray, X_test: np.ndarray) -> None:
        report, extra = _score(pipelines[name], X_train, X_test, data, n_boot, seed)
        reports[name], rows[name] = report, _row(report, extra)

    with _timed(seconds, ERM):
        step("fitting ERM")
        pipelines[ERM] = _plain_pipeline(embed).fit(train.images, train.y)
        evaluate(ERM, train.images, test.images)
        bar.update()

    with _timed(seconds, DNE):
        step("fitting DNE (white-box)")
        dne = DebiasedNoiseTransformer(encoder=module, random_state=seed,
                                       verbose=int(verbose), **preset["dne"])
        pipelines[DNE] = Pipeline([("noise", dne), ("clf", _head())])
        with _refusals(refusals, DNE):
            pipelines[DNE].fit(train.images, train.y,
                               noise__sensitive_features=train.sensitive_features)
        evaluate(DNE, train.images, test.images)
        bar.update()

    if gezo:
        with _timed(seconds, GEZO):
            step("fitting GeZO (black-box)")
            gz = GeZONoiseTransformer(encoder=module, max_queries=max_queries,
                                      n_jobs=n_jobs, random_state=seed, verbose=int(verbose))
            pipelines[GEZO] = Pipeline([("noise", gz), ("clf", _head())])
            with _refusals(refusals, GEZO):
                pipelines[GEZO].fit(train.images, train.y,
                                    noise__sensitive_features=train.sensitive_features)
            evaluate(GEZO, train.images, test.images)
            bar.update()

    with _timed(seconds, ORACLE):
        step("fitting the oracle")
        pipelines[ORACLE] = _plain_pipeline(embed).fit(train.oracle_images, train.y)
        evaluate(ORACLE, train.oracle_images, test.oracle_images)
        bar.update()

    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "method"

    sweep_frame = None
    if sweep_values:
        with _timed(seconds, "sweep"):
            points = []
            for name in (ERM, ORACLE):
                points.append({"series": name, "label": "", "lambda_reg": np.nan,
                               **_gaps(reports[name])})
            # fixed λ values, each edit learned on all the training data without the
            # do-no-harm guard (validation_fraction=None): the raw price of editing
            for lam in sorted(set(sweep_values)):
                step(f"DNE sweep: lambda_reg={lam:g}")
                params = {**preset["sweep_dne"], "lambda_reg": lam,
                          "validation_fraction": None, "verbose": 0}
                pipe = Pipeline([("noise", clone(dne).set_params(**params)),
                                 ("clf", _head())])
                pipe.fit(train.images, train.y,
                         noise__sensitive_features=train.sensitive_features)
                report, _ = _score(pipe, train.images, test.images, data, 0, seed,
                                   leakage=False)
                bar.update()
                points.append({"series": "DNE, fixed lambda_reg (no validation)",
                               "label": f"λ={lam:g}", "lambda_reg": lam, **_gaps(report)})
            chosen = _chosen(dne)
            points.append({"series": "DNE default (lambda_reg='auto', validated)",
                           "label": chosen["short"], "lambda_reg": chosen["lambda_reg"],
                           **_gaps(reports[DNE])})
            if gezo:
                points.append({"series": GEZO, "label": "", "lambda_reg": np.nan,
                               **_gaps(reports[GEZO])})
            sweep_frame = pd.DataFrame(points)

    result = DemoResult(table=table, reports=reports, pipelines=pipelines, sweep=sweep_frame,
                        data=data, settings=settings, seconds=seconds, encoder=choice,
                        refusals=refusals)
    if out is not None:
        with _timed(seconds, "report"):
            step("writing the report")
            result.out = Path(out)
            result.files = _write_outputs(result, plots=plots, say=say)
    bar.update(bar.total - bar.n)
    bar.close()

    say()
    say("Test set (no group-label correlation). Higher is better for task AUC, TPR, TNR; "
        "lower is better for the gaps; leakage 0.5 = the group cannot be read from the "
        "embeddings.")
    say(_format_table(table))
    say()
    for line in _reading_notes(table):
        say(line)
    if gezo and GEZO in pipelines:
        gz = pipelines[GEZO].named_steps["noise"]
        say(f"GeZO sent {gz.n_queries_:,} images to the encoder (budget {max_queries:,}) in "
            f"{gz.n_iter_} search iterations.")
    for line in _validation_text(result):
        say(line)
    if result.out is not None:
        say(f"Report: {result.out / 'report.md'}")
    return result


@contextlib.contextmanager
def _refusals(found: dict[str, str], name: str) -> Iterator[None]:
    """Record a ``fairnoise.NoSafeEditWarning`` of a fit under ``name``; pass on others."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if issubclass(w.category, NoSafeEditWarning):
            found[name] = str(w.message)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _chosen(transformer: Any) -> dict[str, Any]:
    """What a fitted transformer kept, in words (``text``) and as a short plot label."""
    table = getattr(transformer, "validation_", None)
    if table is None or not table["selected"].any():
        lam = transformer.lambda_reg
        lam = LAMBDA_UNVALIDATED if lam == "auto" else float(lam)
        return {"text": f"not validated (one edit at lambda_reg={lam:g})",
                "short": f"λ={lam:g}", "lambda_reg": lam, "row": None}
    row = table.loc[table["selected"]].iloc[0]
    lam = float(row["lambda_reg"])
    name = str(row["candidate"])
    if name == "identity" and not row["erase"]:
        text = short = "the identity (no edit)"
    else:
        short = name + ("" if np.isnan(lam) else f" λ={lam:g}")
        short += " + eraser" if row["erase"] else ""
        text = short.replace(" + eraser", " + embedding eraser")
    return {"text": text, "short": "chose " + short, "lambda_reg": lam, "row": row}


def _validation_lines(result: DemoResult, method: str) -> list[str]:
    """Plain-language sentences on what the do-no-harm guard of ``method`` decided."""
    transformer = result.transformers[method]
    table = getattr(transformer, "validation_", None)
    lines = []
    if table is None:
        why = (" (GeZO skips it when its query budget runs out before the search ends)"
               if method == GEZO else "")
        lines.append(f"{method}: no validation table; this fit was not validated{why}, so "
                     "its edit was not checked against the identity.")
    else:
        chosen, base = _chosen(transformer), table.iloc[0]
        row = chosen["row"]
        lines.append(
            f"{method} validation ({transformer.validation_fraction:.0%} of the training data "
            f"held out, {len(table)} candidates): kept {chosen['text']}, conditional leakage "
            f"{row['cond_leakage']:.3f} and balanced task AUC {row['task_auc']:.3f} on the "
            f"held-out part (unedited: {base['cond_leakage']:.3f} and "
            f"{base['task_auc']:.3f}).")
    if method in result.refusals:
        lines.append(f"{method}: NO SAFE EDIT FOUND (NoSafeEditWarning): "
                     f"{result.refusals[method]}")
    return lines


def _validation_text(result: DemoResult) -> list[str]:
    """The printed validation section: sentences and each table."""
    lines = []
    for method in (DNE, GEZO):
        if method not in result.transformers:
            continue
        lines += [""] + _validation_lines(result, method)
        table = result.validation.get(method)
        if table is not None:
            lines.append(table.to_string(index=False, float_format=lambda v: f"{v:.3f}",
                                         na_rep="-"))
    return lines


def _gaps(report: FairnessReport) -> dict[str, float]:
    s = report.summary
    return {"auc": float(s["overall_auc"]),
            "equalized_odds_difference": float(s["equalized_odds_difference"]),
            "equal_opportunity_difference": float(s["equal_opportunity_difference"])}


# --------------------------------------------------------------------------------------
# The report folder
# --------------------------------------------------------------------------------------

_FIGURES = {
    "edits": "edits_dne.png",
    "edits_gezo": "edits_gezo.png",
    "noise": "noise_dne.png",
    "noise_gezo": "noise_gezo.png",
    "groups": "group_metrics.png",
    "tradeoff": "tradeoff.png",
}


def _write_figures(result: DemoResult, out: Path,
                   say: Callable[[str], None]) -> dict[str, Path]:
    """The PNG figures; an empty dict (and a note) when matplotlib is missing."""
    try:
        from . import plotting

        plt = plotting._pyplot()
    except ImportError as exc:
        say(f"Figures skipped: {exc}")
        return {}
    written: dict[str, Path] = {}

    def save(key: str, fig: Any) -> None:
        path = out / _FIGURES[key]
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written[key] = path

    test = result.data.test
    transformers = result.transformers
    for key, method in (("edits", DNE), ("edits_gezo", GEZO)):
        if method in transformers:
            save(key, plotting.plot_edit_examples(transformers[method], test.images,
                                                  test.sensitive_features, test.oracle_images))
    for key, method in (("noise", DNE), ("noise_gezo", GEZO)):
        if method in transformers:
            save(key, plotting.plot_noise(transformers[method], title=f"{method}: learned edit"))
    names = list(result.reports)
    ordered = [n for n in (ERM, DNE, GEZO, ORACLE) if n in names]
    save("groups", plotting.plot_group_metrics(*(result.reports[n] for n in ordered),
                                               labels=ordered))
    if result.sweep is not None:
        save("tradeoff", plotting.plot_tradeoff(result.sweep))
    return written


def _write_outputs(result: DemoResult, *, plots: bool,
                   say: Callable[[str], None]) -> list[Path]:
    out = result.out
    assert out is not None
    out.mkdir(parents=True, exist_ok=True)
    files = []
    csv = out / "results.csv"
    result.table.to_csv(csv, float_format="%.4f")
    text = out / "table.txt"
    text.write_text(_format_table(result.table) + "\n", encoding="utf-8")
    files += [csv, text]
    if result.sweep is not None:
        sweep_csv = out / "sweep.csv"
        result.sweep.to_csv(sweep_csv, index=False, float_format="%.4f")
        files.append(sweep_csv)
    figures = _write_figures(result, out, say) if plots else {}
    files.extend(figures.values())
    report = out / "report.md"
    report.write_text(_markdown(result, figures), encoding="utf-8")
    files.append(report)
    return files


def _md_table(frame: pd.DataFrame) -> str:
    """A results table as Markdown, three decimals, missing values as dashes."""
    return markdown_table(frame, digits=3, na_rep="-")


def _markdown(result: DemoResult, figures: dict[str, Path]) -> str:
    s = result.settings
    lines = [
        "# fairnoise demo report",
        "",
        f"fairnoise {__version__}, scikit-learn {sklearn.__version__}, torch "
        f"{torch.__version__} ({torch.get_num_threads()} intra-op threads), Python "
        f"{platform.python_version()}.",
        "",
        "Reproduce with:",
        "",
        "```bash",
        _command_line(s),
        "```",
        "",
        "## Setup",
        "",
        f"* **Data**: `make_spurious_images`, {s['n_samples']} training and {s['n_samples']} "
        f"test images of {s['n_channels']}×{s['image_size']}×{s['image_size']} pixels. The "
        f"sensitive group is given away by a `{s['shortcut']}` shortcut. In training the "
        f"group is correlated with the disease (correlation {s['correlation']:g}); in the "
        "test set it is not, so a classifier that learned the shortcut is wrong there, and "
        "more for one group than the other. Every image has an *oracle* twin without the "
        "shortcut.",
    ]
    if s["standin_encoder"]:
        lines.append(
            "* **Encoder**: a built-in **stand-in**: a small frozen CNN with random weights "
            "(`fairnoise.encoders.make_standin_encoder`). It is *not* a foundation model; "
            "it keeps the demo self-contained and fast. See *Plug in your own encoder* below.")
        if result.encoder is not None and result.encoder.note:
            lines.append(f"  {result.encoder.note}.")
    elif s["encoder"] == "lite0":
        lines.append(
            "* **Encoder**: **EfficientNet-Lite0 pretrained on ImageNet** "
            "(`fairnoise.encoders.efficientnet_lite0`, 1,280-d embeddings), frozen: a real "
            "trained network, but *not* a medical foundation model. No installable package "
            "ships real medical images with a sex/age/site label, so the images are "
            "synthetic. Its run uses fewer images, epochs and queries than the stand-in's "
            "(it costs far more per image).")
    else:
        lines.append("* **Encoder**: the user-supplied frozen module"
                     + (f" (`{s['encoder']}`)." if s["encoder"] != "user" else "."))
    lines += [
        "* **Methods**, each ending in the same classifier (standardisation + logistic "
        "regression):",
        "  * **ERM**: the classifier on the embeddings of the images as they are;",
        "  * **DNE (white-box)**: `DebiasedNoiseTransformer` with the library defaults "
        "(masked edit, `mean_gap` objective, class-conditional since `y` is passed to "
        "`fit`, `lambda_reg=\"auto\"`: a λ path whose edits, with an embedding eraser and "
        "intensity standardisation, are judged on a held-out 20% of the training data, "
        "keeping the identity when none is safe), learned with gradients through the "
        "encoder"
        + (f", at most {s['preset']['dne']['max_epochs']} epochs;"
           if "max_epochs" in s["preset"]["dne"] else ";"),
    ]
    if s["gezo"]:
        lines.append(
            f"  * **GeZO (black-box)**: `GeZONoiseTransformer` with its defaults and a "
            f"budget of {s['max_queries']:,} encoder queries, learned from the encoder's "
            "outputs only;")
    lines += [
        "  * **Oracle**: the classifier trained and tested on the oracle images, the "
        "target a debiasing method should reach.",
        "",
        "## Results on the test set",
        "",
        "Higher is better for task AUC, TPR and TNR; lower is better for the gaps "
        "(`EO gap`: equal-opportunity difference, the TPR gap; `EOdds gap`: equalized-odds "
        "difference; `|1-DI|`: distance of the disparate-impact ratio of selection rates "
        "from 1). *Leakage* is the AUC of a fresh logistic-regression probe that predicts "
        "the group, trained on the transformed training embeddings and scored on the "
        "transformed test embeddings (0.5: the group cannot be read); *cond. leakage* does "
        "the same within each class of the label. Because this test set is unconfounded, "
        "the two are close here, and the oracle sits near 0.5 on both.",
        "",
        _md_table(result.table),
        "",
    ]
    lines += [f"* {line}" for line in _reading_notes(result.table)]
    if s["gezo"] and GEZO in result.pipelines:
        gz = result.pipelines[GEZO].named_steps["noise"]
        lines.append(f"* GeZO sent {gz.n_queries_:,} images to the encoder (budget "
                     f"{s['max_queries']:,}) in {gz.n_iter_} search iterations.")
    if DNE in result.pipelines:
        dne = result.pipelines[DNE].named_steps["noise"]
        lines.append(f"* DNE ran {dne.n_iter_} epochs.")
    lines += [
        "* One seed, one data set: differences of a few hundredths are within noise. "
        + ("The per-method reports below give bootstrap intervals." if s["n_boot"] else
           "Run without `--quick` for bootstrap intervals."),
        "",
        "Machine-readable: `results.csv` (as text: `table.txt`)"
        + (", `sweep.csv`." if result.sweep is not None else "."),
        "",
    ]
    lines += _validation_markdown(result)
    captions = {
        "edits": ("What the encoder sees", "Test images per group: as they are, after the "
                  "white-box edit, and the oracle (no shortcut)."),
        "edits_gezo": (None, "The same images after the black-box (GeZO) edit."),
        "noise": ("The learned edit", "Where the white-box mask replaces the image with "
                  "the fill (1 − m; 1 = fully replaced)."),
        "noise_gezo": (None, "The same for the black-box (GeZO) edit, searched on a "
                       "coarse grid of cells (4 × 4 by default)."),
        "groups": ("Per-group performance", "Test AUC, TPR and TNR per group for each "
                   "method; a fair classifier has bars of equal height across the groups."),
        "tradeoff": ("Fairness vs task AUC", "DNE at fixed `lambda_reg` values (the price "
                     "of editing), each learned on all the training data without the "
                     "do-no-harm guard (`validation_fraction=None`), so the points show "
                     "the raw edit at each λ; the default fit (`lambda_reg=\"auto\"`, "
                     "validated) is its own point, labelled with what it chose. ERM, GeZO "
                     "and the oracle are reference points. Best is top left."),
    }
    if figures:
        lines += ["## Figures", ""]
        for key, path in figures.items():
            heading, caption = captions[key]
            if heading:
                lines += [f"### {heading}", ""]
            lines += [f"![{caption}]({path.name})", "", caption, ""]
    else:
        lines += ["Figures were not written (matplotlib is not installed: "
                  '`pip install "fairnoise[plot]"`).', ""]
    if result.sweep is not None:
        sweep = result.sweep.set_index("series")
        lines += ["## Trade-off sweep", "", _md_table(sweep), ""]
    lines += ["## Per-method reports", ""]
    for name, report in result.reports.items():
        lines += [f"### {name}", "", report.to_markdown(digits=3), ""]
    lines += [
        "## Plug in your own encoder",
        "",
        "Pass any frozen `torch.nn.Module` that maps `N×C×H×W` float images in [0, 1] to "
        "`N×E` embeddings:",
        "",
        "```python",
        "from fairnoise.demo import run_demo",
        "",
        "run_demo(encoder=my_model, n_channels=3, image_size=224, out=\"my-report\")",
        "```",
        "",
        "or, on the command line, a function that builds it:",
        "",
        "```bash",
        "python -m fairnoise demo --encoder mypackage.models:build_encoder "
        "--n-channels 3 --image-size 224",
        "```",
        "",
        "For your own data, put `DebiasedNoiseTransformer(encoder=my_model)` (or "
        "`GeZONoiseTransformer(encoder=my_api)` for an embedding API) in a `Pipeline` "
        "before your classifier and fit it with `noise__sensitive_features=groups`.",
        "",
        "## Timings",
        "",
        "| stage | seconds |",
        "|---|---|",
        *(f"| {k} | {v:.1f} |" for k, v in result.seconds.items()),
        "",
    ]
    return "\n".join(lines)


def _validation_markdown(result: DemoResult) -> list[str]:
    """The report's do-no-harm section: each transformer's verdict and ``validation_``."""
    methods = [m for m in (DNE, GEZO) if m in result.transformers]
    if not methods:
        return []
    lines = [
        "## Do-no-harm validation",
        "",
        "Each transformer held out part of the training data (stratified by group × class) "
        "and judged its candidate edits there: `cond_leakage` is a fresh probe's "
        "within-class group AUC (0.5: nothing left), `task_auc` a quick head's AUC "
        "balanced over group × class. It keeps the candidate with the lowest leakage "
        "among those that lower it by at least `min_leakage_drop` at a task-AUC cost of at "
        "most `auc_tolerance`; otherwise the identity, with a `NoSafeEditWarning`.",
        "",
    ]
    for method in methods:
        lines += [f"### {method}", ""]
        for sentence in _validation_lines(result, method):
            if sentence.startswith(f"{method}: NO SAFE EDIT"):
                sentence = ("**No safe edit was found**: the transformer kept the identity "
                            "edit and raised a `NoSafeEditWarning`, so its row in the "
                            "results table is the encoder's own embeddings. The warning: "
                            + result.refusals[method])
            lines += [sentence, ""]
        table = result.validation.get(method)
        if table is not None:
            lines += [_md_table(table.set_index("candidate")), ""]
    return lines


def _command_line(s: dict[str, Any]) -> str:
    parts = ["python -m fairnoise demo"]
    if s["quick"]:
        parts.append("--quick")
    defaults = s["preset"]
    if s["encoder_requested"] is not None:
        parts.append(f"--encoder {s['encoder_requested']}")
    if s["n_samples"] != defaults["n_samples"]:
        parts.append(f"--n-samples {s['n_samples']}")
    if s["image_size"] != defaults["image_size"]:
        parts.append(f"--image-size {s['image_size']}")
    if s["n_channels"] != defaults["n_channels"]:
        parts.append(f"--n-channels {s['n_channels']}")
    if s["shortcut"] != "marker":
        parts.append(f"--shortcut {s['shortcut']}")
    if s["correlation"] != 0.8:
        parts.append(f"--correlation {s['correlation']:g}")
    if s["seed"] != 0:
        parts.append(f"--seed {s['seed']}")
    if not s["gezo"]:
        parts.append("--no-gezo")
    elif s["max_queries"] != defaults["max_queries"]:
        parts.append(f"--max-queries {s['max_queries']}")
    if not s["sweep"]:
        parts.append("--no-sweep")
    if s["n_boot"] != defaults["n_boot"]:
        parts.append(f"--n-boot {s['n_boot']}")
    if s.get("threads") is not None:
        parts.append(f"--threads {s['threads']}")
    if s["encoder"] == "user":
        parts.append("--encoder <your module:factory>")
    return " ".join(parts)
