"""Deleting runs from the Flows panel in a real JupyterLab in headless Chromium: tick runs,
Delete, confirm; the rows go, a run still going stays and the panel says why, and the open
tabs of deleted runs say so (also one deleted by `labloom delete` from a terminal).

Run with ``pytest -m browser``, one browser test file at a time.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import cli_env, labloom, wait_for
from lab_helpers import (
    flows_folder,
    open_lab,
    open_run,
    run_row,
    shot,
    stored_runs,
)

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium"), pytest.mark.lab_extension]

FLOWS = '''
import os, time
from labloom import flow, task

@task
def step(hold):
    deadline = time.monotonic() + 120  # only keeps a broken test from hanging
    while hold and not os.path.exists(hold) and time.monotonic() < deadline:
        time.sleep(0.05)
    return 1

@flow(executor="threads")
def nightly(hold: str = ""):
    return step(hold)
'''


def test_delete_ticked_runs_from_the_panel_and_their_tabs_say_so(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    for _ in range(3):
        assert labloom(home, "run", "flows.py:nightly", cwd=work).returncode == 0
    newest, middle, oldest = (run.id for run in stored_runs(home, "nightly"))
    release = work / "release"
    holding = subprocess.Popen(
        [sys.executable, "-m", "labloom", "run", "flows.py:nightly", "--param",
         f"hold={release}"],
        env=cli_env(home, LABLOOM_PROGRESS="0"), cwd=work, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    try:
        going = wait_for(lambda: [r.id for r in stored_runs(home, "nightly")
                                  if r.state == "Running"], 60, "the held run")[0]
        # A second window of the same Lab, a tab of a run the first one deletes open in it.
        window = page.context.new_page()
        # Headless Chromium draws a page a second opened page hid about once a second: each
        # click waits two of its frames (Playwright's "stable"). In front again, both draw.
        page.bring_to_front()
        panel2, alerts2 = open_lab(window, url)
        view2 = open_run(window, panel2, middle)
        view2.locator('g.labloom-node[data-state="Completed"]').wait_for(timeout=20_000)
        panel, alerts = open_lab(page, url)
        run_row(panel, going, "Running").wait_for(timeout=20_000)
        # Two tabs open: one of a run the panel deletes, one of a run deleted from a terminal.
        view = open_run(page, panel, newest)
        view.locator('g.labloom-node[data-state="Completed"]').wait_for(timeout=20_000)
        elsewhere = open_run(page, panel, oldest)
        elsewhere.locator('g.labloom-node[data-state="Completed"]').wait_for(timeout=20_000)
        view_tab = page.locator(f'.lm-TabBar-tab[data-id="labloom-run-tab-{newest}"]')
        view_tab.click()
        assert labloom(home, "delete", oldest).returncode == 0

        delete = panel.locator("button.labloom-delete")
        assert delete.is_disabled()
        for run_id in (newest, middle, going):
            run_row(panel, run_id).locator(".labloom-run-pick").check()
        assert delete.text_content() == "Delete (3)"
        # Cancel in the dialog: nothing is deleted.
        delete.click()
        dialog = page.locator(".jp-Dialog")
        dialog.get_by_text("Delete 3 runs?").wait_for(timeout=10_000)
        assert newest in dialog.inner_text() and "cannot be undone" in dialog.inner_text()
        shot(page, "lab-delete-dialog")
        dialog.get_by_role("button", name="Cancel").click()
        dialog.wait_for(state="detached", timeout=10_000)
        assert len(stored_runs(home, "nightly")) == 3

        delete.click()
        page.locator(".jp-Dialog").get_by_role("button", name="Delete").click()
        # The ended runs go; the one still running stays, and the panel says why.
        run_row(panel, newest).wait_for(state="detached", timeout=20_000)
        run_row(panel, middle).wait_for(state="detached", timeout=20_000)
        panel.locator(".labloom-delete-note", has_text=f"Kept {going}: run {going} is "
                      "still Running").wait_for(timeout=10_000)
        assert [r.id for r in stored_runs(home, "nightly")] == [going]
        assert run_row(panel, going).locator(".labloom-run-pick").is_checked()
        assert delete.text_content() == "Delete (1)"
        # Its open tab says it was deleted, and stops asking for it.
        view.locator(".labloom-RunView-notice", has_text=f"Run {newest} was deleted from the "
                     "store").wait_for(timeout=10_000)
        assert view.get_attribute("data-state") == "deleted"
        view_tab.filter(has_text="deleted").wait_for(timeout=10_000)
        shot(page, "lab-deleted-run-tab")
        # The other window learns it from the server's pushed event: its tab of an ended run,
        # shown all along, reads nothing more by itself.
        view2.locator(".labloom-RunView-notice", has_text=f"Run {middle} was deleted from the "
                      "store").wait_for(timeout=20_000)
        run_row(panel2, middle).wait_for(state="detached", timeout=20_000)
        # The tab of the run deleted from a terminal says so once it is shown again.
        page.locator(f'.lm-TabBar-tab[data-id="labloom-run-tab-{oldest}"]').click()
        elsewhere.locator(".labloom-RunView-notice", has_text="was deleted from the store"
                          ).wait_for(timeout=20_000)
        run_row(panel, oldest).wait_for(state="detached", timeout=30_000)
        # Lab opened again, its layout restored: the tab of a run no longer in the store says
        # so, without an empty DAG whose Cancel, Timeline and Experiments buttons only failed.
        page.goto(page.url.split("?")[0])  # its own workspace (the other window has one)
        notice = page.locator(".labloom-RunView-notice", has_text="is not in the store")
        notice.wait_for(timeout=60_000)  # the tab shown: the last one clicked, or another
        restored = page.locator(".labloom-RunView", has=notice)
        assert restored.get_attribute("data-state") == "deleted"
        assert not restored.locator("button.labloom-cancel").is_visible()
        release.touch()
        assert holding.wait(timeout=60) == 0
    except Exception:
        shot(page, "failed-lab-delete")
        raise
    finally:
        release.touch()
        if holding.poll() is None:
            holding.kill()
        holding.communicate(timeout=10)
    assert alerts == [] and alerts2 == []

