"""The Flows panel in Lab's left side bar at its default width (250 px) and at 200 px, in a real
JupyterLab in headless Chromium, with a run of a long-named flow made by the real `labloom`
command: what a user reads there is whole, nothing cut or reaching out of the panel. Before,
the launch form's Run button showed "Run" alone (the flow's name wrapped out of its one 32 px
line) and at 200 px pushed the panel sideways; a run's row left the flow's name 80 px
("nightly_e…", its whole name nowhere, not even on hover) and at 200 px reached out of the
panel, its state and start time cut.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cli_helpers import labloom
from lab_helpers import (
    clipped,
    drag_side_bar_to,
    flows_folder,
    open_lab,
    run_row,
    shot,
    stored_runs,
)

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium"), pytest.mark.lab_extension]

NAME = "nightly_feature_refresh"
FLOWS = f'''
from labloom import flow, task

@task
def step(i):
    return i

@flow(executor="local")
def {NAME}(n: int = 3):
    return step.map(range(n))
'''


def test_the_panel_s_rows_and_launch_form_are_whole_at_250_and_200_px(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    done = labloom(home, "run", f"flows.py:{NAME}", cwd=work, LABLOOM_PROGRESS="0")
    assert done.returncode == 0, done.stderr
    [run] = stored_runs(home, NAME)
    panel, _alerts = open_lab(page, url)
    row = run_row(panel, run.id)
    row.wait_for(timeout=30_000)
    assert panel.bounding_box()["width"] == 250  # Lab's default side bar
    panel.locator(".labloom-launch > summary").click()
    panel.locator(".labloom-launch-choice").select_option(label=f"{NAME} (flows.py)")
    button = panel.locator(".labloom-launch-run")
    button.wait_for(timeout=30_000)
    for width in (250, 200):
        if width != 250:
            drag_side_bar_to(page, panel, width)
        launch = panel.locator(".labloom-launch")
        assert clipped(launch, panel) == [], (width, clipped(launch, panel))
        assert button.inner_text() == f"Run {NAME}"
        cut = clipped(row, panel)
        if width == 200:
            # The name wraps, three lines at most (57 px a line here): the rest on hover.
            cut = [box for box in cut if box[0] != "labloom-run-flow"]
            assert row.locator(".labloom-run-flow").get_attribute("title") == NAME
        assert cut == [], (width, cut)
        shot(page, f"lab-panel-{width}px", panel)


def _ten_pm_zone(stamp: float) -> str:
    """An IANA zone where ``stamp`` is between 10 PM and 11 PM: a two-digit hour."""
    import datetime

    offset = (22 - datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).hour) % 24
    offset = offset - 24 if offset > 14 else offset  # Etc zones reach UTC-12 .. UTC+14
    # (Etc's signs are POSIX's: Etc/GMT-3 is three hours ahead of UTC.)
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def test_a_scheduled_run_s_row_is_whole_at_200_px_at_10_pm_and_on_a_later_day(
    lab: Any, tmp_path: Path
) -> None:
    """A scheduled run's origin ("schedule") was cut to "schedul" at 200 px when its start
    time had a two-digit hour ("10:24:30 PM"): the middle column gave way to the right one's
    whole time. So it failed between 10 PM and 1 AM only (session 50, in a full suite run at
    22:13). Here the page's zone makes it 10 PM; then its clock a day later, which shows the
    start with its date ("12/6/26, 10:24 PM")."""
    import datetime

    from playwright.sync_api import sync_playwright

    from lab_helpers import CHROMIUM_ARGS
    from system_programs import require_program

    url, _notebooks = lab
    home, work = flows_folder(tmp_path, FLOWS)
    done = labloom(home, "run", f"flows.py:{NAME}", "--origin", "schedule", cwd=work,
                   LABLOOM_PROGRESS="0")  # as `labloom serve` starts a scheduled run
    assert done.returncode == 0, done.stderr
    [run] = stored_runs(home, NAME)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=require_program("chromium"),
                                    args=CHROMIUM_ARGS, headless=True)
        try:
            for later_day in (False, True):
                context = browser.new_context(viewport={"width": 1400, "height": 1000},
                                              locale="en-US", timezone_id=_ten_pm_zone(run.started))
                page = context.new_page()
                if later_day:
                    page.clock.install(time=datetime.datetime.fromtimestamp(
                        run.started + 86_400, datetime.timezone.utc))
                panel, _alerts = open_lab(page, url)
                row = run_row(panel, run.id)
                row.wait_for(timeout=30_000)
                origin = row.locator(".labloom-run-origin").inner_text()
                start = row.locator(".labloom-run-start").inner_text()
                assert origin == "schedule", origin
                # The widest starts: "10:24:30 PM", "12/6/26, 10:24 PM" (hours 10 to 12)
                assert (", 10:" in start) if later_day else start.startswith("10:"), start
                drag_side_bar_to(page, panel, 200)
                cut = [box for box in clipped(row, panel) if box[0] != "labloom-run-flow"]
                assert cut == [], (later_day, start, cut)
                context.close()
        finally:
            browser.close()
