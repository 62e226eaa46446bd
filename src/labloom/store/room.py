"""Room on the store's disk kept for what must not be lost: the runs' states.

A task that prints much fills the disk holding the store in batches that each fit; once it is
full nothing fits, and the run's later states (its task runs' ends, its own) were lost with
its lines: a run that completed was left Crashed. So a writer keeps a reserve beside a SQLite
store, ``<store>-reserve`` (``LABLOOM_STORE_RESERVE`` MB, default 8, allocated, not sparse),
made at its first write. The first write refused for want of room (``db.is_disk_trouble``:
SQLITE_FULL, or the EFBIG of a file size limit) deletes it and makes the writer *short*: it
then writes the states, ends and counts alone, for which the reserve has room, and holds the
log lines and logged values back in memory (``held``; past ``LABLOOM_STORE_BACKLOG`` of them
they are dropped, counted). Once a reserve can be made again with as much room besides (tried
every ``PROBE`` seconds; a writer that found no room for one tries lines again instead), the
held lines are written with the next rows: a disk full for seconds loses nothing. Lines still held when their run ends are told by ``labloom run`` (exit
status 3, ``unrecorded``) and noted with the run's end in its logs (``labloom show`` prints it).

Why this holds for SQLite in WAL mode: the database file grows only at a checkpoint, when the
pages in the WAL are copied into it; until then every commit grows the WAL, and the WAL starts
over at its beginning only after a checkpoint copied all of it. When the disk fills, the WAL may
hold up to ``wal_autocheckpoint`` pages (1,000 of 4 KB) not yet in the file, and without room
to copy them no later commit fits either. The reserve gives that room: once short, the writer
checkpoints (PASSIVE: it waits for no reader) into what the reserve freed, at most 4 MB of the
8; the next commit starts the WAL over, on file space it already has, and the states-only
commits after it add a few pages each, copied by the automatic checkpoints into the database,
which grows only by the states' own rows. A file size limit (RLIMIT_FSIZE) is per file:
deleting the reserve frees nothing under it, and the reserve cannot be made again (the writer
stays short for the process's life), but the checkpoint and the states written without their
lines still fit where a batch with lines did not.

PostgreSQL: nothing of ours lies beside the server's files, so the reserve is a table of filler
rows, ``labloom_reserve`` (``pg_reserve.py``), on the disk labloom's tables fill. A full disk
makes the server refuse a write (DiskFull, "could not extend file"): the writer turns short,
and before its next write empties the table (``TRUNCATE``: its room goes back to the disk at
once), where the states, written without their lines, fit (session 50: without it the disk
stayed full, the states were refused as the lines were, and a run that completed was left
Running, its task runs Pending). When a run ends with lines held (or to hold: those of its last
write too), and every ``PROBE`` seconds (twice as long after each try that failed, up to
``PROBE_AT_MOST``: a try writes what room there is before it fails), it fills the table to
twice its size: that it fits is room for lines besides (the server does not say how much it
has); then it is kept at its size. A server that cannot write its own WAL stops (PANIC): that
is a server away, waited out for ``LABLOOM_STORE_OUTAGE`` seconds with every row kept in
memory, then dropped and counted. On the disk of its WAL, the table lets it start again by
itself (its recovery empties it: it is unlogged, see ``pg_reserve.py``); the writer back finds
it empty and writes the states alone, as when it emptied it. Rows that wait or go while short
are said with the full disk and its fix (``why_unwritten``): the server may be down for it,
which its own error does not say.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import pg_reserve
from .db import Conn, Database, is_disk_trouble, is_transient
from .recorder import UNWRITTEN, Unrecorded

if TYPE_CHECKING:
    from .recorder import Recorder
    from .row_tables import Table
    from .rows import Rows
    from .write_trouble import WriteTrouble

log = logging.getLogger("labloom")

PROBE = 2.0  # seconds between tries to write lines again once short
PROBE_AT_MOST = 30.0  # on PostgreSQL, each try failed doubles the wait, up to this
# The disk a full store is on, by backend; what to do about it.
DISK = {"sqlite": "the disk holding the store", "postgresql": "the disk of the store's "
        "PostgreSQL server"}
FIX = {"sqlite": "free some space there", "postgresql": "have the server's administrator free "
       "some space on it"}
WHY = "log lines and logged values dropped: {disk} was full"
HELD = "log lines and logged values waiting for room: {disk} is full{kept}"
KEPT = " (the run's states were kept)"
# Said of rows that wait or went while short: the states too found no room, or no server (it
# stops when it cannot write its WAL, and may stay down).
FULL = {"sqlite": "{disk} is full: {fix}", "postgresql": "{disk} is full: {fix}, and start the "
        "server again if it stopped (it stops when it cannot write its WAL there)"}
NOTE = ("[labloom] {count} log line(s) and logged value(s) of this run were not stored when "
        "it ended: {disk} was full (its states were kept, in room labloom reserves for them); "
        "{fix}")
NOTE_LIKE = "[labloom] % were not stored when it ended: the disk % was full%"
NOTE_SQL = "INSERT INTO logs (run_id, task_run_id, level, time, text) VALUES (?,?,?,?,?)"


def _make(path: Path, size: int) -> bool:
    """Allocate ``size`` bytes at ``path`` (whole, or nothing left there): False for want of
    room, which a file size limit also gives (EFBIG; Python ignores its SIGXFSZ)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError:
        return False
    try:
        if hasattr(os, "posix_fallocate"):  # allocated now: a sparse file would keep nothing
            os.posix_fallocate(fd, 0, size)
        else:
            block = b"\0" * 2**20
            for start in range(0, size, len(block)):
                os.pwrite(fd, block[:size - start], start)
        return True
    except OSError:
        with suppress(OSError):
            os.unlink(path)
        return False
    finally:
        os.close(fd)


