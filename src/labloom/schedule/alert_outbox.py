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
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..store import home as _home
from ..store.db import Conn
from .liveness import STALE_AFTER

log = logging.getLogger("labloom")

BATCH = 20  # alerts of one URL handed to its sender at once


@dataclass(frozen=True)
class Pending:
    """One alert to send: its row's id, its schedule, and the body to post."""

    id: int
    schedule: str
    run_id: str | None
    body: dict[str, Any]
    attempts: int  # made before this one


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
    """A read: no write transaction on the ticks with nothing to send."""
    return conn.execute("SELECT 1 FROM pending_alerts WHERE next_try <= ? LIMIT 1",
                        (now,)).fetchone() is not None


def claim(conn: Conn, sender: str, now: float, busy: set[str], room: int) -> list[Batch]:
    """Up to ``room`` batches for ``sender`` to send, one per URL not in ``busy`` (being sent
    to by it now): each URL's alerts from its oldest on, while they are due and no live
    scheduler holds them. Alerts whose schedule was removed meanwhile go, said."""
    batches: dict[str, list[Pending]] = {}
    held: set[str] = set(busy)  # URLs whose oldest alert waits, or is another's to send
    gone: list[int] = []
    with conn.transaction():
        conn.lock("labloom-alerts")
        rows = conn.execute(
            "SELECT a.id, a.schedule, a.run_id, a.body, a.attempts, a.next_try, a.sender,"
            " s.notify, h.host, h.pid, h.beat FROM pending_alerts a"
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
            claimed = holder is not None and _home.owner_alive(host, pid, beat, now,
                                                                STALE_AFTER)
            if claimed or next_try > now or len(batches.get(url, ())) >= BATCH:
                held.add(url)  # in order: none of this URL's later alerts before this one
                continue
            if url not in batches and len(batches) >= room:
                continue
            batches.setdefault(url, []).append(
                Pending(alert_id, schedule, run_id, json.loads(body), attempts))
        ids = [item.id for items in batches.values() for item in items]
        for alert_id in ids:
            conn.execute("UPDATE pending_alerts SET sender = ? WHERE id = ?", (sender, alert_id))
        for alert_id in gone:
            conn.execute("DELETE FROM pending_alerts WHERE id = ?", (alert_id,))
    if gone:
        log.warning("[labloom] %d alert(s) dropped: their schedule was removed, and its "
                    "--notify with it", len(gone))
    return [Batch(url, items) for url, items in batches.items()]


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
            elif item.attempts + 1 <= len(delays):
                wait = delays[item.attempts]
                conn.execute(
                    "UPDATE pending_alerts SET attempts = ?, next_try = ?, last_error = ?, "
                    "sender = NULL WHERE id = ? AND sender = ?",
                    (item.attempts + 1, now + wait, outcome.reason, item.id, sender))
                log.warning("[labloom] alert for run %s (schedule %r) not delivered (%s); "
                            "retrying in %gs", item.run_id, item.schedule, outcome.reason, wait)
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
    log.error("[labloom] alert for run %s (schedule %r) not delivered after %d attempts (%s); "
              "giving up: `labloom schedule list` shows it until an alert of the schedule is "
              "delivered", item.run_id, item.schedule, attempts, reason)
    behind = conn.execute(
        "SELECT a.id, a.schedule, a.run_id, a.body, a.attempts FROM pending_alerts a JOIN"
        " schedules s ON s.name = a.schedule WHERE s.notify = (SELECT notify FROM schedules"
        " WHERE name = ?) AND a.id > ? ORDER BY a.id", (item.schedule, item.id)).fetchall()
    why = f"not sent: its webhook refused the alert before it ({reason}) through every retry"
    for alert_id, schedule, run_id, body, tried in behind:
        conn.execute("DELETE FROM pending_alerts WHERE id = ?", (alert_id,))
        _note(conn, schedule, run_id, json.loads(body).get("state"), now, tried, why)
    if behind:
        log.error("[labloom] %d alert(s) waiting behind it for the same webhook given up with "
                  "it", len(behind))


def _note(conn: Conn, schedule: str, run_id: str | None, state: str | None, now: float,
          attempts: int, reason: str) -> None:
    """One more alert of ``schedule`` given up: the note says the latest, and how many."""
    conn.execute(
        "INSERT INTO undelivered_alerts (schedule, run_id, state, given_up, first_given_up,"
        " alerts, attempts, reason) VALUES (?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT (schedule)"
        " DO UPDATE SET run_id = excluded.run_id, state = excluded.state, given_up ="
        " excluded.given_up, alerts = undelivered_alerts.alerts + 1, attempts ="
        " excluded.attempts, reason = excluded.reason",
        (schedule, run_id, state, now, now, attempts, reason))


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
            "SELECT schedule, attempts, last_error, next_try FROM pending_alerts ORDER BY id"):
        entry = found.setdefault(schedule, {"pending": None, "undelivered": None})
        if entry["pending"] is None:
            entry["pending"] = {"alerts": 0, "attempts": attempts, "last_error": error,
                                "next_try": next_try}
        entry["pending"]["alerts"] += 1
    for row in conn.execute("SELECT * FROM undelivered_alerts"):
        found.setdefault(row["schedule"], {"pending": None})["undelivered"] = dict(row)
    return found
