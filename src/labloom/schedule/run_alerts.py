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

The alert is wished for from the run's start (``register``, by ``StartWish``: as the run
starts, before its executor starts and before its first event, so before its body or any task
can run): a row of ``run_alert_wishes`` naming the run, its flow and the URL, which the command
deletes when the run completes (``forget``) or as it keeps its alert. A command killed before
then (-9 during the run, the machine restarted, or killed between the failure written and the
alert kept) leaves the wish, and a ``serve`` composes the alert from the run's record, once
(``dead_run_alerts``). A store away at the run's end keeps the wish from being deleted: what
the command did instead (delivered from memory, nothing due, or not delivered) it marks on this
host's disk (``settled_marks``), where a serve of the same home reads it, then tells the store
once it is back, for as long as its writer waits for a store at exit (``_told_when_back``):
there every host's serve sees it (one of another home, on another host, sent a second alert).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.observers import add_run_observer
from ..store import store_clock
from ..store.db import Conn, get_database
from . import alert_outbox as outbox
from . import settled_marks
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


class StartWish:
    """The command's wish for its run's alert, kept as the run starts: a run observer, called
    before the run's executor starts and before its first event, so before its body or any of
    its tasks can run. It was kept once ``flow.run`` had returned: a command killed in between
    (the run started, its tasks running) alerted nobody.

    ``run`` is the run it saw start (also when ``flow.run`` then raised); ``kept`` whether the
    store took the wish."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.run: Any = None
        self.kept = False
        self.stop = add_run_observer(self._starts)

    def _starts(self, run: Any) -> None:
        if self.run is not None:  # a subflow, started by the command's run: not its own wish
            return
        self.run = run
        self.stop()
        self.kept = register(self.url, run.id, run.flow_name)


def send(url: str, body: dict[str, Any], wished: bool = False) -> Sent:
    """Keep the alert, post it (retried after ``LABLOOM_NOTIFY_DELAYS``, each post given
    ``LABLOOM_NOTIFY_TIMEOUT``), and keep what became of it. ``wished``: the run's wish was
    kept at its start (a store that cannot take the alert leaves it, see ``settled_marks``)."""
    delays = delays_from_env(os.environ.get("LABLOOM_NOTIFY_DELAYS"))
    timeout = timeout_from_env()
    # Longer than the command can go on posting: its last post starts before WINDOW is over.
    hold = min(sum(delays) + (len(delays) + 1) * timeout, WINDOW + timeout) + 5.0
    conn, alert_id = _keep(url, body, hold)
    try:
        reason, tries = _post(url, body, delays, timeout)
        if conn is not None and alert_id is not None:
            _settle(conn, alert_id, body.get("run_id"), reason, tries)
        elif wished:  # posted from memory; its wish is still there
            run_id = str(body.get("run_id"))
            # Marked first: a command killed before the store is told leaves the mark. Not
            # delivered: the store keeps the alert, due now for a serve, saying why.
            outcome = settled_marks.DELIVERED if reason is None else settled_marks.UNDELIVERED
            settled_marks.leave(run_id, outcome, tries, reason or "")
            kept = None if reason is None else (url, body, f"{reason} (labloom run: {tries} "
                                                           "attempt(s))")
            if _told_when_back(lambda: forget(run_id, delivered=tries if kept is None else 0,
                                              kept=kept)):
                settled_marks.drop(run_id)
        return Sent(reason, tries, alert_id is not None)
    finally:
        if conn is not None:
            conn.close()


def register(url: str, run_id: str, flow: str) -> bool:
    """At the run's start: the wish for its alert, which a ``serve`` acts on if this command
    dies before it keeps the alert; whether it was kept. A store that cannot take it leaves
    this command alerting alone, said: a run is never stopped for it."""
    conn = _connect("the wish for a failure alert if this command dies")
    if conn is None:
        return False
    try:
        with conn.transaction():
            conn.execute("INSERT INTO run_alert_wishes (run_id, flow, url, holder, created) "
                         "VALUES (?, ?, ?, ?, ?)", (run_id, flow, url, outbox.run_holder(),
                                                    store_clock.now(conn)))
        return True
    except Exception as exc:
        log.error("[labloom] the wish for a failure alert could not be kept in the store (%s): "
                  "a run whose command is killed alerts nobody", type(exc).__name__)
        return False
    finally:
        conn.close()


def completed(run_id: str, wished: bool) -> None:
    """The run completed: no alert, and no wish left for a ``serve`` to look at. A store
    that cannot take it leaves the wish, marked on this disk: its serve drops it, where the
    run's end may be missing from the store too (it would alert the run Crashed)."""
    if wished and not forget(run_id):
        settled_marks.leave(run_id, settled_marks.COMPLETED)
        if _told_when_back(lambda: forget(run_id)):
            settled_marks.drop(run_id)


