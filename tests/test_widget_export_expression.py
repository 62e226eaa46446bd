"""A run's widget shown as a cell's last expression (``run.widget()``), or given to
``display``, leaves what a `%%flow` output leaves once the run is over: the bundle without the
widget view. IPython showed such a widget from its ``_repr_mimebundle_`` and kept no display
handle, so the output held the widget view for good, and a notebook saved with its widgets'
state exported blank offline (test_widget_export.py tells why).

A real IPython; a real kernel (nbclient), the real `jupyter nbconvert`, and the exported page
in headless Chromium with every request but the file itself refused.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from labloom.core.states import State
from test_summary_colours import browser  # noqa: F401  (fixture: a page in headless Chromium)
from test_widget_export import (
    RUN_MIME,
    WIDGET_STATE,
    WIDGET_VIEW,
    execute,
    export,
    flow_output,
    offline,
    shown_task_names,
)
from widget_helpers import FakeRun, ManualClock, finished, small_flow, state

CELLS = [
    "%load_ext labloom",
    '''import time
from labloom import flow, task

@task
def train(p):
    return p * 2

@task
def slow_step(x):
    time.sleep(1)  # still running when the cell shows its widget
    return x

@flow
def sweep(grid):
    return train.map(grid)

@flow(executor="threads")
def slow():
    return slow_step(1)
''',
    "done = sweep.run(grid=[1, 2])\ndone.widget()",  # over before it is shown
    "going = slow.run(background=True)\nshown = going.widget()\nshown",  # shown running
    # The run ends while this cell runs, so nbclient hears the refresh of the cell above.
    '''going.wait()
deadline = time.monotonic() + 60
while not shown.view.finished and time.monotonic() < deadline:
    time.sleep(0.05)
shown.close()  # waits for the widget's timer: the refresh its last frame began is sent
''',
]


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return execute(CELLS, tmp_path_factory.mktemp("expression"), "expression.ipynb")


def test_a_widget_as_the_last_expression_leaves_no_widget_view(executed: Path) -> None:
    nb = nbformat.read(executed, as_version=4)
    saved_state = nb.metadata["widgets"][WIDGET_STATE]["state"]
    for cell in nb.cells[2:4]:
        data = flow_output(cell)
        assert WIDGET_VIEW not in data, list(data)
        # Its model is in the saved state: a widget view here would be drawn from it.
        assert saved_state[data[RUN_MIME]["model_id"]]["model_name"] == "AnyModel"
        assert 'data-state="Completed"' in data["text/html"].split("</p>")[0]


def test_nbconvert_exports_the_last_expressions_summary(executed: Path) -> None:
    html = export(executed)
    assert f'<script type="{WIDGET_VIEW}">' not in html
    assert html.count('class="labloom-dag-static"') == 2
    for name in ("train", "slow_step"):
        assert f"<td>{name}</td>" in html


@pytest.mark.browser
@pytest.mark.needs("chromium")
def test_the_exported_last_expression_shows_its_tasks_with_no_network(
    executed: Path, browser: Any  # noqa: F811  (the fixture imported above)
) -> None:
    export(executed)
    offline(browser)
    html = executed.with_suffix(".html")
    assert shown_task_names(browser, html, 2) == ["train"]
    assert shown_task_names(browser, html, 3) == ["slow_step"]


@pytest.fixture()
def shell(monkeypatch: pytest.MonkeyPatch) -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])  # see test_widget_anywidget
    return InteractiveShell.instance()


def test_the_last_expression_is_refreshed_when_the_run_ends(shell: Any) -> None:
    from IPython.utils.capture import capture_output

    from labloom.notebook.widget import widget_for

    run, clock = FakeRun(), ManualClock()
    run.emit(*small_flow())
    widget = widget_for(run, clock=clock, schedule=clock.schedule, layout_engine="builtin")
    shell.user_ns["widget"] = widget
    with capture_output() as captured:
        shell.run_cell("widget", store_history=True)  # as the cell's last expression
        shell.run_cell("display(widget)")  # shown again: both outputs are refreshed
        run.emit(state("n-train-1", State.COMPLETED), finished(State.FAILED, 111.0))
        clock.advance(1)
    first, second, *updates = captured.outputs
    for shown in (first, second):
        assert WIDGET_VIEW in shown.data and not shown.update  # draws the run live
    assert sorted(u.transient["display_id"] for u in updates) == sorted(
        s.transient["display_id"] for s in (first, second))
    for update in updates:
        assert update.update and WIDGET_VIEW not in update.data
        assert update.data[RUN_MIME] == {"run_id": run.id, "model_id": widget.model_id}
        assert 'data-state="Failed"' in update.data["text/html"].split("</p>")[0]
    widget.close()


def test_a_run_over_before_its_last_expression_is_refreshed_in_that_cell(shell: Any) -> None:
    """No frame yet (the widget's timer has not fired): the last one is drawn at once, not
    after the cell is over, when nbclient no longer listens."""
    from IPython.utils.capture import capture_output

    from labloom.notebook.widget import widget_for

    run, clock = FakeRun(), ManualClock()
    run.emit(*small_flow(), finished(State.COMPLETED, 111.0))
    widget = widget_for(run, clock=clock, schedule=clock.schedule, layout_engine="builtin")
    shell.user_ns["widget"] = widget
    with capture_output() as captured:
        shell.run_cell("widget", store_history=True)
    first, last = captured.outputs  # no clock advanced: the widget's timer never fired
    assert WIDGET_VIEW in first.data
    assert last.update and last.transient == first.transient
    assert WIDGET_VIEW not in last.data
    assert 'data-state="Completed"' in last.data["text/html"].split("</p>")[0]
    widget.close()
