"""A `%%flow` cell's output after the notebook is saved and opened again with a new kernel (the
next morning): what JupyterLab shows in it, in a real Lab with labloom's extensions, in
headless Chromium.

The saved output holds the widget's model id, which no new kernel knows: jupyterlab-manager's
renderer would say "Error displaying widget: model not found". labloom's Lab extension draws the
run from the store instead (as its run tab does, with a button that opens the tab), the saved
summary with a clear line when the store no longer holds the run, and the live widget whenever
its model exists.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import labloom, wait_for
from lab_helpers import (
    cell_widget,
    in_state,
    open_notebook,
    run_all_cells,
    shot,
    stored_runs,
    wait_for_idle_kernel,
    wait_in_page,
    wait_or_shot,
)

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium"), pytest.mark.lab_extension]

RUN_MIME = "application/vnd.labloom.run+json"
CELLS = [
    "%load_ext labloom",
    '''%%tasks
def step(x):
    print(f"log line {x}")
    return x
''',
    "%%flow morning --executor threads\none = step(1)\ntwo = step(one)\n",
]


def saved_output(path: Path) -> dict[str, Any]:
    """The flow cell's saved run output ({} before the notebook is saved with one). A finished
    run's holds no widget view (test_widget_export.py): its model id is in labloom's type."""
    cells = wait_for(lambda: whole_notebook(path), 30, f"{path.name} read whole")["cells"]
    shown = [o for o in cells[2]["outputs"] if RUN_MIME in o.get("data", {})]
    return shown[0] if shown else {}


def whole_notebook(path: Path) -> dict[str, Any] | None:
    """The notebook as saved; None while Lab is saving it: Jupyter writes the file in place
    (its old copy kept aside until the write ends), so a read may find it cut short."""
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except json.JSONDecodeError:
        return None


def save_widget_state(tmp_path: Path) -> None:
    """Settings > Save Widget State Automatically on, in the ``lab`` fixture's Lab."""
    settings = (tmp_path / "config" / "lab" / "user-settings" / "@jupyter-widgets"
                / "jupyterlab-manager" / "plugin.jupyterlab-settings")
    settings.parent.mkdir(parents=True)
    settings.write_text('{"saveState": true}')


def reopen(page: Any, url: str, name: str) -> Any:
    """What the user does the next morning: Lab opened again on the notebook, with a new kernel
    (the old one shut down). The flow cell's output area."""
    with urllib.request.urlopen(url.format("api/sessions")) as reply:
        sessions = json.load(reply)
    for session in sessions:
        request = urllib.request.Request(url.format(f"api/sessions/{session['id']}"),
                                         method="DELETE")
        urllib.request.urlopen(request).close()
    page.goto(url.format(f"lab/tree/{name}") + "&reset")
    wait_for_idle_kernel(page)
    return page.locator(".jp-CodeCell").nth(2).locator(".jp-OutputArea")


