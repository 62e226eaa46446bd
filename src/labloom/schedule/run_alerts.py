"""``labloom run --notify``'s failure alert, kept in the store's outbox (``alert_outbox``) before
it is posted, so that a webhook down when the run ends, or the command killed while it posts,
does not lose it: what the command could not deliver, the next ``labloom serve`` on the store
sends, with its retries (``alert_sender``).

The command keeps the alert as soon as ``run.wait()`` returns (the store holds the failure by
then), then posts it for up to ``WINDOW`` seconds, as it always did. The row names the command
as its sender and is not due while it may still be posting: a ``serve`` on the same store
leaves it until the command is done (delivered: the row goes; not: it is due at once) or
known killed (its pid gone, on the serve's host; on another host, once its window is over). The URL waits in the row (a secret, as a schedule's --notify is) and goes
with it. A store that cannot take the alert (away, full) leaves the command posting from
memory only, said.

The alert is wished for from the run's start (``register``): a row of ``run_alert_wishes``
naming the run, its flow and the URL, which the command deletes when the run completes
(``forget``) or as it keeps its alert. A command killed before then (-9 during the run, the
machine restarted, or killed between the failure written and the alert kept) leaves the wish,
and a ``serve`` composes the alert from the run's record, once (``dead_run_alerts``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from ..store import store_clock
from ..store.db import Conn, get_database
from . import alert_outbox as outbox
from .alert_sender import timeout_from_env
from .alerts import delays_from_env, try_post

log = logging.getLogger("labloom")

WINDOW = 60.0  # seconds the command goes on retrying after the run ended


@dataclass(frozen=True)
class Sent:
    """What the command did: ``reason`` None once delivered; ``kept`` when the store holds it
    (for the next ``serve``, when not delivered)."""

    reason: str | None
    tries: int
    kept: bool


def send(url: str, body: dict[str, Any]) -> Sent:
    """Keep the alert, post it (retried after ``LABLOOM_NOTIFY_DELAYS``, each post given
    ``LABLOOM_NOTIFY_TIMEOUT``), and keep what became of it."""
    delays = delays_from_env(os.environ.get("LABLOOM_NOTIFY_DELAYS"))
    timeout = timeout_from_env()
    # Longer than the command can go on posting: its last post starts before WINDOW is over.
    hold = min(sum(delays) + (len(delays) + 1) * timeout, WINDOW + timeout) + 5.0
    conn, alert_id = _keep(url, body, hold)
    try:
        reason, tries = _post(url, body, delays, timeout)
        if conn is not None and alert_id is not None:
            _settle(conn, alert_id, body.get("run_id"), reason, tries)
        return Sent(reason, tries, alert_id is not None)
    finally:
        if conn is not None:
            conn.close()


def register(url: str, run_id: str, flow: str) -> None:
    """At the run's start: the wish for its alert, which a ``serve`` acts on if this command
    dies before it keeps the alert. A store that cannot take it leaves this command alerting
    alone, said: a run is never stopped for it."""
    conn = _connect("the wish for a failure alert if this command dies")
    if conn is None:
        return
    try:
        with conn.transaction():
            conn.execute("INSERT INTO run_alert_wishes (run_id, flow, url, holder, created) "
                         "VALUES (?, ?, ?, ?, ?)", (run_id, flow, url, outbox.run_holder(),
                                                    store_clock.now(conn)))
    except Exception as exc:
        log.error("[labloom] the wish for a failure alert could not be kept in the store (%s): "
                  "a run whose command is killed alerts nobody", type(exc).__name__)
    finally:
        conn.close()


def forget(run_id: str) -> None:
    """The run completed: no alert, and no wish left for a ``serve`` to look at. Quiet when
    the store cannot take it: a serve drops the wish of a completed run all the same."""
    conn = _connect(None)
    if conn is None:
        return
    try:
        with conn.transaction():
            conn.execute("DELETE FROM run_alert_wishes WHERE run_id = ?", (run_id,))
    except Exception as exc:
        log.debug("[labloom] the completed run's alert wish not deleted: %r", exc)
    finally:
        conn.close()


def _connect(what: str | None) -> Conn | None:
    """A connection to the store; None when it is off or cannot be reached (said, naming
    ``what`` could not be kept, unless ``what`` is None)."""
    from .. import store

    if not store.enabled():  # LABLOOM_STORE=0: nothing written, this one neither
        return None
    try:
        return get_database().connect()
    except Exception as exc:
        if what is not None:
            log.error("[labloom] %s could not be kept in the store (%s)", what,
                      type(exc).__name__)
        return None


def _keep(url: str, body: dict[str, Any], hold: float) -> tuple[Conn | None, int | None]:
    conn = _connect("the failure alert (posted from this command only)")
    if conn is None:
        return None, None
    try:
        with conn.transaction():
            now = store_clock.now(conn)
            # The wish is done with: this command keeps the alert itself.
            conn.execute("DELETE FROM run_alert_wishes WHERE run_id = ?", (body.get("run_id"),))
            alert_id = conn.execute(
                "INSERT INTO pending_alerts (schedule, run_id, body, created, next_try, url, "
                "sender) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (outbox.NO_SCHEDULE, body.get("run_id"), json.dumps(body), now, now + hold, url,
                 outbox.run_holder()),
            ).fetchone()[0]
        return conn, int(alert_id)
    except Exception as exc:
        log.error("[labloom] the failure alert could not be kept in the store (%s): posted "
                  "from this command only", type(exc).__name__)
        return conn, None


def _post(url: str, body: dict[str, Any], delays: tuple[float, ...], timeout: float
          ) -> tuple[str | None, int]:
    """Tries until one is taken, the delays are spent or ``WINDOW`` is over."""
    deadline = time.monotonic() + WINDOW
    tries = 0
    while True:
        tries += 1
        reason = try_post(url, body, timeout)
        if reason is None:
            return None, tries
        if tries > len(delays) or time.monotonic() + delays[tries - 1] > deadline:
            return reason, tries
        log.warning("[labloom] alert for run %s not delivered (%s); retrying in %gs",
                    body.get("run_id"), reason, delays[tries - 1])
        time.sleep(delays[tries - 1])


def _settle(conn: Conn, alert_id: int, run_id: str | None, reason: str | None,
            tries: int) -> None:
    """Delivered: the row goes, noted on the run. Not: due now for a ``serve``, which makes
    its own retries (the command's are not counted against them)."""
    try:
        with conn.transaction():
            now = store_clock.now(conn)
            if reason is None:
                conn.execute("DELETE FROM pending_alerts WHERE id = ?", (alert_id,))
                outbox.note_run(conn, run_id, "delivered", now, tries)
            else:
                conn.execute(
                    "UPDATE pending_alerts SET next_try = ?, last_error = ?, sender = NULL "
                    "WHERE id = ? AND sender = ?",
                    (now, f"{reason} (labloom run: {tries} attempt(s))", alert_id,
                     outbox.run_holder()))
    except Exception as exc:  # kept all the same: a serve sends it once the hold is over
        log.error("[labloom] what became of the failure alert could not be kept in the store "
                  "(%s)%s", type(exc).__name__,
                  "; a `labloom serve` may send it again" if reason is None else "")


def of_run(conn: Conn, run_id: str) -> dict[str, Any] | None:
    """What became of a run's failure alert, for `labloom show`: ``state`` "pending" (still to
    send: its attempts, why the last failed, its next try: None while a serve has still to
    compose it), "delivered" or "given up" (when, after how many attempts, why); None for a
    run that had no alert (or none kept)."""
    row = conn.execute(
        "SELECT attempts, last_error, next_try FROM pending_alerts WHERE run_id = ? "
        "ORDER BY id DESC LIMIT 1", (run_id,)).fetchone()
    if row is not None:
        return {"state": "pending", "attempts": row[0], "reason": row[1] or "",
                "next_try": row[2]}
    row = conn.execute("SELECT outcome, at, attempts, reason FROM run_alerts WHERE run_id = ?",
                       (run_id,)).fetchone()
    if row is not None:
        return {"state": row[0], "at": row[1], "attempts": row[2], "reason": row[3]}
    # Only wished for, and the run ended badly: its command died before it kept the alert
    # (or is keeping it now), which a serve composes (``next_try`` None: not made yet).
    row = conn.execute("SELECT r.state FROM run_alert_wishes w JOIN flow_runs r ON r.id = "
                       "w.run_id WHERE w.run_id = ?", (run_id,)).fetchone()
    if row is None or row[0] in ("Pending", "Running", "Completed"):
        return None
    return {"state": "pending", "attempts": 0, "next_try": None,
            "reason": "its `labloom run` stopped before it sent it"}
