"""fairnoise.plotting: every figure is drawn headless, labelled, and rejects what it cannot show."""

from __future__ import annotations

import builtins
import importlib

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib", reason="plotting needs the plot extra")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from conftest import make_encoder, make_marker_images  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fairnoise import DebiasedNoiseTransformer  # noqa: E402
from fairnoise.metrics import fairness_report  # noqa: E402
from fairnoise.metrics._registry import SUMMARY_METRICS  # noqa: E402
from fairnoise.plotting import (  # noqa: E402
    METHOD_COLOURS,
    method_colour,
    plot_edit_examples,
    plot_group_metrics,
    plot_noise,
    plot_tradeoff,
)

FAST = dict(max_epochs=2, batch_size=64, random_state=0, validation_fraction=None)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def fitted_images():
    X, y, a = make_marker_images(n=160, size=16)
    dne = DebiasedNoiseTransformer(make_encoder(), **FAST).fit(X, y, sensitive_features=a)
    return dne, X, a


@pytest.fixture(scope="module")
def reports():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    group = np.where(rng.random(200) < 0.5, "F", "M")
    before = np.clip(0.5 * y + 0.3 * (group == "M") + rng.normal(0, 0.2, 200), 0, 1)
    after = np.clip(0.6 * y + rng.normal(0, 0.2, 200), 0, 1)
    return (fairness_report(y, before, sensitive_features=group),
            fairness_report(y, after, sensitive_features=group))


def _colorbar_labels(fig: Figure) -> list[str]:
    return [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]


# -- plot_noise ----------------------------------------------------------------------------
def test_plot_noise_shows_the_mask_with_a_labelled_colour_bar(fitted_images):
    dne, _, _ = fitted_images
    fig = plot_noise(dne)
    assert isinstance(fig, Figure)
    image = fig.axes[0].images[0]
    np.testing.assert_allclose(image.get_array(), 1.0 - dne.mask_[0])
    assert image.get_clim() == (0.0, 1.0)
    assert any("fraction replaced" in label for label in _colorbar_labels(fig))
    assert "DebiasedNoiseTransformer" in fig.get_suptitle()


def test_plot_noise_shows_additive_noise_on_a_symmetric_scale():
    X, y, a = make_marker_images(n=120, size=16)
    dne = DebiasedNoiseTransformer(make_encoder(), edit="additive", **FAST).fit(
        X, sensitive_features=a)
    fig = plot_noise(dne)
    low, high = fig.axes[0].images[0].get_clim()
    assert low == pytest.approx(-high)
    assert any("input units" in label for label in _colorbar_labels(fig))


def test_plot_noise_draws_one_panel_per_channel_for_a_per_channel_edit():
    X, y, a = make_marker_images(n=120, size=16, channels=3)
    dne = DebiasedNoiseTransformer(make_encoder(channels=3), channel_shared=False,
                                   **FAST).fit(X, sensitive_features=a)
    fig = plot_noise(dne)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == [f"where the mask acts (channel {c})" for c in range(3)]


def test_plot_noise_draws_bars_for_feature_vectors(features):
    X, y, a = features
    dne = DebiasedNoiseTransformer(**FAST).fit(X, y, sensitive_features=a)
    fig = plot_noise(dne)
    heights = [p.get_height() for p in fig.axes[0].patches]
    np.testing.assert_allclose(heights, 1.0 - dne.mask_)


def test_plot_noise_rejects_an_unfitted_transformer():
    with pytest.raises(ValueError, match="Call fit first"):
        plot_noise(DebiasedNoiseTransformer())


# -- plot_edit_examples ----------------------------------------------------------------------
def test_plot_edit_examples_has_one_row_per_example_and_the_three_columns(fitted_images):
    dne, X, a = fitted_images
    fig = plot_edit_examples(dne, X, a, oracle=X, n_per_group=3)
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 2 * 3 * 3  # 2 groups x 3 examples x 3 columns
    assert [ax.get_title() for ax in image_axes[:3]] == [
        "input", "after the edit", "oracle (no shortcut)"]
    assert image_axes[0].get_ylabel().startswith("group 0")
    assert image_axes[-3].get_ylabel().startswith("group 1")


def test_plot_edit_examples_shows_the_edited_image(fitted_images):
    dne, X, a = fitted_images
    fig = plot_edit_examples(dne, X, a, n_per_group=1)
    before, after = (ax.images[0].get_array() for ax in fig.axes[:2])
    mask = dne.mask_[0]
    np.testing.assert_allclose(after, mask * before + (1 - mask) * dne.noise_[0], atol=1e-6)


