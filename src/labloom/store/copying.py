"""One store's history copied into another (``labloom db copy``): a laptop's SQLite file into
a team's PostgreSQL, run and task-run ids kept.

What moves: every ended run with its task runs, states, log lines, log cuts, graph nodes and
logged params and metrics; the flows seen; schedules with their slots (paused when the target is
PostgreSQL: a team's ``labloom serve`` on another host would fire them and find this host's
files missing; the slots a schedule the target has fired since the last copy are added too);
concurrency limits. A schedule or limit of the same name but other content in the target (a
teammate's) is kept and reported as differing.
What does not: what belongs to live processes (schedulers' heartbeats and the schedules they
refuse, held limit slots, places in line, cancel requests, the alerts this store's ``serve`` has
still to send); runs not ended yet, whose process still writes to the source
(copy again once they end); an ended run's folded experiment pages (``experiment_snapshot.py``:
they name the last logged value's id, which the target numbers anew, so the copy would be
stale at once; the first view folds them again); result files, which the runs name where they
are.

Runs are copied whole, a page of them per transaction of the target, so a copy killed half-way
leaves whole runs only and the next copy goes on from there: a run the target has is skipped
and counted, whoever wrote it, unless its state or end differs from the source's (retried in
place, or marked Crashed there and then really ended): then it is replaced whole, its old rows
deleted in the same transaction, and counted as updated. A run deleted from the target
(``labloom delete``, prune, the Lab: its id is kept in ``deleted_runs``) is not copied again,
and counted, unless the copy is asked to (``include_deleted``): deleting on the team's store
sticks though the laptop still holds the run.
Rows move in batches of ``BATCH``: a run of a million log lines is never in memory at once (a
PostgreSQL source is read through a server-side cursor; psycopg's ordinary cursor fetches a
whole result). Log lines and logged values get the target's ids (their tables' sequences,
which the target's own rows use too), in the source's order.
"""

from __future__ import annotations

import itertools
import os
import shlex
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import StoreUnavailableError, StoreVersionError
from .db import Conn, Database, auto_migrate, pg_sql, settle_schema
from .multirow import rows_in
from .pruning import delete_run_rows
from .schema import SCHEMA_VERSION, refuse_foreign, version_of
from .storable import storable

BATCH = 5000  # rows read and written at once
RUNS_PER_TRANSACTION = 100
ENDED = ("Completed", "Failed", "Cancelled", "Crashed")

# A run's rows, table by table, in the order its views read them. task_states by its task runs:
# SQLite indexes it by task run only (a scan of the whole table per run otherwise).
_RUN_ROWS = (
    ("task_runs", "WHERE run_id = ? ORDER BY rowid"),
    ("task_states", "WHERE task_run_id IN (SELECT id FROM task_runs WHERE run_id = ?) "
                    "ORDER BY rowid"),
    ("run_nodes", "WHERE run_id = ? ORDER BY rowid"),
    ("logs", "WHERE run_id = ? ORDER BY id"),
    ("log_cuts", "WHERE run_id = ?"),
    ("experiment_values", "WHERE run_id = ? ORDER BY id"),
)
_NUMBERED_BY_TARGET = ("logs", "experiment_values")


@dataclass
class CopyReport:
    """What a copy did: rows copied by table, runs skipped (already there, not ended)."""

    source: str
    target: str
    created: bool = False  # the target had no schema: made here
    rows: Counter[str] = field(default_factory=Counter)
    runs_present: int = 0
    runs_updated: list[str] = field(default_factory=list)  # changed in the source: replaced
    deleted_in_target: int = 0  # runs deleted from the target since an earlier copy: skipped
    include_deleted: bool = False  # copy those too (``--include-deleted``)
    not_ended: list[str] = field(default_factory=list)
    schedules_present: list[str] = field(default_factory=list)  # the same one: slots added
    schedules_differing: list[str] = field(default_factory=list)  # a teammate's: kept
    schedules_paused: list[str] = field(default_factory=list)  # copied paused
    limits_present: list[str] = field(default_factory=list)
    limits_differing: list[tuple[str, int, int]] = field(default_factory=list)  # tag, ours, theirs

    # The new runs of the transaction under way: a Ctrl-C just after its commit, before they
    # were counted, left the count a page short (``count_committed``).
    in_flight: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "created": self.created,
                "copied": {table: n for table, n in sorted(self.rows.items()) if n},
                "runs_already_there": self.runs_present, "runs_updated": self.runs_updated,
                "runs_deleted_in_target": self.deleted_in_target,
                "runs_not_ended": self.not_ended,
                "schedules_already_there": self.schedules_present,
                "schedules_differing": self.schedules_differing,
                "schedules_copied_paused": self.schedules_paused,
                "limits_already_there": self.limits_present,
                "limits_differing": {tag: {"source": ours, "target": theirs}
                                     for tag, ours, theirs in self.limits_differing}}


