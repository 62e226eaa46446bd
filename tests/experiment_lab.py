"""What the Experiments view's browser tests share (test_experiments_browser for one run's
view in the cell and its looks, test_experiments_runs_browser for Lab's run tabs across runs):
the sweep they run (TASKS over GRID: twelve children, one failing, a param holding HTML, a
NaN score, a loss curve each), as a module the `labloom` command runs (``sweep_flows``), and
what both hosts must show of it (``check_view``); a run's Experiments view opened in Lab
(``open_experiments``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cli_helpers import labloom
from lab_helpers import flows_folder, open_lab, open_run, shot, stored_runs, wait_or_shot

XSS = "<img src=x onerror=window.__labloom_xss=1>"
XSS_NAME = "<img src=x onerror=window.__labloom_xss_name=1>"  # a param's name, from a config
TASKS = f'''
import os, time
from labloom import log_metric, log_metrics, log_params

GATE = ""  # a file the last child waits for before it logs anything ("": it does not wait)
FAILED = []  # child (6, 2)'s first attempt: an auc curve, then a failure (retried)

def train(depth, seed):
    if (depth, seed) == (6, 2) and not FAILED:
        FAILED.append(1)
        for epoch in range(3):
            log_metric("auc", 0.1, step=epoch)  # forgotten at the retry: no curve of auc
        raise ValueError("out of memory")
    if (depth, seed) == (6, 3) and GATE:
        # The test writes it once it saw the other eleven rows; the deadline only keeps a
        # broken test from hanging.
        deadline = time.monotonic() + 120
        while not os.path.exists(GATE) and time.monotonic() < deadline:
            time.sleep(0.02)
    label = {XSS!r} if (depth, seed) == (4, 0) else "plain"
    log_params(depth=depth, seed=seed, label=label, criterion="gini")
    log_params({{{XSS_NAME!r}: "x"}})
    print(f"training depth={{depth}} seed={{seed}}")
    for epoch in range(4):
        log_metric("loss", 1.0 / (depth + epoch + seed + 1), step=epoch)
    if (depth, seed) == (2, 3):
        raise ValueError("diverged at depth 2")
    log_metrics(auc=depth / 10 + seed / 100, score=float("nan") if (depth, seed) == (6, 1) else 1.0)
    return depth
'''
GRID = "[d for d in (2, 4, 6) for s in range(4)], [s for d in (2, 4, 6) for s in range(4)]"


def sweep_flows(decorator: str = "@task") -> str:
    """TASKS as a flows.py for ``labloom run flows.py:sweep``: ``train`` a task made by
    ``decorator``, mapped over GRID by the flow ``sweep``."""
    return TASKS.replace("def train", f"{decorator}\ndef train").replace(
        "from labloom import", "from labloom import flow, task,") + f'''

@flow(executor="threads")
def sweep():
    return train.map({GRID})
'''


def open_experiments(page: Any, url: str, tmp_path: Path, source: str, exit_status: int = 0
                     ) -> tuple[Any, list[str]]:
    """``labloom run flows.py:sweep`` of ``source`` (ending with ``exit_status``), then Lab,
    its Flows panel and the run's tab with the Experiments view open: the tab's locator and
    the page's alerts (``open_lab``)."""
    home, work = flows_folder(tmp_path, source)
    done = labloom(home, "run", "flows.py:sweep", cwd=work, LABLOOM_PROGRESS="0")
    assert done.returncode == exit_status, done.stderr
    [run] = stored_runs(home, "sweep")
    panel, alerts = open_lab(page, url)
    tab = open_run(page, panel, run.id)
    tab.locator("g.labloom-node").first.wait_for(timeout=30_000)
    tab.locator("button.labloom-experiments-toggle").click()
    return tab, alerts


# The table's own redraw (its scroll handler draws on the next frame), then two frames: done.
REDRAW_ROWS = """(table) => new Promise((done) => {
  table.dispatchEvent(new Event('scroll'));
  requestAnimationFrame(() => requestAnimationFrame(done));
})"""


def click_across_a_redraw(page: Any, view: Any, row: Any) -> None:
    """Press on ``row``, redraw the view's rows, release: a click only if the row stayed."""
    row.scroll_into_view_if_needed()
    box = row.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    at = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y)?.closest('.labloom-exp-row')?.dataset.key",
        [x, y])
    assert at == row.get_attribute("data-key"), at  # nothing over the row
    page.mouse.move(x, y)
    page.mouse.down()
    view.locator(".labloom-exp-table").evaluate(REDRAW_ROWS)
    page.mouse.up()


