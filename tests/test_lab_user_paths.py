"""What a JupyterLab user of labloom meets on the way through the Flows panel and its tabs, in a
real JupyterLab in headless Chromium, with runs the real `labloom` command made: buttons that
look as live as they are, a sweep's run tab with its DAG in sight, one compare tab per set of
runs, schedules that say whether anything will run them, and a run tab that says when its run
cannot be read (the store down, the server gone) rather than showing it stale.

Few test functions, several checks each: browser tests are the slowest part of CI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import labloom, wait_for
from lab_helpers import (
    flows_folder,
    open_lab,
    open_run,
    run_row,
    shot,
    stored_runs,
    use_dark_theme,
    wait_in_page,
)

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium"), pytest.mark.lab_extension]

# A sweep's grid as examples/sweep.ipynb passes it (`-p grid`): a parameter of 300 entries.
FLOWS = '''
from labloom import flow, log_metrics, log_params, task

GRID = [{"max_depth": d, "min_samples_leaf": m, "seed": s}
        for d in range(1, 7) for m in (1, 2, 4, 8, 16) for s in range(10)]

@task
def train(params):
    return params["max_depth"]

@flow(executor="local")
def sweep(grid: list = GRID):
    return train.map(grid[:3])

@task
def one():
    return 1

@task
def fit(depth):
    import logging, sys
    log_params(depth=depth)
    print(f"slow convergence at depth {depth}", file=sys.stderr)  # a warning line
    logging.getLogger("fit").error("depth %d diverged", depth)
    if depth == 2:
        raise ValueError("diverged")
    log_metrics(auc=depth / 10)

@flow(executor="local")
def noisy():
    return fit.map([1, 2])

@flow(executor="local")
def tiny():
    return one()
'''


def run_cli(home: Path, work: Path, target: str) -> None:
    done = labloom(home, "run", f"flows.py:{target}", cwd=work, LABLOOM_PROGRESS="0")
    assert done.returncode == 0, done.stderr


def opacity(locator: Any) -> float:
    return float(locator.evaluate("b => getComputedStyle(b).opacity"))


def colours(locator: Any) -> list[str]:
    return locator.evaluate("b => [getComputedStyle(b).backgroundColor, getComputedStyle(b).color]")


def is_schedules_read(url: str) -> bool:
    return url.split("?")[0].endswith("/labloom/api/schedules")


def read_schedules(page: Any, panel: Any, ask: Any, meanwhile: Any = lambda: None) -> None:
    """``ask()`` makes the panel read the schedules; that read is held (the list busy) while
    ``meanwhile()`` runs, then let through, and drawn when this returns."""
    held: list[Any] = []
    page.route(is_schedules_read, lambda route: held.append(route))
    ask()
    panel.locator('.labloom-schedules[aria-busy="true"]').wait_for(timeout=20_000)
    meanwhile()
    for route in list(held):
        route.continue_()
    page.unroute(is_schedules_read)  # (lets through a read held meanwhile)
    panel.locator(".labloom-schedules:not([aria-busy])").wait_for(timeout=20_000)



# Every state a run row's text can say; set on a real row of the panel (runs in each of nine
# states would take minutes to make), its colours then read as the browser draws them.
ROW_STATES = ("Pending", "Running", "Retrying", "Completed", "Cached", "Failed", "Crashed",
              "UpstreamFailed", "Cancelled")

STATE_TEXT_COLOURS = """(row, states) => {
    const under = e => {
        for (; e; e = e.parentElement) {
            const c = getComputedStyle(e).backgroundColor;
            if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c;
        }
        return 'rgb(255, 255, 255)';
    };
    const text = row.querySelector('.labloom-state');
    const was = [row.dataset.state, text.dataset.state];
    const out = {};
    for (const state of states) {
        row.dataset.state = text.dataset.state = state;
        out[state] = [getComputedStyle(text).color, under(text)];
    }
    [row.dataset.state, text.dataset.state] = was;
    return out;
}"""


def low_state_contrasts(page: Any, row: Any) -> dict[str, Any]:
    """Each state's text on ``row`` and on it hovered (a focused row looks the same): those
    that read under 4.5:1, with their colours."""
    from test_lab_panel import contrast

    row.evaluate("r => r.contains(document.activeElement) && document.activeElement.blur()")
    page.mouse.move(0, 0)
    still = row.evaluate(STATE_TEXT_COLOURS, list(ROW_STATES))
    row.hover()
    hovered = row.evaluate(STATE_TEXT_COLOURS, list(ROW_STATES))
    assert hovered["Completed"][1] != still["Completed"][1], (still, hovered)  # hover drawn
    return {f"{where}{state}": (round(contrast(*colours), 2), colours)
            for where, shown in (("", still), ("hovered ", hovered))
            for state, colours in shown.items() if contrast(*colours) < 4.5}


def test_the_panel_s_buttons_a_sweep_s_tab_compare_and_schedules_as_a_user_reads_them(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    for _ in range(2):
        run_cli(home, work, "sweep")
    added = labloom(home, "schedule", "add", "flows.py:tiny", "--every", "1h", "--name",
                    "hourly-tiny", cwd=work)
    assert added.returncode == 0, added.stderr
    newer, older = stored_runs(home, "sweep")
    panel, alerts = open_lab(page, url)
    run_row(panel, older.id).wait_for(timeout=30_000)

    # Each state's text reads at 4.5:1 or more on its row, hovered or not (the dark theme's:
    # below); on the light theme's hovered row they read 2.3 to 4.3:1.
    assert low_state_contrasts(page, run_row(panel, older.id)) == {}

    # Compare and Delete act on ticked runs: with none ticked they look it (they looked as
    # live as when they act, and a click did nothing).
    compare, delete = panel.locator("button.labloom-compare"), panel.locator("button.labloom-delete")
    assert compare.is_disabled() and delete.is_disabled()
    assert opacity(compare) < 0.6 and opacity(delete) < 0.6
    # Disabled alike: Delete was pink (Lab's warn red, faded) beside a grey Compare, red hovered.
    assert colours(delete) == colours(compare), (colours(delete), colours(compare))
    delete.hover(force=True)
    assert colours(delete) == colours(compare), (colours(delete), colours(compare))
    page.mouse.move(0, 0)
    for run in (newer, older):
        run_row(panel, run.id).locator("input.labloom-run-pick").check()
    assert opacity(compare) == 1 and opacity(delete) == 1
    assert colours(delete) != colours(compare)  # live, it is the warn button again

    # Compare clicked twice: one tab (a second click opened a twin of the same id).
    compare.click()
    page.locator(".labloom-CompareView .labloom-exp-summary").wait_for(timeout=30_000)
    compare.click()
    # A tab opens in the click's handler (no request first), so by the page's next frame,
    # and a task queued after it, a second tab would be there: what the click queued ran.
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
    assert page.locator(".labloom-CompareView").count() == 1

    # The sweep's run tab: its 300-entry grid said in a line, the DAG in sight below it (it
    # sat under a wall of JSON, then under four lines of it cut mid-line), the whole grid a
    # click away.
    view = open_run(page, panel, older.id)
    node = view.locator("g.labloom-node").first
    node.wait_for(timeout=30_000)
    params = view.locator('[data-fact="parameters"]')
    short = params.locator("summary")
    assert short.inner_text() == "grid: list of 300 items"
    # In lines of the tab's one-line facts (the run id's).
    assert params.evaluate(
        "dd => dd.clientHeight / dd.parentNode.querySelector('[data-fact=run]').clientHeight"
    ) < 1.5
    assert node.bounding_box()["y"] + 20 < page.viewport_size["height"]
    whole = params.locator(".labloom-params-whole")
    assert whole.is_hidden()
    short.click()
    whole.wait_for(state="visible", timeout=10_000)
    assert json.loads(whole.inner_text())["grid"][299]["seed"] == 9
    assert whole.evaluate("e => e.scrollHeight > e.clientHeight")  # the rest a scroll away
    # Its tab's tooltip names the run: the tabs of one flow's runs read alike.
    tab = page.locator(f'.lm-TabBar-tab[title*="run {older.id} of sweep"]')
    tab.wait_for(timeout=10_000)
    shot(page, "lab-sweep-run-tab")

    # A schedule without a `labloom serve`: the panel says nothing will run it, and when it is
    # next due in the runs' words (it read the store's UTC ISO stamp, "...T10:50:32+00:00").
    schedule = panel.locator('.labloom-schedule[data-schedule="hourly-tiny"]')
    schedule.wait_for(timeout=30_000)
    idle = panel.locator(".labloom-schedules-idle")
    assert "labloom serve" in (idle.text_content() or "")
    nxt = schedule.locator(".labloom-schedule-next")
    assert "+00:00" not in (nxt.text_content() or "") and "+00:00" in (nxt.get_attribute("title") or "")
    # "Run now" says it started the run (under a long list the run shows at its top, out of
    # sight: the click seemed to do nothing).
    schedule.get_by_role("button", name="Run now").click()
    note = panel.locator(".labloom-schedule-note")
    wait_for(lambda: "Started hourly-tiny now" in (note.text_content() or ""), 20, "its note")
    wait_for(lambda: [r for r in stored_runs(home, "tiny") if r.state == "Completed"], 60,
             "the schedule's run")
    # A click that lands as the panel reads the schedules again (every fifth poll; here a
    # change of its state filter) still acts: the list was redrawn whole on each read, so a
    # press on Pause released on the Pause drawn in its place clicked nothing.
    pause = schedule.get_by_role("button", name="Pause").element_handle()

    def press() -> None:  # where the button is once the runs of the new filter are drawn
        box = pause.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()

    read_schedules(
        page, panel,
        lambda: panel.locator("select.labloom-state-filter").select_option("Failed"), press)
    assert pause.evaluate("button => button.isConnected")
    page.mouse.up()
    panel.locator('.labloom-schedule[data-paused="true"]').wait_for(timeout=10_000)
    assert idle.count() == 0  # nothing left to run: nothing to say
    assert (note.text_content() or "") == ""  # the next action's note replaces the last

    # An action that fails (the schedule removed meanwhile, by another user) says why, and
    # that stays past the panel's next read of the list (it was gone at the next poll).
    # The panel's reads of the list are held from the removal to the click, as when the user
    # clicks before its next read: a read in between (every fifth poll) took the row away
    # under the click and the test waited 30 s for a button no longer there (CI, 40ea847).
    held: list[Any] = []
    page.route(is_schedules_read, lambda route: held.append(route))
    removed = labloom(home, "schedule", "remove", "hourly-tiny", cwd=work)
    assert removed.returncode == 0, removed.stderr
    schedule.get_by_role("button", name="Resume").click()
    wait_for(lambda: "no such schedule" in (note.text_content() or ""), 20, "the failure")
    assert note.get_attribute("data-error") == "true"
    for route in list(held):
        route.continue_()
    page.unroute(is_schedules_read)  # (lets through a read held meanwhile)
    # A read of the list, at once on a change of its state filter, then of the schedules:
    # the note stays once that read is drawn (the list no longer busy).
    read_schedules(
        page, panel,
        lambda: panel.locator("select.labloom-state-filter").select_option("Completed"))
    assert "resume hourly-tiny failed: no such schedule" in (note.text_content() or "")
    assert alerts == []


def test_a_run_tab_and_the_panel_say_when_the_run_cannot_be_read(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    """The store unreachable (503 with its reason) or the server gone (no answer): the run tab
    showed the run as last read, a Running run with its clock ticking, and said nothing; the
    panel said the browser's bare "Failed to fetch". Once reads succeed again, it is unsaid."""
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    run_cli(home, work, "tiny")
    [run] = stored_runs(home, "tiny")
    panel, _alerts = open_lab(page, url)
    view = open_run(page, panel, run.id)
    view.locator("g.labloom-node").first.wait_for(timeout=30_000)
    notice = view.locator(".labloom-RunView-notice")
    run_tab = page.locator(".lm-TabBar-tab", has_text="tiny · Completed")
    other_tab = page.locator(".lm-TabBar-tab", has_text="Launcher")

    def reads_of_the_run(address: str) -> bool:
        return f"/labloom/api/runs/{run.id}?" in address

    def shown_again() -> None:
        # An ended run's tab reads it once each time it is shown again.
        other_tab.click()
        run_tab.click()

    store_down = "[labloom] the store sqlite:///x cannot be used now (database is locked)"
    page.route(reads_of_the_run, lambda route: route.fulfill(
        status=503, content_type="application/json", body=json.dumps({"message": store_down})))
    shown_again()
    wait_in_page(page, lambda: store_down in (notice.text_content() or ""), 20, "the store's reason")
    assert notice.get_attribute("data-error") == "true"
    assert "as last read" in (notice.text_content() or "")

    page.unroute(reads_of_the_run)
    page.route(reads_of_the_run, lambda route: route.abort())
    shown_again()
    wait_in_page(page, lambda: "does not answer" in (notice.text_content() or ""), 20,
             "the server's silence, said")
    shot(page, "lab-run-tab-unreadable")

    page.unroute(reads_of_the_run)
    shown_again()
    wait_in_page(page, lambda: (notice.text_content() or "") == "", 20, "the notice gone once read")

    # The panel's next read (a change of its state filter reads at once) with no server.
    def list_reads(address: str) -> bool:
        return "/labloom/api/runs?limit=" in address

    page.route(list_reads, lambda route: route.abort())
    panel.locator("select.labloom-state-filter").select_option("Completed")
    error = panel.locator(".labloom-FlowsPanel-error").first
    wait_in_page(page, lambda: "does not answer" in (error.text_content() or ""), 20, "the panel's error")
    page.unroute(list_reads)
    panel.locator("select.labloom-state-filter").select_option("")
    wait_in_page(page, lambda: (error.text_content() or "") == "", 20, "the panel's error gone")


