"""docs/metrics.md: its examples run as written."""

import doctest
import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def test_metrics_page_doctests_pass():
    result = doctest.testfile(str(PAGE), module_relative=False, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_threshold_optimizer_recipe_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)
    recipe = [block for block in blocks if "ThresholdOptimizer(" in block]
    assert len(recipe) == 1
    exec(compile(recipe[0], str(PAGE), "exec"), {"__name__": "recipe"})
    printed = capsys.readouterr().out
    assert "edit: equalized-odds gap" in printed
    assert "edit + ThresholdOptimizer: equalized-odds gap" in printed
