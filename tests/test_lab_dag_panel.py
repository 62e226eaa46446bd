"""The DAG's panel in a real JupyterLab (headless Chromium), in a notebook cell and in the Lab
run tab of the same run: the Experiments rows in one order in both (by index: the run tab
listed them in the order they were logged), an empty log saying so, Escape closing the
innermost thing open, and a Failed row's state legible on the light theme's hover grey.

Run with ``pytest -m browser``; screenshots land in test-artifacts/.
"""

from __future__ import annotations

from typing import Any

import pytest

from lab_helpers import cell_widget, click_flows_icon, in_state, open_notebook, open_run, shot

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium")]

# Child i logs only once child i+1 has: the children log in the order 3, 2, 1, 0 (the store's),
# while the kernel lists them by index. Child 0 fails after logging. No print: no log lines.
TASKS = '''
import threading
from labloom import log_metrics, log_params

LOGGED = [threading.Event() for _ in range(5)]
LOGGED[4].set()

def train(i):
    LOGGED[i + 1].wait(60)  # the deadline only keeps a broken test from hanging
    log_params(i=i)
    log_metrics(auc=i / 10)
    LOGGED[i].set()
    if i == 0:
        raise ValueError("diverged")
    return i
'''

# The index column's texts in the order the rows are drawn (each row sits at its `top`).
INDEXES_SHOWN = """view => Array.from(view.querySelectorAll('.labloom-exp-row[data-task-run-id]'))
  .sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))
  .map(row => row.querySelector("[data-column='map_index']").textContent)"""

COLOURS = """cell => {
  let e = cell, under = 'rgb(255, 255, 255)';
  for (; e; e = e.parentElement) {
    const c = getComputedStyle(e).backgroundColor;
    if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') { under = c; break; }
  }
  return [getComputedStyle(cell).color, under];
}"""


def open_map_experiments(host: Any) -> Any:
    """The map node's Experiments view in ``host`` (a cell's widget or a run tab)."""
    host.locator("g.labloom-node[data-kind='map']").click(timeout=90_000)
    host.locator("button.labloom-experiments-open").click()
    view = host.locator(".labloom-experiments")
    view.locator(".labloom-exp-row[data-task-run-id]").nth(3).wait_for(timeout=30_000)
    return view


def check_panel(page: Any, host: Any, view: Any) -> None:
    """The failed child's row: legible when focused, its empty log said, then Escape twice."""
    from test_lab_panel import contrast

    failed = view.locator(".labloom-exp-row[data-state='Failed']")
    failed.click()
    panel = host.locator(".labloom-panel")
    panel.locator(".labloom-traceback", has_text="diverged").wait_for(timeout=20_000)
    # The row keeps the focus, on the hover grey: the red state read 4.2 to 1 there.
    failed.hover()
    text, under = failed.locator("[data-column='state']").evaluate(COLOURS)
    assert contrast(text, under) >= 4.5, (text, under)
    # An empty log area said nothing at all.
    empty = panel.locator(".labloom-log-empty")
    empty.wait_for(timeout=20_000)
    assert empty.text_content() == "no log lines"

    # Escape closes the innermost thing open: the view holding the focus, then the panel.
    failed.focus()
    page.keyboard.press("Escape")
    view.wait_for(state="hidden", timeout=10_000)
    assert panel.is_visible()
    page.keyboard.press("Escape")
    panel.wait_for(state="hidden", timeout=20_000)


@pytest.mark.lab_extension
def test_the_cell_and_the_run_tab_show_one_order_and_close_on_escape(
    lab: Any, page: Any
) -> None:
    cells = ["%load_ext labloom", "%%tasks\n" + TASKS,
             "%%flow sweep --executor threads\nresults = train.map(range(4))\n"]
    open_notebook(page, lab, "order.ipynb", cells)
    widget = cell_widget(page, 2)
    in_state(page, widget, "Failed").wait_for(timeout=90_000)
    run_id = widget.get_attribute("data-run-id")
    view = open_map_experiments(widget)
    in_cell = view.evaluate(INDEXES_SHOWN)
    assert in_cell == ["0", "1", "2", "3"], in_cell
    check_panel(page, widget, view)

    panel = click_flows_icon(page)
    tab = open_run(page, panel, run_id)
    view = open_map_experiments(tab)
    in_tab = view.evaluate(INDEXES_SHOWN)
    assert in_tab == in_cell, in_tab  # it read ['3', '2', '1', '0']: the logging order
    shot(page, "lab-run-tab-experiments-order", tab)
    check_panel(page, tab, view)
