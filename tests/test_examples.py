"""Every script in examples/ runs to the end in its --quick mode, as a user would run it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HAS_BACKBONE_LIBRARY = any(importlib.util.find_spec(name) is not None
                           for name in ("torchvision", "timm"))
HAS_PILLOW = importlib.util.find_spec("PIL") is not None

#: script -> (a line its output must contain, a reason to skip it or None)
CASES = {
    "quickstart_pipeline.py": ("debiased: task AUC", None),
    "fairness_gridsearch.py": ("refit on the whole training set", None),
    "blackbox_api.py": ("ERM (no edit): task AUC", None),
    "torchvision_encoder.py": (
        "the module is as it was: training=True, requires_grad=True",
        None if HAS_BACKBONE_LIBRARY else
        "needs torchvision or timm (pip install torchvision), neither is installed"),
    "chexpert_folder.py": (
        "equalized_odds_difference",
        None if HAS_PILLOW else "needs Pillow to write and read image files"),
}


def test_every_example_is_covered():
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs_in_quick_mode(script, tmp_path):
    expected, skip_reason = CASES[script]
    if skip_reason:
        pytest.skip(f"{script} {skip_reason}")
    # the checkout under test, whatever fairnoise is installed; the thread settings a user
    # gets (the environment's, else torch's and BLAS's defaults)
    path = os.pathsep.join(filter(None, [str(EXAMPLES.parent), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=path)
    done = subprocess.run([sys.executable, str(EXAMPLES / script), "--quick"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    assert expected in done.stdout, done.stdout
