"""The Experiments view in Lab's run tabs, across runs, in a real JupyterLab (headless
Chromium), issue 19 item 3: a run tab of a run the real `labloom` command made (the REST routes
answer) checked as experiment_lab.check_view says; the Flows panel comparing two runs (their
step curves too), one of them still running (followed until it ends); a big run's view drawing
its first rows from a partial page, then filtered by the server.
One run's view in the cell and its looks: test_experiments_browser.py.

Run with ``pytest -m browser``; screenshots land in test-artifacts/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cli_helpers import labloom, stop, wait_for
from experiment_lab import check_view, sweep_flows
from lab_helpers import (
    flows_folder,
    in_state,
    open_lab,
    open_run,
    run_row,
    shot,
    start_run,
    stored_runs,
    wait_or_shot,
)

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium")]

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



@pytest.mark.lab_extension
def test_the_run_tab_and_the_flows_panel_compare_experiments(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, sweep_flows("@task(retries=1, retry_delay=0)") + f'''
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
