"""A notebook saved in a real JupyterLab while its `%%flow` run still goes (or once its kernel
was killed outright, mid-run), exported by the real `jupyter nbconvert`, and the page opened
with no network: it shows the run's tasks in the states they had, as a Dask or Prefect notebook
shows its last printed progress.

Before, the saved output held the widget view until the run was over (exported blank offline,
or as a widget manager fetched from a CDN when Lab saved the widgets' state) beside the summary
drawn as the run started ("none yet"). labloom's Lab extension now tells the kernel it draws the
live widget from labloom's type (js/src/cellrun.ts), and the kernel's output drops the widget
view and keeps its summary current (notebook/widget/anywidget.py, ``SUMMARY_EVERY``).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import wait_for
from lab_helpers import (
    cell_widget,
    open_notebook,
    shot,
    stored_runs,
    wait_for_idle_kernel,
    wait_or_shot,
)
from test_widget_export import RUN_MIME, WIDGET_VIEW, shown_task_names
from test_widget_export_browser import exported_offline
from test_widget_reopen_browser import whole_notebook

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium"), pytest.mark.lab_extension]


def cells(start: Path, gate: Path) -> list[str]:
    return [
        "%load_ext labloom",
        f'''%%tasks
import pathlib, time
def first(x):
    while not pathlib.Path({str(start)!r}).exists():  # shown first, then done
        time.sleep(0.05)
    return x
def held(x):
    while not pathlib.Path({str(gate)!r}).exists():  # the test lets it end
        time.sleep(0.05)
    return x
''',
        "%%flow midrun --executor threads\none = first(1)\ntwo = held(one)\n",
    ]


def saved_midrun(page: Any, path: Path) -> dict[str, Any] | None:
    """Save, and the flow cell's saved run output once it shows ``first`` done, ``held``
    running (None before: saved again at the next look)."""
    page.keyboard.press("Control+s")
    nb = whole_notebook(path)
    if not nb:
        return None
    shown = [o["data"] for o in nb["cells"][2].get("outputs", [])
             if RUN_MIME in o.get("data", {})]
    html = "".join(shown[0].get("text/html", "")) if shown else ""
    first = html.find('<td>first</td>')
    held = html.find('<td>held</td>')
    if first < 0 or held < 0:
        return None
    done = 'data-state="Completed"' in html[first:held]
    return shown[0] if done and 'data-state="Running"' in html[held:] else None


@pytest.mark.parametrize("kernel", ["running", "killed"])
def test_a_notebook_saved_while_its_run_goes_exports_its_tasks_states(
    lab: Any, page: Any, tmp_path: Path, kernel: str
) -> None:
    _url, folder = lab
    start, gate = tmp_path / "start", tmp_path / "gate"
    try:
        open_notebook(page, lab, "midrun.ipynb", cells(start, gate))
        live = cell_widget(page, 2)
        # The output first drawn with ``first`` running: what it holds later is a refresh.
        wait_or_shot(page, live.locator('g.labloom-node[data-state="Running"]'),
                     "failed-midrun-start", timeout=90)
        start.touch()
        wait_or_shot(page, live.locator('g.labloom-node[data-state="Completed"]'),
                     "failed-midrun-live", timeout=60)
        path = folder / "midrun.ipynb"
        # Before: the saved summary stayed the first drawn (``first`` Running), beside the
        # widget view.
        data = wait_for(lambda: saved_midrun(page, path), 60,
                        "the notebook saved mid-run with its tasks' states")
        assert WIDGET_VIEW not in data
        assert not gate.exists()  # saved while the run still went
        if kernel == "killed":  # outright: no exit hook draws a last frame
            [run] = stored_runs(tmp_path / "labloom", "midrun")
            os.kill(int(run.pid), signal.SIGKILL)
            cell = page.locator(".jp-CodeCell").nth(2)
            # Lab's widget model is no longer live: the cell draws the run from the store.
            cell.locator(".labloom-CellRun").wait_for(timeout=60_000)
            data = wait_for(lambda: saved_midrun(page, path), 60, "saved after the kill")
            assert WIDGET_VIEW not in data

        with exported_offline(page, path) as (exported, html):
            assert shown_task_names(exported, html, 2) == ["first", "held"]
            rows = exported.locator(".jp-Cell").nth(2).locator(".labloom-summary tbody tr")
            states = [rows.nth(i).locator(".labloom-state").get_attribute("data-state")
                      for i in range(rows.count())]
            assert states == ["Completed", "Running"], states
            shot(exported, f"export-saved-midrun-{kernel}", exported.locator(".jp-Cell").nth(2))
        if kernel == "running":
            # In Lab the cell still shows the live widget (not redrawn by each refresh),
            # which draws the run's end.
            gate.touch()
            wait_or_shot(page, live.locator('g.labloom-node[data-state="Completed"]').nth(1),
                         "failed-midrun-end", timeout=60)
            wait_for_idle_kernel(page)
            assert page.locator(".jp-CodeCell").nth(2).locator(".labloom-CellRun").count() == 0
    finally:
        start.touch()
        gate.touch()