def _told_when_back(tell: Callable[[], bool]) -> bool:
    """``tell`` (a write to the store, True once taken) tried again while the store is away,
    for as long as this process's writer waits for it at exit: a server restarting is back
    within it. The mark on this disk was for a serve of the same home only."""
    from ..store.writer_registry import exit_wait

    if tell():
        return True
    deadline = time.monotonic() + exit_wait(get_database())
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if tell():
            return True
    return False


def forget(run_id: str, delivered: int = 0,
           kept: tuple[str, dict[str, Any], str] | None = None) -> bool:
    """Delete the run's wish (``delivered``: its alert was, after so many attempts, noted on
    the run; ``kept``: the URL, body and why of an alert not delivered, kept due now for a
    serve in its place, once: only with the wish it replaces); whether the store took it
    (quiet when not: the caller marks it)."""
    conn = _connect(None)
    if conn is None:
        return not _store_on()
    try:
        with conn.transaction():
            wish = conn.execute("DELETE FROM run_alert_wishes WHERE run_id = ? RETURNING run_id",
                                (run_id,)).fetchone()
            if delivered:
                outbox.note_run(conn, run_id, "delivered", store_clock.now(conn), delivered)
            if kept is not None and wish is not None:
                url, body, why = kept
                now = store_clock.now(conn)
                conn.execute("INSERT INTO pending_alerts (schedule, run_id, body, created, "
                             "next_try, url, last_error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (outbox.NO_SCHEDULE, run_id, json.dumps(body), now, now, url, why))
        return True
    except Exception as exc:
        log.debug("[labloom] the run's alert wish not deleted: %r", exc)
        return False
    finally:
        conn.close()


def _store_on() -> bool:
    from .. import store

    return store.enabled()


def _connect(what: str | None) -> Conn | None:
    """A connection to the store; None when it is off or cannot be reached (said, naming
    ``what`` could not be kept, unless ``what`` is None)."""
    if not _store_on():  # LABLOOM_STORE=0: nothing written, this one neither
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
        if conn.broken and (kept := _landed(body.get("run_id"))) is not None:
            conn.close()
            return kept
        log.error("[labloom] the failure alert could not be kept in the store (%s): posted "
                  "from this command only", type(exc).__name__)
        return conn, None


def _landed(run_id: str | None) -> tuple[Conn, int] | None:
    """The alert a keep whose connection went kept all the same (its COMMIT landed, the answer
    never came), by its natural key: its run and this command as sender; on a new connection,
    with the alert's id. Taken for lost, the command posted from memory and left the row,
    which the next serve sent again."""
    conn = None if run_id is None else _connect(None)
    if conn is None:
        return None
    try:
        row = conn.execute(
            "SELECT id FROM pending_alerts WHERE run_id = ? AND sender = ? AND schedule = ?",
            (run_id, outbox.run_holder(), outbox.NO_SCHEDULE)).fetchone()
    except Exception:  # the store away still: taken for lost, as before
        row = None
    if row is None:
        conn.close()
        return None
    return conn, int(row[0])


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
    if row is None:
        return None
    mark = settled_marks.read(run_id)  # the store was away when its command settled it
    if mark is not None and mark.outcome != settled_marks.UNDELIVERED:
        return None if mark.outcome == settled_marks.COMPLETED else {
            "state": mark.outcome, "at": mark.at, "attempts": mark.attempts, "reason": ""}
    if row[0] in ("Pending", "Running", "Completed"):
        return None
    return {"state": "pending", "attempts": 0, "next_try": None,
            "reason": mark.not_sent() if mark else "its `labloom run` stopped before it sent it"}
