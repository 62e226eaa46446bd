"""A run's tab in Lab opened beside the notebook that ran it (headless Chromium): its DAG's
edges point at an arrow head of its own drawing, its Experiments view's group-by choices
read as choices and its filter's example shows whole. All were wrong as a user saw them (session 57's screenshots).

Run with ``pytest -m browser``.
"""

from __future__ import annotations

from typing import Any

import pytest

from lab_helpers import (
    cell_widget,
    click_flows_icon,
    in_state,
    open_notebook,
    run_row,
    wait_or_shot,
)

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium"), pytest.mark.lab_extension]

CELLS = [
    "%load_ext labloom",
    '''%%tasks
import labloom

def trial(i):
    labloom.log_params(max_depth=i, min_samples_leaf=i % 2, seed=i % 3)
    labloom.log_metrics(auc=i / 10)
    return i

def total(xs):
    return sum(xs)
''',
    "%%flow small --executor threads\ntotal(trial.map(range(4)))\n",
]

# Where each edge's marker-end points: the id, and whether that element sits in the same
# run tab (url(#id) takes the first element of the page with that id).
MARKERS = """(tab) => Array.from(tab.querySelectorAll('path.labloom-edge')).map((edge) => {
  const id = edge.getAttribute('marker-end').slice(5, -1);
  return [id, tab.contains(document.getElementById(id))];
})"""

# Per group-by choice after the first: the room between the name before it and its box, and
# between its box and its own name.
ROOM = """(group) => {
  const labels = Array.from(group.querySelectorAll('label'));
  const textBox = (label) => {
    const range = document.createRange();
    range.selectNodeContents(label.lastChild);
    const rects = Array.from(range.getClientRects()).filter((r) => r.width > 0);
    return { left: rects[0].left, right: rects[rects.length - 1].right };
  };
  return labels.slice(1).map((label, i) => {
    const box = label.querySelector('input').getBoundingClientRect();
    return [box.left - textBox(labels[i]).right, textBox(label).left - box.right];
  });
}"""


# The width of an input's placeholder as text in it, and the input's.
# (Typed in as its value, to be laid out in the input's own font, then taken out again.)
PLACEHOLDER = """(input) => {
  input.value = input.placeholder;
  const widths = [input.scrollWidth, input.clientWidth];
  input.value = '';
  return widths;
}"""


def test_a_run_tab_beside_the_notebook_that_ran_it(lab: Any, page: Any) -> None:
    open_notebook(page, lab, "small.ipynb", CELLS)
    widget = cell_widget(page, 2)
    wait_or_shot(page, in_state(page, widget, "Completed"), "beside-notebook-cell", timeout=90)
    # The cell's drawing (the cell widget's bundle) has its marker in the page.
    assert widget.locator("marker").count() == 1
    run_id = widget.get_attribute("data-run-id")
    panel = click_flows_icon(page)
    row = run_row(panel, run_id)
    wait_or_shot(page, row, "beside-notebook-row", timeout=60)
    row.click()
    tab = page.locator(f"#labloom-run-{run_id}")
    tab.locator("g.labloom-node").first.wait_for(timeout=30_000)
    # Attached, not "visible": a straight edge's box is zero pixels high.
    tab.locator("path.labloom-edge").first.wait_for(state="attached", timeout=30_000)
    markers = tab.evaluate(MARKERS)
    assert markers and all(inside for _, inside in markers), markers

    tab.locator("button.labloom-experiments-toggle").click()
    group = tab.locator(".labloom-exp-group")
    group.locator("label").nth(2).wait_for(timeout=30_000)
    room = group.evaluate(ROOM)
    assert len(room) == 2, room
    # A box nearer its own name than the name before it: read as that name's choice.
    assert all(between > 2 * own for between, own in room), room
    # The filter's example shows whole in the empty box ("filter: auc>0.9 criterion=gini wor"
    # was all a user saw of it): typed in, it would not scroll.
    text, inside = tab.locator("input.labloom-exp-filter").evaluate(PLACEHOLDER)
    assert text <= inside, (text, inside)