def check_view(page: Any, host: Any, view: Any) -> None:
    """What both hosts show for the sweep: 12 rows, one failed; `host` holds the DAG panel."""
    rows = view.locator(".labloom-exp-row[data-task-run-id]")
    wait_or_shot(page, rows.nth(11), "failed-experiments", timeout=30)
    assert rows.count() == 12
    cells = view.locator(".labloom-exp-td[data-column='params.label']")
    assert XSS in cells.all_text_contents()  # the param's text, as logged
    # A param's name, as text in every place it shows: its column's header, the group-by
    # choices, the chart's colour choices.
    assert XSS_NAME in view.locator(".labloom-exp-th").all_text_contents()
    assert XSS_NAME in view.locator(".labloom-exp-group").inner_text()
    assert XSS_NAME in view.locator("select.labloom-exp-by option").all_text_contents()
    assert view.locator("img").count() == 0 and page.evaluate("window.__labloom_xss") is None
    assert page.evaluate("window.__labloom_xss_name") is None
    assert "NaN" in view.locator(".labloom-exp-td[data-column='metrics.score']").all_text_contents()

    # Sorted by auc, highest first; the best (highest auc) marked; rows without auc last.
    view.locator(".labloom-exp-th[data-column='metrics.auc']").click()
    header = view.locator(".labloom-exp-th[data-column='metrics.auc']")
    assert header.get_attribute("aria-sort") == "descending"
    aucs = view.locator(".labloom-exp-td[data-column='metrics.auc']").all_text_contents()
    assert aucs[:3] == ["0.63", "0.62", "0.61"] and aucs[-1] == "", aucs
    best = view.locator(".labloom-exp-best")
    assert best.count() == 1 and "0.63" in best.inner_text()
    assert "best auc 0.63" in (view.locator(".labloom-exp-summary").text_content() or "")

    # A chart drawn by Plot: a dot per row with an auc (the failed one has none), the best ringed.
    chart = view.locator(".labloom-exp-chart[data-chart='scatter'] svg")
    chart.first.wait_for(timeout=10_000)
    assert chart.locator("g[aria-label='dot']:not(.labloom-exp-best-mark) circle").count() == 11
    assert chart.locator("g.labloom-exp-best-mark circle").count() == 1
    # A param's name as an axis label and a legend's title: text too.
    view.locator("select.labloom-exp-x").select_option(label=XSS_NAME)
    view.locator("select.labloom-exp-by").select_option(label=XSS_NAME)
    view.locator(".labloom-exp-chart svg text", has_text=XSS_NAME).first.wait_for(timeout=10_000)
    assert view.locator("img").count() == 0 and page.evaluate("window.__labloom_xss_name") is None
    view.locator("select.labloom-exp-x").select_option("params.depth")
    view.locator("select.labloom-exp-by").select_option("params.seed")

    # Filter, and only the columns that vary (criterion is "gini" everywhere).
    view.locator("input.labloom-exp-filter").fill("depth=6")
    assert rows.count() == 4
    view.locator("input.labloom-exp-filter").fill("")
    assert view.locator(".labloom-exp-th[data-column='params.criterion']").count() == 1
    view.locator("input.labloom-exp-vary").check()
    assert view.locator(".labloom-exp-th[data-column='params.criterion']").count() == 0

    # Grouped by depth: three groups of four seeds, auc as mean ± std (min to max).
    view.locator(".labloom-exp-group input[value='params.depth']").check()
    assert view.locator(".labloom-exp-row").count() == 3
    cut = "tds => tds.filter(td => td.scrollWidth > td.clientWidth).map(td => td.textContent)"
    assert view.locator(".labloom-exp-td[data-column^='metrics.']").evaluate_all(cut) == []
    assert set(view.locator(".labloom-exp-td[data-column='n']").all_text_contents()) == {"4"}
    means = view.locator(".labloom-exp-td[data-column='metrics.auc']").all_text_contents()
    assert means[0] == "0.615 ± 0.013 (0.600\u20130.630)", means  # to the std's 2nd digit
    shot(page, "experiments-grouped", view)
    view.locator(".labloom-exp-group input[value='params.depth']").uncheck()

    # Step curves of loss (one line per row) and parallel coordinates.
    view.locator("select.labloom-exp-chart-kind").select_option("curves")
    # Only loss has points: not score, nor auc, whose only points a forgotten attempt logged.
    offered = view.locator("select.labloom-exp-y option")
    assert [o.get_attribute("value") for o in offered.all()] == ["metrics.loss"]
    view.locator("select.labloom-exp-y").select_option("metrics.loss")
    lines = view.locator(".labloom-exp-chart[data-chart='curves'] svg g[aria-label='line'] path")
    lines.nth(11).wait_for(timeout=10_000)
    # Its steps (epochs 0 to 3) ticked at integers, not at 0.2, 0.4, ... 2.8.
    steps = view.locator(".labloom-exp-chart[data-chart='curves'] svg "
                         "g[aria-label='x-axis tick label'] text").all_text_contents()
    assert steps == ["0", "1", "2", "3"], steps
    view.locator("select.labloom-exp-chart-kind").select_option("parallel")
    assert view.locator(".labloom-exp-chart[data-chart='parallel'] svg g[aria-label='line'] path").count() >= 12

    # A press and release with a redraw of the rows between them (each live reload redraws
    # them, so does a scroll by a pixel; a loaded machine's frame may land there) still pick
    # the row: the redraw updates the row pressed in place.
    best = view.locator(".labloom-exp-row.labloom-exp-best")
    click_across_a_redraw(page, view, best)
    picked = best.get_attribute("data-task-run-id")
    host.locator(f".labloom-panel[data-task-run-id='{picked}']").wait_for(timeout=20_000)

    # A click on the failed row: the DAG's panel shows its traceback and its logs.
    view.locator(".labloom-exp-row[data-state='Failed']").click()
    panel = host.locator(".labloom-panel")
    panel.locator(".labloom-traceback", has_text="diverged at depth 2").wait_for(timeout=20_000)
    # Its line from each attempt (the sweep's tasks retry once).
    panel.locator(".labloom-log-line", has_text="training depth=2 seed=3").first.wait_for(
        timeout=20_000)
    assert "Failed" in panel.locator(".labloom-panel-title").inner_text()
