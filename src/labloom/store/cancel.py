"""Cancel a run from another process: the request goes through the store.

``request_cancel(run_id)`` (the Flows panel, another terminal) writes a row to
``cancel_requests``. In the process that owns the run, ``CancelWatcher`` polls that table every
``POLL_INTERVAL`` seconds, but only while the process has live runs; when it finds a request for
one of them it calls the run's public ``cancel()``, so the run ends Cancelled in the store the
usual way and its process goes on (or exits) normally. The watcher's thread is owned by the
watcher: it ends when the last watched run ends, and ``close()`` (also at exit) stops it.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from ..core.errors import StoreUnavailableError
from ..core.interrupts_held import InterruptsHeld
from .db import Conn, Database, get_database, is_transient
from .home import user_name
from .unanswered_commits import has_row, written_once

log = logging.getLogger("labloom")

POLL_INTERVAL = 0.5
DEFAULT_REASON = "cancelled from another process"
_OPEN_STATES = ("Pending", "Running")


class NotCancellable(Exception):
    """The run is unknown or has already ended; the message says which."""


def request_cancel(run_id: str, reason: str = DEFAULT_REASON, path: Path | None = None) -> str:
    """Ask the process that owns ``run_id`` to cancel it; returns the run's state now.

    Raises ``KeyError`` for an unknown run, ``NotCancellable`` for a run that has ended and
    ``NotAllowedError`` for another user's run (unless this user is an admin).
    """
    from . import access  # here: a run's process (the watcher) never needs it

    conn = _database(path).connect()
    try:
        row = conn.execute(
            "SELECT state, username FROM flow_runs WHERE id = ?", (run_id,)
        ).fetchone()
        if row is None:
            raise KeyError(run_id)
        actor = user_name()
        access.check("cancel", f"run {run_id}", row[1], actor)
        if row[0] not in _OPEN_STATES:
            raise NotCancellable(f"run {run_id} has already ended ({row[0]})")
        if row[1] is not None and row[1] != actor:
            reason = f"{reason} by {actor} (an admin)"  # the owner sees who stopped their run
        # Its answer lost (a crash, a network cut): asked whether it landed; the server still
        # away, said whether it may have (``labloom cancel`` exits 4).
        written_once(conn, lambda conn: conn.execute(
            "INSERT INTO cancel_requests (run_id, requested, reason) VALUES (?, ?, ?) "
            "ON CONFLICT (run_id) DO UPDATE SET requested = excluded.requested, "
            "reason = excluded.reason", (run_id, time.time(), reason)),
            lambda again, xid: has_row(again, "cancel_requests", "run_id", run_id, xid))
        return str(row[0])
    finally:
        conn.close()


class CancelWatcher:
    """Polls the store for cancel requests aimed at this process's live runs."""

    def __init__(self, database: Database, interval: float = POLL_INTERVAL) -> None:
        self.database = database
        self.interval = interval
        # Weakly: a live run is held by its owner (and ``at_exit``); a finished one the user let
        # go of must not wait for the next poll to free its results.
        self._runs: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, run: Any) -> None:
        # Held (interrupts_held.py): a Ctrl-C in ``Event.clear`` (its lock taken in Python)
        # kept that lock for good, and every later run's start waited on it; one in the
        # thread's start left it unstarted (tests/test_interrupt_cancel_watcher.py).
        with InterruptsHeld(), self._lock:
            self._runs[run.id] = run
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._loop, name="labloom-cancel-watcher", daemon=True
                )
                self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        with InterruptsHeld():  # as in ``watch``: the event's lock never kept
            self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _live(self) -> dict[str, Any]:
        with self._lock:
            for run_id, run in list(self._runs.items()):
                if run.state.is_final:
                    del self._runs[run_id]
            if not self._runs:
                self._thread = None  # the next watch() starts a fresh thread
            return dict(self._runs)

    def _loop(self) -> None:
        conn: Conn | None = None
        try:
            while not self._stop.wait(self.interval):
                live = self._live()
                if not live:
                    return
                if conn is not None and conn.file_changed():
                    conn.close()  # the store file was replaced: requests go to the new one
                    conn = None
                try:
                    if conn is None:
                        conn = self.database.connect()
                    self._act(conn, live)
                    if conn.kind == "sqlite":
                        # Held only while polling: a store file replaced under us must be let
                        # go of, or SQLite would read its old journal as the new file's.
                        conn.close()
                        conn = None
                except Exception as exc:
                    if not (is_transient(exc) or isinstance(exc, StoreUnavailableError)):
                        raise
                    if conn is not None:  # a server restarting, a full disk: poll again
                        conn.close()
                    conn = None
        except Exception as exc:  # a broken store must never break the run it watches
            log.warning("[labloom] cancel requests are not watched any more: %s", exc)
        finally:
            if conn is not None:
                conn.close()

    def _act(self, conn: Any, live: dict[str, Any]) -> None:
        ids = list(live)
        marks = ",".join("?" * len(ids))
        found = conn.execute(
            f"SELECT run_id, reason FROM cancel_requests WHERE run_id IN ({marks})", ids
        ).fetchall()
        for run_id, reason in found:
            # Consumed once: a later in-kernel retry of the same run id must not be cancelled.
            conn.execute("DELETE FROM cancel_requests WHERE run_id = ?", (run_id,))
            log.info("[labloom] run %s: %s", run_id, reason or DEFAULT_REASON)
            live[run_id].cancel(reason or DEFAULT_REASON)


_watchers: dict[str, CancelWatcher] = {}
_watchers_lock = threading.Lock()


def _database(path: Path | None) -> Database:
    return get_database(f"sqlite:///{path}" if path is not None else None)


def watch(
    run: Any, path: Path | None = None, database: Database | None = None
) -> CancelWatcher:
    """Have this process act on cancel requests for ``run`` until it ends: in the store at
    ``path``, or ``database``, or else the store in force."""
    database = database or _database(path)
    with _watchers_lock:
        watcher = _watchers.get(database.url)
        if watcher is None:
            watcher = _watchers[database.url] = CancelWatcher(database)
    watcher.watch(run)
    return watcher


@atexit.register
def _close_all() -> None:
    for watcher in list(_watchers.values()):
        watcher.close(timeout=0.5)
