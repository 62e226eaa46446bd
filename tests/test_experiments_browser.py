"""The Experiments view of one run in a real JupyterLab (headless Chromium), issue 19 item 2
and its looks: in a cell's live DAG (a map node opens it, the kernel answers, it fills in while
the map runs) checked as experiment_lab.check_view says (sorted, filtered, grouped, the best
marked, Plot charts drawn, a row's logs and traceback on a click, a param holding HTML shown as
text); in the dark theme and a narrow tab; and its charts' labels kept readable.
Lab's run tabs across runs: test_experiments_runs_browser.py.

Run with ``pytest -m browser``; screenshots land in test-artifacts/.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import wait_for
from experiment_lab import GRID, TASKS, check_view, open_experiments, sweep_flows
from lab_helpers import (
    cell_widget,
    in_state,
    open_notebook,
    shot,
    use_dark_theme,
)

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium")]


@pytest.mark.lab_extension  # the cell's output drawn by this checkout's renderer (cellrun.ts)
def test_a_map_nodes_experiments_in_the_cell(lab: Any, page: Any) -> None:
    # The last child waits until the test saw the others: the view opens while the map runs
    # (however long the first widget takes to draw) and fills in as it ends.
    gate = lab[1] / "eleven-seen"
    tasks = TASKS.replace('GATE = ""', f"GATE = {str(gate)!r}")
    cells = ["%load_ext labloom", "%%tasks --retries 1 --retry-delay 0\n" + tasks,
             f"%%flow sweep --executor threads\nresults = train.map({GRID})\n"]
    open_notebook(page, lab, "experiments.ipynb", cells)
    widget = cell_widget(page, 2)
    widget.locator("g.labloom-node[data-kind='map']").click(timeout=90_000)
    widget.locator("button.labloom-experiments-open").click()
    view = widget.locator(".labloom-experiments")
    assert view.get_attribute("data-node")  # the map node's rows
    page.locator(".labloom-experiments[data-total='11']").wait_for(timeout=30_000)
    assert widget.get_attribute("data-state") == "Running"  # live: eleven rows so far
    gate.touch()
    in_state(page, widget, "Failed").wait_for(timeout=90_000)
    check_view(page, widget, view)
    shot(page, "cell-experiments", page.locator(".jp-CodeCell").nth(2))


# The labels of the view's bars ("best:") shown on another line than their controls (the
# select after them; the group-by boxes: the first).
LABELS_APART = """v => Array.from(v.querySelectorAll('.labloom-exp-bar span'))
  .filter(s => /:$/.test(s.textContent.trim()) && s.offsetParent && s.nextElementSibling)
  .filter(s => {
    const next = s.nextElementSibling;
    const a = s.getBoundingClientRect();
    const b = (next.tagName === 'SPAN' && next.firstElementChild || next).getBoundingClientRect();
    return Math.abs((a.top + a.bottom) / 2 - (b.top + b.bottom) / 2) > 6;
  })
  .map(s => s.textContent)"""


@pytest.mark.lab_extension
def test_the_experiments_view_in_the_dark_theme_and_a_narrow_tab(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    """The best row's light yellow stayed under the dark theme's light text: the row a user
    looks for first could not be read (a contrast of about 1.1 to 1). In a narrow tab, selects
    as wide as a long param name went past its edge, and labels wrapped away from their
    controls."""
    from test_lab_panel import contrast

    tab, _alerts = open_experiments(page, lab[0], tmp_path, sweep_flows(), exit_status=1)
    use_dark_theme(page)
    best = tab.locator(".labloom-exp-best")
    best.wait_for(timeout=30_000)

    def colours() -> list[str]:
        return list(best.evaluate(
            "row => [getComputedStyle(row).color, getComputedStyle(row).backgroundColor]"))

    # The theme's stylesheet may come after the body's flag: wait for its light text.
    wait_for(lambda: contrast(colours()[0], "rgb(0, 0, 0)") > 10, 20, "the dark theme's text")
    text, background = colours()
    assert contrast(text, background) >= 4.5, (text, background)
    shot(page, "lab-dark-best-row", tab)

    # Narrower and narrower: each label ("best:", "group by:", "x:") on the line of its
    # controls. The bars wrapped between them: "group by:" ended a line, its boxes began the next.
    view = tab.locator(".labloom-experiments")
    for width in range(1400, 639, -40):
        page.set_viewport_size({"width": width, "height": 900})
        page.evaluate("() => new Promise(requestAnimationFrame)")
        assert view.evaluate(LABELS_APART) == [], width
    shot(page, "lab-narrow-experiments", tab)

    # A narrow tab: no control wider than the view (a select as wide as its longest option, a
    # param named by 60 characters, pushed the chart's controls out of sight).
    wait_for(lambda: view.evaluate("v => v.clientWidth") < 400, 20, "the tab narrowed")
    wide = view.evaluate("""v => Array.from(v.querySelectorAll('select, input'))
        .filter(e => e.getBoundingClientRect().right > v.getBoundingClientRect().right + 1)
        .map(e => e.className)""")
    assert wide == [], wide


# 350 experiments as a sweep logs them: 7 rates x 5 depths x 10 seeds, a param logged the same
# everywhere (criterion), a long text value and a long param name; the best setting (rate
# 0.5, depth 5) is not the best single run's.
SWEEP_350 = '''
from labloom import flow, log_metrics, log_params, task

@task
def fit(i):
    rate = (0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5)[i % 7]
    depth, seed = i // 7 % 5 + 1, i // 35
    log_params(rate=rate, depth=depth, seed=seed, criterion="gini",
               model="gradient_boosting_with_early_stopping_and_warm_start" if i % 2 else "forest",
               minimum_fraction_of_the_samples_in_a_leaf=i % 3 / 10)
    lucky = 0.03 if i == 12 else 0  # the best single run: seed 0 of rate 0.3, depth 2
    log_metrics(auc=0.9 + rate / 10 + depth / 1000 + seed / 100000 + lucky)

@flow(executor="threads")
def sweep():
    return fit.map(range(350))
'''
# Each text of the parallel coordinates' chart (axis titles, end labels) and each axis's x.
CHART_TEXTS = """box => {
  const svg = box.querySelector("g[aria-label='rule']").ownerSVGElement;
  const at = (e) => { const r = e.getBoundingClientRect(); return [e.textContent, r.left, r.top, r.right, r.bottom]; };
  return {
    right: svg.getBoundingClientRect().right,
    axes: Array.from(svg.querySelectorAll("g[aria-label='rule'] line"), (l) => l.getBoundingClientRect().left),
    titles: Array.from(svg.querySelectorAll("g[aria-label='x-axis tick label'] text"), at),
    ends: Array.from(svg.querySelectorAll("g[aria-label='text'] text"), at),
  };
}"""


def apart(a: list[Any], b: list[Any], gap: float = 2) -> bool:
    """Whether two [text, left, top, right, bottom] boxes are ``gap`` px apart or more."""
    return (a[3] + gap <= b[1] or b[3] + gap <= a[1] or a[4] + gap <= b[2]
            or b[4] + gap <= a[2])


@pytest.mark.lab_extension
def test_a_350_experiment_sweeps_parallel_coordinates_and_groups_read_clearly(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    """Parallel coordinates: an axis's title touched its highest value; "gini" (logged by every
    row) stood at both ends of its axis while every line met in the middle; a long value ran
    into the next axis. Grouped by rate and depth (the seeds averaged), the summary named no
    best setting, and the chart ringed a lucky seed of another setting than the starred one."""
    tab, alerts = open_experiments(page, lab[0], tmp_path, SWEEP_350)
    view = tab.locator(".labloom-experiments[data-total='350']")
    view.wait_for(timeout=30_000)

    view.locator("select.labloom-exp-chart-kind").select_option("parallel")
    chart = view.locator(".labloom-exp-chart[data-chart='parallel']")
    chart.locator("g[aria-label='rule']").wait_for(timeout=10_000)
    shot(page, "experiments-350-parallel", chart)
    drawn = chart.evaluate(CHART_TEXTS)
    axes, titles = drawn["axes"], drawn["titles"]
    assert len(axes) == len(titles) == 7, drawn  # 6 params (5 vary), auc
    # Each end label beside its axis (4 px right of it), by that axis's title.
    ends: list[list[Any]] = [[] for _ in axes]
    for label in drawn["ends"]:
        ends[min(range(len(axes)), key=lambda j: abs(axes[j] + 4 - label[1]))].append(label)
    for j, (title, labels) in enumerate(zip(titles, ends, strict=True)):
        texts = [title, *labels]
        assert all(apart(a, b) for i, a in enumerate(texts) for b in texts[i + 1:]), texts
        # Within its room: up to the next axis (the last: the chart's edge), cut with "…".
        edge = axes[j + 1] if j + 1 < len(axes) else drawn["right"]
        assert all(label[3] <= edge - 2 for label in labels), (labels, edge)
    # The titles too (a long param name, cut with "…"), each clear of its neighbours.
    assert all(apart(a, b) for a, b in pairwise(titles)), titles
    assert any("…" in title[0] for title in titles), titles
    # A sweep's few values each labelled, where the lines meet them (spaced evenly: 0.03 and
    # 0.05 sat 10 px apart); only the lowest and highest were, and which was 0.1 was a guess.
    rate = ends[[t[0] for t in titles].index("rate")]
    assert [label[0] for label in sorted(rate, key=lambda label: -label[2])] == [
        "0.01", "0.03", "0.05", "0.1", "0.2", "0.3", "0.5"], rate
    one = ends[[t[0] for t in titles].index("criterion")]
    assert [label[0] for label in one] == ["gini"], one  # once, where its lines meet
    model = [label[0] for label in ends[[t[0] for t in titles].index("model")]]
    assert "forest" in model and any("…" in m for m in model), model

    # Grouped by rate and depth: the best setting (its mean auc) named in the summary.
    view.locator("select.labloom-exp-chart-kind").select_option("scatter")
    for key in ("params.rate", "params.depth"):
        view.locator(f".labloom-exp-group input[value='{key}']").check()
    view.locator(".labloom-exp-th[data-column='metrics.auc']").click()  # the best first
    summary = view.locator(".labloom-exp-summary").inner_text()
    assert "35 groups" in summary and " at rate=0.5, depth=5 (10 rows)" in summary, summary
    starred = view.locator(".labloom-exp-row.labloom-exp-best .labloom-exp-td")
    assert starred.all_text_contents()[:3] == ["0.50", "5", "10"]  # rate as its column reads
    assert f"best auc {starred.nth(3).text_content()} at" in summary, summary
    # The chart rings that group's ten rows (its seeds), not the best single row: a lucky
    # seed of another setting was ringed beside the table's starred group.
    scatter = view.locator(".labloom-exp-chart[data-chart='scatter'] svg")
    assert scatter.locator("g.labloom-exp-best-mark circle").count() == 10
    shot(page, "experiments-350-grouped", view)
    assert alerts == []