def open_source(database: Database) -> Conn:
    """The store to copy from, refused unless on this labloom's schema (never upgraded here:
    it may be another labloom's). A SQLite file this user may not write (a backup, a read-only
    mount, a colleague's folder) is opened read-only."""
    raw = None if database.path is None else read_only_sqlite(database.path)
    conn = database.connect(migrate=False) if raw is None else Conn(database, raw, False)
    version = version_of(conn)
    if version != SCHEMA_VERSION:
        try:  # another program's database: said as such, not "upgrade it first"
            refuse_foreign(conn, version, f"the store to copy from, {database.display},",
                           "Give --from the labloom.db of a LABLOOM_HOME, or a labloom store's "
                           "URL")
        finally:
            conn.close()
        if version == 0:
            why = "holds no labloom store (schema version 0): check the path or URL"
        elif version < SCHEMA_VERSION:
            why = (f"has schema version {version}, older than this labloom's "
                   f"({SCHEMA_VERSION}): upgrade it first (`labloom --database-url "
                   f"{shlex.quote(database.display)} db upgrade`), then copy")
        else:
            why = (f"has schema version {version}, newer than this labloom's "
                   f"({SCHEMA_VERSION}): copy with the labloom that wrote it, or upgrade "
                   "labloom (pip install -U labloom)")
        raise StoreVersionError(f"[labloom] the store to copy from, {database.display}, {why}")
    return conn