def test_a_reopened_notebook_shows_its_run_not_a_widget_error(lab: Any, page: Any) -> None:
    url, folder = lab
    open_notebook(page, lab, "reopen.ipynb", CELLS)
    live = cell_widget(page, 2)
    wait_or_shot(page, in_state(page, live, "Completed"), "failed-reopen-live", timeout=90)
    wait_for_idle_kernel(page)
    page.keyboard.press("Control+s")
    saved = wait_for(
        lambda: "Completed" in json.dumps(saved_output(folder / "reopen.ipynb"))
        and saved_output(folder / "reopen.ipynb"),
        30, "the notebook saved with its finished run",
    )
    assert "text/html" in saved["data"]  # nbconvert and GitHub show the summary
    home = folder.parent / "labloom"
    [run] = stored_runs(home, "morning")
    run_id = run.id

    # The next morning: the run's DAG from the store, where the error used to be.
    output = reopen(page, url, "reopen.ipynb")
    drawn = output.locator(f'.labloom-CellRun[data-run-id="{run_id}"]')
    wait_or_shot(page, drawn.or_(output.get_by_text("Error displaying widget")),
                 "failed-reopen-nothing", timeout=60)
    text = output.text_content() or ""
    assert "Error displaying widget" not in text and "model not found" not in text, text
    wait_or_shot(page, in_state(page, drawn.locator(".labloom-widget"), "Completed"),
                 "failed-reopen-from-store", timeout=60)
    assert drawn.locator("g.labloom-node").count() == 2
    # A node's logs come from the store, without the kernel that ran it.
    drawn.locator('g.labloom-node[data-node-id="n0"]').click()
    drawn.locator(".labloom-log-line", has_text="log line 1").wait_for(timeout=20_000)
    # Opening it changed nothing in the notebook: no "unsaved changes" on its tab.
    assert page.locator(".jp-mod-current.jp-mod-dirty").count() == 0
    shot(page, "reopened-run-from-store", page.locator(".jp-CodeCell").nth(2))
    drawn.get_by_role("button", name="Open in a tab").click()
    page.locator(f"#labloom-run-{run_id}").wait_for(timeout=20_000)

    # Run again in the new kernel: the live widget, answering from the kernel, as ever.
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="reopen.ipynb").click()
    run_all_cells(page)
    again = cell_widget(page, 2)
    wait_or_shot(page, in_state(page, again, "Completed"), "failed-rerun-live", timeout=90)
    assert page.locator(".jp-CodeCell").nth(2).locator(".labloom-CellRun").count() == 0
    again.locator('g.labloom-node[data-node-id="n1"]').click()
    again.locator(".labloom-log-line", has_text="log line 1").wait_for(timeout=20_000)

    # The page reloaded on the running kernel: the live widget again, once Lab's widget manager
    # has its model back from the kernel (the store's drawing may show until then).
    page.keyboard.press("Control+s")
    # Waited for as a whole: the output saved, and it is the second run's.
    saved = wait_for(lambda: (out := saved_output(folder / "reopen.ipynb"))
                     and run_id not in json.dumps(out) and out, 30, "the second run saved")
    second = saved["data"][RUN_MIME]
    second_id = second["run_id"]
    page.goto(url.format("lab/tree/reopen.ipynb") + "&reset")
    wait_for_idle_kernel(page)
    cell = page.locator(".jp-CodeCell").nth(2)
    back = cell.locator(".labloom-widget:not(.labloom-CellRun .labloom-widget)")
    wait_or_shot(page, in_state(page, back, "Completed"), "failed-reload-live", timeout=60)
    wait_in_page(page, lambda: cell.locator(".labloom-CellRun").count() == 0, 20,
                 "the store's drawing replaced by the live widget")
    # (n1 is selected still: the selection is the kernel's, and a click on it would close it)
    back.locator('g.labloom-node[data-node-id="n0"]').click()
    back.locator(".labloom-panel-title", has_text="step ·").wait_for(timeout=20_000)
    back.locator(".labloom-log-line", has_text="log line 1").wait_for(timeout=20_000)

    # The kernel restarted under the open notebook: the widget's model is closed with it.
    page.get_by_role("menuitem", name="Kernel", exact=True).click()
    page.get_by_text("Restart Kernel…", exact=True).click()
    accept = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
    wait_or_shot(page, accept, "failed-restart-dialog", timeout=30)
    accept.click()
    restarted = page.locator(".jp-CodeCell").nth(2).locator(
        f'.labloom-CellRun[data-run-id="{second_id}"]')
    wait_or_shot(page, in_state(page, restarted.locator(".labloom-widget"), "Completed"),
                 "failed-restart-from-store", timeout=60)
    wait_for_idle_kernel(page)

    # A run deleted from the store since: the saved summary, under a line that says why.
    deleted = labloom(home, "delete", second_id)
    assert deleted.returncode == 0, deleted
    output = reopen(page, url, "reopen.ipynb")
    gone = output.locator(".labloom-CellRun-missing")
    wait_or_shot(page, gone, "failed-reopen-deleted", timeout=60)
    assert second_id in (gone.text_content() or "")
    assert "not in labloom's store" in (gone.text_content() or "")
    output.locator(".labloom-summary").wait_for(timeout=10_000)  # the saved summary, below
    text = output.text_content() or ""
    assert "Error displaying widget" not in text and "model not found" not in text, text
    shot(page, "reopened-run-deleted", page.locator(".jp-CodeCell").nth(2))


def test_with_widget_state_saved_a_reopened_cell_draws_the_run_from_the_store(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    """Settings > Save Widget State Automatically: the saved notebook holds the widget's state,
    and jupyterlab-manager makes its model again from it, with no kernel behind it: a drawing
    whose clicks nobody answers. The run from the store instead, whose clicks the server does."""
    url, folder = lab
    save_widget_state(tmp_path)
    open_notebook(page, lab, "state.ipynb", CELLS)
    wait_or_shot(page, in_state(page, cell_widget(page, 2), "Completed"), "failed-state-live",
                 timeout=90)
    wait_for_idle_kernel(page)
    page.keyboard.press("Control+s")
    wait_for(lambda: "Completed" in json.dumps(saved_output(folder / "state.ipynb"))
             and "widget-state" in (folder / "state.ipynb").read_text(), 30,
             "the notebook saved with its widget state")
    output = reopen(page, url, "state.ipynb")
    drawn = output.locator(".labloom-CellRun")
    wait_or_shot(page, in_state(page, drawn.locator(".labloom-widget"), "Completed"),
                 "failed-state-from-store", timeout=60)
    drawn.locator('g.labloom-node[data-node-id="n0"]').click()
    drawn.locator(".labloom-log-line", has_text="log line 1").wait_for(timeout=20_000)
