"""Writing runs to the store: a subscriber per run, one writer thread per store file.

The event bus hands each run's events to ``Recorder`` in batches, off the hot path; the
recorder only queues them. The writer thread drains whatever has queued and writes it in one
transaction, so a 10,000-task flow costs a few dozen commits, not 30,000. When a run ends, its
recorder waits for the final commit: once ``run.wait()`` returns, the store agrees.

While a run of this process is open the writer refreshes its heartbeat; the reader marks a
run Crashed when its process is gone or its heartbeat is stale (see ``reader.reconcile``).

A write that fails for a passing reason (a busy SQLite file, a PostgreSQL server restarting) is
tried again with the same rows, reconnecting as needed, for up to ``LABLOOM_STORE_OUTAGE``
seconds (default 600); events that arrive meanwhile queue and go in with the next commit.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..core import events as ev
from . import target
from .db import Conn, Database, get_database, is_transient
from .experiments import insert as insert_values
from .experiments import row_of
from .home import host_name, user_name

log = logging.getLogger("labloom")


def heartbeat_timeout() -> float:
    """Seconds without a heartbeat after which a run counts as crashed
    (``LABLOOM_HEARTBEAT_TIMEOUT``, default 60); runs beat 12 times per timeout, at most
    every 5 s."""
    try:
        return max(1.0, float(os.environ.get("LABLOOM_HEARTBEAT_TIMEOUT", "60")))
    except ValueError:
        return 60.0


def heartbeat_interval() -> float:
    return min(5.0, heartbeat_timeout() / 12)


def outage_patience() -> float:
    try:
        return float(os.environ.get("LABLOOM_STORE_OUTAGE", "600"))
    except ValueError:
        return 600.0

_IDLE_EXIT = 2.0  # seconds a writer with nothing open waits before its thread ends
_FINAL_WAIT = 30.0
# How long SQLite itself waits for another process's write lock before a write is retried.
BUSY_TIMEOUT = 30.0


def log_line_cap() -> int:
    """Log lines kept per task run (``LABLOOM_LOG_LINES``, default 1000); the rest are counted."""
    try:
        return max(0, int(os.environ.get("LABLOOM_LOG_LINES", "1000")))
    except ValueError:
        return 1000


def to_json(value: Any) -> str:
    """JSON for the store; values that JSON cannot hold become ``{"__repr__": ...}``."""
    def fallback(obj: Any) -> Any:
        if isinstance(obj, (set, frozenset, tuple)):
            return list(obj)
        return {"__repr__": repr(obj)[:1000]}

    return json.dumps(value, default=fallback)


class Recorder:
    """The bus subscriber of one run."""

    def __init__(self, run: Any, writer: Writer) -> None:
        self.run_id: str = run.id
        self.writer = writer
        self.pid = os.getpid()
        self.host = host_name()
        self.user = user_name()
        self.target = target.describe(run.flow)
        self.log_cap = log_line_cap()
        self.log_counts: dict[str, int] = {}  # lines seen per task run
        self.log_dropped: dict[str, int] = {}  # lines the engine counted but never sent

    def __call__(self, batch: Sequence[ev.Event]) -> None:
        seq = self.writer.put(self, batch)
        if any(isinstance(event, ev.RunFinished) for event in batch):
            self.writer.wait(seq, _FINAL_WAIT)


class _Rows:
    """One transaction's worth of rows, folded from a stream of events."""

    def __init__(self) -> None:
        self.runs: list[tuple[Any, ...]] = []
        self.flows: list[tuple[Any, ...]] = []
        self.tasks: list[tuple[Any, ...]] = []
        self.states: list[tuple[Any, ...]] = []
        self.task_updates: dict[str, list[Any]] = {}
        self.keys: list[tuple[Any, ...]] = []
        self.nodes: list[tuple[Any, ...]] = []
        self.logs: list[tuple[Any, ...]] = []
        self.values: list[tuple[Any, ...]] = []
        self.cuts: dict[tuple[str, str], tuple[int, int]] = {}
        self.run_updates: list[tuple[Any, ...]] = []
        self.opened: set[str] = set()
        self.closed: set[str] = set()

    def add(self, rec: Recorder, event: ev.Event) -> None:
        if isinstance(event, ev.StateChanged):
            self.states.append((event.task_run_id, event.run_id, event.state.value, event.time,
                                event.message, event.attempt))
            row = self.task_updates.get(event.task_run_id)
            if row is None:
                row = self.task_updates[event.task_run_id] = [None, "", 0, None, None, ""]
            row[0], row[1], row[2] = event.state.value, event.message, event.attempt
            if event.state.value == "Running" and row[3] is None:
                row[3] = event.time
            row[4] = event.time if event.state.is_final else None
            if event.traceback:
                row[5] = event.traceback
        elif isinstance(event, ev.LogRecord):
            self._log(rec, event)
        elif isinstance(event, ev.LogLinesDropped):
            rec.log_dropped[event.task_run_id] = event.dropped
            self._count_cut(rec, event.run_id, event.task_run_id)
        elif isinstance(event, ev.ExperimentValues):
            self.values.append(row_of(event))
        elif isinstance(event, ev.TaskRunCreated):
            self.tasks.append((event.task_run_id, event.run_id, event.node_id, event.task_name,
                               event.map_index, json.dumps(list(event.upstream)), "Pending",
                               event.time))
            self.states.append((event.task_run_id, event.run_id, "Pending", event.time, "", 0))
        elif isinstance(event, ev.NodeCreated):
            self.nodes.append((event.run_id, event.node_id, event.name, event.kind,
                               json.dumps(list(event.upstream)), event.time))
        elif isinstance(event, ev.TaskRunKeyed):
            self.keys.append((event.cache_key, event.result_path, event.task_run_id))
        elif isinstance(event, ev.RunCreated):
            metadata = dict(event.metadata)
            self.runs.append((
                event.run_id, event.flow_name, event.source_hash, to_json(event.parameters),
                "Pending", event.time, event.time, rec.host, rec.pid, event.executor,
                event.origin, to_json(metadata), event.time, to_json(rec.target),
                metadata.get("retry_of"), rec.user,
            ))
            self.flows.append((event.flow_name, event.source_hash, event.time, event.time))
            self.opened.add(event.run_id)
        elif isinstance(event, ev.RunStateChanged):
            self.run_updates.append((event.state.value, event.message, None, event.run_id))
            if not event.state.is_final:
                self.opened.add(event.run_id)
                self.closed.discard(event.run_id)
        elif isinstance(event, ev.RunFinished):
            self.run_updates.append((event.state.value, event.message, event.time, event.run_id))
            self.closed.add(event.run_id)

    def _log(self, rec: Recorder, event: ev.LogRecord) -> None:
        who = event.task_run_id or ""
        count = rec.log_counts.get(who, 0) + 1
        rec.log_counts[who] = count
        if count <= rec.log_cap:
            self.logs.append((event.run_id, event.task_run_id, event.level, event.time,
                              event.text))
        else:
            self._count_cut(rec, event.run_id, who)

    def _count_cut(self, rec: Recorder, run_id: str, who: str) -> None:
        """Lines not stored: past the store's cap, plus those the engine never sent."""
        seen = rec.log_counts.get(who, 0)
        cut = max(0, seen - rec.log_cap) + rec.log_dropped.get(who, 0)
        if cut:
            self.cuts[(run_id, who)] = (min(seen, rec.log_cap), cut)

    def write(self, conn: Any) -> None:
        ex = conn.executemany
        if self.runs:
            ex("INSERT INTO flow_runs (id, flow_name, source_hash, parameters, state, created, "
               "started, host, pid, executor, origin, metadata, heartbeat, target, retry_of, "
               "username) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE "
               "SET parameters = excluded.parameters, state = excluded.state, message = '', "
               "created = excluded.created, started = excluded.started, ended = NULL, "
               "host = excluded.host, pid = excluded.pid, executor = excluded.executor, "
               "origin = excluded.origin, metadata = excluded.metadata, "
               "heartbeat = excluded.heartbeat, retry_of = excluded.retry_of",
               self.runs)
            ex("INSERT INTO flows (name, source_hash, first_seen, last_seen) VALUES (?,?,?,?) "
               "ON CONFLICT (name, source_hash) DO UPDATE SET last_seen = excluded.last_seen",
               self.flows)
        if self.nodes:
            ex("INSERT INTO run_nodes (run_id, node_id, name, kind, upstream, created) "
               "VALUES (?,?,?,?,?,?) ON CONFLICT (run_id, node_id) DO UPDATE SET "
               "name = excluded.name, kind = excluded.kind, upstream = excluded.upstream, "
               "created = excluded.created", self.nodes)
        conn.insert_rows(
            "task_runs", ("id", "run_id", "node_id", "task_name", "map_index", "upstream",
                          "state", "created"), self.tasks, "ON CONFLICT (id) DO NOTHING",
        )
        conn.insert_rows(
            "task_states", ("task_run_id", "run_id", "state", "time", "message", "attempt"),
            self.states,
        )
        if len(self.task_updates) >= 50 and conn.kind == "postgresql":
            # Thousands of updates as one statement over a staged copy of the new values.
            stage = conn.stage(
                "task_runs", ("id", "state", "message", "attempts", "started", "ended",
                              "traceback"),
                [(i, *values) for i, values in self.task_updates.items()],
            )
            conn.execute(
                f"UPDATE task_runs t SET state = s.state, message = s.message, "
                f"attempts = s.attempts, started = COALESCE(s.started, t.started), "
                f"ended = s.ended, traceback = CASE WHEN s.traceback = '' THEN t.traceback "
                f"ELSE s.traceback END FROM {stage} s WHERE t.id = s.id"
            )
        elif self.task_updates:
            ex("UPDATE task_runs SET state = ?, message = ?, attempts = ?, "
               "started = COALESCE(?, started), ended = ?, "
               "traceback = CASE WHEN ? = '' THEN traceback ELSE ? END WHERE id = ?",
               [(s, m, a, st, en, tb, tb, i)
                for i, (s, m, a, st, en, tb) in self.task_updates.items()])
        if self.keys:
            ex("UPDATE task_runs SET cache_key = ?, result_path = ? WHERE id = ?", self.keys)
        conn.insert_rows("logs", ("run_id", "task_run_id", "level", "time", "text"), self.logs)
        insert_values(conn, self.values)
        if self.cuts:
            ex("INSERT INTO log_cuts (run_id, task_run_id, kept, cut) VALUES (?,?,?,?) "
               "ON CONFLICT (run_id, task_run_id) DO UPDATE SET kept = excluded.kept, "
               "cut = excluded.cut",
               [(r, t, kept, cut) for (r, t), (kept, cut) in self.cuts.items()])
        if self.run_updates:
            ex("UPDATE flow_runs SET state = ?, message = ?, ended = ? WHERE id = ?",
               self.run_updates)


