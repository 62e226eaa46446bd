"""`labloom serve` on PostgreSQL whose claim of a slot commits but whose answer never comes (the
server crashed, the network went, right after the commit): the scheduler took the claim for
failed and never started its run. Before, that slot stayed running (its scheduler alive), and
every later slot of the schedule was skipped as 'the previous run was still running', for as
long as that `serve` ran."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import Hook, labloom, slot_rows, start_labloom, stop, wait_for, write
from pg_commit_cut import CommitCutter, cut_database

FLOW = """
    from labloom import flow, task

    @task
    def work():
        return 1

    @flow
    def job():
        work()
"""


@pytest.fixture(params=["after the commit", "unnoticed by the server"])
def cut_claims(postgres_server: Any, monkeypatch: pytest.MonkeyPatch,
               request: pytest.FixtureRequest) -> Iterator[CommitCutter]:
    """A claim's COMMIT cut as the server answers it, or as it is sent, the server not
    noticing (the claim's transaction stays open, holding the schedule's row)."""
    with cut_database(postgres_server, monkeypatch, writes=(b"INTO schedule_slots ",),
                      commits=request.param == "after the commit",
                      held=request.param == "unnoticed by the server") as proxy:
        yield proxy


def test_a_claim_whose_commit_answer_is_lost_is_run(
    cut_claims: CommitCutter, tmp_path: Path
) -> None:
    proxy = cut_claims
    write(tmp_path / "flows.py", FLOW)
    added = labloom(tmp_path, "schedule", "add", "flows.py:job", "--every", "2s")
    assert added.returncode == 0, added.stderr
    proxy.armed.set()
    serve = start_labloom(tmp_path, "serve", "--tick", "0.1")
    try:
        wait_for(proxy.cut.is_set, 60, "a claim's COMMIT cut")
        assert proxy.answer == (b"I" if proxy.commits else b"")  # committed, or never got it
        # Its run, and those of later slots: before, the first stayed running, the rest were
        # skipped (or, unnoticed, the scheduler waited on the claim's row lock).
        wait_for(lambda: [r["status"] for r in slot_rows(tmp_path)].count("completed") >= 3,
                 120, "three slots' runs")
    finally:
        stop(serve)
    rows = slot_rows(tmp_path)
    assert rows[0]["status"] == "completed", rows  # the slot whose claim was cut, if it landed
    assert all(r["run_id"] and r["exit_code"] == 0 for r in rows if r["status"] == "completed")


FAILING = """
    from labloom import flow, task

    @task
    def check():
        raise ValueError("malformed")

    @flow
    def etl():
        check()
"""


def test_a_run_alert_kept_unanswered_is_not_left_to_be_sent_again(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # `labloom run --notify` keeps its alert in the outbox (its row names the command as
    # sender), posts it, and deletes the row once delivered. Before, a keep whose COMMIT went
    # unanswered was taken for failed: the command posted from memory and left the row, which
    # the next serve sent again once the command's hold was over.
    from test_alerts_kept import pending_rows

    hook = Hook([])
    try:
        with cut_database(postgres_server, monkeypatch,
                          writes=(b"INTO pending_alerts ",)) as proxy:
            write(tmp_path / "flows.py", FAILING)
            proxy.armed.set()
            out = labloom(tmp_path, "run", "flows.py:etl", "--notify", hook.url,
                          LABLOOM_PROGRESS="0", LABLOOM_NOTIFY_DELAYS="0.1")
            assert out.returncode == 1, out.stderr
            assert proxy.cut.is_set() and proxy.answer == b"I", out.stderr
            assert len(hook.bodies) == 1
            assert pending_rows(tmp_path) == []  # before: the row, for a serve to send again
    finally:
        hook.close()


def test_an_alert_claim_cut_unnoticed_does_not_hold_the_alerts(
    postgres_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A serve claims a failed run's alert (``alert_outbox.claim``, under the alerts' lock) and
    # its connection is cut as it sends the COMMIT, the server not noticing. Before, that
    # transaction held the lock until the server noticed (TCP keepalive: two hours), and the
    # serve's next claim waited on it: no alert sent, no schedule run meanwhile.

    hook = Hook([])
    try:
        with cut_database(postgres_server, monkeypatch, commits=False, held=True,
                          writes=(b"UPDATE pending_alerts SET sender",)) as proxy:
            write(tmp_path / "flows.py", FAILING)
            added = labloom(tmp_path, "schedule", "add", "flows.py:etl", "--every", "2s",
                            "--notify", hook.url)
            assert added.returncode == 0, added.stderr
            proxy.armed.set()
            serve = start_labloom(tmp_path, "serve", "--tick", "0.1")
            try:
                wait_for(proxy.cut.is_set, 60, "an alert claim's COMMIT cut")
                wait_for(lambda: hook.bodies, 120, "the alert sent all the same")
            finally:
                stop(serve)
            assert "etl" in json.dumps(hook.bodies[0]), hook.bodies
    finally:
        hook.close()
