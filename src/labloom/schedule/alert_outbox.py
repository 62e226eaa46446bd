"""``labloom serve``'s failure alerts kept in the store until a webhook (or relay) takes them.

An alert is a row of ``pending_alerts`` from the moment the failure it tells of is recorded
(in the same transaction, where the daemon has one) until it is delivered: a ``serve`` killed
(-9, the OOM killer, a machine restarted) while the webhook was down leaves it there, and the
next ``serve`` on the store sends it. A row names its schedule, not the URL: the URL is a secret,
kept once, in the schedule's row, and read at each attempt.

One scheduler sends a row at a time, as one claims a slot: it marks the row its own
(``sender``) inside a transaction that serializes claimers (``BEGIN IMMEDIATE`` on SQLite, an
advisory lock on PostgreSQL), and that claim counts while its scheduler lives (its pid on this
host, its heartbeat elsewhere: ``liveness``). Delivery is at least once: a ``serve`` killed
between the webhook's answer and the row's deletion leaves the alert to be sent again.

The alerts to one URL go in the order they were made, the oldest first (``claim``): a webhook
that is down holds its own alerts back, one attempt at a time, never another URL's. Retries wait
in the row (``next_try``), not in a sleeping thread, so they survive a restart. An alert whose
retries are spent is given up, with those waiting behind it for its URL: their rows go, and
each schedule's row of ``undelivered_alerts`` says when and why (and how many since the first),
shown by ``schedule list``, its ``--json`` and ``GET schedules`` until an alert of that schedule
is delivered.

``labloom run --notify``'s alerts (``run_alerts``) wait here too, under no schedule
(``NO_SCHEDULE``), their URL in their own row: what the run could not deliver before it exited,
or an alert left by a run killed while it posted. What became of each alert of a run once it
left (delivered, or given up and why) is kept in ``run_alerts``, which `labloom show` reads.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..store import home as _home
from ..store.db import Conn
from ..store.unanswered_commits import lock_briefly
from .liveness import STALE_AFTER

log = logging.getLogger("labloom")

BATCH = 20  # alerts of one URL handed to its sender at once
NO_SCHEDULE = ""  # the ``schedule`` of an alert kept by `labloom run --notify` (no name is '')
# An alert's URL: its own (a run's), else its schedule's (read at each attempt: a schedule
# whose --notify changed sends its waiting alerts to the new one).
_URL = "COALESCE(a.url, s.notify)"
_RUN_HOLDER = "run:"  # a ``sender`` that is a `labloom run` posting its own alert: run:PID@HOST


@dataclass(frozen=True)
class Pending:
    """One alert to send: its row's id, its schedule, and the body to post."""

    id: int
    schedule: str
    run_id: str | None
    body: dict[str, Any]
    attempts: int  # made before this one
    url: str