def may_write(path: Path) -> bool:
    """Whether this user may write the SQLite file ``path`` and make its -wal and -shm."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def read_only_sqlite(path: Path) -> sqlite3.Connection | None:
    """A read-only connection to the SQLite file ``path`` when this user may not write it or
    its folder (None otherwise: an ordinary connection can then settle its dead runs). Opened
    ``immutable`` (no lock, no -shm file to make) unless a write-ahead log holds part of it,
    which only a ``mode=ro`` connection reads."""
    if may_write(path):
        return None
    wal = path.with_name(path.name + "-wal")
    logged = wal.exists() and wal.stat().st_size > 0
    try:
        how = "mode=ro" if logged else "immutable=1"
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?{how}", uri=True,
                               isolation_level=None, check_same_thread=False)
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise StoreUnavailableError(
            f"[labloom] the store {path} cannot be read ({exc}): its folder is not writable "
            f"and {wal.name} holds part of it, which SQLite reads only with write access to "
            f"the folder: copy the folder somewhere you can write (cp -a), and copy from there"
        ) from None
    return conn


def open_target(database: Database) -> tuple[Conn, bool]:
    """The store to copy into and whether its schema was made here: an empty database gets
    this labloom's; one on another version is refused (the team's other hosts use it)."""
    conn = database.connect(migrate=False)
    version = version_of(conn)
    if version == 0 and auto_migrate():
        settle_schema(conn)
        return conn, True
    if version != SCHEMA_VERSION:
        conn.close()
        unset = " (LABLOOM_AUTO_MIGRATE=0 is set: labloom makes no schema itself)"
        fix = (f"run `labloom --database-url {shlex.quote(database.display)} db upgrade` first"
               f"{unset if version == 0 else ''}" if version < SCHEMA_VERSION
               else "upgrade labloom (pip install -U labloom) before copying into it")
        raise StoreVersionError(
            f"[labloom] the store to copy into, {database.display}, has schema version "
            f"{version}, not this labloom's ({SCHEMA_VERSION}): {fix}"
        )
    return conn, False


def copy_store(
    source: Conn, target: Conn, report: CopyReport,
    progress: Callable[[CopyReport], None] | None = None,
) -> CopyReport:
    """Copy everything ``source`` holds that ``target`` lacks (see the module's docstring)."""
    columns = _Columns(source, target)
    _copy_flows(source, target, columns, report)
    after = -1
    while True:
        page = source.execute(
            "SELECT rowid, id, state FROM flow_runs WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (after, RUNS_PER_TRANSACTION),
        ).fetchall()
        if not page:
            break
        after = page[-1][0]
        ended = [run_id for _, run_id, state in page if state in ENDED]
        report.not_ended += [run_id for _, run_id, state in page if state not in ENDED]
        copied: Counter[str] = Counter()
        with target.transaction():
            target.lock("labloom-copy")  # two copies at once: the second skips, not fails
            theirs = _run_ends(target, ended)
            changed = [run_id for run_id, end in _run_ends(source, ended).items()
                       if run_id in theirs and theirs[run_id] != end]
            if changed:  # retried in place, or marked Crashed and then really ended
                delete_run_rows(target, changed)
            new = [run_id for run_id in ended if run_id not in theirs]
            deleted = present_keys(target, "deleted_runs", "id", new)
            if report.include_deleted:  # brought back: deleted no more
                target.executemany("DELETE FROM deleted_runs WHERE id = ?",
                                   [(run_id,) for run_id in deleted])
            else:
                new = [run_id for run_id in new if run_id not in deleted]
                report.deleted_in_target += len(deleted)
            report.in_flight = new
            for run_id in [*changed, *new]:
                _copy_run(source, target, columns, run_id, copied)
        report.rows.update(copied)  # counted once committed
        report.in_flight = []
        report.rows["flow_runs"] -= len(changed)
        report.runs_updated += changed
        report.runs_present += len(theirs) - len(changed)
        if progress is not None:
            progress(report)
    _copy_schedules(source, target, columns, report)
    _copy_limits(source, target, columns, report)
    return report


def _copy_run(source: Conn, target: Conn, columns: _Columns, run_id: str,
              copied: Counter[str]) -> None:
    _copy_rows(source, target, columns, "flow_runs", "WHERE id = ?", (run_id,), copied)
    for table, where in _RUN_ROWS:
        _copy_rows(source, target, columns, table, where, (run_id,), copied)


def _copy_rows(source: Conn, target: Conn, columns: _Columns, table: str, where: str,
               params: Sequence[Any], copied: Counter[str], on_conflict: str = "") -> None:
    names = columns.of(table)
    select = f"SELECT {', '.join(names)} FROM {table} {where}"
    for batch in _stream(source, select, params):
        if target.kind == "postgresql":  # NUL, which an old SQLite store may hold
            batch = [[storable(v) if type(v) is str else v for v in row] for row in batch]
        target.insert_rows(table, names, batch, on_conflict)
        copied[table] += len(batch)


def _stream(conn: Conn, sql: str, params: Sequence[Any]) -> Iterator[list[Any]]:
    """The rows of ``sql``, ``BATCH`` at a time, without reading them all first."""
    if conn.kind == "sqlite":
        cursor = conn.raw.execute(sql, params)
        while batch := cursor.fetchmany(BATCH):
            yield batch
        return
    with conn.raw.transaction(), conn.raw.cursor(name="labloom_copy") as cursor:
        cursor.itersize = BATCH
        cursor.execute(pg_sql(sql), params)
        while batch := cursor.fetchmany(BATCH):
            yield batch


def count_committed(report: CopyReport, target: Database) -> None:
    """After an interruption: count the runs of the last transaction if it committed (read
    again, on a new connection: the copy's may be broken); left as counted when the target
    cannot be asked."""
    if not report.in_flight:
        return
    try:
        with target.connect(migrate=False) as conn:
            report.rows["flow_runs"] += len(present_keys(conn, "flow_runs", "id",
                                                         report.in_flight))
    except Exception:  # the server still away: the count stays a lower bound
        pass
    report.in_flight = []


def _run_ends(conn: Conn, run_ids: Sequence[str]) -> dict[str, tuple[Any, Any]]:
    """The state and end of each of ``run_ids`` that ``conn`` holds: a run whose state or end
    differs between the stores changed in the source after it was copied."""
    return {run_id: (state, ended) for run_id, state, ended in rows_in(
        conn, "SELECT id, state, ended FROM flow_runs WHERE id IN ({marks})", run_ids)}


def present_keys(conn: Conn, table: str, key: str, values: Sequence[Any]) -> set[Any]:
    """Which of ``values`` the rows of ``table`` hold in ``key`` (asked 500 at a time)."""
    return {row[0] for row in rows_in(
        conn, f"SELECT {key} FROM {table} WHERE {key} IN ({{marks}})", values)}


def _copy_flows(source: Conn, target: Conn, columns: _Columns, report: CopyReport) -> None:
    before = _count(target, "flows")
    with target.transaction():
        _copy_rows(source, target, columns, "flows", "", (), Counter(),
                   "ON CONFLICT (name, source_hash) DO NOTHING")
    report.rows["flows"] += _count(target, "flows") - before


# What makes a schedule the same one in both stores (a re-copy of one's own) rather than a
# teammate's of the same name: what it runs, where, when, and when it was made; not its pause.
_SCHEDULE_IDENTITY = ("target", "workdir", "cron", "every", "timezone", "params", "created")


def _copy_schedules(source: Conn, target: Conn, columns: _Columns, report: CopyReport) -> None:
    """New schedules copied with their slots (paused onto a store other hosts' ``labloom
    serve`` may fire from: its files are this host's); of one the target has already, the
    slots fired since the last copy; a teammate's of the same name is kept and reported."""
    names = [row[0] for row in source.execute("SELECT name FROM schedules ORDER BY name")]
    pause = target.kind != "sqlite"
    identity = ", ".join(_SCHEDULE_IDENTITY)
    for name in names:
        copied: Counter[str] = Counter()
        with target.transaction():
            target.lock("labloom-copy")
            if _insert_new(source, target, columns, "schedules", "name", name):
                copied["schedules"] += 1
                if pause:
                    target.execute("UPDATE schedules SET paused = 1 WHERE name = ?", (name,))
                    report.schedules_paused.append(name)
            else:
                mine, theirs = (conn.execute(f"SELECT {identity} FROM schedules WHERE name = ?",
                                             (name,)).fetchone() for conn in (source, target))
                if tuple(mine) != tuple(theirs):
                    report.schedules_differing.append(name)
                    continue
                report.schedules_present.append(name)
            before = _count(target, "schedule_slots", "schedule", name)
            _copy_rows(source, target, columns, "schedule_slots",
                       "WHERE schedule = ? ORDER BY slot_time", (name,), Counter(),
                       "ON CONFLICT (schedule, slot_time) DO NOTHING")
            copied["schedule_slots"] += _count(target, "schedule_slots", "schedule", name) - before
        report.rows.update(copied)


def _copy_limits(source: Conn, target: Conn, columns: _Columns, report: CopyReport) -> None:
    limits = source.execute("SELECT tag, slots FROM concurrency_limits ORDER BY tag").fetchall()
    copied = 0
    present: list[tuple[str, int, int]] = []
    differing: list[tuple[str, int, int]] = []
    with target.transaction():
        for tag, slots in limits:
            if _insert_new(source, target, columns, "concurrency_limits", "tag", tag):
                copied += 1
                continue
            theirs = target.execute("SELECT slots FROM concurrency_limits WHERE tag = ?",
                                    (tag,)).fetchone()[0]
            (present if theirs == slots else differing).append((tag, slots, theirs))
    report.rows["concurrency_limits"] += copied
    report.limits_present = [tag for tag, _, _ in present]
    report.limits_differing = differing


def _insert_new(source: Conn, target: Conn, columns: _Columns, table: str, key: str,
                value: Any) -> bool:
    """The source's row of ``table`` keyed ``value``, inserted unless the target has that key,
    a teammate's ``schedule add`` or ``limit set`` of a moment ago included (a look, then an
    insert, failed on it). True when inserted."""
    names = columns.of(table)
    row = source.execute(f"SELECT {', '.join(names)} FROM {table} WHERE {key} = ?",
                         (value,)).fetchone()
    marks = ",".join("?" * len(names))
    return row is not None and target.execute(
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks}) "
        f"ON CONFLICT ({key}) DO NOTHING", list(row)).rowcount == 1


