"""Pushed updates, the way Jupyter pushes: one watcher follows the store by cursor and emits
compact deltas on jupyter_server's event bus (``serverapp.event_logger``, schema
``event_schemas/runs.json``); the Lab side reads them on ``app.serviceManager.events.stream``.

The store is written by other processes (a kernel, ``labloom run``, ``labloom serve``, another
host on PostgreSQL), so nothing tells the server that it changed: the watcher looks, a few
times a second, and only while an event would reach someone (an open Lab's events socket, or a
handler the deployment configured), by cursor: the runs going on or just created (indexed
reads), each one's graph patched with what moved since the last look (``graphs.RunGraphs``,
the same graphs run tabs read, so a look costs the task runs that changed, not the run's size),
and the log lines written since. An event carries metadata only (states, counts by state,
times, cursors): event handlers may write events to files, and the event socket reaches every
authenticated client of the server; parameters, log text and messages stay behind the REST
API. A view that sees a gap in ``seq``, or a run delta whose ``from`` is not the cursor it
holds, catches up through the REST API by its cursor (``GET runs/{id}?since=``).

The watcher's owner is the extension: started at load, stopped with the server
(``_unload_jupyter_server_extension``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from ..store import follow
from ..store.reader import RunRecord, RunStore
from . import EVENTS_SCHEMA_ID
from .graphs import Cursor
from .queries import StoreAccess, run_summary

SCHEMA_ID = EVENTS_SCHEMA_ID
SCHEMA_PATH = Path(__file__).with_name("event_schemas") / "runs.json"
TICK = 0.25  # seconds between looks while someone listens and nothing changes
BUSY = 0.1  # seconds between looks while the last one found changes: a run going on
IDLE = 1.0  # seconds between checks for a listener while nobody listens
WINDOW = 120.0  # runs created this recently are looked at each time (another host's clock)
RECONCILE_EVERY = 5.0  # seconds: mark runs whose process died as Crashed
FOLLOWED = 48  # open runs followed by node, newest first (``RunGraphs`` keeps 64)
MOST = 20_000  # state changes folded in per look and run: a look takes ~0.1 s, not seconds
FIRST_ENDED = 100  # ended runs the first look sends (the panel's first page)
_SUMMARY = ("id", "flow", "state", "origin", "host", "user", "created", "started", "ended",
            "duration", "counts", "done", "total")


class StoreFollower:
    """What the watcher knows of the store between two looks. Used by one look at a time."""

    def __init__(self) -> None:
        self.started = False
        # run id -> what of its row was sent (None: a run only remembered, never sent)
        self.rows: dict[str, tuple[Any, ...] | None] = {}
        self.cursors: dict[str, str] = {}  # run id -> the cursor its last delta reached
        self.open: set[str] = set()
        self.lines = 0  # the last log line seen
        self.file: Any = None  # the SQLite file looked at: ``Conn.file_stamp``
        self.reconciled = 0.0
        # Runs this server deleted (its REST actions, on their pool's threads), for the next
        # event: a store keeps no trace of a deleted run for a look to find.
        self._deleted: list[str] = []
        self._deleted_lock = threading.Lock()

    def deleted(self, run_ids: list[str]) -> None:
        with self._deleted_lock:
            self._deleted.extend(run_ids)

    def look(self, access: StoreAccess, store: RunStore) -> dict[str, Any] | None:
        """What changed since the last look, as an event's data (None: nothing). The first look
        sends the runs going on and the ``FIRST_ENDED`` newest of those created lately, with
        ``from`` empty: a view may have read them before the watcher started, so it reads them
        again by cursor (the other recent ones are only remembered: one event stays small).
        A run is read whole only while it goes on, and once when it is new to the watcher."""
        now = time.time()
        if self.started and self._another_store(store):
            # Another store file (the old one deleted, a backup moved or copied in place)
            # numbers its log lines afresh: looked at as a new store, the views read their runs
            # again by cursor, and the graphs kept of them are built again.
            self.started, self.lines = False, 0
            for known in (self.rows, self.cursors, self.open):
                known.clear()
            access.graphs.clear()
        self.file = store.conn.file_stamp
        with self._deleted_lock:
            deleted, self._deleted = self._deleted, []
        for run_id in deleted:
            self.rows.pop(run_id, None)
            self.cursors.pop(run_id, None)
            self.open.discard(run_id)
        if time.monotonic() - self.reconciled >= RECONCILE_EVERY:
            store.reconcile()
            self.reconciled = time.monotonic()
        first = None if self.started else FIRST_ENDED
        runs, recent = follow.runs_to_watch(store, self.open, now - WINDOW, self.rows.keys(),
                                            first)
        self.lines, tops = (follow.log_tops(store, self.lines) if self.started
                            else (follow.last_log_line(store), {}))
        followed = {run.id for run in sorted(
            (r for r in runs if r.is_open), key=lambda r: r.created or 0.0, reverse=True
        )[:FOLLOWED]}
        if not self.started:
            # The others created lately (a sweep's thousands) are only remembered.
            read = {run.id for run in runs}
            for run_id in recent:
                if run_id not in read:
                    self.rows[run_id], self.cursors[run_id] = None, ""
        # The runs not followed whose row changed are counted in one grouped read.
        follow.add_counts(store, [run for run in runs if run.id not in followed
                                  and _row(run) != self.rows.get(run.id)])
        deltas = [delta for run in runs if (delta := self._delta(access, store, run, followed,
                                                                 tops.get(run.id)))]
        self.open = {run.id for run in runs if run.is_open}
        for gone in set(self.rows) - {run.id for run in runs} - set(recent):
            self.rows.pop(gone)
            self.cursors.pop(gone, None)
        self.started = True
        if not deltas and not deleted:
            return None
        data = {"now": now, "running": sum(run.state == "Running" for run in runs),
                "runs": deltas}
        if deleted:
            data["deleted"] = deleted
        return data

    def _another_store(self, store: RunStore) -> bool:
        """Whether the file looked at is not the one looked at last: another file at its path,
        or the same file written over by a backup (``cp``: the same inode), whose last log line
        is then below the last one seen. A checkpoint changes the file's stamp too, but the
        lines go on from where they were."""
        stamp = store.conn.file_stamp
        if stamp == self.file:
            return False
        if stamp is None or self.file is None or stamp[:2] != self.file[:2]:
            return True
        return follow.last_log_line(store) < self.lines

    def _delta(self, access: StoreAccess, store: RunStore, run: RunRecord, followed: set[str],
               lines: int | None) -> dict[str, Any] | None:
        row = _row(run)
        before = self.cursors.get(run.id, "")
        nodes: dict[str, Any] | None = {}
        if run.id in followed:
            look = access.graphs.look(store, run, fresh_for=0.0, most=MOST)
            run.counts = look.counts
            cursor = str(Cursor(look.cursor, 0, look.digest))
            was = _parse(before)
            if was is None or was.digest != look.digest or was.states > look.cursor:
                nodes = None  # the graph changed (or is new to a view): read it by cursor
            else:
                nodes = look.states_since(was.states)
        else:
            # An ended run, or an open one past FOLLOWED: only when its row changes (counted
            # by ``look``), and views read its graph by cursor (its end changed the digest).
            cursor, lines = before, None
            if row != self.rows.get(run.id):
                nodes = None
        if row == self.rows.get(run.id) and cursor == before and lines is None:
            return None
        self.rows[run.id] = row
        self.cursors[run.id] = cursor
        summary = run_summary(run)
        delta = {key: summary[key] for key in _SUMMARY}
        delta.update({"from": before, "to": cursor, "nodes": nodes})
        if lines is not None:
            delta["lines"] = lines
        return delta


def _row(run: RunRecord) -> tuple[Any, ...]:
    """What of a run's row, once sent, is sent again when it changes."""
    return (run.state, run.started, run.ended, run.message)