def test_plot_edit_examples_is_reproducible_for_a_seed(fitted_images):
    dne, X, a = fitted_images
    labels = [[ax.get_ylabel() for ax in plot_edit_examples(dne, X, a, random_state=1).axes]
              for _ in range(2)]
    assert labels[0] == labels[1]


def test_plot_edit_examples_rejects_misaligned_groups(fitted_images):
    dne, X, a = fitted_images
    with pytest.raises(ValueError, match="one label per image"):
        plot_edit_examples(dne, X, a[:-1])


def test_plot_edit_examples_takes_sensitive_features_and_deprecates_groups(fitted_images):
    dne, X, a = fitted_images
    new = plot_edit_examples(dne, X, sensitive_features=a, n_per_group=1)
    with pytest.warns(FutureWarning, match=r"plot_edit_examples\(groups=...\) is deprecated"):
        old = plot_edit_examples(dne, X, groups=a, n_per_group=1)
    assert [ax.get_ylabel() for ax in old.axes] == [ax.get_ylabel() for ax in new.axes]
    with pytest.raises(TypeError, match="needs sensitive_features"):
        plot_edit_examples(dne, X)


def test_plot_edit_examples_rejects_a_feature_mode_transformer(features):
    X, y, a = features
    dne = DebiasedNoiseTransformer(**FAST).fit(X, sensitive_features=a)
    with pytest.raises(ValueError, match="plot_noise"):
        plot_edit_examples(dne, X, a)


# -- plot_group_metrics ----------------------------------------------------------------------
def test_plot_group_metrics_draws_one_bar_per_group_and_report(reports):
    before, after = reports
    fig = plot_group_metrics(before, after, labels=["plain", "debiased"])
    assert [ax.get_title() for ax in fig.axes] == ["AUC", "TPR (sensitivity)",
                                                   "TNR (specificity)"]
    tpr_bars = [p.get_height() for p in fig.axes[1].patches]
    expected = [*before.by_group["tpr"], *after.by_group["tpr"]]
    np.testing.assert_allclose(tpr_bars, expected)
    assert [t.get_text() for t in fig.legends[0].texts] == ["plain", "debiased"]


def test_plot_group_metrics_accepts_more_reports_and_tables(reports):
    before, after = reports
    fig = plot_group_metrics(before.by_group, after, before, metrics=["tpr"])
    assert len(fig.axes[0].patches) == 3 * 2
    assert [t.get_text() for t in fig.legends[0].texts] == ["before", "after", "report 3"]


def test_plot_group_metrics_takes_a_fairlearn_metric_frame(reports):
    before, after = reports
    fig = plot_group_metrics(before.to_metric_frame(), after, metrics=["tpr"])
    np.testing.assert_allclose([p.get_height() for p in fig.axes[0].patches][:2],
                               before.by_group["tpr"])


def test_plot_group_metrics_reads_columns_named_after_fairlearn_functions():
    flm = pytest.importorskip("fairlearn.metrics")
    y, p, g = [1, 1, 0, 1, 1, 0], [1, 1, 0, 1, 0, 1], ["a", "a", "a", "b", "b", "b"]
    frames = [flm.MetricFrame(metrics={"true_positive_rate": flm.true_positive_rate},
                              y_true=y, y_pred=p, sensitive_features=g)] * 2
    fig = plot_group_metrics(*frames, metrics=["tpr"])
    assert fig.axes[0].get_title() == "TPR (sensitivity)"


def test_plot_group_metrics_rejects_an_unknown_metric(reports):
    with pytest.raises(ValueError, match="'precision' is not a column"):
        plot_group_metrics(*reports, metrics=["precision"])


def test_plot_group_metrics_rejects_a_label_count_mismatch(reports):
    with pytest.raises(ValueError, match="labels has 1 entries for 2 reports"):
        plot_group_metrics(*reports, labels=["only one"])


def test_plot_group_metrics_rejects_something_else(reports):
    with pytest.raises(TypeError, match="argument 2 is a list"):
        plot_group_metrics(reports[0], [1, 2])


# -- plot_tradeoff ---------------------------------------------------------------------------
SWEEP = pd.DataFrame({
    "series": ["ERM", "DNE", "DNE", "DNE"],
    "label": ["", "λ=0.01", "λ=0.1", "λ=1"],
    "auc": [0.93, 0.95, 0.96, 0.93],
    "equalized_odds_difference": [0.25, 0.05, 0.08, 0.20],
})


def test_plot_tradeoff_joins_each_series_and_labels_the_axes():
    fig = plot_tradeoff(SWEEP)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["DNE"].get_xdata(), [0.05, 0.08, 0.20])
    np.testing.assert_allclose(lines["DNE"].get_ydata(), [0.95, 0.96, 0.93])
    assert lines["ERM"].get_linestyle() == "None"  # a baseline is a lone marker
    assert "lower is fairer" in ax.get_xlabel()
    assert "higher is better" in ax.get_ylabel()
    assert {t.get_text() for t in ax.texts} == {"λ=0.01", "λ=0.1", "λ=1"}