class Writer:
    """Owns one connection to one store, in its own thread."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._cond = threading.Condition()
        self._queue: list[tuple[Recorder, Sequence[ev.Event]]] = []
        self._queued = 0
        self._written = 0
        self._thread: threading.Thread | None = None
        self._open: set[str] = set()
        self._broken = False

    def put(self, rec: Recorder, batch: Sequence[ev.Event]) -> int:
        with self._cond:
            if self._broken:
                return self._queued
            self._queue.append((rec, batch))
            self._queued += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="labloom-store", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
            return self._queued

    def wait(self, seq: int | None = None, timeout: float = _FINAL_WAIT) -> bool:
        """Block until everything queued (up to ``seq``) is committed."""
        with self._cond:
            target_seq = self._queued if seq is None else seq
            return self._cond.wait_for(
                lambda: self._written >= target_seq or self._broken, timeout
            )

    def pending(self) -> bool:
        with self._cond:
            return self._written < self._queued and not self._broken

    def _loop(self) -> None:
        conn: Conn | None = None
        last_beat = 0.0
        idle_since = time.monotonic()
        try:
            conn = self._connect_patiently()
            while True:
                with self._cond:
                    if not self._queue:
                        self._cond.wait(min(heartbeat_interval(), _IDLE_EXIT))
                    items, self._queue = self._queue, []
                    upto = self._queued
                    if items:
                        idle_since = time.monotonic()
                    elif not self._open and time.monotonic() - idle_since > _IDLE_EXIT:
                        self._thread = None
                        return
                beat = bool(self._open) and time.monotonic() - last_beat >= heartbeat_interval()
                if items or beat:
                    conn = self._write_patiently(conn, self._fold(items))
                    last_beat = time.monotonic()
                with self._cond:
                    self._written = upto
                    self._cond.notify_all()
        except Exception as exc:
            self._fail(exc)
        finally:
            if conn is not None:
                conn.close()

    def _fold(self, items: list[tuple[Recorder, Sequence[ev.Event]]]) -> _Rows:
        # Folded once: a retried write must not count log lines twice.
        rows = _Rows()
        for rec, batch in items:
            for event in batch:
                rows.add(rec, event)
        self._open |= rows.opened
        self._open -= rows.closed
        return rows

    def _connect_patiently(self) -> Conn:
        return self._patiently(None, lambda conn: None)

    def _write_patiently(self, conn: Conn, rows: _Rows) -> Conn:
        """Write, waiting out another process's long transaction or a database server's
        restart instead of giving up: a store that stops recording loses history, so only a
        lasting failure may stop it."""
        return self._patiently(conn, lambda c: self._write(c, rows))

    def _patiently(self, conn: Conn | None, action: Any) -> Conn:
        deadline = time.monotonic() + outage_patience()
        delay = 0.1
        while True:
            try:
                if conn is None:
                    conn = self.database.connect(timeout=BUSY_TIMEOUT)
                action(conn)
                return conn
            except Exception as exc:
                if not is_transient(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning("[labloom] the run store %s is unavailable (%s); writing again in "
                            "%gs", self.database.display, type(exc).__name__, delay)
                if conn is not None and self.database.kind == "postgresql":
                    conn.close()  # the pool drops a broken connection; a new one next time
                    conn = None
                time.sleep(delay)
                delay = min(delay * 3, 5.0)

    def _write(self, conn: Conn, rows: _Rows) -> None:
        beat = [(time.time(), run_id) for run_id in self._open | rows.closed]
        with conn.transaction():
            rows.write(conn)
            conn.executemany("UPDATE flow_runs SET heartbeat = ? WHERE id = ?", beat)

    def _fail(self, exc: Exception) -> None:
        # The store must never break a run: say why once, then stop recording.
        log.error("[labloom] the run store %s stopped recording: %s", self.database.display,
                  exc)
        with self._cond:
            self._broken = True
            self._thread = None
            self._queue.clear()
            self._cond.notify_all()


_writers: dict[str, Writer] = {}
_writers_lock = threading.Lock()


def writer_for(database: Database) -> Writer:
    with _writers_lock:
        writer = _writers.get(database.url)
        if writer is None or writer._broken:
            writer = _writers[database.url] = Writer(database)
        return writer


def attach(run: Any) -> Recorder:
    recorder = Recorder(run, writer_for(get_database()))
    run.subscribe(recorder, replay=True)
    return recorder


@atexit.register
def _drain_at_exit() -> None:
    # A script that exits while a background run is still going: keep what was emitted.
    # A database server that is away gets longer: the final states are still queued.
    for writer in list(_writers.values()):
        if writer.pending():
            writer.wait(timeout=5.0 if writer.database.kind == "sqlite" else 60.0)
