"""A schedule's failure alerts that did not go out, as the Flows panel's schedule row says them,
in a real JupyterLab in headless Chromium beside a real `labloom serve` posting to a webhook on
127.0.0.1: retried (a quiet line), given up (a warning line with its reason and run, legible on
both themes), and gone once the schedule's next alert is delivered. Before, only `labloom
schedule list` said so: a panel user never learnt that a failure had told nobody."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import (
    Hook,
    first_slot_in,
    slot_rows,
    start_labloom,
    stop,
    store_of,
    wait_for,
    write,
)
from lab_helpers import clipped, drag_side_bar_to, next_list_read, open_lab, shot, use_dark_theme
from labloom.store.home import host_name
from test_alerts_kept import FLOWS, add, end, pending_rows

pytestmark = [pytest.mark.browser, pytest.mark.needs("chromium"), pytest.mark.lab_extension]

HOSTILE = 'HTTP 502 (<img src=x onerror="document.title=1">)'

# The colour of a line's text and of what it is drawn on (its nearest painted ancestor).
COLOURS = """line => {
    let under = 'rgb(255, 255, 255)';
    for (let e = line; e; e = e.parentElement) {
        const c = getComputedStyle(e).backgroundColor;
        if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') { under = c; break; }
    }
    return [getComputedStyle(line).color, under];
}"""


def legible(line: Any) -> float:
    from test_lab_panel import contrast

    return contrast(*line.evaluate(COLOURS))


def undelivered(home: Path) -> list[dict[str, Any]]:
    conn = store_of(home)
    assert conn is not None
    with conn:
        return [dict(r) for r in conn.execute("SELECT * FROM undelivered_alerts")]


def shown_at_the_next_read(page: Any, stored: Any, what: str) -> None:
    """Once the store holds what the row is to say (``stored``: true), the panel's next read
    of its schedules (its 15 s safety net: no event carries an alert) brought forward to now.
    A read already under way when the clock jumps is followed by one at its own pace: the
    row's wait after this keeps its guard."""
    wait_for(stored, 90, what)
    next_list_read(page)


def retry_now(home: Path) -> None:
    """The alert waiting for its next try (600 s away) tried now, as if those had passed."""
    conn = store_of(home)
    assert conn is not None
    with conn:
        assert conn.execute("UPDATE pending_alerts SET next_try = ?", (time.time(),)).rowcount


