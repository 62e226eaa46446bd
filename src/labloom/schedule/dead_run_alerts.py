"""Failure alerts for `labloom run --notify` commands that died before they kept their own:
killed (-9, the OOM killer) or their machine restarted during the run, or between the failure
written and the alert kept. The run's wish (``run_alert_wishes``, written at its start by
``run_alerts.register``) outlives the command; a ``labloom serve`` looks at the wishes (``compose``,
once a heartbeat), and for each whose command is gone composes the alert from the store: the
flow, the run, its final state (Crashed, once marked so here as any read of the store marks a
dead run) and why. The alert joins the outbox (``alert_outbox``) in the transaction that
deletes the wish, so two serves make it once; a run that completed leaves no alert.

When a command counts as gone: on the serve's host, its pid is dead (or another process's, one
started since). Elsewhere only the store tells: a run still open, by its heartbeat
(``home.why_gone``, as ``labloom runs`` marks it Crashed); a run that ended, or never wrote its
record, once ``LABLOOM_HEARTBEAT_TIMEOUT`` passed since then without the command keeping its
alert (it does so at once). A command only stalled that long on another host keeps its own
alert too: two alerts then, never none.

A command that settled its alert while the store was away (delivered from memory, or its run
completed) could not delete its wish: it left a mark on its host's disk (``settled_marks``),
and a serve of the same home drops such a wish, without an alert.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ..store import store_clock
from ..store.crashed_runs import mark_crashed_runs
from ..store.db import Conn
from ..store.home import host_name, why_gone
from ..store.settings import heartbeat_timeout
from ..store.unanswered_commits import lock_briefly
from . import alert_outbox as outbox
from . import settled_marks
from .alerts import failure_payload
from .liveness import run_outcome

log = logging.getLogger("labloom")

_OPEN = ("Pending", "Running")
_CRASHED_NOTE = "crashed: "  # the start of the message ``crashed_runs`` gives a dead run


def compose(conn: Conn) -> list[str]:
    """Alerts kept in the outbox for the runs whose command died before it kept theirs; the
    ids of those runs (wishes of completed runs go without one)."""
    rows = conn.execute(
        "SELECT w.run_id, w.holder, w.created, r.state, r.host, r.pid, r.heartbeat, r.created,"
        " r.ended FROM run_alert_wishes w LEFT JOIN flow_runs r ON r.id = w.run_id"
    ).fetchall()
    settled_marks.sweep({row[0] for row in rows})
    if not rows:
        return []
    now = store_clock.now(conn)
    gone = [row[0] for row in rows if _command_gone(row, now)]
    if any(row[3] in _OPEN for row in rows if row[0] in gone):
        mark_crashed_runs(conn, now)  # as any read does: the dead run's record says Crashed
    return [run_id for run_id in gone if _alert(conn, run_id)]


def _command_gone(row: tuple[Any, ...], now: float) -> bool:
    _, holder, wished, state, host, pid, beat, created, ended = row
    if state in _OPEN:  # the command is the run's process: its record says whether it lives
        return why_gone(host, pid, beat, created, now) is not None
    if holder.endswith(f"@{host_name()}"):
        return outbox.run_holder_gone(holder, since=wished)
    # Another host's command, whose run ended (it keeps its alert at once) or never wrote
    # its record: given the time a live one beats in.
    since = float(wished if state is None else (ended or wished))
    return now - since > heartbeat_timeout()


def _alert(conn: Conn, run_id: str) -> bool:
    """The wish's alert into the outbox, or none for a run still open (not marked Crashed
    after all: it beat meanwhile) or completed; whether one was kept. Once: the wish goes in
    the same transaction, which a second serve waits for and then finds nothing to do."""
    with conn.transaction():
        lock_briefly(conn, "labloom-alerts")
        wish = conn.execute("SELECT flow, url FROM run_alert_wishes WHERE run_id = ?",
                            (run_id,)).fetchone()
        run = conn.execute("SELECT state, message, host FROM flow_runs WHERE id = ?",
                           (run_id,)).fetchone()
        if wish is None or (run is not None and run[0] in _OPEN):
            return False
        conn.execute("DELETE FROM run_alert_wishes WHERE run_id = ?", (run_id,))
        mark = settled_marks.read(run_id)
        if mark is not None and mark.outcome == settled_marks.DELIVERED:
            outbox.note_run(conn, run_id, mark.outcome, mark.at, mark.attempts)
        if (mark is not None and mark.outcome != settled_marks.UNDELIVERED) \
                or (run is not None and run[0] == "Completed"):
            return False
        body = _body(conn, run_id, wish[0], run, mark)
        now = store_clock.now(conn)
        conn.execute(
            "INSERT INTO pending_alerts (schedule, run_id, body, created, next_try, url) "
            "VALUES (?, ?, ?, ?, ?, ?)", (outbox.NO_SCHEDULE, run_id, json.dumps(body), now, now,
                                          wish[1]))
    log.warning("[labloom] run %s of flow %r ended %s after its `labloom run --notify` died: "
                "its failure alert is sent from here", run_id, body["flow"], body["state"])
    return True


def _body(conn: Conn, run_id: str, flow: str, run: tuple[Any, ...] | None,
          mark: settled_marks.Mark | None = None) -> dict[str, Any]:
    """The alert, from the store: task states only (a message may hold data), and why the
    run ended, in labloom's own words; why this serve sends it (``mark``: the command could
    not deliver it, else it died)."""
    if run is None:  # the command died before the run's record was written
        return failure_payload(flow, run_id, "Crashed", [], "its `labloom run` died before "
                               "the run's record was written")
    state, message, host = run
    _, _, failed = run_outcome(conn, run_id)
    if state == "Crashed" and (message or "").startswith(_CRASHED_NOTE):
        why = message.removeprefix(_CRASHED_NOTE)
    else:
        hard = [name for name, kind in failed if kind != "UpstreamFailed"]
        why = (f"{len(hard)} task run(s) did not complete; first: {hard[0]}; " if hard else "") \
            + (mark.not_sent() if mark else "its `labloom run` died before it sent this alert")
    body = failure_payload(flow, run_id, state, failed, why)
    body["host"] = host or body["host"]  # where the run died, not this serve's host
    return body