def test_an_experiments_row_s_logs_in_sight_and_the_dark_theme_s_colours(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    """In the dark theme, a failed run's tab: a click on an Experiments row brings its logs
    into sight, and they read. The state, log and failure colours were chosen for a light
    background: on the dark theme's an error line, a stderr line (a warning), a traceback, a
    Failed state and a metric's header read at 3.2 to 4.4 to 1."""
    from test_lab_panel import contrast

    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    done = labloom(home, "run", "flows.py:noisy", cwd=work, LABLOOM_PROGRESS="0")
    assert done.returncode == 1, done.stderr
    [run] = stored_runs(home, "noisy")
    panel, _alerts = open_lab(page, url)
    use_dark_theme(page)
    view = open_run(page, panel, run.id)
    # A click on an Experiments row shows that task run's logs and traceback in the DAG's
    # panel, brought into sight: it opened under the chart, out of sight, as if the click had
    # done nothing.
    # At a browser zoom of 150% (1400 by 1000 pixels, 933 by 667 of CSS).
    page.set_viewport_size({"width": 933, "height": 667})
    view.locator("button.labloom-experiments-toggle").click()
    view.locator(".labloom-exp-row[data-state='Failed']").click()
    traceback = view.locator(".labloom-traceback", has_text="diverged")
    traceback.wait_for(timeout=30_000)

    def in_sight() -> bool:
        tab, shown = view.bounding_box(), traceback.bounding_box()
        return tab["y"] <= shown["y"] and shown["y"] + shown["height"] <= tab["y"] + tab["height"]

    wait_for(in_sight, 20, "the traceback in sight")
    view.locator(".labloom-log-line[data-level='40']").wait_for(timeout=30_000)
    def colours() -> dict[str, list[str]]:
        """Each text's colour and the background it is drawn on (its own, or its nearest
        ancestor's that is not transparent)."""
        return dict(view.evaluate("""v => {
            const under = e => {
                for (; e; e = e.parentElement) {
                    const c = getComputedStyle(e).backgroundColor;
                    if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c;
                }
                return 'rgb(255, 255, 255)';
            };
            return Object.fromEntries([
                ['state', '.labloom-run-state'], ['error line', ".labloom-log-line[data-level='40']"],
                ['warning line', ".labloom-log-line[data-level='30']"],
                ['traceback', '.labloom-traceback'],
                ['failed row', ".labloom-exp-row[data-state='Failed'] [data-column='state']"],
                ['metric header', ".labloom-exp-th[data-kind='metric']"],
            ].map(([name, sel]) => {
                const e = v.querySelector(sel);
                return [name, [getComputedStyle(e).color, under(e)]];
            }));
        }"""))

    # The theme's stylesheet may come after the body's flag: wait for its background.
    wait_for(lambda: contrast(colours()["state"][1], "rgb(255, 255, 255)") > 10, 20,
             "the dark theme's background")
    shown = colours()
    low = {name: round(contrast(*pair), 2) for name, pair in shown.items()
           if contrast(*pair) < 4.5}
    assert low == {}, (low, shown)
    # The Flows panel's states, on a run's row and on it hovered.
    assert low_state_contrasts(page, run_row(panel, run.id)) == {}
    shot(page, "lab-dark-failed-run")

    # The map's child whose logs the panel shows is marked among its alike chips.
    view.locator('g.labloom-node[data-kind="map"]').click()
    view.locator('.labloom-child[data-state="Failed"]').click()
    view.locator('.labloom-child-current[data-state="Failed"]').wait_for(timeout=20_000)
    assert view.locator(".labloom-child-current").count() == 1

    # Buttons drawn as glyphs have names a screen reader (and a test) can say: the close
    # button's multiplication sign was read "times", the pager's angle marks as quotation marks.
    view.get_by_role("button", name="next page of children").wait_for(timeout=10_000)
    view.get_by_role("button", name="close the experiments view").click()
    view.locator(".labloom-experiments").wait_for(state="hidden", timeout=10_000)
