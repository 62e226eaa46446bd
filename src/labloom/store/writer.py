"""Writing runs to the store: a subscriber per run, one writer thread per store.

The event bus hands each run's events to ``Recorder`` in batches, off the hot path; the
recorder only queues them. The writer thread writes what has queued about 0.1 s of work a
transaction (``commits.py``): ten commits a second of a busy run, not one per event, and never
seconds behind it; caught up, it lets what comes gather until ``GATHER`` seconds after its
last transaction began, unless someone waits for it. When a run ends, its recorder waits for
the final commit: once ``run.wait()`` returns, the store agrees (unless a Ctrl-C came as the
run ended: then it is written behind, ``Writer.wait``).

While a run of this process is open the writer refreshes its heartbeat; the reader marks a
run Crashed when its process is gone or its heartbeat is stale (see ``reader.reconcile``).

The writer never stops recording:
- a failure that passes (a busy SQLite file, a full disk, a PostgreSQL server restarting) is
  said once on stderr (``write_trouble.py`` says each trouble once and counts what is dropped)
  and the same rows are tried again with backoff for up to ``LABLOOM_STORE_OUTAGE`` seconds
  (default 600), then dropped and counted. Events that arrive meanwhile wait in memory, at most
  ``LABLOOM_STORE_BACKLOG`` of them (default 100,000); past that, log lines are dropped and
  counted (state changes are kept: a few per task run);
- a PostgreSQL write whose commit went unanswered (a server crash, a network cut) is written
  again only if it did not land (``unanswered_commits.py``): nothing is stored twice;
- a disk filled by the runs' own lines still has room for their states, kept for them
  (``room.py``): lines and logged values give way, held in memory while it is full (past
  ``LABLOOM_STORE_BACKLOG`` or ``LABLOOM_STORE_OUTAGE``, dropped and counted);
- a row the database refuses costs only that row (``rows.Rows.write_one_by_one``);
- text it cannot hold is escaped (``storable.py``);
- a SQLite store file deleted or replaced mid-run is noticed before the next write: a new file
  is made (or the replacement used) and the open runs are written into it again from what the
  kernel still holds (``_reopen``).
What was dropped is counted per run: ``unrecorded(run_id)`` tells it (``labloom run`` says it
and exits with status 3).
A store gone for good is let go of (``labloom.store.stop_writing``, ``db.forget``): its writer
retires at once, what waits and what its runs still send dropped and counted (``retire``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from ..core import events as ev
from ..core.interrupts_held import HELD_WAIT, InterruptsHeld, pending
from . import store_clock, unanswered_commits
from .commits import CommitSize
from .db import Conn, Database, file_identity, is_transient, short_error, tables_gone
from .home import HEARTBEAT
from .recorder import FINAL_WAIT, Recorder, Unrecorded
from .room import NOTE_SQL, Room
from .rows import Rows
from .unanswered_commits import appended_row, noted_row
from .write_trouble import WriteTrouble

log = logging.getLogger("labloom")

_IDLE_EXIT = 2.0  # seconds a writer with nothing open waits before its thread ends
# How long SQLite itself waits for another process's write lock before a write is retried.
BUSY_TIMEOUT = 30.0
# Seconds a caught-up writer lets a small batch gather after its last transaction began: a
# run whose tasks were slower than the writer had it commit every delivery (23 transactions
# per 1,000 task runs sleeping 0.5 ms, against 1.3 when the writer lagged), at twice the CPU.
GATHER = 0.05


class Writer:
    """Owns one connection to one store, in its own thread."""

    def __init__(self, database: Database) -> None:
        self.database = database
        # Entered as ``with self._lock`` (C), never ``with self._cond``: ``Condition.__enter__``
        # is Python, and a Ctrl-C landing as it returned kept the lock taken for good (the
        # writer's thread then waited for ever: nothing written again).
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._queue: list[tuple[Recorder, Sequence[ev.Event]]] = []
        self._queued = self._written = 0
        self._backlog = 0  # events queued or being written
        self._unpaced_until = 0.0  # see put
        self.size = CommitSize()  # of a transaction: a fraction of a second's writing
        self._thread: threading.Thread | None = None
        self._open: set[str] = set()
        self._live: dict[str, Recorder] = {}  # runs open, or with rows not yet written
        self._rows: Rows | None = None  # being written now
        self.lost: dict[str, Recorder] = {}  # runs that lost records, for ``unrecorded``
        self.trouble = WriteTrouble(database.display, database.settings)  # says each failure once
        self.disk = Room(database)  # disk room kept for states; short of it, lines give way
        self._file: tuple[int, int] | None = None  # the SQLite file written so far
        self._emptied = False  # the file at the path has no tables: it is another one
        self._wal: tuple[int, int] | None = None  # that file's journal
        self._wrote: tuple[int, int] | None = None  # the file of the last write, if it went well
        self._spare: Conn | None = None  # see adopt
        self._hurry = 0  # threads in ``wait``: nothing gathers meanwhile
        self.retired: str | None = None  # why this process let go of the store (``retire``)

    def adopt(self, conn: Conn) -> None:
        """A connection just made, its schema checked (``store.attach``): the writer's next
        thread writes with it instead of connecting again; closed when one is running."""
        with self._lock:
            if self._spare is None and self._thread is None:
                self._spare = conn
                return
        conn.close()

    def writing_to(self, file_id: tuple[int, int] | None) -> bool:
        """Whether this writer's thread runs and last wrote, without trouble, to the SQLite
        file ``file_id`` (now at its path): what ``store.attach`` learns by connecting."""
        with self._lock:
            return self._thread is not None and file_id is not None and self._wrote == file_id

    def is_me(self) -> bool:
        return threading.current_thread() is self._thread

    def put(self, rec: Recorder, batch: Sequence[ev.Event]) -> int:
        with self._lock:
            if self.retired is not None:
                rec.drop(len(batch), self.retired)
                return self._queued
            if self._thread is None:
                # Held, and before the batch is queued: a Ctrl-C between the thread kept and
                # its start left one never started, taken for running (nothing written again,
                # ``retire`` raising RuntimeError); one before it, a batch queued, no thread.
                with InterruptsHeld():
                    self._thread = threading.Thread(target=self._loop, name="labloom-store",
                                                    daemon=True)
                    self._thread.start()
            cap = self.database.settings.backlog
            if self._backlog >= cap:
                kept = [e for e in batch if not isinstance(e, ev.LogRecord)]
                if len(kept) < len(batch):
                    why = (f"log lines not kept while the store could not be written (more than "
                           f"{cap} events waited; LABLOOM_STORE_BACKLOG)")
                    rec.drop(len(batch) - len(kept), why)
                    self.trouble.say_once("backlog", f"[labloom] {why}: further log lines are "
                                          "dropped and counted until it can")
                batch = kept
            self._queue.append((rec, batch))
            self._queued += 1
            self._backlog += len(batch)
            self._live[rec.run_id] = rec
            self._cond.notify_all()
            # Hold the caller (a run's delivery thread: the engine waits on its queue) while
            # more than a transaction waits and the backlog shrinks: what waits here is
            # behind what is queued, while in the delivery's queue a run's states pass a
            # map's announcements. A store making no progress is not waited for, nor one
            # behind while a held Ctrl-C waits (a run's end delivers its last batches in the
            # main thread): that stays queued. Held slices, as ``wait``.
            seq, since, written = self._queued, time.monotonic(), self._written
            while not self.is_me() and time.monotonic() >= self._unpaced_until \
                    and self._backlog > self._ahead() and self._thread is not None \
                    and not pending():
                if self._written != written:
                    since, written = time.monotonic(), self._written
                elif time.monotonic() - since >= ev.NO_PROGRESS:
                    self._unpaced_until = time.monotonic() + 6 * ev.NO_PROGRESS
                    break
                with InterruptsHeld():
                    self._cond.wait(HELD_WAIT)
            return seq

    def retire(self, why: str, timeout: float = 5.0) -> bool:
        """Let go of the store: what waits and what runs send later is dropped, counted
        (``why``); a retry gives up now. Whether the thread ended within ``timeout``."""
        with self._lock:
            if self.retired is None:
                self.retired = why
                if dropped := self._drop_queued(why):  # it notifies the thread too
                    self.trouble.let_go(dropped, why)
            thread, spare, self._spare = self._thread, self._spare, None
        if spare is not None:  # adopted for a thread that will not start now
            spare.close()
        self.database.close()  # a connection being waited for from the pool gives up now
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self.database.close()  # and a pool that a write under way opened meanwhile
        return thread is None or thread is threading.current_thread() or not thread.is_alive()

    def _drop_queued(self, why: str) -> int:
        for rec, batch in self._queue:
            rec.drop(len(batch), why)
        dropped = sum(len(batch) for _, batch in self._queue)
        self._queue.clear()
        self._backlog -= dropped
        self._written = self._queued
        self._cond.notify_all()
        return dropped

    def _ahead(self) -> int:
        return min(ev.PACE, self.size.events)

    def room(self) -> int:
        """What a run's delivery may hand over at once, and let wait (``CommitSize``)."""
        return self.size.events

    def wait(self, seq: int | None = None, timeout: float = FINAL_WAIT) -> bool:
        """Block until everything queued (up to ``seq``) is written or dropped. Given up when
        a Ctrl-C waits to be raised at the end of a held section (a run's end waits for its
        last commit inside one: interrupts_held.pending) and nothing was written since the
        last look (a store slow to answer); what is queued stays queued, written as the store
        allows. Held slices: see ``interrupts_held.wait_held``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            target_seq = self._queued if seq is None else seq
            self._hurry += 1
            self._cond.notify_all()
            try:
                written = -1
                while self._written < target_seq:
                    left = deadline - time.monotonic()
                    if left <= 0 or (self._written == written and pending()):
                        return False
                    written = self._written
                    with InterruptsHeld():
                        self._cond.wait(min(left, HELD_WAIT))
                return True
            finally:
                self._hurry -= 1

    def knows(self, run_id: str) -> bool:
        """Whether run ``run_id`` is open here, has rows not yet written or held, or lost some."""
        return run_id in self._live or run_id in self.lost or run_id in self.disk.held

    def pending(self) -> bool:
        with self._lock:
            return self._written < self._queued

    def missing(self, run_id: str) -> Unrecorded:
        """What of run ``run_id`` the store lacks: lost, unwritten yet, or held (disk full)."""
        with self._lock:
            count = sum(len(batch) for rec, batch in self._queue if rec.run_id == run_id)
            writing = () if self._rows is None else self._rows.tables()  # rows being written
        count += sum(sum(1 for r in t.runs[t.done:] if r == run_id) for t in writing)
        rec = self.lost.get(run_id)
        lost = Unrecorded(0, store=self.database.display) if rec is None else rec.lost
        return self.disk.unrecorded(lost, run_id, count)

    def _loop(self) -> None:
        with self._lock:
            conn, self._spare = self._spare, None
        last_beat = began = 0.0
        idle_since = time.monotonic()
        try:
            while True:
                with self._lock:
                    if not self._queue and self.retired is None:
                        self._cond.wait(min(self.database.settings.heartbeat_interval(), _IDLE_EXIT))
                    gathered = began + GATHER
                    while self._queue and not self._hurry and self._backlog <= self._ahead() \
                            and (left := gathered - time.monotonic()) > 0:
                        self._cond.wait(left)
                    items = self.size.cut(self._queue)
                    upto = self._queued - len(self._queue)
                    if items:
                        idle_since = time.monotonic()
                    elif self.retired or (  # nothing queues for a retired writer
                            not self._open and time.monotonic() - idle_since > _IDLE_EXIT):
                        self._thread = None
                        return
                beat = bool(self._open) and time.monotonic() - last_beat >= self.database.settings.heartbeat_interval()
                folded = sum(len(batch) for _, batch in items)
                if items or beat:
                    began = time.monotonic()
                    rows = self._rows = self._fold(items)
                    conn = self._store(conn, rows)
                    self._rows = None
                    self.size.timed(folded, time.monotonic() - began)
                    last_beat = time.monotonic()
                    self._settled(rows)
                    del rows  # written: not held until the next write or the thread's end
                with self._lock:
                    self._written = max(self._written, upto)  # past it when retired meanwhile
                    self._backlog -= folded
                    self._cond.notify_all()
                del items  # nor its events kept while idle: a following run reuses the memory
        except Exception as exc:  # a bug of ours, not the database's: never hang a run
            self._fail(exc)
        finally:
            if conn is not None:
                conn.close()

    def _fold(self, items: list[tuple[Recorder, Sequence[ev.Event]]]) -> Rows:
        # Folded once: a retried write must not count log lines twice.
        rows = Rows()
        for rec, batch in items:
            if rec.stale:  # its run is being written again from the start
                continue
            rows.add_all(rec, batch)
        self._open |= rows.opened
        self._open -= rows.closed
        return rows.finish()

    def _settled(self, rows: Rows) -> None:
        with self._lock:
            queued = {rec.run_id for rec, _ in self._queue}
            for run_id in rows.closed - self._open - queued:
                self._live.pop(run_id, None)

    def _store(self, conn: Conn | None, rows: Rows) -> Conn | None:
        """Write ``rows``, waiting out a busy or full disk, a server's restart or a store file
        that went away, for up to ``LABLOOM_STORE_OUTAGE`` seconds; then drop them, counted."""
        deadline = time.monotonic() + self.database.settings.outage
        delay = 0.1
        while True:
            try:
                if conn is None:
                    conn = self.database.connect(timeout=BUSY_TIMEOUT)
                if self._file is not None and (
                        self._emptied or self.database.file_id() != self._file):
                    conn = self._reopen(conn, rows)
                self._write(conn, rows)
                self._file = self._wrote = conn.file_id
                if self.database.path is not None:
                    self._wal = file_identity(Path(f"{self.database.path}-wal"))
                self.disk.wrote(rows, self.trouble)  # recovered, unless lines still wait
                return conn
            except Exception as exc:
                self._wrote = None
                self.disk.met(exc)
                if conn is not None:
                    with suppress(Exception):  # a fresh connection after any failure
                        conn.close()
                    conn = None
                if time.monotonic() + delay > deadline:
                    self.trouble.gave_up(rows, exc, explain=self.disk.why_unwritten)
                    return None
                self.trouble.failing(exc, rows)
                with self._lock:  # a backoff that ``retire`` cuts short
                    retired = self._cond.wait_for(lambda: self.retired, delay)
                if retired:
                    self.trouble.gave_up(rows, exc, retired)
                    return None
                delay = min(delay * 3, 5.0)

    def _write(self, conn: Conn, rows: Rows) -> None:
        now = store_clock.now(conn)  # read once: every open run beats at this write's time
        beat = [(now, run_id) for run_id in self._open | rows.closed]
        if unanswered_commits.landed_before(conn, rows):
            return  # its commit went unanswered, but it is in: not written twice
        self.disk.prepare(conn, rows)  # short of room: without lines, with the note of them
        if not rows.one_by_one and not rows.split:  # split: see ``WriteTrouble.failing``
            try:
                with unanswered_commits.transaction(conn, rows, appended_row(rows)):
                    rows.write(conn)
                    conn.executemany(HEARTBEAT, beat)
                    conn.executemany(NOTE_SQL, rows.notes)
                return
            except Exception as exc:
                if tables_gone(exc):
                    # A new file in place of the old one with the same inode number (freed
                    # once we let go of it): found by its missing tables.
                    self._emptied = True
                    raise
                if is_transient(exc):
                    raise
                self.trouble.batch_refused(exc)
        rows.write_one_by_one(conn, lambda e: self.trouble.passes(e, rows),
                              lambda t, r, e: self.trouble.row_refused(rows, t, r, e))
        with self.trouble.spared(rows), \
                unanswered_commits.transaction(conn, rows, noted_row(rows)):
            conn.executemany(HEARTBEAT, beat)
            conn.executemany(NOTE_SQL, rows.notes)

    def _reopen(self, conn: Conn, rows: Rows) -> Conn:
        """The store file was deleted or replaced: write the open runs into the file now at
        its path (a new one when it is gone) from what their kernels still hold."""
        path = self.database.path
        gone = self.database.file_id() is None
        conn.close()
        # The old file's journal (SQLite keeps it when its file was unlinked) would be read as
        # the new file's, which it would damage: it goes first, unless it is the new file's own.
        if path is not None and (gone or file_identity(Path(f"{path}-wal")) == self._wal):
            for suffix in ("-wal", "-shm"):
                with suppress(OSError):
                    os.unlink(f"{path}{suffix}")
        self.database.forget_schema()  # a new file may even reuse the old inode number
        new = self.database.connect(timeout=BUSY_TIMEOUT)
        self._emptied = False
        recs = {**self._live, **rows.recorders}
        log.warning("[labloom] the store file %s was %s while runs were being recorded; "
                    "writing %d open run(s) into %s again", path,
                    "deleted" if gone else "replaced by another file", len(recs),
                    "a new file" if gone else "the file now there")
        for table in rows.tables():  # all in the replay below
            table.rows.clear()
            table.runs.clear()
            table.done = 0
        for rec in recs.values():
            rec.start_over()
        return new

    def _fail(self, exc: Exception) -> None:
        log.exception("[labloom] the run store %s writer failed: %s", self.database.display, exc)
        with self._lock:
            self._drop_queued(f"the store writer failed ({short_error(exc)})")
            self._backlog = 0
            self._thread = None