def _parse(text: str) -> Cursor | None:
    try:
        return Cursor.parse(text) if text else None
    except ValueError:
        return None


class Watcher:
    """The one watcher of a server: an asyncio task on the server's loop, reading on the
    store's "watch" pool thread. ``start`` at load, ``stop`` at shutdown."""

    def __init__(self, access: StoreAccess, event_logger: Any, log: logging.Logger) -> None:
        self._access = access
        self._events = event_logger
        self._log = log
        self._follower = StoreFollower()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.server = uuid.uuid4().hex[:12]
        self.seq = 0
        self.looks = 0  # for tests and benchmarks: how many looks read the store

    def deleted(self, run_ids: list[str]) -> None:
        """Runs this server deleted: the next event names them (``deleted``)."""
        if run_ids:
            self._follower.deleted(run_ids)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None and not self._stopped:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="labloom-watch")

    async def stop(self) -> None:
        self._stopped = True  # also when it never started: a start queued on the loop is void
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def listened(self) -> bool:
        """Whether an event would go anywhere: the test jupyter_events' ``emit`` itself makes
        before doing anything (a handler, or a listener such as an open Lab's events socket)."""
        events = self._events
        listeners = [getattr(events, name, {}).get(SCHEMA_ID) for name in
                     ("_modified_listeners", "_unmodified_listeners")]
        return bool(events.handlers) or any(listeners)

    async def _run(self) -> None:
        failures = 0
        while True:
            if not self.listened():
                # Its follower is kept: the next look sends all that changed meanwhile.
                await asyncio.sleep(IDLE)
                continue
            began = time.monotonic()
            try:
                data = await self._access.call(self._follower.look, lane="watch")
                self.looks += 1
                failures = 0
            except Exception as exc:  # a store that went away: say so once, back off
                if failures == 0:
                    self._log.warning("labloom: the watcher cannot read the store: %s", exc)
                failures += 1
                await asyncio.sleep(min(30.0, TICK * 2**failures))
                continue
            looked = time.monotonic()
            if data is not None:
                self.seq += 1
                self._events.emit(schema_id=SCHEMA_ID,
                                  data={"seq": self.seq, "server": self.server, **data})
            if time.monotonic() - began > TICK:  # what holds an update up, for a debug log
                self._log.debug("labloom: a slow look: %.3f s reading, %.3f s emitting %d runs",
                                looked - began, time.monotonic() - looked,
                                len(data["runs"]) if data else 0)
            # A look that took long (a busy run: it read MOST changes) is followed at once.
            tick = TICK if data is None else BUSY
            await asyncio.sleep(max(0.02, tick - (time.monotonic() - began)))
