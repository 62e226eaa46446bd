"""The Flows panel in Notebook 7 (a tab of the file browser page, a side panel of the notebook
view), the launch form, the settings and the palette's commands, in a real Jupyter server and
headless Chromium, with runs made by the real `labloom` command and a real kernel.

Few test functions, several checks each: browser tests are the slowest part of CI.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import labloom, wait_for, write
from lab_helpers import (
    flows_folder,
    open_lab,
    open_notebook,
    requests_answered,
    run_row,
    shot,
    start_run,
    stored_runs,
    timers_stopped,
    wait_in_page,
    wait_or_shot,
)
from test_lab_panel import FLOWS

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium"), pytest.mark.lab_extension]

SECRET = "hunter2-from-the-browser"
ETL = '''
import time
from pathlib import Path
from typing import Optional
from labloom import Secret, flow, task

@task
def count(n: int, label: str, pause: float) -> str:
    # Waits up to `pause` seconds, or until the test writes "go" beside this file: a launched
    # run is still running when the test looks, however slow the machine.
    deadline, go = time.monotonic() + pause, Path(__file__).with_name("go")
    while time.monotonic() < deadline and not go.exists():
        time.sleep(0.02)
    return f"{label}:{n}"

@flow(executor="local")
def tables(n: int, label: str = "daily", pause: float = 0.0, token: Optional[Secret] = None):
    return count(n, label, pause)
'''


def open_palette(page: Any, search: str) -> Any:
    """Open the modal command palette and type ``search`` in it: its search box, focused.

    From the View menu, not Ctrl+Shift+C: a key press toggles the palette, so a press that a
    busy page handles late closes it again. The modal palette closes when any command runs
    while it is open (and its restore then focuses the tab in front): Lab's Help menu runs one
    each time the main area's current tab changes, so open it only once a new tab is current
    (``wait_until_current``), as a user sees the tab before typing.
    """
    page.locator(".lm-MenuBar-itemLabel", has_text="View").click()
    page.locator(".lm-Menu-itemLabel:visible", has_text="Activate Command Palette").click()
    box = page.locator(".lm-CommandPalette-input:visible")
    box.wait_for(timeout=30_000)
    box.fill(search)
    assert_palette_has_focus(page, f"after typing {search!r}")
    return box


def assert_palette_has_focus(page: Any, when: str) -> None:
    focused = page.evaluate("document.activeElement?.outerHTML.slice(0, 200)")
    assert 'class="lm-CommandPalette-input"' in focused, f"{when}, the focus is on {focused}"


def palette(page: Any, label: str, meanwhile: Callable[[], str] | None = None) -> None:
    """Run the palette's command ``label``; ``meanwhile`` runs while the palette is open, and
    the palette must keep its focus through it (it returns what happened, for the message)."""
    open_palette(page, label)
    if meanwhile is not None:
        assert_palette_has_focus(page, f"after {meanwhile()}")
    item = page.locator(".lm-CommandPalette-item:visible", has_text=label).first
    try:
        item.click(timeout=10_000)
    except Exception as error:
        assert_palette_has_focus(page, f"the palette never showed {label!r}")
        raise error


def wait_until_current(page: Any, run_id: str) -> None:
    """Wait until the run's tab is the main area's current tab (its view holds the focus)."""
    page.wait_for_function(
        "id => document.getElementById(id)?.contains(document.activeElement)",
        arg=f"labloom-run-tab-{run_id}", timeout=30_000,
    )


def test_notebook_7_tab_side_panel_and_the_launch_form(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    url, notebooks = lab
    home = tmp_path / "labloom"
    write(notebooks / "etl.py", ETL)
    first = labloom(home, "run", "etl.py:tables", "-p", "n=1", cwd=notebooks)
    assert first.returncode == 0, first.stderr
    [cli_run] = stored_runs(home, "tables")

    # /tree: the panel is a tab beside Files and Running.
    all_answered = requests_answered(page)
    page.clock.install()  # see timers_stopped
    page.goto(url.format("tree"))
    page.locator(".jp-TreePanel .lm-TabBar-tab", has_text="Flows").click()
    panel = page.locator("#labloom-flows")
    wait_or_shot(page, run_row(panel, cli_run.id), "failed-nb7-tree", timeout=30)

    # Launch with parameters: a bad value is refused with the CLI's reason, a good one runs
    # and its row is listed as soon as the answer comes, origin "lab".
    panel.locator(".labloom-launch > summary").click()
    panel.locator(".labloom-launch-choice").select_option(label="tables (etl.py)")
    n = panel.locator('[data-param="n"]')
    n.wait_for(timeout=30_000)
    assert panel.locator('[data-param="label"]').input_value() == "daily"
    n.fill("abc")
    panel.locator(".labloom-launch-run").click()
    refused = panel.locator(".labloom-launch-message.labloom-error")
    refused.wait_for(timeout=60_000)
    assert "takes n: int, and 'abc' is not one" in refused.inner_text()
    shot(page, "nb7-launch-refused")
    assert len(stored_runs(home, "tables")) == 1
    n.fill("4")
    panel.locator('[data-param="pause"]').fill("120")
    secret = panel.locator('[data-param="token"]')
    assert secret.get_attribute("type") == "password"
    secret.fill(SECRET)
    # Listed at once: by the panel's own read once the launch is answered, not at its next
    # poll. With the page's timers stopped no poll reads, nor a pushed event's catch-up; a
    # read already on its way is answered first (it may not list a run it did not ask for).
    started = panel.locator(".labloom-launch-message", has_text="Started run")
    with timers_stopped(page):
        wait_in_page(page, all_answered, 30, "the page's reads to end")
        panel.locator(".labloom-launch-run").click()
        started.wait_for(timeout=60_000)
        lab_run = next(r for r in stored_runs(home, "tables") if r.origin == "lab")
        row = run_row(panel, lab_run.id)
        wait_or_shot(page, row, "failed-nb7-launch-listed", timeout=60)
    assert row.locator(".labloom-run-origin").text_content() == "lab"
    assert lab_run.id in started.inner_text()
    # The form remembers its values for next time, but never a secret.
    kept = page.evaluate("() => JSON.stringify(Object.entries(window.localStorage))")
    assert '\\"n\\":\\"4\\"' in kept and SECRET not in kept, kept
    # Notebook 7 has no status bar: the tab's label counts running flows.
    tab = page.locator(".jp-TreePanel .lm-TabBar-tab", has_text="Flows")
    tab.filter(has_text="Flows (1 running)").wait_for(timeout=10_000)
    (notebooks / "go").touch()
    wait_for(lambda: next(r for r in stored_runs(home, "tables") if r.id == lab_run.id).ended,
             60, "the launched run to end")
    done = next(r for r in stored_runs(home, "tables") if r.id == lab_run.id)
    assert done.state == "Completed" and done.parameters["n"] == 4
    assert done.parameters["token"] == "***"
    tab.filter(has_text=re.compile(r"^Flows$")).wait_for(timeout=10_000)

    # The notebook view: a side panel, opened from the palette, lists the kernel's run.
    open_notebook(page, lab, "nb.ipynb", ["from etl import tables\nrun = tables.run(n=2)"],
                  notebook_7=True)
    kernel_run = wait_for(lambda: next((r for r in stored_runs(home, "tables")
                                        if r.origin == "notebook" and r.ended), None),
                          90, "the kernel's run")
    palette(page, "Open the Flows panel")
    side = page.locator("#labloom-flows")
    wait_or_shot(page, run_row(side, kernel_run.id), "failed-nb7-notebook", timeout=30)
    assert side.locator(
        f'.labloom-run[data-run-id="{kernel_run.id}"] .labloom-run-origin'
    ).text_content() == "notebook"
    # A run opens in Notebook 7's bottom panel (its main area holds the notebook), DAG drawn.
    run_row(side, kernel_run.id).click()
    tab = page.locator(f"#labloom-run-tab-{kernel_run.id}")
    tab.locator('g.labloom-node[data-state="Completed"]').first.wait_for(timeout=30_000)
    assert page.locator(".jp-Notebook").is_visible()
    box = tab.bounding_box()
    assert box and box["height"] > 200, box  # not squeezed to the bottom panel's tab bar
    shot(page, "nb7-notebook-side-panel")


def test_settings_and_palette_commands_in_lab(lab: Any, page: Any, tmp_path: Path) -> None:
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    for target in ("report", "failing"):
        labloom(home, "run", f"flows.py:{target}", cwd=work)
    [report] = stored_runs(home, "report")
    [failed] = stored_runs(home, "failing")
    # What a user sets in Settings > labloom, read at page load: open on failed runs only.
    settings = tmp_path / "config" / "lab" / "user-settings" / "labloom"
    settings.mkdir(parents=True)
    (settings / "plugin.jupyterlab-settings").write_text(
        json.dumps({"defaultState": "Failed", "runsShown": 10})
    )
    panel, _alerts = open_lab(page, url)
    # Lab hands the panel its settings once restored, which may come after the panel's first
    # read of the list: the filter first, then the list read with it.
    filter_ = panel.locator(".labloom-state-filter")
    wait_for(lambda: filter_.input_value() == "Failed", 30, "the settings' state filter")
    run_row(panel, failed.id).wait_for(timeout=30_000)
    run_row(panel, report.id).wait_for(state="detached", timeout=10_000)

    # Open a run by id from the palette.
    palette(page, "Open a run by id")
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input").fill(report.id)
    dialog.locator(".jp-mod-accept").click()
    wait_until_current(page, report.id)

    # Cancel the selected run: the run tab in front.
    child = start_run(home, work, "sleepy")
    try:
        running = wait_for(lambda: next((r for r in stored_runs(home, "sleepy")
                                         if r.state == "Running"), None),
                           60, "sleepy to run")
        palette(page, "Open a run by id")
        dialog.locator("input").fill(running.id)
        dialog.locator(".jp-mod-accept").click()
        wait_until_current(page, running.id)
        # The tab in front follows its running run by pushed updates: none of them takes the
        # focus from a palette opened over it.
        done = page.locator(f'#labloom-run-{running.id} [data-fact="task runs"]')
        done.wait_for(timeout=30_000)

        def pushed() -> str:
            before = done.inner_text()
            wait_for(lambda: done.inner_text() != before, 30, "a pushed update of the run tab")
            return f"the run tab went from {before!r} to {done.inner_text()!r}"

        palette(page, "Cancel the selected run", meanwhile=pushed)
        wait_for(lambda: next(r for r in stored_runs(home, "sleepy")).state == "Cancelled",
                 60, "the selected run to be cancelled")
    finally:
        child.kill()
        child.wait(timeout=30)