@dataclass(frozen=True)
class Batch:
    """The alerts due for one URL, in their order."""

    url: str
    items: list[Pending]


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed alert: ``reason`` None once taken; not ``tried`` when its
    sender stopped first (an earlier alert to its URL failed, or ``serve`` was stopping)."""

    item: Pending
    reason: str | None
    tried: bool = True


def enqueue(conn: Conn, schedule: str, body: dict[str, Any], now: float) -> None:
    """Keep an alert to send now; inside the transaction that records what it tells of."""
    conn.execute(
        "INSERT INTO pending_alerts (schedule, run_id, body, created, next_try) "
        "VALUES (?, ?, ?, ?, ?)",
        (schedule, body.get("run_id"), json.dumps(body), now, now),
    )


def any_due(conn: Conn, now: float) -> bool:
    """A read: no write transaction on the ticks with nothing to send (a `labloom run`'s alert
    counts while it holds it: ``claim`` looks whether it was killed)."""
    return conn.execute("SELECT 1 FROM pending_alerts WHERE next_try <= ? OR sender LIKE ? "
                        "LIMIT 1", (now, f"{_RUN_HOLDER}%")).fetchone() is not None


def claim(conn: Conn, sender: str, now: float, busy: set[str], room: int) -> list[Batch]:
    """Up to ``room`` batches for ``sender`` to send, one per URL not in ``busy`` (being sent
    to by it now): each URL's alerts from its oldest on, while they are due and no live
    scheduler holds them. Alerts whose schedule was removed meanwhile go, said."""
    batches: dict[str, list[Pending]] = {}
    held: set[str] = set(busy)  # URLs whose oldest alert waits, or is another's to send
    gone: list[int] = []
    with conn.transaction():
        lock_briefly(conn, "labloom-alerts")  # cut unnoticed, it held every serve's alerts
        rows = conn.execute(
            f"SELECT a.id, a.schedule, a.run_id, a.body, a.attempts, a.next_try, a.sender,"
            f" {_URL}, h.host, h.pid, h.beat FROM pending_alerts a"
            " LEFT JOIN schedules s ON s.name = a.schedule"
            " LEFT JOIN schedulers h ON h.id = a.sender ORDER BY a.id"
        ).fetchall()
        for (alert_id, schedule, run_id, body, attempts, next_try, holder,
             url, host, pid, beat) in rows:
            if not url:
                gone.append(alert_id)
                continue
            if url in held:
                continue
            if holder is not None and holder.startswith(_RUN_HOLDER):
                if run_holder_gone(holder):  # killed while it posted: its alert is due now
                    next_try = now
                holder = None  # else its row is not due until the command's window is over
            claimed = holder is not None and _home.owner_alive(host, pid, beat, now,
                                                                STALE_AFTER)
            if claimed or next_try > now or len(batches.get(url, ())) >= BATCH:
                held.add(url)  # in order: none of this URL's later alerts before this one
                continue
            if url not in batches and len(batches) >= room:
                continue
            batches.setdefault(url, []).append(
                Pending(alert_id, schedule, run_id, json.loads(body), attempts, url))
        ids = [item.id for items in batches.values() for item in items]
        for alert_id in ids:
            conn.execute("UPDATE pending_alerts SET sender = ? WHERE id = ?", (sender, alert_id))
        for alert_id in gone:
            conn.execute("DELETE FROM pending_alerts WHERE id = ?", (alert_id,))
    if gone:
        log.warning("[labloom] %d alert(s) dropped: their schedule was removed, and its "
                    "--notify with it", len(gone))
    return [Batch(url, items) for url, items in batches.items()]


def run_holder() -> str:
    """The ``sender`` of an alert this `labloom run` process is posting itself."""
    return f"{_RUN_HOLDER}{os.getpid()}@{_home.host_name()}"


def run_holder_gone(holder: str, since: float | None = None) -> bool:
    """Whether the `labloom run` that holds an alert (or its wish) is known dead: its pid, on
    this host (or, alive, a later process's: started after ``since``, the store's time when it
    was seen). On another host nothing says so: the caller waits for its own sign."""
    pid, _, host = holder.removeprefix(_RUN_HOLDER).partition("@")
    if host != _home.host_name() or not pid.isdigit():
        return False
    return not _home.pid_alive(int(pid)) or (since is not None
                                            and _home.started_after(int(pid), since))


def record(conn: Conn, sender: str, now: float, outcomes: Sequence[Outcome],
           delays: Sequence[float]) -> None:
    """Keep what became of ``sender``'s alerts, in one transaction: a delivered one goes (and
    with it its schedule's undelivered note), a refused one waits for its next try or is
    given up, one not tried is let go for the next claim."""
    with conn.transaction():
        for outcome in outcomes:
            item = outcome.item
            if not outcome.tried:
                conn.execute("UPDATE pending_alerts SET sender = NULL WHERE id = ? AND "
                             "sender = ?", (item.id, sender))
            elif outcome.reason is None:
                conn.execute("DELETE FROM pending_alerts WHERE id = ?", (item.id,))
                conn.execute("DELETE FROM undelivered_alerts WHERE schedule = ?",
                             (item.schedule,))
                note_run(conn, item.run_id, "delivered", now, item.attempts + 1)
            elif item.attempts + 1 <= len(delays):
                wait = delays[item.attempts]
                conn.execute(
                    "UPDATE pending_alerts SET attempts = ?, next_try = ?, last_error = ?, "
                    "sender = NULL WHERE id = ? AND sender = ?",
                    (item.attempts + 1, now + wait, outcome.reason, item.id, sender))
                log.warning("[labloom] alert for run %s (%s) not delivered (%s); retrying in "
                            "%gs", item.run_id, _whose(item), outcome.reason, wait)
            else:
                _give_up(conn, sender, now, item, outcome.reason)


def _give_up(conn: Conn, sender: str, now: float, item: Pending, reason: str) -> None:
    """The alert goes, noted; so do those waiting behind it for its URL: the webhook refused
    this one through its whole retry window, and each would wait as long again, a backlog
    that grew with each failure while it was down."""
    attempts = item.attempts + 1
    if not conn.execute("DELETE FROM pending_alerts WHERE id = ? AND sender = ?",
                        (item.id, sender)).rowcount:
        return  # another scheduler took it over meanwhile (this one was frozen): its to end
    _note(conn, item.schedule, item.run_id, item.body.get("state"), now, attempts, reason)
    where = (f"`labloom show {item.run_id}` says so" if item.schedule == NO_SCHEDULE else
             "`labloom schedule list` shows it until an alert of the schedule is delivered")
    log.error("[labloom] alert for run %s (%s) not delivered after %d attempts (%s); giving "
              "up: %s", item.run_id, _whose(item), attempts, reason, where)
    behind = conn.execute(
        f"SELECT a.id, a.schedule, a.run_id, a.body, a.attempts FROM pending_alerts a LEFT JOIN"
        f" schedules s ON s.name = a.schedule WHERE {_URL} = ? AND a.id > ? ORDER BY a.id",
        (item.url, item.id)).fetchall()
    why = f"not sent: its webhook refused the alert before it ({reason}) through every retry"
    for alert_id, schedule, run_id, body, tried in behind:
        conn.execute("DELETE FROM pending_alerts WHERE id = ?", (alert_id,))
        _note(conn, schedule, run_id, json.loads(body).get("state"), now, tried, why)
    if behind:
        log.error("[labloom] %d alert(s) waiting behind it for the same webhook given up with "
                  "it", len(behind))


def _whose(item: Pending) -> str:
    return "labloom run --notify" if item.schedule == NO_SCHEDULE else \
        f"schedule {item.schedule!r}"


def _note(conn: Conn, schedule: str, run_id: str | None, state: str | None, now: float,
          attempts: int, reason: str) -> None:
    """One more alert of ``schedule`` given up: the note says the latest, and how many (of a
    run's alert, the run's note says it)."""
    note_run(conn, run_id, "given up", now, attempts, reason)
    if schedule == NO_SCHEDULE:
        return
    conn.execute(
        "INSERT INTO undelivered_alerts (schedule, run_id, state, given_up, first_given_up,"
        " alerts, attempts, reason) VALUES (?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT (schedule)"
        " DO UPDATE SET run_id = excluded.run_id, state = excluded.state, given_up ="
        " excluded.given_up, alerts = undelivered_alerts.alerts + 1, attempts ="
        " excluded.attempts, reason = excluded.reason",
        (schedule, run_id, state, now, now, attempts, reason))


def note_run(conn: Conn, run_id: str | None, outcome: str, now: float, attempts: int,
             reason: str = "") -> None:
    """What became of the alert of run ``run_id`` (the latest, for a run alerted twice)."""
    if run_id is None:
        return
    conn.execute(
        "INSERT INTO run_alerts (run_id, outcome, at, attempts, reason) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (run_id) DO UPDATE SET outcome = excluded.outcome, at = excluded.at,"
        " attempts = excluded.attempts, reason = excluded.reason",
        (run_id, outcome, now, attempts, reason))


def release(conn: Conn, sender: str) -> None:
    """Let go of every alert ``sender`` holds (it stops): the next claim takes them at once."""
    conn.execute("UPDATE pending_alerts SET sender = NULL WHERE sender = ?", (sender,))


def count(conn: Conn) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM pending_alerts").fetchone()[0])


def forget(conn: Conn, schedule: str) -> int:
    """Drop a removed schedule's alerts (its URL goes with it); how many were still to send."""
    dropped = conn.execute("DELETE FROM pending_alerts WHERE schedule = ?", (schedule,)).rowcount
    conn.execute("DELETE FROM undelivered_alerts WHERE schedule = ?", (schedule,))
    return int(dropped)


def by_schedule(conn: Conn) -> dict[str, dict[str, Any]]:
    """Per schedule with any: ``pending`` (how many alerts are still to send, and of the oldest
    its attempts, why the last failed and when it is tried next) and ``undelivered`` (the row
    of those given up), times as the store's seconds."""
    found: dict[str, dict[str, Any]] = {}
    for schedule, attempts, error, next_try in conn.execute(
            "SELECT schedule, attempts, last_error, next_try FROM pending_alerts WHERE"
            " schedule <> ? ORDER BY id", (NO_SCHEDULE,)):
        entry = found.setdefault(schedule, {"pending": None, "undelivered": None})
        if entry["pending"] is None:
            entry["pending"] = {"alerts": 0, "attempts": attempts, "last_error": error,
                                "next_try": next_try}
        entry["pending"]["alerts"] += 1
    for row in conn.execute("SELECT * FROM undelivered_alerts"):
        found.setdefault(row["schedule"], {"pending": None})["undelivered"] = dict(row)
    return found
