"""The Flows panel, the run tab and the status bar in a real JupyterLab in headless Chromium,
watching runs that the real `labloom` command starts beside it (another process, one store).

Run with ``pytest -m browser``; screenshots land in test-artifacts/ (docs/ holds the chosen ones).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import labloom, wait_for
from lab_helpers import (
    click_flows_icon,
    flows_folder,
    in_state,
    next_list_read,
    open_lab,
    open_notebook,
    open_run,
    run_row,
    shot,
    start_run,
    stored_runs,
    timers_stopped,
    use_dark_theme,
    wait_for_run,
    wait_in_page,
    wait_pushed,
)
from labloom import flow, task

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium"), pytest.mark.lab_extension]

HOSTILE_LOG = "<img src=x onerror=alert(1)>"

FLOWS = f'''
import os, time
from labloom import flow, task

def wait_for_file(name):
    # The test writes it once it has seen what it waits for; the deadline only keeps a broken
    # test from hanging.
    deadline = time.monotonic() + 120
    while not os.path.exists(name):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{{name}} never came")
        time.sleep(0.02)

@task
def load(n):
    print({HOSTILE_LOG!r})
    return list(range(n))

@task
def square(x):
    print(f"square {{x}}")
    time.sleep(0.2)  # a run that lasts long enough to be seen live
    return x * x

@task
def total(xs):
    return sum(xs)

@flow(executor="threads")
def report(n: int = 6):
    return total(square.map(load(n)))

@task
def explode(rows):
    print("about to fail")
    raise ValueError("kaboom from explode")

@flow(executor="threads")
def failing():
    explode(load(2))

@task
def nap(i):
    time.sleep(0.3)  # 2,000 of them (100 s on 6 threads): still running when a test cancels it
    return i

@flow(executor="threads")
def sleepy(n: int = 2000):
    return nap.map(range(n))

@task
def ticker(n):
    for i in range(n):
        if i == n // 2:
            wait_for_file("ticks-seen")  # the rest is written once the tab showed the first lines
        print(f"tick {{i}}")
        time.sleep(0.02)  # log lines that keep coming while the tab follows them
    wait_for_file("ticks-all-seen")  # still running while the tab shows the last line
    return n

@flow(executor="threads")
def ticking(n: int = 100):
    return ticker(n)

@task
def export_ready():
    wait_for_file("retry-go")  # fails once the tab shows the run going on
    if not os.path.exists("retry-failed"):
        open("retry-failed", "w").close()
        raise ConnectionError("the export is not there yet")
    return 1

@flow(executor="threads", retries=1, retry_delay=60)
def retrying():
    return export_ready()
'''


# Records each request the page makes, as [when it started, url], once answered: an observer
# sees every one (Lab's own resource timing buffer is full long before the test looks).
# The page's fetches, each recorded as it is made (JupyterLab's requests look the global
# fetch up for each request): what a test of "no read" reads right after a timer ran.
FETCHES_RECORDED = """() => {
  window.__labloom_fetches = [];
  const fetch = window.fetch;
  window.fetch = (request, init) => {
    window.__labloom_fetches.push(typeof request === 'string' ? request : request.url);
    return fetch(request, init);
  };
}"""


# A run row's texts (but the flow's name, cut with an ellipsis when long) cut by their box or
# by the row's edge, or lying over another text of the row.
ROW_TEXTS_CLIPPED_OR_OVERLAPPING = """row => {
    const edge = row.getBoundingClientRect();
    const kids = Array.from(row.children);
    const boxes = kids.map(k => k.getBoundingClientRect());
    const bad = kids.filter((k, i) => !k.classList.contains('labloom-run-flow') &&
        (k.scrollWidth > k.clientWidth + 1 || boxes[i].right > edge.right + 1));
    kids.forEach((k, i) => kids.slice(i + 1).forEach((o, j) => {
        const [a, b] = [boxes[i], boxes[i + 1 + j]];
        if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 &&
            b.top < a.bottom - 1) bad.push(k, o);
    }));
    return bad.map(k => k.className);
}"""


def contrast(foreground: str, background: str) -> float:
    """WCAG contrast ratio of two CSS rgb()/rgba() colours."""

    def luminance(colour: str) -> float:
        parts = [float(v) for v in colour[colour.index("(") + 1 : -1].split(",")[:3]]
        linear = [
            c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
            for c in (p / 255 for p in parts)
        ]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted([luminance(foreground), luminance(background)], reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_cli_runs_appear_open_as_tabs_with_dag_logs_and_traceback(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    panel, alerts = open_lab(page, url)
    panel.get_by_text("No runs yet").wait_for(timeout=30_000)
    procs: list[subprocess.Popen[str]] = []
    try:
        good = start_run(home, work, "report")
        procs.append(good)
        run = wait_for_run(home, "report")
        # Pushed (or polled once a second while visible): the new run shows within a second or
        # two here; 5 s leaves a loaded CI machine room.
        run_row(panel, run.id).wait_for(timeout=5_000)
        assert good.wait(timeout=60) == 0
        run_row(panel, run.id, "Completed").wait_for(timeout=10_000)
        row = run_row(panel, run.id)
        assert row.locator(".labloom-run-flow").text_content() == "report"
        assert row.locator(".labloom-run-origin").text_content() == "CLI"
        # Task runs by state, compact; done/total in its tooltip.
        done = row.locator(".labloom-run-done")
        assert done.text_content() == "8 ✓"
        assert done.get_attribute("title") == "8 of 8 task runs finished"
        # Each text of the row shows whole, apart from the others, at Lab's default side bar
        # width: the tick box had taken the start time's column, which drew it under the
        # duration ("12:09:28 AM" in 37 px).
        assert row.evaluate(ROW_TEXTS_CLIPPED_OR_OVERLAPPING) == []
        page.locator(".labloom-StatusItem", has_text="no flows running").wait_for(
            timeout=15_000
        )

        view = open_run(page, panel, run.id)
        view.locator('g.labloom-node[data-state="Completed"]').nth(2).wait_for(timeout=20_000)
        assert view.locator("g.labloom-node").count() == 3
        assert view.locator('g.labloom-node[data-kind="map"]').count() == 1
        assert view.locator('[data-fact="parameters"]').inner_text() == '{"n":6}'
        view.locator('g.labloom-node[data-node-id="n0"]').click()  # load
        line = view.locator(".labloom-log-line", has_text="onerror")
        line.wait_for(timeout=20_000)
        assert HOSTILE_LOG in line.inner_text()
        assert view.locator(".labloom-logs img").count() == 0
        shot(page, "lab-run-tab")

        bad = start_run(home, work, "failing")
        procs.append(bad)
        assert bad.wait(timeout=60) == 1
        [failed] = stored_runs(home, "failing")
        run_row(panel, failed.id, "Failed").wait_for(timeout=10_000)
        shot(page, "lab-flows-panel", panel)
        failed_view = open_run(page, panel, failed.id)
        explode = failed_view.locator('g.labloom-node[data-state="Failed"]')
        explode.wait_for(timeout=20_000)
        explode.click()
        traceback = failed_view.locator("pre.labloom-traceback")
        traceback.filter(has_text="kaboom from explode").wait_for(timeout=20_000)
        assert "ValueError" in traceback.inner_text()
        shot(page, "lab-failed-run")

        # Retry from the tab: `labloom retry` in a new process, a new run in the panel.
        failed_view.locator("button.labloom-retry").click()
        failed_view.locator(".labloom-RunView-notice", has_text="Retry started").wait_for(
            timeout=20_000
        )
        retried = wait_for(
            lambda: [r for r in stored_runs(home, "failing") if r.retry_of == failed.id], 60,
            "the retry's run",
        )
        run_row(panel, retried[0].id).wait_for(timeout=10_000)

        # The dark theme: the panel's text stays legible on its background.
        def background() -> str:
            return str(panel.evaluate("panel => getComputedStyle(panel).backgroundColor"))

        light = background()
        use_dark_theme(page)
        # The body's flag comes before the theme's stylesheet: wait for its colours.
        wait_for(lambda: background() != light, 20, "the dark theme's colours on the panel")
        colours = panel.evaluate(
            """panel => {
                const flow = panel.querySelector('.labloom-run-flow');
                const state = panel.querySelector('.labloom-state[data-state="Failed"]');
                return [getComputedStyle(flow).color, getComputedStyle(state).color,
                        getComputedStyle(panel).backgroundColor];
            }"""
        )
        assert contrast(colours[0], colours[2]) >= 4.5, colours
        assert contrast(colours[1], colours[2]) >= 3.0, colours
        shot(page, "lab-dark", panel)
    except Exception:
        shot(page, "failed-lab-panel")
        raise
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)
    assert alerts == []


@task
def one() -> int:
    return 1


@flow(executor="local")
def tiny() -> int:
    return one()  # type: ignore[return-value]


def test_the_run_tab_follows_a_running_task_s_log(
    lab: Any, page: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    page.clock.install()  # see timers_stopped
    panel, _alerts = open_lab(page, url)
    proc = start_run(home, work, "ticking")
    try:
        run = wait_for_run(home, "ticking")
        view = open_run(page, panel, run.id)
        node = view.locator('g.labloom-node[data-node-id="n0"]')
        node.wait_for(timeout=20_000)
        node.click()
        view.locator(".labloom-log-line", has_text=re.compile(r"tick 3$")).wait_for(timeout=20_000)
        # The task holds its second half until told (ticks-seen) and its end until the last
        # line is shown (ticks-all-seen): however slow the machine, those lines are written
        # after the node was opened and arrive while the task runs.
        view.locator(".labloom-run-state", has_text="Running").wait_for(timeout=20_000)
        (work / "ticks-seen").touch()
        # Pushed as they come: no safety net reads them meanwhile (it read them 10 s later: a
        # delta of a task that only logs, its states unchanged, was taken as read already).
        with timers_stopped(page):
            wait_pushed(page, view.locator(".labloom-log-line", has_text="tick 99"), 30,
                        "the task's last lines")
        assert view.locator(".labloom-run-state", has_text="Running").count() == 1
        (work / "ticks-all-seen").touch()
        assert proc.wait(timeout=60) == 0
        view.locator(".labloom-run-state", has_text="Completed").wait_for(timeout=20_000)
        texts = view.locator(".labloom-log-line").all_text_contents()
        assert [t.split("  ", 1)[1] for t in texts] == [f"tick {i}" for i in range(100)]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)

    # The panel lists 100 runs, and older ones on request.
    monkeypatch.setenv("LABLOOM_HOME", str(home))
    monkeypatch.setenv("LABLOOM_PROGRESS", "0")
    for _ in range(104):
        tiny.run()
    rows = panel.locator(".labloom-run")
    wait_for(lambda: rows.count() == 100, 20, "a full first page")
    panel.locator("button.labloom-more").click()
    wait_for(lambda: rows.count() == 105, 20, "the older runs")
    assert panel.locator("button.labloom-more").count() == 0

    # A fresh Lab reads the first page while the panel is hidden (the reset layout shows the
    # file browser): opening it shows the rows at once, before its next read of the list
    # (held back here) returns.
    page.goto(url.format("lab") + "&reset")
    page.locator(".jp-LabShell").wait_for(timeout=90_000)
    wait_for(lambda: rows.count() == 100 and not panel.is_visible(), 30,
             "the first page drawn while the panel is hidden")
    held: list[Any] = []

    def listing(url: str) -> bool:
        return "/labloom/api/runs?limit=" in url and "limit=0" not in url

    page.route(listing, lambda route: held.append(route))
    page.locator('.jp-SideBar [title="Flows (labloom)"]').click()
    panel.wait_for(state="visible", timeout=10_000)
    assert rows.count() == 100, "rows shown before any read of the list returned"
    wait_in_page(page, lambda: held, 10, "the panel's read of the list once shown")
    for route in held:
        route.continue_()
    page.unroute(listing)

    # A filter matching only runs older than the page says so, and they are one click away:
    # it said "No run matches the filter." and hid the button that shows older runs.
    panel.locator("input.labloom-filter").fill("ticking")
    panel.locator(".labloom-empty", has_text="No run among the 100 newest").wait_for(
        timeout=10_000
    )
    panel.locator("button.labloom-more").click()
    run_row(panel, run.id).wait_for(timeout=20_000)

    # Past the API's largest page (500), older runs come a page a click (`before`): the
    # button stopped at the 500 newest, and older runs could not be reached from Lab. Runs
    # that new ones push out of the polled page stay listed.
    panel.locator("input.labloom-filter").fill("")
    for _ in range(410):
        tiny.run()
    for shown in (300, 400, 500, 515):
        panel.locator("button.labloom-more").click()
        wait_for(lambda: rows.count() == shown, 20, f"{shown} runs listed")  # noqa: B023
    assert panel.locator("button.labloom-more").count() == 0
    for _ in range(3):
        tiny.run()
    wait_for(lambda: rows.count() == 518, 30, "new runs, and none of the older ones lost")
    assert len(set(panel.locator(".labloom-run").evaluate_all(
        "rows => rows.map(r => r.dataset.runId)"))) == 518


def test_cancel_from_the_run_tab_and_pause_a_schedule(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    added = labloom(home, "schedule", "add", "flows.py:report", "--every", "1h", "--name",
                    "hourly-report", cwd=work)
    assert added.returncode == 0, added.stderr
    page.clock.install()  # see timers_stopped
    panel, _alerts = open_lab(page, url)
    panel.get_by_text("No runs yet").wait_for(timeout=30_000)

    # A hidden panel reads nothing; the status-bar item opens it again. Every poll begins
    # with a read of the list (``limit=100``; the status bar's count, ``limit=0``, goes on):
    # none may start once the panel is hidden. (A read already on its way when the panel hid
    # still ends, schedules too.) A minute of the page's clock runs every timer due in it, at
    # once: a panel polling even at its slowest (60 s) would read.
    page.evaluate(FETCHES_RECORDED)
    click_flows_icon(page)
    panel.wait_for(state="hidden", timeout=10_000)
    page.evaluate("window.__labloom_fetches = []")
    with timers_stopped(page):
        page.clock.run_for(60_000)
        reads = page.evaluate("window.__labloom_fetches")
    assert [url for url in reads if "labloom/api/runs?limit=" in url
            and "limit=0" not in url] == [], reads
    page.locator(".labloom-StatusItem").click()
    panel.wait_for(state="visible", timeout=10_000)

    schedule = panel.locator('.labloom-schedule[data-schedule="hourly-report"]')
    schedule.wait_for(timeout=30_000)
    schedule.get_by_role("button", name="Pause").click()
    panel.locator('.labloom-schedule[data-paused="true"]').wait_for(timeout=10_000)
    listed = json.loads(labloom(home, "schedule", "list", "--json").stdout)
    assert listed["schedules"][0]["paused"] is True

    proc = start_run(home, work, "sleepy")
    try:
        run = wait_for_run(home, "sleepy")
        run_row(panel, run.id, "Running").wait_for(timeout=10_000)
        page.locator(".labloom-StatusItem", has_text="1 flow running").wait_for(timeout=15_000)
        view = open_run(page, panel, run.id)
        cancel = view.locator("button.labloom-cancel")
        cancel.wait_for(timeout=20_000)
        view.locator(".labloom-run-state", has_text="Running").wait_for(timeout=20_000)
        view.locator('g.labloom-node[data-kind="map"][data-state="Running"]').wait_for(
            timeout=20_000
        )
        # Later polls ask by cursor and get only what changed: the map's count still moves.
        mapped = view.locator('g.labloom-node[data-kind="map"]')
        seen = int(mapped.get_attribute("data-done") or 0)
        wait_for(lambda: int(mapped.get_attribute("data-done") or 0) >= seen + 10, 30,
                 "the map's children finishing in the tab")
        shot(page, "lab-running")
        cancel.click()
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        _out, err = proc.communicate(timeout=10)
    assert code == 1 and "Traceback" not in err, err
    [record] = stored_runs(home, "sleepy")
    assert record.state == "Cancelled" and record.message == "cancelled from the Flows panel"
    view.locator(".labloom-run-state", has_text="Cancelled").wait_for(timeout=20_000)
    run_row(panel, run.id, "Cancelled").wait_for(timeout=10_000)
    # A cancelled run must not read "2000/2000", which looks complete: counts by state.
    counts = record.counts
    expected = " · ".join(part for part in (
        f"{counts.get('Completed', 0)} ✓" if counts.get("Completed") else "",
        f"{counts['Cancelled']} cancelled",
    ) if part)
    assert counts["Cancelled"] and set(counts) <= {"Completed", "Cancelled"}, counts
    run_row(panel, run.id).locator(".labloom-run-done").filter(
        has_text=re.compile(f"^{re.escape(expected)}$")
    ).wait_for(timeout=10_000)


NOTEBOOK_CELLS = [
    "%load_ext labloom",
    '''%%tasks
import time

def nap(i):
    time.sleep(0.3)  # 2,000 of them: still running when the test cancels it from its tab
    return i
''',
    """%%flow naps --background
