"""A click on a task run's bar in the run's timeline opens that task run's panel (its logs and
traceback), as a click on its DAG node does, in a real JupyterLab (headless Chromium): in a Lab
run tab (a run the real `labloom` command made) and in a cell's live DAG widget (the one
renderer, js/src/timeline.js and dag.js). The runs are test_left_map_browser's: a retry maps
over one item of three, so fit[1] and fit[2] left their map, and their bars still open their
panels, which say so. A bucket (past 3,000 task runs) holds many task runs and opens nothing.

Run with ``pytest -m browser``; screenshots land in test-artifacts/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from lab_helpers import (
    cell_widget,
    in_state,
    open_notebook,
    shot,
    wait_or_shot,
)
from test_left_map_browser import BARS, CELLS, FLOWS, WHY, run_tab_of

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium")]

# fit made to take a while: an instant task run's bar is a sliver under a pixel wide.
SLOW = "def fit(x):\n    import time\n    time.sleep(0.4)\n    return x"
SLOW_FLOWS = FLOWS.replace("def fit(x):\n    return x", SLOW)
SLOW_CELLS = [CELLS[0], CELLS[1].replace("def fit(x):\n    return x", SLOW), CELLS[2]]


def bar_of(chart: Any, index: int) -> Any:
    """fit[index]'s bar, found by its hover text."""
    name = re.compile(rf"^fit\[{index}\] · ")
    return chart.locator(BARS).filter(has=chart.page.locator("title", has_text=name))


def opens_from_bars(page: Any, view: Any, what: str) -> None:
    """fit[1]'s bar (it left its map) opens its panel, which says so; fit[0]'s then opens its."""
    view.locator("button.labloom-timeline-toggle").click()
    chart = view.locator(".labloom-timeline[data-mode='bars']")
    chart.locator(BARS).nth(2).wait_for(timeout=30_000)
    panel = view.locator(".labloom-panel")
    assert panel.is_hidden()
    bar_of(chart, 1).click()
    title = view.locator(".labloom-panel-title")
    wait_or_shot(page, title.filter(has_text="fit[1] · Completed · left its map"),
                 f"{what}-bar-left", timeout=30)
    note = view.locator(".labloom-left-map-note")
    assert note.is_visible() and note.inner_text().startswith(WHY), note.inner_text()
    left_id = bar_of(chart, 1).get_attribute("data-task-run-id")
    assert left_id and panel.get_attribute("data-task-run-id") == left_id
    bar_of(chart, 0).last.click()  # (a first attempt's fit[0] may be drawn too)
    wait_or_shot(page, title.filter(has_text="fit[0] · Completed"), f"{what}-bar-kept", timeout=30)
    assert "left its map" not in title.inner_text() and note.is_hidden()
    assert panel.get_attribute("data-task-run-id") not in ("", left_id)
    shot(page, f"{what}-timeline-bar-opens-panel", view)


@pytest.mark.lab_extension
def test_a_bar_in_the_run_tab_timeline_opens_its_task_run(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    view, alerts = run_tab_of(lab, page, tmp_path, SLOW_FLOWS, "sweep")
    opens_from_bars(page, view, "lab-run")
    assert alerts == []


@pytest.mark.lab_extension  # the cell's output drawn by this checkout's renderer (cellrun.ts)
def test_a_bar_in_the_cell_timeline_opens_its_task_run(lab: Any, page: Any) -> None:
    open_notebook(page, lab, "bars.ipynb", SLOW_CELLS)
    widget = cell_widget(page, 2)
    wait_or_shot(page, in_state(page, widget, "Completed"), "bars-cell", timeout=90)
    opens_from_bars(page, widget, "cell")
    # The kernel found the bar's node: the map is selected in the DAG, as by its child list.
    assert widget.locator("g.labloom-node.labloom-selected").get_attribute("data-kind") == "map"


# A quick task run in a longer run: ping takes a millisecond of wait's 3 s, under a pixel, and
# wait starts at once after it, in the same lane: ping's widened bar lies over wait's start.
QUICK_FLOWS = '''
from labloom import flow, task

@task
def ping(x):
    return x

@task
def wait(x):
    import time
    time.sleep(3)
    return x

@flow(executor="threads")
def quick(folder: str):
    return wait(ping(1))
'''


@pytest.mark.lab_extension
def test_a_quick_task_runs_bar_is_wide_enough_to_see_and_click(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    view, alerts = run_tab_of(lab, page, tmp_path, QUICK_FLOWS, "quick")
    view.locator("button.labloom-timeline-toggle").click()
    chart = view.locator(".labloom-timeline[data-mode='bars']")
    ping = chart.locator(BARS).filter(has=page.locator("title", has_text=re.compile(r"^ping · ")))
    ping.wait_for(timeout=30_000)
    box = ping.bounding_box()
    assert box and box["width"] >= 3.9, box  # drawn MIN_BAR_PX wide, though it took ~1 ms
    assert re.search(r"· \d+ ms \(at", ping.locator("title").text_content() or "")  # its real time
    ping.click()
    title = view.locator(".labloom-panel-title")
    wait_or_shot(page, title.filter(has_text="ping · Completed"), "quick-bar", timeout=30)
    shot(page, "lab-run-timeline-quick-bar", view)
    # The next bar in its lane, under ping's widened one at its start, still opens its own.
    chart.locator(BARS).filter(has=page.locator("title", has_text=re.compile(r"^wait · "))).click()
    wait_or_shot(page, title.filter(has_text="wait · Completed"), "quick-next-bar", timeout=30)
    assert alerts == []
