"""Pictures of a fitted edit and of what it does to fairness.

Four functions, each returning a :class:`matplotlib.figure.Figure` (save it with
``fig.savefig("name.png")``, show it with ``matplotlib.pyplot.show()``):

* :func:`plot_noise`: the learned mask (or additive noise) as a heat map with a colour bar;
* :func:`plot_edit_examples`: example images before the edit, after it and, when known,
  without the shortcut (the oracle), grouped by sensitive group;
* :func:`plot_group_metrics`: per-group AUC, TPR and TNR before vs after (bars);
* :func:`plot_tradeoff`: fairness gap against task AUC across a parameter sweep.

Every figure colours a method the same way (:data:`METHOD_COLOURS`, :func:`method_colour`):
the plain classifier grey, the oracle green, DNE red, GeZO blue, and so on, in every
panel and every figure, the benchmarks' too.

matplotlib is an optional dependency: ``pip install "fairnoise[plot]"``. It is imported
when a function is called, not when this module is imported.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._deprecation import UNSET, renamed_argument
from ._inputs import as_float_images
from .metrics._registry import group_column, rename_fairlearn_columns, summary_metric

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["METHOD_COLOURS", "method_colour", "plot_edit_examples", "plot_group_metrics",
           "plot_noise", "plot_tradeoff"]

#: One colour per method, the same in every panel and figure (matplotlib colour strings).
METHOD_COLOURS: dict[str, str] = {
    "ERM": "#7f7f7f",                      # the plain classifier: grey
    "Oracle": "#2ca02c",                   # the shortcut-free images: green
    "DNE": "#d62728",                      # DebiasedNoiseTransformer: red
    "DNE (paper)": "#ff7f0e",              # the paper's settings: orange
    "DNE (previous defaults)": "#8c564b",  # brown
    "GeZO": "#1f77b4",                     # GeZONoiseTransformer: blue
    "LEACE": "#9467bd",                    # purple
    "CorrelationRemover": "#e377c2",       # pink
}
#: other names for the same methods (the labels the examples and docs use)
_ALIASES = {"before": "ERM", "plain": "ERM", "baseline": "ERM", "erm": "ERM",
            "oracle": "Oracle", "after": "DNE", "debiased": "DNE",
            "debiasednoisetransformer": "DNE", "gezononoisetransformer": "GeZO"}
#: colours for names outside the map, none of them one of the map's
_SPARE_COLOURS = ("#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39",
                  "#7b4173", "#3182bd", "#e6550d", "#31a354")


def method_colour(name: Any) -> str:
    """The colour of a method, the same in every figure.

    Looks ``name`` up in :data:`METHOD_COLOURS`; then its aliases (``"before"``,
    ``"plain"``, ``"baseline"`` are ERM, ``"after"`` and ``"debiased"`` DNE); then the part
    before a parenthesis, comma or colon (``"DNE (defaults)"`` and ``"DNE, λ sweep"`` are
    DNE). Any other name gets a spare colour fixed by the name itself (not by its
    position in a figure), so it too is the same wherever it appears.

    Examples
    --------
    >>> from fairnoise.plotting import method_colour
    >>> method_colour("DNE, λ sweep") == method_colour("DNE") == method_colour("after")
    True
    >>> method_colour("ERM") == method_colour("before")
    True
    """
    text = "" if name is None else str(name).strip()
    if text in METHOD_COLOURS:
        return METHOD_COLOURS[text]
    for candidate in (text, text.split("(")[0], text.split(",")[0], text.split(":")[0]):
        candidate = candidate.strip()
        if candidate in METHOD_COLOURS:
            return METHOD_COLOURS[candidate]
        if candidate.lower() in _ALIASES:
            return METHOD_COLOURS[_ALIASES[candidate.lower()]]
    return _SPARE_COLOURS[zlib.crc32(text.encode()) % len(_SPARE_COLOURS)]


def _distinct_colours(names: Sequence[Any]) -> dict[Any, str]:
    """:func:`method_colour` of each name; a spare one where two names would share one."""
    out: dict[Any, str] = {}
    for name in names:
        colour = method_colour(name)
        taken = set(out.values())
        if colour in taken and name not in METHOD_COLOURS:
            colour = next((c for c in _SPARE_COLOURS if c not in taken), colour)
        out[name] = colour
    return out

def _pyplot() -> Any:
    """``matplotlib.pyplot``, or an ImportError that names the extra to install."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised by monkeypatching in tests
        raise ImportError(
            "fairnoise.plotting needs matplotlib, which is an optional dependency. Install "
            'it with: pip install "fairnoise[plot]" (or pip install matplotlib).'
        ) from exc
    return plt


