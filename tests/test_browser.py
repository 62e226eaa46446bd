"""A real JupyterLab in headless Chromium: the live DAG, its logs, tracebacks and Cancel.

Run with ``pytest -m browser``. The test starts JupyterLab on loopback with a random token and
every Jupyter/IPython/labloom folder in tmp, drives it with Playwright, and stops it again.
"""

from __future__ import annotations

from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from lab_helpers import shot, wait_for_kernel_connected

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium")]

CELLS = [
    "%load_ext labloom",
    '''%%tasks
import time

def step(x):
    print(f"log line {x}")
    return x

def explode():
    print("about to fail")
    raise ValueError("kaboom from explode")

def slow(x):
    time.sleep(2)
    return x
''',
    """%%flow good
parts = step.map(range(3))
one = step(1)
both = step(one)
""",
    """%%flow failing --background
bad = explode()
""",
    """%%flow stoppable
many = slow.map(range(60))
""",
]


def widget_in_cell(page: Any, index: int) -> Any:
    return page.locator(".jp-CodeCell").nth(index).locator(".labloom-widget")


def node(widget: Any, node_id: str) -> Any:
    # Node ids follow creation order in the flow body: n0, n1, ...
    return widget.locator(f'g.labloom-node[data-node-id="{node_id}"]')


def test_live_dag_logs_traceback_and_cancel(lab: Any, page: Any) -> None:
    url, folder = lab
    nb = new_notebook(cells=[new_code_cell(src) for src in CELLS])
    nb.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"
    }
    nbformat.write(nb, folder / "dag.ipynb")

    page.goto(url.format("lab/tree/dag.ipynb") + "&reset")
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()

    good = widget_in_cell(page, 2)
    try:
        good.and_(page.locator('[data-state="Completed"]')).wait_for(timeout=60_000)
    except Exception:
        shot(page, "failed-first-flow")
        raise
    states = good.locator("g.labloom-node").evaluate_all(
        "nodes => nodes.map(n => n.getAttribute('data-state'))"
    )
    assert states and all(state == "Completed" for state in states), states
    assert good.locator('g.labloom-node[data-kind="map"]').count() == 1

    failing = widget_in_cell(page, 3)
    try:
        failing.and_(page.locator('[data-state="Failed"]')).wait_for(timeout=60_000)
    except Exception:
        shot(page, "failed-second-flow")
        raise

    # The last cell is still running: Cancel must reach the kernel while it is busy.
    stoppable = widget_in_cell(page, 4)
    stoppable.and_(page.locator('[data-state="Running"]')).wait_for(timeout=60_000)
    stoppable.locator("button.labloom-cancel").click()
    stoppable.and_(page.locator('[data-state="Cancelled"]')).wait_for(timeout=30_000)
    page.locator(".jp-CodeCell").nth(4).get_by_text("RunCancelledError").first.wait_for(
        timeout=30_000
    )
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)

    node(good, "n1").click()  # one = step(1)
    good.locator(".labloom-panel .labloom-log-line", has_text="log line 1").wait_for(
        timeout=20_000
    )
    shot(page, "dag-logs", page.locator(".jp-CodeCell").nth(2))

    node(failing, "n0").click()
    traceback = failing.locator("pre.labloom-traceback")
    traceback.filter(has_text="kaboom from explode").wait_for(timeout=20_000)
    assert "ValueError" in traceback.inner_text()
    shot(page, "dag-traceback", page.locator(".jp-CodeCell").nth(3))
    shot(page, "notebook")


def test_notebook_7_shows_the_live_dag(lab: Any, page: Any) -> None:
    """The same widget in Notebook 7's interface (served by the same Jupyter server)."""
    url, folder = lab
    nb = new_notebook(cells=[new_code_cell(src) for src in CELLS[:3]])
    nb.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"
    }
    nbformat.write(nb, folder / "nb7.ipynb")
    page.goto(url.format("notebooks/nb7.ipynb"))
    # Notebook 7 shows the kernel's state as a circle in its toolbar, not a status bar text.
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=90_000)
    wait_for_kernel_connected(url, "nb7.ipynb")
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    widget = page.locator(".jp-CodeCell").nth(2).locator(".labloom-widget")
    try:
        widget.and_(page.locator('[data-state="Completed"]')).wait_for(timeout=90_000)
    except Exception as error:
        shot(page, "failed-notebook7")
        # CI keeps no screenshot: say what the notebook showed.
        shown = page.locator(".jp-Notebook").inner_text()[-2000:]
        raise AssertionError(f"the flow did not complete; the notebook showed:\n{shown}") from error
    states = widget.locator("g.labloom-node").evaluate_all(
        "nodes => nodes.map(n => n.getAttribute('data-state'))"
    )
    assert len(states) == 3 and set(states) == {"Completed"}, states
    node(widget, "n1").click()
    widget.locator(".labloom-panel .labloom-log-line", has_text="log line 1").wait_for(
        timeout=20_000
    )
    shot(page, "notebook7")


LINK_CELLS = [
    "%load_ext labloom",
    '''import time
from labloom import flow, task

@task
def one():
    return 1

@flow(executor="local")
def tiny():
    return one()

run = tiny.run()

def shown_with(link):
    """The run's widget, its header's dashboard link set as if the store held ``link``."""
    w = run.widget()
    deadline = time.monotonic() + 30
    while w.header.get("state") != "Completed" and time.monotonic() < deadline:
        time.sleep(0.05)
        w.flush()
    w.header = {**w.header, "dashboard": link}
    return w
''',
    "shown_with(\"javascript:document.title='pwned'\")",
    "shown_with(' JavaScript:alert(1)')",
    'shown_with("http://127.0.0.1:8787/status")',
]


def test_the_widget_links_only_a_web_page_as_the_dashboard(lab: Any, page: Any) -> None:
    url, folder = lab
    nb = new_notebook(cells=[new_code_cell(src) for src in LINK_CELLS])
    nb.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"
    }
    nbformat.write(nb, folder / "links.ipynb")
    page.goto(url.format("lab/tree/links.ipynb") + "&reset")
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    try:
        for index in (2, 3, 4):
            widget_in_cell(page, index).and_(page.locator('[data-state="Completed"]')).wait_for(
                timeout=60_000
            )
        good = widget_in_cell(page, 4).locator("a.labloom-dashboard")
        good.wait_for(state="visible", timeout=20_000)
    except Exception:
        shot(page, "failed-dashboard-links")
        raise
    assert good.get_attribute("href") == "http://127.0.0.1:8787/status"
    for index in (2, 3):
        link = widget_in_cell(page, index).locator("a.labloom-dashboard")
        assert link.is_hidden() and link.get_attribute("href") is None, index
