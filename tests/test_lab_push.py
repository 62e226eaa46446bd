"""Pushed updates in a real JupyterLab in headless Chromium (issue 20, items 1 and 2): a run
that the real `labloom run` writes beside the server reaches the open run tab, the panel and
the status bar through jupyter_server's event stream, without the views polling the run; the
panel's rows are patched in place (a focused row keeps focus).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import labloom, wait_for
from lab_helpers import (
    flows_folder,
    next_list_read,
    open_lab,
    open_run,
    requests_answered,
    run_row,
    start_run,
    stop_timers,
    timers_stopped,
    wait_for_run,
    wait_in_page,
    wait_pushed,
)
from labloom import flow, task

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium"), pytest.mark.lab_extension]

FLOWS = '''
import os, time
from pathlib import Path
from labloom import flow, task

@task
def wait(i):
    gate = Path(os.environ.get("GATE", ".")) / str(i)
    while not gate.exists():
        time.sleep(0.05)
    return i

@flow(executor="threads")
def gated(n: int = 3):
    return wait.map(range(n))

@task
def fails_at_the_gate():
    print("waiting at the gate")
    gate = Path(os.environ["GATE"]) / "fail"
    while not gate.exists():
        time.sleep(0.05)
    raise ValueError("the gate opened on a failure")

@flow(executor="threads")
def mixed(n: int = 2):
    fails_at_the_gate()
    return wait.map(range(n))

@task
def chatty(n):
    for i in range(n):
        print(f"line {i}")
    gate = Path(os.environ["GATE"]) / "chatty"
    while not gate.exists():
        time.sleep(0.05)

@flow(executor="threads")
def talkative(n: int = 8):
    chatty(n)

@task
def spoof():
    print("total: \\u202e0001 EUR")

@flow(name="odd\\u202e-name")
def bidi():
    spoof()
'''

# Where the text of the status bar's items sits: labloom's and JupyterLab's own text items.
TEXT_TOPS = """() => {
  const top = (e) => { const r = document.createRange(); r.selectNodeContents(e);
                       return r.getBoundingClientRect().top; };
  const bar = document.querySelector('#jp-main-statusbar');
  return {
    ours: [...bar.querySelectorAll('.labloom-StatusItem')].map(top),
    others: [...bar.querySelectorAll('.jp-StatusBar-TextItem')]
      .filter((e) => e.offsetParent && !e.closest('.labloom-StatusItem')).map(top),
  };
}"""


@contextlib.contextmanager
def gated(home: Path, work: Path, target: str, *gates: str,
          **env: str) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """``flows.py:TARGET`` run by the real `labloom run`, its tasks waiting for files in the
    folder GATE; after, every gate named opened and the process stopped."""
    gate = work / "gate"
    gate.mkdir()
    proc = start_run(home, work, target, GATE=str(gate), **env)
    try:
        yield proc, gate
    finally:
        for name in gates:
            (gate / name).touch()
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def test_a_cli_run_is_pushed_to_its_tab_the_panel_and_the_status_bar(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    all_answered = requests_answered(page, "/labloom/api/runs")
    page.clock.install()  # see timers_stopped
    panel, alerts = open_lab(page, url)
    panel.get_by_text("No runs yet").wait_for(timeout=30_000)
    # A run new to the panel is listed by the read its first event asks for at once, not at
    # the panel's next read (its safety net, every 15 s): with the page's timers stopped the
    # status bar shows the pushed count and the panel has read nothing; then, the page's clock
    # standing still, only what is due at once runs.
    stop_timers(page)
    with gated(home, work, "gated", "0", "1", "2") as (proc, gate):
        run = wait_for_run(home, "gated")
        page.locator(".labloom-StatusItem", has_text="1 flow running").wait_for(timeout=30_000)
        row = run_row(panel, run.id)
        assert row.count() == 0  # no timer ran: the panel did not read the list
        wait_pushed(page, row, 30, "the new run's row")
        page.clock.resume()
        # Its text sits on the bar's line, as JupyterLab's own text items do (it sat 4 px higher).
        tops = page.evaluate(TEXT_TOPS)
        assert len(tops["ours"]) == 1 and tops["others"], tops
        assert {round(t) for t in tops["ours"] + tops["others"]} == {round(tops["others"][0])}, tops
        view = open_run(page, panel, run.id)
        node = view.locator('g.labloom-node[data-kind="map"]')
        node.wait_for(timeout=20_000)
        row.focus()

        # Each task run's change shows in the tab, pushed: the tab reads the run by cursor
        # only when a delta does not follow on from its cursor (at once, asked by the event).
        # No poll can show it: the page's clock stands still. Reads already on their way are
        # answered first: none may carry what the gates let happen.
        with timers_stopped(page):
            wait_in_page(page, all_answered, 30, "the page's first reads to be answered")
            for i in range(3):
                (gate / str(i)).touch()
                wait_pushed(page, view.locator('[data-fact="task runs"]', has_text=f"{i + 1}/3 done"),
                            30, f"{i + 1}/3 done in the tab")
            assert proc.wait(timeout=60) == 0
            wait_pushed(page, view.locator('g.labloom-node[data-state="Completed"]').first, 30,
                        "the tab's nodes Completed")
            # The panel's row was patched in place: still the focused element, now Completed.
            wait_pushed(page, run_row(panel, run.id, "Completed"), 30, "the row Completed")
            focused = page.evaluate("document.activeElement.getAttribute('data-run-id')")
            assert focused == run.id
            assert row.locator(".labloom-run-done").text_content() == "3 ✓"
            # One count: the status bar follows the same pushed number.
            wait_pushed(page, page.locator(".labloom-StatusItem", has_text="no flows running"),
                        30, "the status bar's count")
    assert alerts == []


def test_the_node_shown_in_a_run_tab_follows_its_state(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    """A node clicked in a run tab while it runs: its side panel moves with it (a task's
    failure and traceback, a map's child list and state), as the notebook widget's does. The
    tab's panel showed the node as it was when clicked, Running, until clicked again."""
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    panel, alerts = open_lab(page, url)
    with gated(home, work, "mixed", "fail", "0", "1") as (proc, gate):
        run = wait_for_run(home, "mixed")
        view = open_run(page, panel, run.id)
        side = view.locator(".labloom-panel")
        title = side.locator(".labloom-panel-title")

        view.locator('g.labloom-node[data-kind="task"][data-state="Running"]').click()
        side.locator(".labloom-log-line", has_text="waiting at the gate").wait_for(timeout=20_000)
        assert title.text_content().startswith("fails_at_the_gate · Running")
        (gate / "fail").touch()  # it fails without a log line more
        side.locator("pre.labloom-traceback", has_text="the gate opened on a failure").wait_for(
            timeout=10_000
        )
        assert title.text_content().startswith("fails_at_the_gate · Failed")

        view.locator('g.labloom-node[data-kind="map"]').click()
        title.filter(has_text="wait · Running").wait_for(timeout=10_000)
        child = side.locator('.labloom-child[data-index="0"]')
        child.and_(page.locator('[data-state="Running"]')).wait_for(timeout=10_000)
        (gate / "0").touch()
        child.and_(page.locator('[data-state="Completed"]')).wait_for(timeout=10_000)
        (gate / "1").touch()
        assert proc.wait(timeout=60) == 1  # the failed task fails the run
        title.filter(has_text="wait · Completed").wait_for(timeout=10_000)
        assert side.locator('.labloom-child[data-state="Completed"]').count() == 2
    assert alerts == []


def test_a_run_tab_says_how_many_log_lines_the_store_did_not_keep(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    """The store keeps a task run's first LABLOOM_LOG_LINES lines: a tab following a chatty
    task (a training loop printing each batch) stopped at the last line kept, as if the task
    hung, with no word of the rest (`labloom logs` says it)."""
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    panel, alerts = open_lab(page, url)
    with gated(home, work, "talkative", "chatty", LABLOOM_LOG_LINES="5") as (proc, gate):
        run = wait_for_run(home, "talkative")
        view = open_run(page, panel, run.id)
        view.locator('g.labloom-node[data-kind="task"]').click()
        side = view.locator(".labloom-panel")
        side.locator(".labloom-log-line", has_text="line 4").wait_for(timeout=20_000)
        cut = side.locator(".labloom-log-cut")
        cut.filter(has_text="3 more line(s) not stored").wait_for(timeout=10_000)
        assert "LABLOOM_LOG_LINES" in cut.text_content()
        (gate / "chatty").touch()
        assert proc.wait(timeout=60) == 0
        side.locator(".labloom-panel-title", has_text="chatty · Completed").wait_for(
            timeout=10_000
        )
        assert side.locator(".labloom-log-line").count() == 5
        assert cut.is_visible()
    assert alerts == []


def test_bidirectional_overrides_in_names_and_logs_do_not_reorder_the_screen(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    """A right-to-left override in a flow's name or a log line (pasted text, a hostile
    notebook) reversed what followed it on screen: the run tab's title read
    "odddetelpmoC · eman-" (its state spoofed) and "total: \\u202e0001" read "total: 1000".
    Shown escaped, as the CLI shows them; the API keeps every character."""
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    panel, alerts = open_lab(page, url)
    proc = start_run(home, work, "bidi")
    try:
        assert proc.wait(timeout=60) == 0
        run = wait_for_run(home, "odd\u202e-name")
        row = run_row(panel, run.id, "Completed")
        row.wait_for(timeout=20_000)
        view = open_run(page, panel, run.id)
        view.locator('g.labloom-node[data-state="Completed"]').click()
        line = view.locator(".labloom-log-line", has_text="total:")
        line.wait_for(timeout=20_000)
        assert line.text_content().endswith("total: \\u202e0001 EUR")
        tab = page.locator(f'.lm-TabBar-tab[data-id="labloom-run-tab-{run.id}"]')
        assert tab.text_content() == "odd\\u202e-name · Completed"
        assert row.locator(".labloom-run-flow").text_content() == "odd\\u202e-name"
        for shown in (view, panel, tab):
            assert "\u202e" not in shown.text_content()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
    assert alerts == []


@task
def one() -> int:
    return 1


@flow
def tiny() -> int:
    return one()  # type: ignore[return-value]


def test_runs_older_than_the_polled_page_follow_pushes_and_deletions(
    lab: Any, page: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the 500 newest runs (the page the panel polls), older ones are read a page a
    click and were kept as read: a run among them still going on stayed Running after it
    ended, and one deleted from a terminal stayed listed, until Lab was reloaded."""
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    monkeypatch.setenv("LABLOOM_HOME", str(home))
    monkeypatch.setenv("LABLOOM_PROGRESS", "0")
    proc = start_run(home, work, "gated")
    try:
        running = wait_for_run(home, "gated")
        gone = tiny.run().id
        for _ in range(500):
            tiny.run()
        page.clock.install()  # see next_list_read
        panel, _alerts = open_lab(page, url)
        rows = panel.locator(".labloom-run")
        for shown in (100, 200, 300, 400, 500):
            wait_for(lambda: rows.count() == shown, 30, f"{shown} runs listed")  # noqa: B023
            panel.locator("button.labloom-more").click()
        run_row(panel, running.id, "Running").wait_for(timeout=30_000)
        assert rows.count() == 502
        for gate in range(3):
            (work / str(gate)).touch()
        assert proc.wait(timeout=60) == 0
        run_row(panel, running.id, "Completed").wait_for(timeout=30_000)
        assert labloom(home, "delete", gone).returncode == 0
        next_list_read(page)  # no event says a run was deleted elsewhere: the list read does
        run_row(panel, gone).wait_for(state="detached", timeout=45_000)
        assert rows.count() == 501
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