slept = nap.map(range(2000))
""",
]


def test_a_kernel_run_shows_in_the_panel_and_cancels_from_its_tab(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    home = tmp_path / "labloom"
    open_notebook(page, lab, "naps.ipynb", NOTEBOOK_CELLS)

    run = wait_for_run(home, "naps", 90)
    assert run.origin == "notebook"
    panel = click_flows_icon(page)
    run_row(panel, run.id, "Running").wait_for(timeout=10_000)
    assert run_row(panel, run.id).locator(".labloom-run-origin").text_content() == "notebook"
    view = open_run(page, panel, run.id)
    view.locator(".labloom-run-state", has_text="Running").wait_for(timeout=20_000)
    view.locator("button.labloom-cancel").click()
    view.locator(".labloom-run-state", has_text="Cancelled").wait_for(timeout=30_000)
    [record] = stored_runs(home, "naps")
    assert record.state == "Cancelled" and record.message == "cancelled from the Flows panel"
    # The cell widget of the same run, drawn by the same renderer, agrees.
    cell = page.locator(".jp-CodeCell").nth(2).locator(".labloom-widget")
    page.locator(".lm-TabBar-tabLabel", has_text="naps.ipynb").first.click()
    in_state(page, cell, "Cancelled").wait_for(timeout=30_000)
    shot(page, "lab-kernel-run-cancelled")


DASK_FLOW = '''
import time
from labloom import flow, task

@task
def nap(i):
    time.sleep(0.5)  # 400 of them: the cluster is live until the test cancels the run
    return i

@flow(executor="dask")
def on_dask(n: int = 400):
    return nap.map(range(n))
'''


def test_the_dashboard_link_opens_dask_labextension(lab: Any, page: Any, tmp_path: Path) -> None:
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, DASK_FLOW)
    panel, _alerts = open_lab(page, url)
    proc = start_run(home, work, "on_dask")
    try:
        run = wait_for_run(home, "on_dask", 90)
        dashboard = run.metadata["dashboard"]
        assert dashboard.startswith("http://")
        view = open_run(page, panel, run.id)
        link = view.locator("a.labloom-dashboard")
        link.wait_for(timeout=20_000)
        assert link.get_attribute("href") == dashboard
        assert view.locator('[data-fact="executor"]').inner_text().startswith("dask(tcp://")
        link.click()
        # dask-labextension's own side panel now points at the run's dashboard.
        address = page.locator(".dask-DaskDashboardLauncher .dask-URLInput input")
        address.wait_for(state="attached", timeout=20_000)
        wait_for(lambda: address.input_value() == dashboard, 20,
                 "dask-labextension to take the dashboard URL")
        view.locator("button.labloom-cancel").click()
        assert proc.wait(timeout=60) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
    [record] = stored_runs(home, "on_dask")
    assert record.state == "Cancelled"


def test_a_run_waiting_for_its_next_attempt_says_so_in_its_tab_and_the_panel(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    """@flow(retries=1, retry_delay=60): while the run waits it stays Running, and its tab
    (the run's facts) and its row in the panel (the row's title) say why and when the next
    attempt starts; a cancel then ends it Cancelled at once, said there too."""
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    page.clock.install()  # see next_list_read
    panel, _alerts = open_lab(page, url)
    proc = start_run(home, work, "retrying")
    try:
        run = wait_for_run(home, "retrying")
        view = open_run(page, panel, run.id)
        view.locator(".labloom-run-state", has_text="Running").wait_for(timeout=20_000)
        (work / "retry-go").touch()
        waiting = re.compile(r"attempt 1 of 2 failed: .*ConnectionError.*attempt 2 starts in 60s")
        facts = view.locator(".labloom-RunView-facts")
        facts.get_by_text(waiting).wait_for(timeout=30_000)
        assert view.locator(".labloom-run-state").text_content() == "Running"
        # The facts say it, once: the DAG makes no line of its own for it there.
        assert view.locator(".labloom-run-message").count() == 0
        row = run_row(panel, run.id)
        next_list_read(page)  # the row's title is the run's message, which no event carries
        wait_for(lambda: waiting.search(row.get_attribute("title") or ""), 30,
                 "the panel's row to say the run waits")
        cancelled = labloom(home, "cancel", run.id, cwd=work)
        assert cancelled.returncode == 0, cancelled.stderr
        view.locator(".labloom-run-state", has_text="Cancelled").wait_for(timeout=20_000)
        facts.get_by_text(re.compile(r"before attempt 2 of 2")).wait_for(timeout=20_000)
        assert proc.wait(timeout=30) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def test_a_run_tab_is_used_from_the_keyboard(lab: Any, page: Any, tmp_path: Path) -> None:
    """A keyboard user opens a run's tab from its row (Enter), then a map node and one of its
    children, which are buttons (role="button"): pressed with Space as with Enter, as a
    <button> is. Space did nothing on either: only Enter was heard."""
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    panel, _alerts = open_lab(page, url)
    proc = start_run(home, work, "report")
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    [run] = stored_runs(home, "report")
    row = run_row(panel, run.id, "Completed")
    row.wait_for(timeout=30_000)
    row.focus()
    page.keyboard.press("Enter")
    view = page.locator(f"#labloom-run-{run.id}")
    square = view.locator('g.labloom-node[data-kind="map"]')
    square.wait_for(timeout=20_000)
    square.focus()
    page.keyboard.press(" ")
    child = view.locator(".labloom-child").first
    child.wait_for(timeout=20_000)
    child.focus()
    page.keyboard.press(" ")
    view.locator(".labloom-log-line", has_text=re.compile(r"square \d$")).wait_for(
        timeout=20_000
    )
