"""A real JupyterLab in headless Chromium: the live DAG, its logs, tracebacks and Cancel; its
panel across the redraws of a running map's bar and children and of the output at the run's end.

Run with ``pytest -m browser``. The test starts JupyterLab on loopback with a random token and
every Jupyter/IPython/labloom folder in tmp, drives it with Playwright, and stops it again. Lab
loads labloom's extensions, as `pip install labloom` gives them: the widget is drawn through
the extension's renderer of a cell's run (js/src/cellrun.ts), as users see it.
"""

from __future__ import annotations

from typing import Any

import pytest

from lab_helpers import (
    cell_widget,
    in_state,
    open_notebook,
    shot,
    wait_for_idle_kernel,
    wait_or_shot,
)

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium"), pytest.mark.lab_extension]

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
    time.sleep(2)  # 300 of them (100 s on 6 threads): still running when the test clicks Cancel
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
many = slow.map(range(300))
""",
]


def node(widget: Any, node_id: str) -> Any:
    # Node ids follow creation order in the flow body: n0, n1, ...
    return widget.locator(f'g.labloom-node[data-node-id="{node_id}"]')


def test_live_dag_logs_traceback_and_cancel(lab: Any, page: Any) -> None:
    open_notebook(page, lab, "dag.ipynb", CELLS)

    good = cell_widget(page, 2)
    wait_or_shot(page, in_state(page, good, "Completed"), "failed-first-flow", timeout=60)
    states = good.locator("g.labloom-node").evaluate_all(
        "nodes => nodes.map(n => n.getAttribute('data-state'))"
    )
    assert states and all(state == "Completed" for state in states), states
    assert good.locator('g.labloom-node[data-kind="map"]').count() == 1

    failing = cell_widget(page, 3)
    wait_or_shot(page, in_state(page, failing, "Failed"), "failed-second-flow", timeout=60)

    # The last cell is still running: Cancel must reach the kernel while it is busy.
    stoppable = cell_widget(page, 4)
    in_state(page, stoppable, "Running").wait_for(timeout=60_000)
    stoppable.locator("button.labloom-cancel").click()
    in_state(page, stoppable, "Cancelled").wait_for(timeout=30_000)
    page.locator(".jp-CodeCell").nth(4).get_by_text("RunCancelledError").first.wait_for(
        timeout=30_000
    )
    wait_for_idle_kernel(page, timeout=60)

    node(good, "n1").click()  # one = step(1)
    good.locator(".labloom-panel .labloom-log-line", has_text="log line 1").wait_for(
        timeout=20_000
    )
    shot(page, "dag-logs", page.locator(".jp-CodeCell").nth(2))

    node(failing, "n0").click()
    traceback = failing.locator("pre.labloom-traceback")
    traceback.filter(has_text="kaboom from explode").wait_for(timeout=20_000)
    assert "ValueError" in (traceback.text_content() or "")
    shot(page, "dag-traceback", page.locator(".jp-CodeCell").nth(3))
    shot(page, "notebook")


def test_the_cell_widget_says_nothing_in_the_browser_console(lab: Any, page: Any) -> None:
    """Every widget shown made anywidget warn in the console ("Deprecation Warning ... Direct
    export of a 'render' will likely be deprecated"): the module exported its renderer by
    name besides its default export. A user reading the console for their own errors saw it."""
    said: list[str] = []
    page.on("console", lambda message: said.append(f"{message.type}: {message.text}"))
    open_notebook(page, lab, "quiet.ipynb", CELLS[:3])
    widget = cell_widget(page, 2)
    wait_or_shot(page, in_state(page, widget, "Completed"), "failed-quiet-flow", timeout=90)
    wait_for_idle_kernel(page, timeout=60)
    ours = [text for text in said if "[anywidget]" in text or "labloom" in text.lower()]
    assert not ours, ours


def test_notebook_7_shows_the_live_dag(lab: Any, page: Any) -> None:
    """The same widget in Notebook 7's interface (served by the same Jupyter server)."""
    open_notebook(page, lab, "nb7.ipynb", CELLS[:3], notebook_7=True)
    widget = cell_widget(page, 2)
    try:
        in_state(page, widget, "Completed").wait_for(timeout=90_000)
    except Exception as error:
        shot(page, "failed-notebook7")
        # CI keeps no screenshot: say what the notebook showed (its text content: cells out of
        # view are not laid out, and have no innerText).
        shown = (page.locator(".jp-Notebook").text_content() or "")[-2000:]
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
    open_notebook(page, lab, "links.ipynb", LINK_CELLS)
    try:
        for index in (2, 3, 4):
            in_state(page, cell_widget(page, index), "Completed").wait_for(timeout=60_000)
        good = cell_widget(page, 4).locator("a.labloom-dashboard")
        good.wait_for(state="visible", timeout=20_000)
    except Exception:
        shot(page, "failed-dashboard-links")
        raise
    assert good.get_attribute("href") == "http://127.0.0.1:8787/status"
    assert (good.get_attribute("target"), good.get_attribute("rel")) == ("_blank", "noopener")
    # It reads as a link, in the theme's link colour: it was the header's black text.
    look = good.evaluate("""a => {
        const probe = document.createElement('span');
        probe.style.color = 'var(--jp-content-link-color)';
        a.parentNode.append(probe);
        const link = getComputedStyle(probe).color;
        probe.remove();
        const s = getComputedStyle(a);
        return [s.color === link, s.color !== getComputedStyle(a.parentNode).color,
                s.textDecorationLine, s.cursor];
    }""")
    assert look == [True, True, "underline", "pointer"], look
    for index in (2, 3):
        link = cell_widget(page, index).locator("a.labloom-dashboard")
        assert link.is_hidden() and link.get_attribute("href") is None, index


GATED_TASKS = '''%%tasks
import os, time

NODE_GATE = MAP_GATE = END_GATE = ""  # files the test writes when it is ready (set by it)

def wait_for(gate):
    # The deadline only keeps a broken test from hanging.
    deadline = time.monotonic() + 120
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.02)

def part(i):
    if i in (1, 2):
        wait_for(NODE_GATE if i == 1 else MAP_GATE)
    return i

def last():
    print("waiting for the end")
    wait_for(END_GATE)
    raise ValueError("kaboom at the end")
'''


def press_across_an_update(page: Any, target: Any, update: Any) -> None:
    """Press on ``target``, call ``update`` (which waits until the kernel's update is drawn),
    release: a click only if the element pressed stayed in the page."""
    box = target.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    # Nothing over the target.
    assert target.evaluate("(el, [x, y]) => el.contains(document.elementFromPoint(x, y))", [x, y])
    page.mouse.move(x, y)
    page.mouse.down()
    update()
    page.mouse.up()


def test_the_panel_keeps_a_click_and_its_task_run_across_redraws(lab: Any, page: Any) -> None:
    gates = [lab[1] / f"{name}-gate" for name in ("node", "map", "end")]
    node_gate, map_gate, end_gate = gates
    tasks = GATED_TASKS.replace(
        'NODE_GATE = MAP_GATE = END_GATE = ""',
        f"NODE_GATE, MAP_GATE, END_GATE = {tuple(str(gate) for gate in gates)!r}")
    flow = "%%flow gated --executor threads\nparts = part.map(range(4))\nend = last()\n"
    open_notebook(page, lab, "redraws.ipynb", ["%load_ext labloom", tasks, flow])
    widget = cell_widget(page, 2)

    # A running map's progress bar is updated with its node's states (up to ten times a second).
    # A press on it, an update (child 1 done), the release: the map's panel opens.
    running = widget.locator("g.labloom-node[data-node-id='n0'][data-done='2']")
    wait_or_shot(page, running, "failed-map-running", timeout=90)
    bar = running.locator(".labloom-progress-part[data-state='Completed']")

    def node_goes_on() -> None:
        node_gate.touch()
        widget.locator("g.labloom-node[data-node-id='n0'][data-done='3']").wait_for(timeout=30_000)

    press_across_an_update(page, bar, node_goes_on)
    widget.locator(".labloom-panel[data-selected-node='n0']").wait_for(timeout=20_000)

    # Its children: the kernel sends the list again whenever one changes. A press on a child,
    # the list sent again (child 2 done), the release: the child's panel opens.
    child = lambda index, state: in_state(  # noqa: E731
        page, widget.locator(f".labloom-child[data-index='{index}']"), state)
    for index in (0, 1, 3):
        wait_or_shot(page, child(index, "Completed"), "failed-children", timeout=60)
    child(2, "Running").wait_for(timeout=30_000)
    first = child(0, "Completed")
    picked = first.get_attribute("data-task-run-id")

    def map_goes_on() -> None:
        map_gate.touch()
        child(2, "Completed").wait_for(timeout=30_000)

    press_across_an_update(page, first, map_goes_on)
    widget.locator(f".labloom-panel[data-task-run-id='{picked}']").wait_for(timeout=20_000)

    # A task's logs open while it runs; the run ends (the task fails): the panel still shows
    # that task run, in its final state. The output's refreshes (its summary, its end) leave
    # the live widget drawn (js/src/cellrun.ts; before session 54 the end drew it again, and
    # the new drawing asked the kernel what was selected: RunView.resend_selection).
    node(widget, "n1").click()
    panel = widget.locator(".labloom-panel")
    panel.locator(".labloom-log-line", has_text="waiting for the end").wait_for(timeout=20_000)
    followed = panel.get_attribute("data-task-run-id")
    assert followed and followed != picked
    assert panel.locator(".labloom-panel-title").get_attribute("data-state") == "Running"
    widget.evaluate("el => el.setAttribute('data-drawn-while-running', '')")
    end_gate.touch()
    drawn = page.locator(".jp-CodeCell").nth(2).locator(
        ".labloom-widget[data-drawn-while-running]")
    wait_or_shot(page, in_state(page, drawn, "Failed"), "failed-redrawn", timeout=60)
    wait_for_idle_kernel(page)  # the run's end refreshed the output: still the same drawing
    assert page.locator(".jp-CodeCell").nth(2).locator(".labloom-widget").count() == 1
    assert drawn.count() == 1
    shown = drawn.locator(f".labloom-panel[data-task-run-id='{followed}']")
    wait_or_shot(page, shown.locator(".labloom-traceback", has_text="kaboom at the end"),
                 "failed-panel-after-the-end", timeout=20)
    assert shown.locator(".labloom-panel-title").get_attribute("data-state") == "Failed"
    shown.locator(".labloom-log-line", has_text="waiting for the end").wait_for(timeout=5_000)
    shot(page, "dag-panel-after-the-end", page.locator(".jp-CodeCell").nth(2))


RETRY_CELLS = [
    "%load_ext labloom",
    '''%%tasks
def fetch():
    raise ConnectionError("the export is not there yet")
''',
    "%%flow nightly --retries 1 --retry-delay 600 --background\nfetch()",
]


def test_the_cell_says_a_run_waits_for_its_next_attempt(lab: Any, page: Any) -> None:
    # Through a flow retry's delay the cell showed a bare "Running" (the message was in the
    # store, the panel and the run tab, not the cell).
    open_notebook(page, lab, "retrying.ipynb", RETRY_CELLS)
    widget = cell_widget(page, 2)
    note = widget.locator(".labloom-run-message")
    wait_or_shot(page, note.filter(has_text="attempt 2 starts in 600s"), "failed-retry-note",
                 timeout=60)
    assert "attempt 1 of 2 failed" in (note.text_content() or "")
    assert in_state(page, widget, "Running").count() == 1
    widget.locator("button.labloom-cancel").click()
    in_state(page, widget, "Cancelled").wait_for(timeout=30_000)
    assert note.is_hidden()
