"""Children that left their map (``TaskRunLeftMap``) in a real JupyterLab (headless Chromium):
the flow's retry maps over one item of three, and the run's timeline, in a Lab run tab (a run
the real `labloom` command made) and in a cell's live DAG widget (the one renderer,
js/src/timeline.js), keeps the two cut-off children's bars, faded and saying they left; past
3,000 task runs, its buckets count them apart. The DAG panel open on a child as it leaves (in
the run tab, in the cell) says it left its map, and why (js/src/paneltitle.js).

Run with ``pytest -m browser``; screenshots land in test-artifacts/.
"""

from __future__ import annotations

import re
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
    start_run,
    stored_runs,
    wait_for_run,
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
# The same, its first body held (until a file ``go`` shows) once its three children completed:
# the test opens fit[2]'s panel meanwhile.
HELD_BODY = BODY.replace("    fits.result()\n", """    fits.result()
    import time
    while not path.with_name("go").exists():
        time.sleep(0.1)
""")

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

@flow(executor="threads", retries=1)
def held(folder: str = "."):  # started by start_run, in the work folder
    path = Path(folder) / "held"
{textwrap.indent(HELD_BODY, "    ")}    return fits

@task
def tiny(i):
    return i

@flow(executor="threads", retries=1)
def wide(folder: str):
    # 3,200 tiny children, then 3,000: past the timeline's 3,000 bars, 200 of them left.
    path = Path(folder) / "wide"
    first = not path.exists()
    path.touch()
    parts = tiny.map(range(3200 if first else 3000))
    if first:
        parts.result()
        raise RuntimeError("first body")
    return len(parts)
"""
WHY = "Left fit: the flow body ran again at the flow's retry 1 (attempt 2 of 2) and mapped it over 1 item."

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


def ran(home: Path, work: Path, flow: str) -> Any:
    """``labloom run flows.py:FLOW --param folder=WORK``, ended well: its run in the store."""
    done = labloom(home, "run", f"flows.py:{flow}", "--param", f"folder={work}", cwd=work,
                   LABLOOM_PROGRESS="0", timeout=300)
    assert done.returncode == 0, done.stderr
    [run] = stored_runs(home, flow)
    return run


def ended_run_tab(page: Any, panel: Any, run: Any) -> Any:
    """The run tab of ``run``, opened from the Flows panel, once it has drawn its DAG."""
    view = open_run(page, panel, run.id)
    in_state(page, view.locator("g.labloom-node"), "Completed").first.wait_for(timeout=30_000)
    return view


def run_tab_of(lab: Any, page: Any, tmp_path: Path, source: str, flow: str) -> tuple[Any, list[str]]:
    """``labloom run`` of ``flow`` in ``source`` as flows.py, then Lab and that run's tab, once
    it has drawn its DAG: the tab and the page's alerts (``open_lab``)."""
    home, work = flows_folder(tmp_path, source)
    run = ran(home, work, flow)
    panel, alerts = open_lab(page, lab[0])
    return ended_run_tab(page, panel, run), alerts


@pytest.mark.lab_extension
def test_the_run_tab_timeline_marks_children_that_left(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    view, alerts = run_tab_of(lab, page, tmp_path, FLOWS, "sweep")
    chart = check_timeline(view)
    shot(page, "lab-run-timeline-left-map", chart)
    assert alerts == []


def check_left_panel(page: Any, view: Any, go: Path) -> None:
    """Open the map's fit[2], let the held first body raise: its panel says it left, and why."""
    view.locator("g.labloom-node[data-kind='map']").click()
    view.locator(".labloom-child[data-index='2']").click()
    title = view.locator(".labloom-panel-title")
    wait_or_shot(page, title.filter(has_text="fit[2] · Completed"), "left-panel-open", timeout=30)
    note = view.locator(".labloom-left-map-note")
    assert note.is_hidden() and "left its map" not in title.inner_text()
    go.touch()
    wait_or_shot(page, title.filter(has_text="fit[2] · Completed · left its map"),
                 "left-panel-left", timeout=60)
    assert note.is_visible() and note.inner_text().startswith(WHY), note.inner_text()


@pytest.mark.lab_extension
def test_the_run_tab_says_a_child_left_in_its_panel_and_its_buckets(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    dense = ran(home, work, "wide")
    held = start_run(home, work, "held")
    try:
        panel, alerts = open_lab(page, url)
        tab = ended_run_tab(page, panel, dense)
        tab.locator("button.labloom-timeline-toggle").click()
        buckets = tab.locator(".labloom-timeline[data-mode='buckets']")
        buckets.locator(BARS).first.wait_for(timeout=30_000)
        assert buckets.get_attribute("data-total") == "3200"
        assert ("; 200 left their map (the faded part of a bucket: history, outside the map's "
                "counts).") in buckets.locator(".labloom-timeline-summary").inner_text()
        assert buckets.locator(".labloom-timeline-key-left").inner_text() == "left its map"
        left = buckets.locator(f"{BARS}[data-left-map]")
        assert left.count() > 0
        hover = left.first.locator("title").text_content() or ""
        assert re.search(r"(: |; )left their map: \d+ Completed; busy", hover), hover
        shot(page, "lab-run-timeline-buckets-left-map", tab)

        run = wait_for_run(home, "held")
        view = open_run(page, panel, run.id)
        check_left_panel(page, view, work / "go")
        shot(page, "lab-run-panel-left-map", view)
        assert alerts == []
    finally:
        (work / "go").touch()
        try:
            held.communicate(timeout=120)
        finally:
            held.kill()  # (when it did not end: a test that failed; else a no-op)


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


HELD_CELLS = [*CELLS[:2], "%%flow holding --executor threads --retries 1\nfrom pathlib import Path\n"
              f"path = Path('held')\n{HELD_BODY}"]


@pytest.mark.lab_extension
def test_the_cells_panel_says_a_child_left_its_map(lab: Any, page: Any) -> None:
    _url, notebooks = lab
    open_notebook(page, lab, "held.ipynb", HELD_CELLS)
    widget = cell_widget(page, 2)
    fits = widget.locator("g.labloom-node[data-kind='map']")
    wait_or_shot(page, in_state(page, fits, "Completed"), "held-cell", timeout=90)
    check_left_panel(page, widget, notebooks / "go")
    shot(page, "cell-panel-left-map", page.locator(".jp-CodeCell").nth(2))