def _free(folder: Path) -> int:
    """Bytes an unprivileged writer may still take on the disk holding ``folder``."""
    try:
        disk = os.statvfs(folder)
    except OSError:
        return 0
    return disk.f_bavail * disk.f_frsize


class Room:
    """One writer's reserve of room (``database``'s), and whether it is short of room."""

    def __init__(self, database: Database) -> None:
        self.display = database.display
        self.settings = database.settings  # checked as the store opened
        self.disk = DISK.get(database.kind, DISK["sqlite"])
        self.held_why = HELD.format(disk=self.disk, kept=KEPT)
        self._held_unkept = HELD.format(disk=self.disk, kept="")
        fix = FIX.get(database.kind, FIX["sqlite"])
        self._full = FULL.get(database.kind, FULL["sqlite"]).format(disk=self.disk, fix=fix)
        # The words said of lines not stored, made once: a write may drop many lines.
        self._dropped_why = WHY.format(disk=self.disk)
        self._note = NOTE.format(count="{count}", disk=self.disk,
                                 fix=FIX.get(database.kind, FIX["sqlite"]))
        self._pg = database.kind == "postgresql"
        self._emptied = True  # the PostgreSQL reserve to empty before the next write
        self._look = False  # the PostgreSQL reserve to look at: has a recovery emptied it?
        self.path = None if database.path is None else Path(f"{database.path}-reserve")
        self.short = False
        self._kept = False  # the reserve made sure of, once per writer
        self._size = 0  # of this writer's reserve: 0 when none could be made
        self._wal = None if database.path is None else Path(f"{database.path}-wal")
        self._checkpoint = False  # the WAL to move into what the reserve freed
        self._probe_at = 0.0
        self._probe_every = PROBE
        # Lines and values held back while short: (table name, run id, row), and per run.
        self._held: list[tuple[str, str, tuple[Any, ...]]] = []
        self._recorders: dict[str, Recorder] = {}
        self.held: dict[str, int] = {}
        self._held_since = 0.0
        self._shed_any = False  # lines shed once: a run's end may need the note of them

    def why_unwritten(self, why: str) -> str:
        """``why`` rows of a run wait or went, with the full disk and its fix when short."""
        return f"{why}; {self._full}" if self.short else why

    def unrecorded(self, lost: Unrecorded, run_id: str, unwritten: int) -> Unrecorded:
        """``lost`` of run ``run_id``, ``unwritten`` rows of it waiting and its lines held;
        not that its states were kept when some wait too."""
        return lost.plus(unwritten, self.why_unwritten(UNWRITTEN)).plus(
            self.held.get(run_id, 0), self._held_unkept if unwritten else self.held_why)

    def wrote(self, rows: Rows, trouble: WriteTrouble) -> None:
        """After a write that went well: its notes are in, the reserve made if not there;
        the outage over once there is room for lines again (said once: not at each
        states-only write while the disk is full)."""
        if not self.short and not self._held:
            trouble.recovered()
        for run_id, *_ in rows.notes:
            rows.recorders[run_id].noted_unstored = True
        if not self._kept and self.path is not None and not self._pg:
            self._kept = True
            with suppress(OSError):
                self._size = self.path.stat().st_size  # made by another writer, or earlier
            if not self._size and (size := self.settings.reserve_size()) and _make(self.path, size):
                self._size = size  # else a disk too small for one: no reserve (see _room_again)

    def met(self, exc: BaseException) -> None:
        """A write failed: when for want of room, the reserve goes and the writer is short.
        When the server went away, its reserve is looked at once it is back
        (``_emptied_by_recovery``)."""
        if not is_disk_trouble(exc):
            self._look |= self._pg and bool(self._size) and is_transient(exc)
            return
        self._probe_at = time.monotonic() + self._probe_every
        if self.short:
            return
        self.short = self._checkpoint = True
        self._emptied = False
        if self.path is not None:
            with suppress(OSError):
                os.unlink(self.path)

    def prepare(self, conn: Conn, rows: Rows) -> None:
        """Before a write: while short, the WAL checkpointed once, and ``rows`` without their
        lines and values (unless there is room again), written whole, not one by one; with
        the note of what was not stored for each run that ends in them. On PostgreSQL the
        reserve is made at the first write, emptied at the first while short."""
        if self._pg and not self._kept and not self.short:
            self._make_pg_reserve(conn)
        if self._look:
            self._emptied_by_recovery(conn)
        if self.short:
            self._shed(conn, rows)
        if not self.short and self._held:
            self._give_back(rows)
        if not self._shed_any:  # no recorder lost or holds a line: no note to look for
            return
        now = time.time()
        rows.notes = [(run_id, None, 30, now, self._note.format(count=unstored))
                      for run_id in rows.closed
                      if (rec := rows.recorders.get(run_id)) is not None
                      and (unstored := rec.unstored + self.held.get(run_id, 0))
                      and not rec.noted_unstored]

    def _make_pg_reserve(self, conn: Conn) -> None:
        size = pg_reserve.wanted(conn)
        made = pg_reserve.make(conn, size) if size else False
        if made is not None:  # None: the server could not be asked; at the next write
            self._kept = True
            self._size = size if made else 0

    def _emptied_by_recovery(self, conn: Conn) -> None:
        """Back after an outage: a reserve found empty was emptied by the server's recovery
        from a stop for its full disk (or by another writer short of room): the disk is full,
        and lines written now would stop the server again, for good (no reserve left)."""
        filled = pg_reserve.filled(conn)
        if filled is None:
            return  # the server away again: asked at the next write
        self._look = False
        if not self.short and filled < self._size // 2:
            self.short = True
            self._probe_at = time.monotonic() + self._probe_every

    def _shed(self, conn: Conn, rows: Rows) -> None:
        if self._pg and self._size and not self._emptied:
            self._emptied = pg_reserve.free(conn)
        if self._checkpoint and self._wal is not None:
            self._checkpoint = False
            # Only a copy that can be whole: one that stops half-way has grown the database
            # by all the room there was, and the states then have none in the WAL either.
            with suppress(OSError, sqlite3.Error):
                if _free(self._wal.parent) >= self._wal.stat().st_size:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        if self._held and time.monotonic() - self._held_since > self.settings.outage:
            self._drop_held(f"the store could not be written for {self.settings.outage:g}s "
                            f"(LABLOOM_STORE_OUTAGE): {self.disk} was full")
        if (self._ending(rows) or time.monotonic() >= self._probe_at) and self._room_again(conn):
            self.short = False
            return
        if not self._held:
            self._held_since = time.monotonic()
        self._shed_any = True  # from here lines are held or dropped (``unstored``)
        cap = self.settings.backlog
        for name, table in (("logs", rows.logs), ("values", rows.values)):
            for run_id, row in zip(table.runs[table.done:], table.rows[table.done:], strict=True):
                rec = rows.recorders[run_id]
                if len(self._held) < cap:
                    self._held.append((name, run_id, row))
                    self._recorders[run_id] = rec
                    self.held[run_id] = self.held.get(run_id, 0) + 1
                else:  # as many as may wait in memory wait already
                    rec.drop(1, self._dropped_why)
                    rec.unstored += 1
            del table.rows[table.done:], table.runs[table.done:]
        rows.split = False  # states alone are few: one transaction

    def _ending(self, rows: Rows) -> bool:
        """Whether a run ends in ``rows`` with lines held, or to be held now: room is looked
        for at once, its end being what ``labloom run`` tells. Those of this write count when
        there is a reserve to measure room by (without one, lines refused would be tried again
        and again): a writer that found its reserve emptied by a server's crash only at a
        run's last write (its first write back had landed before the crash, ``landed_before``)
        held them for good, and the run said a full disk on a disk with room."""
        if not rows.closed or any(run_id in self.held for run_id in rows.closed):
            return bool(rows.closed)
        return bool(self._size) and any(
            run_id in rows.closed for table in (rows.logs, rows.values)
            for run_id in table.runs[table.done:])

    def _drop_held(self, why: str) -> None:
        for run_id, count in self.held.items() if why else ():
            self._recorders[run_id].drop(count, why)
            self._recorders[run_id].unstored += count
        self._held.clear()
        self._recorders.clear()
        self.held.clear()

    def _give_back(self, rows: Rows) -> None:
        """Room again: the held lines and values go with ``rows`` (held again if they fail)."""
        tables: dict[str, Table] = {"logs": rows.logs, "values": rows.values}
        for name, run_id, row in self._held:
            tables[name].add(run_id, row)
            rows.recorders.setdefault(run_id, self._recorders[run_id])
        self._drop_held("")  # nothing dropped: given back

    def _room_again(self, conn: Conn) -> bool:
        self._probe_at = time.monotonic() + PROBE
        if self._pg and self._size:  # a reserve that fits again: room for lines too
            if self._emptied and pg_reserve.make(conn, self._size, spare=True):
                self._probe_every = PROBE
                return True
            # Each try writes what room there is before it fails: tried less often.
            self._probe_every = min(2 * self._probe_every, PROBE_AT_MOST)
            self._probe_at = time.monotonic() + self._probe_every
            return False
        if self.path is None or not self._size:
            return True  # no reserve: lines are tried and may fail again
        # As much room as the reserve besides it: else lines would fill it again at once.
        return _free(self.path.parent) >= 2 * self._size and _make(self.path, self._size)


def kept(database: Database, conn: Conn) -> tuple[int, str, str | None, str | None]:
    """The room kept now for the runs' states (``labloom db check``): its bytes (0: none yet,
    made at a run's first write), where, why there can be none, with the fix, and what is
    wrong with it, with the fix (on PostgreSQL, a reserve made logged: ``pg_reserve.kept``)."""
    if not database.settings.reserve_size():
        return 0, "", "LABLOOM_STORE_RESERVE is 0", None
    if database.kind == "postgresql":
        size, why, logged = pg_reserve.kept(conn)
        return size, f"table {pg_reserve.TABLE}", why, logged
    path = Path(f"{database.path}-reserve")
    try:
        return path.stat().st_size, str(path), None, None
    except OSError:
        return 0, str(path), None, None
