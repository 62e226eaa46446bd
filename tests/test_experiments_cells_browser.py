"""What the Experiments view's cells say, in a Lab run tab of a real JupyterLab (headless
Chromium), issue 19: a column's numbers in one format, read down by their digits; grouped by
some params, the others as the settings they took, the metrics as mean ± std. The view is one
renderer in the cell and the run tab (experiments.js): the run tab stands for both here.

Run with ``pytest -m browser``; screenshots land in test-artifacts/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from experiment_lab import open_experiments, sweep_flows
from lab_helpers import shot

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium"), pytest.mark.lab_extension]

RETRIED = "@task(retries=1, retry_delay=0)"  # every child logs; only (2, 3) fails, twice
# Each cell's text, its alignment and figures, and where its text starts and ends on screen.
CELLS = """tds => tds.map(td => {
  const range = document.createRange();
  range.selectNodeContents(td);
  const box = range.getBoundingClientRect();
  const style = getComputedStyle(td);
  return [td.textContent, style.textAlign, style.fontVariantNumeric, box.left, box.right];
})"""


def cells(view: Any, column: str) -> list[list[Any]]:
    """The CELLS of ``column``'s cells that hold text, top to bottom."""
    found = view.locator(f".labloom-exp-td[data-column='{column}']").evaluate_all(CELLS)
    return [cell for cell in found if cell[0]]


def test_a_columns_numbers_read_down_by_their_digits(lab: Any, page: Any, tmp_path: Path) -> None:
    """Each value written at its own length ("0.1" over "0.16667") and left-aligned: comparing
    a column's values meant reading each one. Now one format a column, right-aligned in
    tabular figures; the full value in the title."""
    tab, alerts = open_experiments(page, lab[0], tmp_path, sweep_flows(RETRIED), exit_status=1)
    view = tab.locator(".labloom-experiments")
    view.locator(".labloom-exp-row[data-task-run-id]").nth(11).wait_for(timeout=30_000)

    # The last loss of each child, 1/(depth + seed + 4): a sixth to a thirteenth, each to the
    # decimals the smallest needs at five significant digits (1/13: 0.076923).
    loss = cells(view, "metrics.loss")
    assert len(loss) == 12, loss
    assert {text for text, *_ in loss} >= {"0.100000", "0.125000", "0.166667", "0.076923"}, loss
    assert {len(text) for text, *_ in loss} == {8}, loss
    # Right-aligned in tabular figures: every value ends at one x, each digit under the other.
    assert {(align, figures) for _, align, figures, *_ in loss} == {("right", "tabular-nums")}
    rights = [right for *_, right in loss]
    assert max(rights) - min(rights) < 0.5, loss
    header = view.locator(".labloom-exp-th[data-column='metrics.loss']")
    assert header.evaluate("th => getComputedStyle(th).textAlign") == "right"
    sixth = view.locator(".labloom-exp-td[data-column='metrics.loss']", has_text="0.166667")
    assert sixth.get_attribute("title") == str(1 / 6)  # in full on hover
    # Integers as integers (depth, and score's 1.0), NaN as such; text stays left.
    assert {text for text, *_ in cells(view, "params.depth")} == {"2", "4", "6"}
    assert {text for text, *_ in cells(view, "metrics.score")} == {"1", "NaN"}
    assert {align for _, align, *_ in cells(view, "params.criterion")} <= {"left", "start"}
    # Sorted by loss, the order is the values' (the format changes only how they read).
    view.locator(".labloom-exp-th[data-column='metrics.loss']").click()
    shown = [float(text) for text, *_ in cells(view, "metrics.loss")]
    assert shown == sorted(shown, reverse=True), shown
    shot(page, "experiments-numbers", view)
    assert alerts == []


def test_a_groups_other_params_are_the_settings_they_took(lab: Any, page: Any, tmp_path: Path
                                                         ) -> None:
    """Grouped by depth, the seed was averaged as if it were measured: "1.5 ± 1.3 (0.0 to 3.0)".
    Now a param that is not grouped by says which values it took; metrics keep mean ± std, in
    one format down their column."""
    tab, alerts = open_experiments(page, lab[0], tmp_path, sweep_flows(RETRIED), exit_status=1)
    view = tab.locator(".labloom-experiments")
    view.locator(".labloom-exp-row[data-task-run-id]").nth(11).wait_for(timeout=30_000)

    view.locator(".labloom-exp-group input[value='params.depth']").check()
    assert view.locator(".labloom-exp-row").count() == 3
    assert {text for text, *_ in cells(view, "params.seed")} == {"0\u20133 · 4 values"}
    assert {text for text, *_ in cells(view, "params.criterion")} == {"gini"}
    means = [text for text, *_ in cells(view, "metrics.auc")]
    assert "0.615 ± 0.013 (0.600\u20130.630)" in means, means  # depth 6's four seeds
    # Each group's loss to the decimals of the column's widest spread (depth 6's std, 0.0099:
    # 4), not each to its own: "0.0878 ± 0.0099 (...)" over "0.136 ± 0.024 (...)".
    losses = [text for text, *_ in cells(view, "metrics.loss")]
    assert {len(d) for text in losses for d in re.findall(r"\.(\d+)", text)} == {4}, losses
    shot(page, "experiments-grouped-settings", view)

    # Grouped by seed instead: the depths each seed ran at.
    view.locator(".labloom-exp-group input[value='params.depth']").uncheck()
    view.locator(".labloom-exp-group input[value='params.seed']").check()
    assert view.locator(".labloom-exp-row").count() == 4
    assert {text for text, *_ in cells(view, "params.depth")} == {"2\u20136 · 3 values"}
    assert alerts == []
