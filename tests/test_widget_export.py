"""A `%%flow` cell's output in a notebook saved with its widgets' state, exported.

nbclient (and `jupyter nbconvert --execute`) store the widgets' state by default, as Lab does
with "Save Widget State Automatically". nbconvert's HTML then draws the widget view of every
model in that state, with a widget manager (and anywidget) fetched from a CDN: with no network
out, the page showed nothing at all where the DAG was. A finished run's output now holds no
widget view (the model id moves into labloom's type, for its Lab extension), so the export
shows the run's summary, offline too.

Real kernel (nbclient), the real `jupyter nbconvert`, and the page in headless Chromium with
every request but the file itself refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from lab_helpers import shot
from labloom.core.states import State
from test_summary_colours import browser  # noqa: F401  (fixture: a page in headless Chromium)
from widget_helpers import FakeRun, ManualClock, finished, small_flow, state

ROOT = Path(__file__).resolve().parents[1]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
RUN_MIME = "application/vnd.labloom.run+json"

CELLS = [
    "%load_ext labloom",
    '''%%tasks
import time

def train(p):
    return p * 2

def save_row(r):
    return r

def slow_step(x):
    time.sleep(1)  # still running when the cell shows its widget
    return x
''',
    "grid = list(range(4))",
    "%%flow sweep -p grid --executor threads\nresults = train.map(grid)\nsaved = save_row.map(results)\n",
    "%%flow slow --executor threads\nlate = slow_step(1)\n",
]


def flow_output(cell: Any) -> dict[str, Any]:
    [shown] = [o for o in cell.outputs if RUN_MIME in o.get("data", {})]
    return shown["data"]  # type: ignore[no-any-return]


def execute(cells: list[str], folder: Path, name: str) -> Path:
    """``cells`` run by a real kernel and saved as nbclient leaves them: widgets' state in."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    with pytest.MonkeyPatch.context() as env:  # the kernel nbclient starts inherits these
        env.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "src"),
                                                  os.environ.get("PYTHONPATH", "")]))
        env.setenv("LABLOOM_HOME", str(folder / "home"))
        client = NotebookClient(nb, timeout=240, kernel_name="python3",
                                resources={"metadata": {"path": str(folder)}})
        assert client.store_widget_state  # nbclient's default: what `--execute` does
        client.execute()
    path = folder / name
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return execute(CELLS, tmp_path_factory.mktemp("export"), "sweep.ipynb")


def export(notebook: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(notebook)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return notebook.with_suffix(".html").read_text()


def test_the_saved_output_of_a_finished_run_holds_no_widget_view(executed: Path) -> None:
    nb = nbformat.read(executed, as_version=4)
    saved_state = nb.metadata["widgets"][WIDGET_STATE]["state"]
    for cell in nb.cells[3:5]:
        data = flow_output(cell)
        model_id = data[RUN_MIME]["model_id"]
        # The widget's model is in the saved state: a widget view here would be drawn from it.
        assert saved_state[model_id]["model_name"] == "AnyModel"
        assert WIDGET_VIEW not in data, list(data)
        assert 'data-state="Completed"' in data["text/html"].split("</p>")[0]


def test_nbconvert_exports_the_summary_not_a_widget_view(executed: Path) -> None:
    html = export(executed)
    assert f'<script type="{WIDGET_VIEW}">' not in html
    assert html.count('class="labloom-dag-static"') == 2  # the DAG, drawn statically
    for name in ("train", "save_row", "slow_step"):
        assert f"<td>{name}</td>" in html


def offline(page: Any) -> list[str]:
    """Let ``page`` reach nothing but files, as on a machine with no network out; the
    addresses it refused."""
    refused: list[str] = []

    def refuse(route: Any) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", refuse)
    return refused


def shown_task_names(page: Any, html: Path, cell: int) -> list[str]:
    """The task names the exported page shows in code cell ``cell``'s run summary, the same in
    its drawing of the DAG and in its table (none where a widget view sits in their place)."""
    page.goto(html.as_uri(), wait_until="load")
    output = page.locator(".jp-Cell").nth(cell).locator(".jp-OutputArea")
    output.wait_for(timeout=30_000)
    assert output.locator(".jupyter-widgets").count() == 0, output.inner_html()
    summary = output.locator(".labloom-summary")
    drawn = summary.locator("svg.labloom-dag-static g[data-node-id] text:first-of-type")
    listed = summary.locator("tbody tr td:first-child")
    names = [[where.nth(i).text_content() for i in range(where.count())
              if where.nth(i).is_visible()] for where in (drawn, listed)]
    assert names[0] == names[1], names
    return names[1]


@pytest.mark.browser
@pytest.mark.needs("chromium")
def test_the_exported_page_shows_the_runs_tasks_with_no_network(
    executed: Path, browser: Any  # noqa: F811  (the fixture imported above)
) -> None:
    export(executed)
    refused = offline(browser)
    html = executed.with_suffix(".html")
    assert shown_task_names(browser, html, 3) == ["train", "save_row"]
    assert shown_task_names(browser, html, 4) == ["slow_step"]
    shot(browser, "export-offline", browser.locator(".jp-Cell").nth(4))
    # The page did try the network (nbconvert's page loads require.js from a CDN): the
    # summary showed without it.
    assert refused


def test_a_run_shown_running_leaves_its_widget_view_for_the_bundle_without(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from labloom.notebook.widget import widget_for

    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])  # see test_widget_anywidget
    InteractiveShell.instance()
    run, clock = FakeRun(), ManualClock()
    run.emit(*small_flow())
    widget = widget_for(run, clock=clock, schedule=clock.schedule, layout_engine="builtin")
    with capture_output() as captured:
        widget.show()
        run.emit(state("n-train-1", State.COMPLETED), finished(State.FAILED, 111.0))
        clock.advance(1)
    first, last = captured.outputs
    assert WIDGET_VIEW in first.data and "model_id" not in first.data[RUN_MIME]
    assert last.update and last.transient == first.transient
    assert WIDGET_VIEW not in last.data
    assert last.data[RUN_MIME] == {"run_id": run.id, "model_id": widget.model_id}
    assert 'data-state="Failed"' in last.data["text/html"].split("</p>")[0]
    widget.close()


def test_a_run_over_before_it_is_shown_leaves_no_widget_view_either(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A quick run ends before its widget is displayed, when there was no display to refresh
    yet: shown, it is refreshed at once."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from labloom.notebook.widget import widget_for

    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    InteractiveShell.instance()
    run, clock = FakeRun(), ManualClock()
    run.emit(*small_flow(), finished(State.COMPLETED, 111.0))
    widget = widget_for(run, clock=clock, schedule=clock.schedule, layout_engine="builtin")
    with capture_output() as captured:
        widget.show()
        clock.advance(1)
    first, last = captured.outputs
    assert WIDGET_VIEW in first.data  # what front ends without labloom's extension draw
    assert last.update and last.transient == first.transient
    assert WIDGET_VIEW not in last.data
    assert last.data[RUN_MIME] == {"run_id": run.id, "model_id": widget.model_id}
    assert 'data-state="Completed"' in last.data["text/html"].split("</p>")[0]
    widget.close()
