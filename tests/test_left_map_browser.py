"""Children that left their map (``TaskRunLeftMap``) in a real JupyterLab (headless Chromium):
the flow's retry maps over one item of three, and the run's timeline, in a Lab run tab (a run
the real `labloom` command made) and in a cell's live DAG widget (the one renderer,
js/src/timeline.js), keeps the two cut-off children's bars, faded and saying they left.

Run with ``pytest -m browser``; screenshots land in test-artifacts/.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import labloom
from lab_helpers import (
    cell_widget,
    flows_folder,
    in_state,
    open_lab,
    open_notebook,
    open_run,
    shot,
    stored_runs,
    wait_or_shot,
)

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium")]

# Maps over three items, then raises; its second attempt maps over one (``path``: a counter).
BODY = """runs = int(path.read_text()) if path.exists() else 0
path.write_text(str(runs + 1))
fits = fit.map(range(3 if runs == 0 else 1))
if runs == 0:
    fits.result()
    raise RuntimeError("first body")
"""

FLOWS = f"""
from pathlib import Path
from labloom import flow, task

@task
def fit(x):
    return x

@flow(executor="threads", retries=1)
def sweep(folder: str):
    path = Path(folder) / "runs"
{textwrap.indent(BODY, "    ")}    return fits
"""

BARS = "svg g[aria-label='bar'] rect"
LEFT = "left their map (faded bars: history, outside the map's counts)"


def marked_bars(chart: Any) -> dict[str, bool]:
    """Each fit bar's hover text's first part, and whether it is drawn as one that left."""
    found = chart.locator(BARS).evaluate_all(
        "rs => rs.map(r => [r.querySelector('title').textContent,"
        " r.getAttribute('data-left-map') === 'true'])")
    return {title.split(" · ")[0]: left for title, left in found if title.startswith("fit[")}


def check_timeline(view: Any) -> Any:
    view.locator("button.labloom-timeline-toggle").click()
    chart = view.locator(".labloom-timeline[data-mode='bars']")
    chart.locator(BARS).nth(2).wait_for(timeout=30_000)
    assert marked_bars(chart) == {"fit[0]": False, "fit[1]": True, "fit[2]": True}
    titles = chart.locator(f"{BARS} > title").evaluate_all("ts => ts.map(t => t.textContent)")
    assert any(t.startswith("fit[1] · Completed · left its map") for t in titles), titles
    assert LEFT in chart.locator(".labloom-timeline-summary").inner_text()
    key = chart.locator(".labloom-timeline-key-left")
    assert key.inner_text() == "left its map"
    # Faded: the bar's fill is drawn at the stylesheet's opacity, the others' whole.
    opacity = chart.locator(f"{BARS}[data-left-map]").first.evaluate(
        "r => getComputedStyle(r).fillOpacity")
    assert float(opacity) < 1, opacity
    return chart


@pytest.mark.lab_extension
def test_the_run_tab_timeline_marks_children_that_left(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    done = labloom(home, "run", "flows.py:sweep", "--param", f"folder={work}", cwd=work,
                   LABLOOM_PROGRESS="0", timeout=120)
    assert done.returncode == 0, done.stderr
    [run] = stored_runs(home, "sweep")
    panel, alerts = open_lab(page, url)
    view = open_run(page, panel, run.id)
    in_state(page, view.locator("g.labloom-node"), "Completed").first.wait_for(timeout=30_000)
    chart = check_timeline(view)
    shot(page, "lab-run-timeline-left-map", chart)
    assert alerts == []


CELLS = [
    "%load_ext labloom",
    '''%%tasks
def fit(x):
    return x
''',
    "%%flow sweeping --executor threads --retries 1\nfrom pathlib import Path\n"
    f"path = Path('runs')\n{BODY}",
]


@pytest.mark.lab_extension  # the cell's output drawn by this checkout's renderer (cellrun.ts)
def test_the_cell_widget_timeline_marks_children_that_left(lab: Any, page: Any) -> None:
    open_notebook(page, lab, "left.ipynb", CELLS)  # (it waits for the idle kernel first)
    widget = cell_widget(page, 2)
    wait_or_shot(page, in_state(page, widget, "Completed"), "left-map-cell", timeout=90)
    chart = check_timeline(widget)
    shot(page, "cell-timeline-left-map", chart)