def test_the_schedule_row_says_an_alert_retried_then_given_up_until_one_is_delivered(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    url, _notebooks = lab
    home = tmp_path / "labloom"  # the Lab server's LABLOOM_HOME
    write(home / "flows.py", FLOWS)
    hook = Hook([500, 404, 404])  # down, then revoked; fixed (200) from the next alert on
    add(home, "nightly", hook.url, due=False)
    page.clock.install()  # see next_list_read
    panel, _alerts = open_lab(page, url)
    row = panel.locator('.labloom-schedule[data-schedule="nightly"]')
    row.wait_for(timeout=30_000)
    assert row.locator(".labloom-schedule-alert").count() == 0
    first_slot_in(home, "nightly", 0.5)
    proc = start_labloom(home, "serve", "--tick", "0.1", LABLOOM_NOTIFY_DELAYS="600,0.2")
    try:
        # The webhook answered 500: retried in 600 s, said quietly (legible all the same).
        retrying = row.locator('.labloom-schedule-alert[data-alert="retrying"]')
        shown_at_the_next_read(page, lambda: [r for r in pending_rows(home)
                                                    if r["attempts"] >= 1], "a refused try")
        retrying.wait_for(timeout=90_000)
        assert (retrying.text_content() or "").startswith("alert retrying: HTTP 500, next ")
        assert "tried 1 time(s): HTTP 500" in (retrying.get_attribute("title") or "")
        assert legible(retrying) >= 4.5
        assert clipped(row, panel) == [], clipped(row, panel)

        # Tried again: 404 twice, given up. The row says why, of which run, and when.
        retry_now(home)
        lost = row.locator('.labloom-schedule-alert[data-alert="lost"]')
        shown_at_the_next_read(page, lambda: undelivered(home) and not pending_rows(home),
                               "the alert given up")
        lost.wait_for(timeout=90_000)
        [slot] = slot_rows(home)
        text = lost.text_content() or ""
        assert text.startswith("Failure alert not delivered: HTTP 404 (no such webhook"), text
        assert f" · run {slot['run_id']} Failed · " in text
        title = lost.get_attribute("title") or ""
        assert "after 3 attempt(s)" in title and "`labloom schedule test-alert nightly`" in title
        assert "secret-token" not in text + title
        retrying.wait_for(state="detached", timeout=60_000)
        assert legible(lost) >= 4.5
        # Read whole without hovering, at Lab's default side bar width and at 200 px: the
        # reason, then the fix. It was one line cut to "Failure alert not delivered: HTTP ...",
        # the rest only in its title.
        for width in (None, 200):
            if width:
                drag_side_bar_to(page, panel, width)
            assert clipped(row, panel) == [], (width, clipped(row, panel))
            # So is the failed run's row above it (at 200 px it reached out of the panel, its
            # state and start time cut).
            run = panel.locator(".labloom-run").first
            assert clipped(run, panel) == [], (width, clipped(run, panel))
            shown = lost.inner_text()
            assert "HTTP 404 (no such webhook: a token mistyped or revoked?)" in shown, shown
            assert shown.endswith("Check the webhook: `labloom schedule test-alert nightly`"), shown
            # The note lines up under the schedule's name, as the rows above and below it do.
            note, name = lost.bounding_box(), row.locator(".labloom-schedule-name").bounding_box()
            assert abs(note["x"] - name["x"]) < 1, (note, name)
        shot(page, "lab-schedule-alert-200px", panel)
        light = lost.evaluate(COLOURS)
        use_dark_theme(page)
        # The body's flag comes before the theme's stylesheet: wait for its colours.
        wait_for(lambda: lost.evaluate(COLOURS)[1] != light[1], 20, "the dark theme's colours")
        assert legible(lost) >= 4.5, lost.evaluate(COLOURS)
        shot(page, "lab-schedule-alert-dark", panel)
        # The reason holds a server's words: shown as text, never read as markup.
        conn = store_of(home)
        assert conn is not None
        with conn:
            conn.execute("UPDATE undelivered_alerts SET reason = ?", (HOSTILE,))
        next_list_read(page)
        wait_for(lambda: HOSTILE in (lost.text_content() or ""), 60, "the reason as text")
        assert row.locator("img").count() == 0

        # The schedule fails again; its alert is delivered: the note goes (a poll later).
        first_slot_in(home, "nightly", 0.5)
        wait_for(lambda: len(hook.bodies) == 4, 60, "the next failure's alert")
        shown_at_the_next_read(page, lambda: not undelivered(home) and not pending_rows(home),
                               "the note of the alert given up to go")
        lost.wait_for(state="detached", timeout=90_000)
        assert row.locator(".labloom-schedule-alert").count() == 0
        assert pending_rows(home) == []
        end(proc)
    except Exception:
        shot(page, "failed-lab-schedule-alert")
        raise
    finally:
        stop(proc)
        hook.close()


def test_the_schedule_row_says_a_live_serve_refuses_it_until_that_serve_stops(
    lab: Any, page: Any, tmp_path: Path
) -> None:
    # A serve with a bad LABLOOM_SMTP_PORT does not run a schedule added by mail while it
    # serves: the row read as if it would run (only serve's log said otherwise).
    url, _notebooks = lab
    home = tmp_path / "labloom"  # the Lab server's LABLOOM_HOME
    write(home / "flows.py", FLOWS)
    proc = start_labloom(home, "serve", "--tick", "0.1", LABLOOM_SMTP_PORT="smtp")
    try:
        assert proc.stdout is not None and "serving" in proc.stdout.readline()
        add(home, "nightly", "mailto:ops@hospital.test", due=False)
        page.clock.install()  # see next_list_read
        panel, _alerts = open_lab(page, url)
        row = panel.locator('.labloom-schedule[data-schedule="nightly"]')
        row.wait_for(timeout=30_000)
        refused = row.locator('.labloom-schedule-alert[data-alert="refused"]')
        shown_at_the_next_read(page, lambda: refusals(home), "the refusal kept")
        refused.wait_for(timeout=90_000)
        text = refused.text_content() or ""
        assert text.startswith(
            f"Not run by `labloom serve` pid {proc.pid} on {host_name()}: its failure alerts "
            "go by mail, and LABLOOM_SMTP_PORT must be a port number"), text
        assert text.endswith("fix it there and start serve again"), text
        assert "Refused since " in (refused.get_attribute("title") or "")
        assert legible(refused) >= 4.5
        drag_side_bar_to(page, panel, 200)  # read whole in a narrow side bar too
        assert clipped(row, panel) == [], clipped(row, panel)
        shot(page, "lab-schedule-refused-200px", panel)
        # That serve stopped: nothing refuses the schedule any more.
        end(proc)
        shown_at_the_next_read(page, lambda: not refusals(home), "the refusal to go")
        refused.wait_for(state="detached", timeout=90_000)
    except Exception:
        shot(page, "failed-lab-schedule-refused")
        raise
    finally:
        stop(proc)


def refusals(home: Path) -> list[Any]:
    conn = store_of(home)
    assert conn is not None
    with conn:
        return conn.execute("SELECT * FROM schedule_refusals").fetchall()