def _count(conn: Conn, table: str, key: str = "", value: Any = None) -> int:
    where = f" WHERE {key} = ?" if key else ""
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}{where}",
                            (value,) if key else ()).fetchone()[0])


class _Columns:
    """Each table's columns to copy: the source's, less the row numbers the target gives
    (``rowid``, and the ids of log lines and logged values)."""

    def __init__(self, source: Conn, target: Conn) -> None:
        self.source, self.target = source, target
        self._known: dict[str, list[str]] = {}

    def of(self, table: str) -> list[str]:
        if table not in self._known:
            skip = {"rowid", "id"} if table in _NUMBERED_BY_TARGET else {"rowid"}
            mine, theirs = (_names(conn, table) for conn in (self.source, self.target))
            self._known[table] = [name for name in mine if name not in skip and name in theirs]
        return self._known[table]


def _names(conn: Conn, table: str) -> list[str]:
    cursor = conn.execute(f"SELECT * FROM {table} WHERE 1 = 0")
    return [column[0] for column in cursor.description]


def rows_in_order(rows: Counter[str]) -> Iterator[tuple[str, int]]:
    """The report's rows by table, a run's tables first (as the command prints them)."""
    order = ["flow_runs", *(table for table, _ in _RUN_ROWS)]
    rest = sorted(set(rows) - set(order))
    return ((table, rows[table]) for table in itertools.chain(order, rest) if rows[table])
