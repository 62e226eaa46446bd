"""The Experiments view in a real JupyterLab (headless Chromium), issue 19 items 2 and 3: in a
cell's live DAG (a map node opens it, the kernel answers) and in a Lab run tab of a run the real
`labloom` command made (the REST routes answer), drawn by the one renderer: rows sorted,
filtered, grouped, the best marked, Plot charts drawn, a row's logs and traceback on a click,
a param holding HTML shown as text, NaN as NaN; and the Flows panel comparing two runs
(their step curves too), one of them still running (followed until it ends); a big run's view
drawing its first rows from a partial page.

Run with ``pytest -m browser``; screenshots land in test-artifacts/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cli_helpers import labloom, stop, wait_for
from lab_helpers import (
    cell_widget,
    flows_folder,
    in_state,
    open_lab,
    open_notebook,
    open_run,
    run_row,
    shot,
    start_run,
    stored_runs,
    use_dark_theme,
    wait_or_shot,
)

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium")]

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
# Rows: the server's first look at the run is partial (its first calls only). The store keeps
# a writer batch's calls in a row, so a fast writer leaves rows of a few hundred calls: at
# 6,000 rows the first look's growing reads could reach the run's end (a complete first page).
BIG = 20_000
# Records each drawing of the view (its data-partial, data-total and rows shown), as it happens.
RECORD_DRAWINGS = """(selector) => {
  window.__labloom_drawn = [];
  new MutationObserver(() => {
    const view = document.querySelector(selector);
    const flag = view && view.getAttribute('data-partial');
    if (!flag) return;
    window.__labloom_drawn.push([flag, view.getAttribute('data-total'),
      view.querySelectorAll('.labloom-exp-row[data-task-run-id]').length]);
  }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['data-partial'] });
}"""


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


@pytest.mark.lab_extension
def test_the_run_tab_and_the_flows_panel_compare_experiments(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, TASKS.replace("def train", "@task(retries=1, retry_delay=0)\ndef train").replace(
        "from labloom import", "from labloom import flow, task,") + f'''

@flow(executor="threads")
def sweep():
    return train.map({GRID})

@task(retries=1, retry_delay=0)
def tiny(i):
    log_params(i=i, parity=i % 2)
    log_metrics(auc=(i * 7919 % 1000) / 1000)
    from pathlib import Path
    if i == 0 and not Path("tiny-0-failed").exists():  # logged again after its siblings
        Path("tiny-0-failed").touch()
        raise RuntimeError("a first attempt that failed once it had logged")

@flow(executor="threads")
def big():
    return tiny.map(range({BIG}))
''')
    for _ in range(2):
        done = labloom(home, "run", "flows.py:sweep", cwd=work, LABLOOM_PROGRESS="0")
        assert done.returncode == 1, done.stderr  # one child fails
    runs = stored_runs(home, "sweep")
    assert len(runs) == 2
    done = labloom(home, "run", "flows.py:big", cwd=work, LABLOOM_PROGRESS="0")
    assert done.returncode == 0, done.stderr
    panel, alerts = open_lab(page, url)

    tab = open_run(page, panel, runs[0].id)
    tab.locator("g.labloom-node").first.wait_for(timeout=30_000)
    tab.locator("button.labloom-experiments-toggle").click()
    check_view(page, tab, tab.locator(".labloom-experiments"))
    shot(page, "lab-run-experiments", tab)

    # Two runs of the flow ticked in the panel: one table with a run column.
    for run in runs:
        run_row(panel, run.id).locator("input.labloom-run-pick").check()
    panel.locator("button.labloom-compare").click()
    compare = page.locator(".labloom-CompareView .labloom-experiments")
    compare.locator(".labloom-exp-summary", has_text="24 rows").wait_for(timeout=30_000)
    # Virtualized: the rows in sight and a few more are drawn, not all 24.
    assert 12 < compare.locator(".labloom-exp-row[data-task-run-id]").count() < 24
    shown = set(compare.locator(".labloom-exp-td[data-column='run_id']").all_text_contents())
    assert shown == {r.id for r in runs}
    assert compare.locator(".labloom-exp-chart svg g[aria-label='dot'] circle").count() >= 22
    # Step curves across the runs, as in a run's tab: a line per row of both runs.
    compare.locator("select.labloom-exp-chart-kind").select_option("curves")
    compare.locator("select.labloom-exp-y").select_option("metrics.loss")
    curves = compare.locator(".labloom-exp-chart[data-chart='curves'] svg g[aria-label='line'] path")
    curves.nth(23).wait_for(timeout=20_000)
    shot(page, "lab-compare-experiments")

    # A big run's view: its first rows at once from a partial page (the server has not read
    # the run yet), then the complete count (docs/rest-api.md). Each drawing is recorded as it
    # happens: the partial one may last less than a second.
    big = stored_runs(home, "big")[0]
    run_row(panel, big.id).click()
    tab = page.locator(f"#labloom-run-{big.id}")
    tab.locator("g.labloom-node").first.wait_for(timeout=30_000)
    page.evaluate(RECORD_DRAWINGS, f"#labloom-run-{big.id} .labloom-experiments")
    tab.locator("button.labloom-experiments-toggle").click()
    whole = tab.locator(f".labloom-experiments[data-total='{BIG}'][data-partial='false']")
    wait_or_shot(page, whole, "big-experiments", timeout=60)
    drawn = page.evaluate("window.__labloom_drawn")
    partial = [i for i, (flag, _, _) in enumerate(drawn) if flag == "true"]
    assert partial and partial[0] == 0, drawn  # the first drawing: the partial page
    _, total, rows = drawn[0]
    assert 0 < int(total) < BIG and rows > 0, drawn  # its rows shown, its total of those read
    assert tab.locator(".labloom-exp-summary").inner_text().startswith(f"{BIG} rows")
    # Its rows by map index, as a small run's and the cell's (the server paged them in the
    # order logged: child 0's retry logged after its siblings).
    index = tab.locator(".labloom-exp-td[data-column='map_index']")
    assert index.all_text_contents()[:10] == [str(i) for i in range(10)]
    # Filtered by the server: the whole run's rows that match, not those of the first 1,000.
    tab.locator("input.labloom-exp-filter").fill("auc>0.9 parity=1")
    wanted = sum((i * 7919 % 1000) / 1000 > 0.9 and i % 2 == 1 for i in range(BIG))
    filtered = tab.locator(f".labloom-experiments[data-total='{wanted}']")
    wait_or_shot(page, filtered, "big-experiments-filtered", timeout=30)
    assert "match the filter" in tab.locator(".labloom-exp-summary").inner_text()
    shown = tab.locator(".labloom-exp-td[data-column='metrics.auc']")
    assert shown.count() > 0 and all(float(cell.text_content()) > 0.9
                                     for cell in shown.all()[:20])
    assert alerts == []


@pytest.mark.lab_extension
def test_the_compare_tab_follows_a_run_still_running(lab: Any, page: Any, tmp_path: Path
                                                     ) -> None:
    # Last night's run beside today's, still running: the compare tab read its rows once, as
    # it opened, and kept today's children Running with no auc after they ended.
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, f'''
import os, time
from labloom import flow, log_metrics, log_params, task

HOLD = {str(tmp_path / "hold")!r}  # while it exists, child 2 waits before logging

@task
def trial(i):
    log_params(i=i)
    if i == 2:
        deadline = time.monotonic() + 120  # a broken test does not hang
        while os.path.exists(HOLD) and time.monotonic() < deadline:
            time.sleep(0.05)
    log_metrics(auc=i / 10)

@flow(executor="threads")
def nightly():
    return trial.map(range(3))
''')
    done = labloom(home, "run", "flows.py:nightly", cwd=work, LABLOOM_PROGRESS="0")
    assert done.returncode == 0, done.stderr
    (tmp_path / "hold").write_text("")
    today = start_run(home, work, "nightly")
    try:
        runs = wait_for(lambda: len(stored_runs(home, "nightly")) == 2 and stored_runs(
            home, "nightly"), 60, "today's run in the store")
        panel, alerts = open_lab(page, url)
        for run in runs:
            run_row(panel, run.id).locator("input.labloom-run-pick").check()
        panel.locator("button.labloom-compare").click()
        compare = page.locator(".labloom-CompareView .labloom-experiments")
        held = compare.locator(f".labloom-exp-row[data-task-run-id='{runs[0].id}.2']")
        wait_or_shot(page, held, "compare-running", timeout=30)
        auc = held.locator(".labloom-exp-td[data-column='metrics.auc']")
        assert auc.text_content() == ""  # child 2 of today's run holds: no auc yet
        assert held.get_attribute("data-state") == "Running"
        (tmp_path / "hold").unlink()
        assert today.wait(timeout=60) == 0
        wait_or_shot(page, in_state(page, held, "Completed"), "compare-followed", timeout=30)
        assert auc.text_content() == "0.2"
        # Coloured by run, grouped by run (each run's mean auc): the two runs told apart.
        assert compare.locator("select.labloom-exp-by").input_value() == "run_id"
        legend = compare.locator(".labloom-exp-chart").inner_text()
        assert runs[0].id in legend and runs[1].id in legend, legend
        compare.locator(".labloom-exp-group input[value='run_id']").check()
        assert compare.locator(".labloom-exp-row").count() == 2
        means = compare.locator(".labloom-exp-td[data-column='metrics.auc']").all_text_contents()
        assert means == ["0.10 ± 0.10 (0.00\u20130.20)"] * 2, means
        compare.locator(".labloom-exp-group input[value='run_id']").uncheck()
        # A click on a row: its run's tab, its panel on that task run (logs, traceback); a
        # click only opened the run's tab, nothing picked.
        held.click()
        tab = page.locator(f"#labloom-run-{runs[0].id}")
        panel = tab.locator(f".labloom-panel[data-task-run-id='{runs[0].id}.2']")
        wait_or_shot(page, panel, "compare-picked", timeout=30)
        assert alerts == []
    finally:
        stop(today)


@pytest.mark.lab_extension
def test_the_experiments_view_in_the_dark_theme_and_a_narrow_tab(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    """The best row's light yellow stayed under the dark theme's light text: the row a user
    looks for first could not be read (a contrast of about 1.1 to 1). In a narrow tab, selects
    as wide as a long param name went past its edge."""
    from test_lab_panel import contrast

    url, _notebooks = lab
    home, work = flows_folder(tmp_path, TASKS.replace("from labloom import", "from labloom import flow, task,").replace(
        "def train", "@task\ndef train") + f'''

@flow(executor="threads")
def sweep():
    return train.map({GRID})
''')
    done = labloom(home, "run", "flows.py:sweep", cwd=work, LABLOOM_PROGRESS="0")
    assert done.returncode == 1, done.stderr  # one child fails
    [run] = stored_runs(home, "sweep")
    panel, _alerts = open_lab(page, url)
    use_dark_theme(page)
    tab = open_run(page, panel, run.id)
    tab.locator("g.labloom-node").first.wait_for(timeout=30_000)
    tab.locator("button.labloom-experiments-toggle").click()
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

    # A narrow tab: no control wider than the view (a select as wide as its longest option, a
    # param named by 60 characters, pushed the chart's controls out of sight).
    page.set_viewport_size({"width": 640, "height": 900})
    view = tab.locator(".labloom-experiments")
    wait_for(lambda: view.evaluate("v => v.clientWidth") < 400, 20, "the tab narrowed")
    wide = view.evaluate("""v => Array.from(v.querySelectorAll('select, input'))
        .filter(e => e.getBoundingClientRect().right > v.getBoundingClientRect().right + 1)
        .map(e => e.className)""")
    assert wide == [], wide