def _check_fitted_edit(transformer: Any, who: str) -> None:
    if not (hasattr(transformer, "edit_") and hasattr(transformer, "input_shape_")):
        raise ValueError(
            f"{who} needs a fitted DebiasedNoiseTransformer or GeZONoiseTransformer (with "
            f"noise_, mask_ and input_shape_); got {type(transformer).__name__}. Call fit "
            "first."
        )


def _as_chw(a: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """An edit array broadcast to ``C×H×W`` (``H×W`` images get one channel)."""
    shape = tuple(input_shape) if len(input_shape) == 3 else (1, *input_shape)
    return np.broadcast_to(np.asarray(a, dtype=np.float32).reshape(
        (1,) * (3 - np.ndim(a)) + np.shape(a)), shape)


def plot_noise(transformer: Any, *, title: str | None = None) -> Figure:
    r"""Heat map of the learned edit: where the mask replaces the input, or the noise.

    For ``edit="masked"`` the map shows :math:`1 - m`, the fraction of each pixel (or
    feature) replaced by the fill: 0 = untouched, 1 = fully replaced. For
    ``edit="additive"`` it shows the noise :math:`\varepsilon` in input units, on a
    diverging scale centred on 0. Images get one panel per channel of the edit (one for a
    channel-shared edit); feature vectors get a bar per feature.

    Parameters
    ----------
    transformer : DebiasedNoiseTransformer or GeZONoiseTransformer
        A fitted transformer.
    title : str, default=None
        Figure title; by default it names the class and the edit.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from fairnoise import DebiasedNoiseTransformer
    >>> from fairnoise.plotting import plot_noise
    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 2, 200)
    >>> X = np.c_[rng.normal(size=(200, 3)), a + rng.normal(scale=0.1, size=200)]
    >>> dne = DebiasedNoiseTransformer(random_state=0).fit(X, sensitive_features=a)
    >>> fig = plot_noise(dne)
    >>> fig.axes[0].get_title()
    'fraction of each feature replaced by the fill (1 - m)'
    """
    _check_fitted_edit(transformer, "plot_noise")
    plt = _pyplot()
    masked = getattr(transformer, "mask_", None) is not None
    values = 1.0 - np.asarray(transformer.mask_) if masked else np.asarray(transformer.noise_)
    shape = tuple(transformer.input_shape_)
    name = type(transformer).__name__
    kind = "mask" if masked else "additive noise"
    title = title or f"{name}: learned {kind}"

    if len(shape) == 1:  # feature vectors: one bar per feature
        values = np.broadcast_to(values, shape)
        fig, ax = plt.subplots(figsize=(min(12.0, max(4.0, 0.25 * shape[0] + 2)), 3.2),
                               constrained_layout=True)
        ax.bar(np.arange(shape[0]), values, color="tab:red" if masked else "tab:blue")
        ax.set_xlabel("feature index")
        if masked:
            ax.set_ylim(0, 1)
            ax.set_ylabel("1 - m")
            ax.set_title("fraction of each feature replaced by the fill (1 - m)")
        else:
            ax.axhline(0, color="black", linewidth=0.8)
            ax.set_ylabel("ε (feature units)")
            ax.set_title("noise added to each feature (ε)")
        fig.suptitle(title)
        return fig

    full = _as_chw(values, shape)
    # a channel-shared edit is one map, however many channels the input has
    n_maps = 1 if np.ndim(values) < 3 or np.shape(values)[0] == 1 else full.shape[0]
    fig, axes = plt.subplots(1, n_maps, figsize=(3.8 * n_maps + 0.6, 3.6),
                             constrained_layout=True, squeeze=False)
    if masked:
        cmap, vmin, vmax = "magma", 0.0, 1.0
        label = "1 - m: fraction replaced by the fill"
    else:
        bound = float(np.abs(full).max()) or 1.0
        cmap, vmin, vmax = "RdBu_r", -bound, bound
        label = "ε (input units)"
    for c, ax in enumerate(axes[0]):
        im = ax.imshow(full[c], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        channel = "" if n_maps == 1 else f" (channel {c})"
        ax.set_title(("where the mask acts" if masked else "noise ε") + channel)
        fig.colorbar(im, ax=ax, label=label, shrink=0.9)
    if masked:
        fill = np.asarray(transformer.noise_).reshape(-1)
        fill_text = (f"fill f = {fill[0]:.2f}" if np.allclose(fill, fill[0])
                     else "fill f = training mean")
        title = f"{title}\n{fill_text}, {float(values.mean()):.1%} of the input replaced"
    else:
        norm = float(np.linalg.norm(np.asarray(transformer.noise_)))  # as the regulariser
        title = f"{title}\n‖ε‖₂ = {norm:.3g} (input units)"
    fig.suptitle(title)
    return fig


def _display_image(img: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``C×H×W`` → something ``imshow`` draws: gray for one channel, RGB for three."""
    if img.shape[0] == 3:
        return np.clip(np.moveaxis(img, 0, -1), 0.0, 1.0), None
    return img[0], "gray"


def plot_edit_examples(
    transformer: Any,
    X: Any,
    sensitive_features: Any = None,
    oracle: Any = None,
    *,
    n_per_group: int = 2,
    random_state: int | None = 0,
    groups: Any = UNSET,
) -> Figure:
    r"""Grid of example images before and after the edit (and the oracle), per group.

    Each row is one image; the columns are the input, the edited input
    :math:`\mathrm{edit}(x)` the encoder sees, and, when ``oracle`` is given, the same
    image without the shortcut. Rows are grouped by sensitive group and labelled with it.
    All panels share one gray scale, [0, 1], so brightness differences are comparable.

    Parameters
    ----------
    transformer : DebiasedNoiseTransformer or GeZONoiseTransformer
        A fitted transformer in image mode.
    X : array-like of shape (n_samples, C, H, W) or (n_samples, H, W)
        Images (floats in [0, 1], or integers scaled by their dtype's maximum).
    sensitive_features : array-like of shape (n_samples,)
        Sensitive group of each image.
    oracle : array-like of the same shape as ``X``, default=None
        The same images without the shortcut, e.g. ``oracle_images`` from
        :func:`fairnoise.datasets.make_spurious_images`.
    n_per_group : int, default=2
        Images shown per group.
    random_state : int or None, default=0
        Seeds which images are shown.
    groups : array-like of shape (n_samples,)
        Deprecated name of ``sensitive_features`` (a ``FutureWarning``; removed in
        fairnoise 0.3): ``groups`` means the cross-validation groups in scikit-learn.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import torch
    >>> from fairnoise import DebiasedNoiseTransformer
    >>> from fairnoise.datasets import make_spurious_images
    >>> from fairnoise.plotting import plot_edit_examples
    >>> data = make_spurious_images(200, image_size=16, random_state=0)
    >>> dne = DebiasedNoiseTransformer(torch.nn.Flatten(), max_epochs=2, random_state=0)
    >>> dne = dne.fit(data.images, sensitive_features=data.sensitive_features)
    >>> fig = plot_edit_examples(dne, data.images, data.sensitive_features, data.oracle_images)
    >>> [ax.get_title() for ax in fig.axes[:3]]
    ['input', 'after the edit', 'oracle (no shortcut)']
    """
    _check_fitted_edit(transformer, "plot_edit_examples")
    shape = tuple(transformer.input_shape_)
    if len(shape) < 2:
        raise ValueError(
            "plot_edit_examples shows images; this transformer was fitted on feature "
            f"vectors of shape {shape}. Use plot_noise for feature-mode edits."
        )
    if not (isinstance(n_per_group, (int, np.integer)) and n_per_group >= 1):
        raise ValueError(f"n_per_group must be a positive integer; got {n_per_group!r}.")
    sensitive_features = renamed_argument(sensitive_features, groups,
                                          new="sensitive_features", old="groups",
                                          func="plot_edit_examples", default=None)
    if sensitive_features is None:
        raise TypeError("plot_edit_examples() needs sensitive_features, the group of each "
                        "image.")
    n = len(X)
    groups = np.asarray(sensitive_features)
    if groups.ndim != 1 or len(groups) != n:
        raise ValueError(
            f"sensitive_features must be 1-D with one label per image ({n}); got shape "
            f"{groups.shape}."
        )
    if oracle is not None and len(oracle) != n:
        raise ValueError(f"oracle has {len(oracle)} images but X has {n}; they must align.")
    plt = _pyplot()

    rng = np.random.default_rng(random_state)
    labels = pd.unique(groups)
    try:
        labels = np.sort(labels)
    except TypeError:  # mixed label types: keep the order of appearance
        pass
    rows = [(g, i) for g in labels
            for i in np.sort(rng.permutation(np.flatnonzero(groups == g))[:n_per_group])]
    idx = np.array([i for _, i in rows])

    def take(batch: Any) -> np.ndarray:
        """The shown rows as float ``N×C×H×W`` (lazy arrays read only those rows)."""
        if hasattr(batch, "detach"):  # a torch tensor
            batch = batch.detach().cpu().numpy()
        rows_ = batch[idx] if hasattr(batch, "shape") else np.asarray(batch)[idx]
        return as_float_images(rows_).reshape(len(idx), *shape)

    def chw(batch: np.ndarray) -> np.ndarray:
        return batch if batch.ndim == 4 else batch[:, None]

    before = take(X)
    after = transformer.edit_.apply(before)
    before, after = chw(before), chw(after)
    columns = [("input", before), ("after the edit", after)]
    if oracle is not None:
        columns.append(("oracle (no shortcut)", chw(take(oracle))))

    n_rows, n_cols = len(rows), len(columns)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.2 * n_cols + 1.0, 2.2 * n_rows),
                             squeeze=False, constrained_layout=True)
    im = None
    for r, (g, i) in enumerate(rows):
        for c, (name, batch) in enumerate(columns):
            ax = axes[r, c]
            img, cmap = _display_image(batch[r])
            im = ax.imshow(img, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name)
            if c == 0:
                ax.set_ylabel(f"group {g}\n(image {i})")
    if im is not None and before.shape[1] == 1:
        fig.colorbar(im, ax=axes, label="pixel intensity", shrink=0.6)
    fig.suptitle(f"{type(transformer).__name__}: what the encoder sees, per group")
    return fig


def _by_group(report: Any, position: int) -> pd.DataFrame:
    """The per-group table of a FairnessReport or a fairlearn MetricFrame (or a DataFrame
    that already is one), its columns under the report's names."""
    table = getattr(report, "by_group", report)
    if isinstance(table, pd.Series) and hasattr(report, "by_group"):  # a one-metric frame
        table = table.to_frame(table.name)
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            "plot_group_metrics takes fairnoise.metrics.fairness_report results, fairlearn "
            f"MetricFrames or their by_group DataFrames; argument {position} is a "
            f"{type(report).__name__}."
        )
    return rename_fairlearn_columns(table)


def _column_label(name: str) -> str:
    column = group_column(name)
    return name if column is None else column.label


def plot_group_metrics(
    before_report: Any,
    after_report: Any,
    *more_reports: Any,
    labels: Sequence[str] | None = None,
    metrics: Sequence[str] = ("auc", "tpr", "tnr"),
) -> Figure:
    """Per-group bars of each metric, before vs after debiasing (and any more reports).

    One panel per metric; within a panel, one cluster of bars per group, one bar per
    report, coloured by its label (:func:`method_colour`: "before" is ERM's grey, "after"
    DNE's red, whatever the panel or figure). Equal bars across the groups of a report
    mean a fair classifier on that metric; the gap between the groups is printed above
    each cluster of reports.

    Parameters
    ----------
    before_report, after_report : FairnessReport, MetricFrame or pandas.DataFrame
        Results of :func:`fairnoise.metrics.fairness_report` (or their ``by_group``
        tables), e.g. of the plain classifier and of the debiased pipeline. A fairlearn
        ``MetricFrame`` works too: columns named after fairlearn's functions
        (``true_positive_rate``, ``roc_auc_score``, ...) are read as the report's
        (``tpr``, ``auc``, ...).
    *more_reports : FairnessReport, MetricFrame or pandas.DataFrame
        Further reports to compare, e.g. another method or the oracle.
    labels : sequence of str, default=None
        One legend label per report; default ``("before", "after", "report 3", ...)``.
    metrics : sequence of str, default=("auc", "tpr", "tnr")
        Columns of the per-group table to plot.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from fairnoise.metrics import fairness_report
    >>> from fairnoise.plotting import plot_group_metrics
    >>> y = [0, 1, 0, 1, 0, 1, 0, 1]
    >>> group = ["F", "F", "F", "F", "M", "M", "M", "M"]
    >>> before = fairness_report(y, [.2, .8, .3, .6, .4, .7, .6, .4], sensitive_features=group)
    >>> after = fairness_report(y, [.2, .8, .3, .6, .3, .7, .4, .6], sensitive_features=group)
    >>> fig = plot_group_metrics(before, after, labels=["plain", "debiased"])
    >>> [ax.get_title() for ax in fig.axes]
    ['AUC', 'TPR (sensitivity)', 'TNR (specificity)']
    """
    tables = [_by_group(r, i + 1) for i, r in enumerate((before_report, after_report,
                                                         *more_reports))]
    if labels is None:
        labels = ["before", "after", *(f"report {i + 3}" for i in range(len(more_reports)))]
    labels = list(labels)
    if len(labels) != len(tables):
        raise ValueError(f"labels has {len(labels)} entries for {len(tables)} reports.")
    metrics = list(metrics)
    for m in metrics:
        missing = [labels[i] for i, t in enumerate(tables) if m not in t.columns]
        if missing:
            raise ValueError(
                f"metric {m!r} is not a column of the per-group table of {missing}; "
                f"available: {list(tables[0].columns)}."
            )
    group_names = [", ".join(map(str, g)) if isinstance(g, tuple) else str(g)
                   for g in tables[0].index]
    plt = _pyplot()

    n_groups, n_reports = len(group_names), len(tables)
    panel_width = max(3.2, 0.4 * n_groups * n_reports + 1.2)
    fig, axes = plt.subplots(1, len(metrics), figsize=(panel_width * len(metrics), 4.0),
                             squeeze=False, constrained_layout=True)
    width = 0.8 / n_reports
    values = np.concatenate([t[m].to_numpy(dtype=float) for t in tables for m in metrics])
    lowest = float(np.nanmin(values)) if np.isfinite(values).any() else 0.0
    # zoom in when every bar is high, so that gaps of a few points stay visible
    bottom = max(0.0, np.floor((lowest - 0.05) * 10) / 10) if lowest > 0.5 else 0.0
    x = np.arange(n_groups)
    colours = _distinct_colours(labels)
    for ax, m in zip(axes[0], metrics, strict=True):
        for k, (table, label) in enumerate(zip(tables, labels, strict=True)):
            vals = table[m].to_numpy(dtype=float)
            bars = ax.bar(x - 0.4 + width * (k + 0.5), vals, width, label=label,
                          color=colours[label])
            ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
        ax.set_xticks(x, [f"group {g}" for g in group_names])
        ax.set_ylim(bottom, 1.0 + 0.12 * (1.0 - bottom))
        ax.set_title(_column_label(m))
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    higher = all(getattr(group_column(m), "greater_is_better", None) is True for m in metrics)
    ylabel = "value (higher is better)" if higher else "value"
    if bottom > 0:
        ylabel += f"\naxis starts at {bottom:.1f}"
    axes[0, 0].set_ylabel(ylabel)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=min(n_reports, 4),
               frameon=False)
    fig.suptitle("Per-group performance (bars of equal height = the same for every group)",
                 fontsize=11)
    return fig


def _as_frame(results: Any) -> pd.DataFrame:
    if isinstance(results, pd.DataFrame):
        return results
    if isinstance(results, Mapping) or (isinstance(results, Sequence)
                                        and not isinstance(results, str)):
        return pd.DataFrame(results)
    raise TypeError(
        "results must be a DataFrame, a dict of columns (e.g. GridSearchCV.cv_results_) or "
        f"a list of row dicts; got {type(results).__name__}."
    )


def plot_tradeoff(
    results: Any,
    *,
    auc: str = "auc",
    gap: str = "equalized_odds_difference",
    label: str | None = "label",
    series: str | None = "series",
    default: str | None = "default",
    auc_err: str | None = "auc_std",
    gap_err: str | None = "gap_std",
    ax: Axes | None = None,
) -> Figure:
    """Fairness gap against task AUC, one point per setting of a parameter sweep.

    The best corner is top left: high task AUC, small gap. Points of the same ``series``
    are joined in the order given (the sweep order); a series of one point (a baseline
    such as the plain classifier, or the oracle) is drawn as a lone marker. The default
    setting is ringed (``default`` column) and spreads are drawn as error bars
    (``auc_err``, ``gap_err`` columns) when the results have them.

    Parameters
    ----------
    results : DataFrame, dict of columns or list of row dicts
        One row per evaluated setting, with the columns named below.
        ``GridSearchCV.cv_results_`` works when its scorers report the AUC and the gap
        (negate scikit-learn style ``neg_`` gaps first).
    auc : str, default="auc"
        Column of the task AUC (y axis).
    gap : str, default="equalized_odds_difference"
        Column of the fairness gap (x axis; 0 is fair).
    label : str or None, default="label"
        Column of text written next to each point (e.g. ``"λ=0.1"``); ignored if absent.
    series : str or None, default="series"
        Column naming the line each point belongs to (e.g. ``"DNE, λ sweep"``,
        ``"ERM"``); absent means one line. Each series is coloured by its name
        (:func:`method_colour`), the same in every figure.
    default : str or None, default="default"
        Boolean column marking the default setting (e.g. the row of the default λ): it
        is ringed and labelled "default"; ignored if absent.
    auc_err, gap_err : str or None, default="auc_std", "gap_std"
        Columns of the AUC's and the gap's spread (e.g. the standard deviation over
        seeds or folds), drawn as error bars; ignored if absent.
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; a new figure by default.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from fairnoise.plotting import plot_tradeoff
    >>> sweep = [
    ...     {"series": "DNE", "label": "λ=0.01", "auc": 0.95, "equalized_odds_difference": 0.05},
    ...     {"series": "DNE", "label": "λ=0.1", "auc": 0.96, "equalized_odds_difference": 0.08},
    ...     {"series": "DNE", "label": "λ=1", "auc": 0.93, "equalized_odds_difference": 0.20},
    ...     {"series": "ERM", "label": "", "auc": 0.93, "equalized_odds_difference": 0.25},
    ... ]
    >>> fig = plot_tradeoff(sweep)
    >>> fig.axes[0].get_xlabel()
    'equalized-odds gap (lower is fairer)'
    """
    frame = _as_frame(results)
    for column in (auc, gap):
        if column not in frame.columns:
            raise ValueError(
                f"results has no column {column!r}; columns: {list(frame.columns)}. Name "
                "the task-AUC and gap columns with auc= and gap=."
            )
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.6), constrained_layout=True)
    else:
        fig = ax.figure
    names = (frame[series] if series is not None and series in frame.columns
             else pd.Series([None] * len(frame), index=frame.index))
    colours = _distinct_colours(list(pd.unique(names)))
    for name in pd.unique(names):
        part = frame[names == name] if name is not None else frame
        x = part[gap].to_numpy(dtype=float)
        y = part[auc].to_numpy(dtype=float)
        colour = colours[name]
        if len(part) > 1:
            ax.plot(x, y, "-o", color=colour, label=name, markersize=6)
        else:
            ax.plot(x, y, marker="D", linestyle="none", color=colour, label=name,
                    markersize=8)
        xerr = part[gap_err].to_numpy(dtype=float) if gap_err in part.columns else None
        yerr = part[auc_err].to_numpy(dtype=float) if auc_err in part.columns else None
        if xerr is not None or yerr is not None:
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor=colour, capsize=3,
                        linewidth=1)
        if default is not None and default in part.columns:
            marked = part[default].fillna(False).astype(bool).to_numpy()
            if marked.any():
                ax.plot(x[marked], y[marked], "o", markersize=15, markerfacecolor="none",
                        markeredgecolor="black", markeredgewidth=1.2)
                for xi, yi in zip(x[marked], y[marked], strict=True):
                    ax.annotate("default", (xi, yi), textcoords="offset points",
                                xytext=(8, -12), fontsize=8, fontweight="bold")
        if label is not None and label in part.columns:
            for xi, yi, text in zip(x, y, part[label], strict=True):
                if isinstance(text, str) and text:
                    ax.annotate(text, (xi, yi), textcoords="offset points", xytext=(6, 4),
                                fontsize=8, color=colour)
    metric = summary_metric(gap)
    direction = "higher" if metric is not None and metric.greater_is_better else "lower"
    ax.set_xlabel(f"{gap if metric is None else metric.label} ({direction} is fairer)")
    ax.set_ylabel("task AUC (higher is better)")
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.set_title("Fairness vs task performance (best: top left)")
    if names.notna().any():
        ax.legend(loc="best", fontsize=8)
    return fig
