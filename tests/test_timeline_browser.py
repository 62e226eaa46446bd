"""The run's timeline in a real JupyterLab (headless Chromium): in a Lab run tab (a run the real
`labloom` command made) and in a cell's live DAG widget, lanes and bars drawn by the one
renderer, coloured by state in the palette's shades (dag.css: the light theme's, then the dark
theme's once the user switches); a run too dense for bars is drawn as buckets.

Run with ``pytest -m browser``; screenshots land in test-artifacts/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cli_helpers import labloom, wait_for
from lab_helpers import (
    cell_widget,
    flows_folder,
    in_state,
    open_lab,
    open_notebook,
    open_run,
    shot,
    stored_runs,
    use_dark_theme,
    wait_or_shot,
)
from labloom.core.states import State
from labloom.notebook.widget.palette import light_marks
from test_lab_state_colours import timeline_colours, too_faint

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium")]

FLOWS = '''
import time
from labloom import allow_failure, flow, task

@task
def nap(i):
    time.sleep(0.05)  # bars with a length to draw
    if i % 4 == 3:
        raise ValueError(f"bad input {i}")
    return i

@task
def done(xs):
    return len(xs)

@flow(executor="threads")
def sweep(n: int = 16):
    return done(allow_failure(nap.map(range(n))))

@task
def tiny(i):
    return i

@flow(executor="threads")
def wide(n: int = 3200):
    return tiny.map(range(n))
'''

BARS = "svg g[aria-label='bar'] rect"


def coloured_by_state(chart: Any) -> dict[str, set[str]]:
    """Failed and Completed bars (and their key) in their own colours, the palette's (dag.css's
    light theme shades, which the static summary uses too)."""
    colours = timeline_colours(chart)
    marks = light_marks()
    assert {"Failed", "Completed"} <= set(colours), colours
    assert colours == {state: {marks[State(state)]} for state in colours}, colours
    return colours


@pytest.mark.lab_extension
def test_the_run_tab_shows_a_timeline_of_lanes_and_bars_by_state(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    failed = labloom(home, "run", "flows.py:sweep", cwd=work, LABLOOM_PROGRESS="0")
    assert failed.returncode in (0, 1), failed.stderr  # four naps fail; done runs anyway
    wide = labloom(home, "run", "flows.py:wide", cwd=work, timeout=300, LABLOOM_PROGRESS="0")
    assert wide.returncode == 0, wide.stderr
    [run] = stored_runs(home, "sweep")
    [dense] = stored_runs(home, "wide")
    panel, alerts = open_lab(page, url)

    view = open_run(page, panel, run.id)
    view.locator("g.labloom-node").first.wait_for(timeout=30_000)
    view.locator("button.labloom-timeline-toggle").click()
    chart = view.locator(".labloom-timeline[data-mode='bars']")
    chart.locator(BARS).nth(16).wait_for(timeout=20_000)
    assert chart.locator(BARS).count() == 17  # sixteen naps and done
    lanes = int(chart.get_attribute("data-lanes") or 0)
    assert 1 <= lanes <= 17
    coloured_by_state(chart)
    summary = chart.locator(".labloom-timeline-summary").inner_text()
    assert summary.startswith("17 task runs on ") and "lane" in summary
    # Each bar names its task run on hover.
    titles = chart.locator(f"{BARS} > title").evaluate_all("ts => ts.map(t => t.textContent)")
    assert any(t.startswith("nap[3] · Failed") for t in titles), titles[:5]
    shot(page, "lab-run-timeline", view)

    # 3,201 task runs: more than bars, so each lane is drawn as buckets of busy time.
    tab = open_run(page, panel, dense.id)
    tab.locator("g.labloom-node").first.wait_for(timeout=30_000)
    tab.locator("button.labloom-timeline-toggle").click()
    buckets = tab.locator(".labloom-timeline[data-mode='buckets']")
    buckets.locator(BARS).first.wait_for(timeout=30_000)
    assert buckets.get_attribute("data-total") == "3200"
    assert 0 < buckets.locator(BARS).count() <= 6000
    assert "grouped in" in buckets.locator(".labloom-timeline-summary").inner_text()
    shot(page, "lab-run-timeline-buckets", tab)
    # Hiding it again stops asking.
    tab.locator("button.labloom-timeline-toggle").click()
    assert buckets.is_hidden()
    assert alerts == []


CELLS = [
    "%load_ext labloom",
    '''%%tasks
import time

def step(x):
    time.sleep(0.05)  # bars with a length to draw
    if x == 2:
        raise ValueError("bad step")
    return x
''',
    """%%flow parts --executor threads
results = step.map(range(8))
""",
]


@pytest.mark.lab_extension  # the cell's output drawn by this checkout's renderer (cellrun.ts)
def test_the_cell_widget_shows_the_same_timeline(lab: Any, page: Any) -> None:
    open_notebook(page, lab, "timeline.ipynb", CELLS)
    widget = cell_widget(page, 2)
    in_state(page, widget, "Failed").wait_for(timeout=90_000)
    widget.locator("button.labloom-timeline-toggle").click()
    chart = widget.locator(".labloom-timeline[data-mode='bars']")
    wait_or_shot(page, chart.locator(BARS).nth(7), "failed-cell-timeline", timeout=20)
    assert chart.locator(BARS).count() == 8
    light = coloured_by_state(chart)
    assert int(chart.get_attribute("data-lanes") or 0) >= 1
    assert chart.locator(".labloom-timeline-summary").inner_text().startswith("8 task runs on")
    shot(page, "cell-timeline", page.locator(".jp-CodeCell").nth(2))
    # On the dark theme the bars take its shades, without a redraw, and read on its background.
    use_dark_theme(page)
    wait_for(lambda: timeline_colours(chart) != light, 20, "the dark theme's bar colours")
    low = {what: shown for what, shown in too_faint(widget).items() if what.startswith("timeline")}
    assert low == {}, low
    shot(page, "cell-timeline-dark", page.locator(".jp-CodeCell").nth(2))