def test_plot_tradeoff_takes_cv_results_style_columns_and_an_axes():
    fig, ax = plt.subplots()
    cv = {"mean_test_auc": [0.9, 0.92], "eod": [0.1, 0.2], "param_C": [0.1, 1.0]}
    assert plot_tradeoff(cv, auc="mean_test_auc", gap="eod", ax=ax) is fig
    assert len(ax.get_lines()) == 1


@pytest.mark.parametrize("metric", SUMMARY_METRICS, ids=lambda m: m.name)
def test_plot_tradeoff_labels_every_report_summary_metric_with_its_direction(metric):
    fig = plot_tradeoff({"auc": [0.9, 0.95], metric.name: [0.1, 0.2]}, gap=metric.name)
    direction = "higher" if metric.greater_is_better else "lower"
    assert fig.axes[0].get_xlabel() == f"{metric.label} ({direction} is fairer)"


def test_plot_tradeoff_names_a_missing_column():
    with pytest.raises(ValueError, match="no column 'auc'"):
        plot_tradeoff([{"roc": 0.9, "equalized_odds_difference": 0.1}])


def test_plot_tradeoff_rings_the_default_and_draws_error_bars():
    sweep = SWEEP.assign(default=[False, False, True, False], auc_std=[0.01, 0.02, 0.01, 0.03],
                         gap_std=[0.02, 0.01, 0.01, 0.02])
    ax = plot_tradeoff(sweep).axes[0]
    assert "default" in {t.get_text() for t in ax.texts}
    ring = [line for line in ax.get_lines() if line.get_markerfacecolor() == "none"]
    assert len(ring) == 1
    np.testing.assert_allclose(ring[0].get_xydata(), [[0.08, 0.96]])
    bars = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
    assert len(bars) == 2  # one per series
    # without the columns: no ring, no error bars
    plain = plot_tradeoff(SWEEP).axes[0]
    assert "default" not in {t.get_text() for t in plain.texts} and not plain.containers


# -- one colour per method, in every figure --------------------------------------------------
def test_method_colour_is_fixed_by_the_name_and_its_aliases():
    assert method_colour("DNE (defaults)") == method_colour("DNE, λ sweep") == \
        METHOD_COLOURS["DNE"] == method_colour("debiased") == method_colour("after")
    assert method_colour("plain") == method_colour("before") == METHOD_COLOURS["ERM"]
    assert method_colour("GeZO (defaults)") == METHOD_COLOURS["GeZO"]
    assert method_colour("DNE (paper)") == METHOD_COLOURS["DNE (paper)"] != METHOD_COLOURS["DNE"]
    assert method_colour("something new") == method_colour("something new")
    assert method_colour("something new") not in METHOD_COLOURS.values()
    assert len(set(METHOD_COLOURS.values())) == len(METHOD_COLOURS)


def test_a_method_has_the_same_colour_in_every_figure(reports):
    to_rgb = matplotlib.colors.to_rgb
    lines = {line.get_label(): line for line in plot_tradeoff(SWEEP).axes[0].get_lines()}
    fig = plot_group_metrics(*reports, labels=["ERM", "DNE"])
    for ax in fig.axes:  # every panel
        n = len(ax.patches) // 2
        assert {to_rgb(p.get_facecolor()[:3]) for p in ax.patches[:n]} == {
            to_rgb(lines["ERM"].get_color())}
        assert {to_rgb(p.get_facecolor()[:3]) for p in ax.patches[n:]} == {
            to_rgb(lines["DNE"].get_color())}
    assert to_rgb(lines["DNE"].get_color()) == to_rgb(METHOD_COLOURS["DNE"])


def test_reports_of_unknown_names_get_distinct_colours(reports):
    fig = plot_group_metrics(*reports, reports[0], labels=["one", "two", "three"],
                             metrics=["tpr"])
    patches = fig.axes[0].patches
    colours = {tuple(patches[2 * k].get_facecolor()) for k in range(3)}
    assert len(colours) == 3


# -- matplotlib is optional ------------------------------------------------------------------
def test_missing_matplotlib_names_the_plot_extra(monkeypatch, fitted_images):
    import fairnoise.plotting as plotting

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    reloaded = importlib.reload(plotting)  # importing the module needs no matplotlib
    with pytest.raises(ImportError, match=r"fairnoise\[plot\]"):
        reloaded.plot_noise(fitted_images[0])
    monkeypatch.undo()
    importlib.reload(plotting)
