"""Room kept on a PostgreSQL server's disk for the runs' states: the table ``labloom_reserve``.

Beside a SQLite store the reserve is a file (``room.py``); a PostgreSQL server's files are not
ours to touch, but a table is: ``labloom_reserve`` holds ``LABLOOM_STORE_RESERVE`` MB of filler
rows, in the tablespace labloom's tables are made in (the database's default), so on the disk
that their rows fill. When that disk is full (DiskFull, SQLSTATE 53100: "could not extend
file"), ``TRUNCATE`` gives its files' room back at once (PostgreSQL cuts a truncated relation's
old file to zero length at commit, unlinking it at the next checkpoint), and the states that
follow, written without their lines, fit in it. Made again, once there is room, by the writer
that emptied it.

The table has one ``VARCHAR(450)`` column: a row can never reach the size (about 2 KB) from
which PostgreSQL compresses rows or moves them out of line, so the table has no TOAST table. It
must not: ``TRUNCATE`` makes a TOAST table's index anew, a page written at once, which a full
disk refused ("could not extend file"), and the room was never given back. A row of 450 bytes
takes about 484 on disk (its header, its pointer), sixteen to a page.

A user who may not create tables in the schema (a team's store used by a role with rights on
rows only) uses the table its owner made, given SELECT, INSERT and TRUNCATE on it; ``kept`` says
so, with the SQL, for ``labloom db check``, and so of a reserve made logged (see below), which
only its owner can make unlogged (``make`` does, at the owner's first write).

When the one disk holds the server's WAL too (a small machine's only disk), the server stops
(PANIC) when it cannot make its next WAL segment (``wal_segment_size``, 16 MB, written whole),
and its crash recovery, which must write one too, left it down (session 51, the whole data
directory on a small tmpfs). So the table is ``UNLOGGED``: its rows write no WAL (a logged
one's fill, 16 MB of WAL when room is tried again, was what stopped the server), and crash
recovery empties it before anything else, giving its room to the WAL; by default it holds one
WAL segment and 1 MB besides (``wanted``): a server stopped for its full disk starts again by
itself, and the writer, finding it emptied after the outage, writes the states alone
(``room.py``).
"""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import TYPE_CHECKING

from .db import is_disk_trouble, is_transient

if TYPE_CHECKING:
    from .db import Conn

log = logging.getLogger("labloom")

TABLE = "labloom_reserve"
_PAGE = 8192
_ROWS_A_PAGE = 16
_FILLER = 450
_COLUMN = f"filler VARCHAR({_FILLER}) NOT NULL"
# A lock held by another writer emptying or filling it is not waited for long: the states wait.
_LOCK_WAIT = "SET LOCAL lock_timeout = '5s'"


def wanted(conn: Conn) -> int:
    """The reserve's size: ``LABLOOM_STORE_RESERVE``, by default at least a WAL segment and
    1 MB (what a server stopped for its full disk needs to start again, see above)."""
    segment = 0
    with suppress(Exception):  # the server away: the default, asked again at the next try
        segment = int(conn.execute(
            "SELECT pg_size_bytes(current_setting('wal_segment_size'))").fetchone()[0])
    return conn.database.settings.reserve_size(segment + 2**20 if segment else 0)


def filled(conn: Conn) -> int | None:
    """Bytes the reserve holds now: 0 when it is gone, None when the server could not be
    asked."""
    try:
        return int(conn.execute(f"SELECT pg_relation_size('{TABLE}')").fetchone()[0])
    except Exception as exc:
        return None if is_transient(exc) else 0


def make(conn: Conn, size: int, spare: bool = False) -> bool | None:
    """``labloom_reserve`` holding ``size`` bytes (made by another process: kept as it is);
    with ``spare``, only if it fits twice (filled to twice, then emptied and filled once): room
    for lines besides, which the room just freed by emptying it is not. False when there is
    no room for it (what a fill cut short took is given back) or the user may not create it;
    None when the server could not be asked (try again later)."""
    try:
        # Not CREATE ... IF NOT EXISTS alone: it needs the right to create in the schema even
        # when the table is there, made by its owner for a user without that right.
        if not conn.execute(f"SELECT to_regclass('{TABLE}') IS NOT NULL").fetchone()[0]:
            conn.execute(f"CREATE UNLOGGED TABLE IF NOT EXISTS {TABLE} ({_COLUMN})")
        _unlogged(conn)
        _fill(conn, 2 * size if spare else size)
        if spare:
            with conn.transaction():
                conn.execute(_LOCK_WAIT)
                conn.execute(f"TRUNCATE {TABLE}")
            _fill(conn, size)
        return True
    except Exception as exc:
        if is_disk_trouble(exc):  # the pages a fill cut short added stay in its file: freed
            free(conn)
            return False
        if is_transient(exc) or type(exc).__name__ == "LockNotAvailable":
            return None  # the server away, or another writer filling it: at the next write
        log.debug("[labloom] no reserve of room in the store: %s", exc)
        return False  # not ours to make (no CREATE right): the states go without it


def _unlogged(conn: Conn) -> None:
    """A reserve made logged (by an earlier labloom, or by hand) made unlogged, emptied first
    (the rewrite copies its rows), by its owner; left as it is by a user with rights on rows
    only."""
    if conn.execute(f"SELECT relpersistence = 'p' AND pg_has_role(relowner, 'USAGE') "
                    f"FROM pg_class WHERE oid = '{TABLE}'::regclass").fetchone()[0]:
        with suppress(Exception), conn.transaction():
            conn.execute(_LOCK_WAIT)
            conn.execute(f"TRUNCATE {TABLE}")
            conn.execute(f"ALTER TABLE {TABLE} SET UNLOGGED")


def kept(conn: Conn) -> tuple[int, str | None, str | None]:
    """The bytes ``labloom_reserve`` holds now (``labloom db check``), why this user can have
    none, with the fix (None when it can: made at its first write), and what is wrong with it
    when it is logged, with the fix (None when it is not)."""
    row = conn.execute(  # one round trip: ``db check`` of a server far away
        "SELECT COALESCE(pg_relation_size(r), -1), current_user, current_schema(), "
        "has_schema_privilege(current_schema(), 'CREATE'), has_table_privilege(r, 'SELECT'), "
        "has_table_privilege(r, 'INSERT'), has_table_privilege(r, 'TRUNCATE'), "
        "(SELECT relpersistence = 'p' FROM pg_class WHERE oid = r), "
        "(SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = r) "
        f"FROM (SELECT to_regclass('{TABLE}') AS r) AS reserve").fetchone()
    size, user, schema, may_create, rights = int(row[0]), row[1], row[2], row[3], row[4:7]
    logged = None if not row[7] else (
        f"table {TABLE} is logged (made by an older labloom, or by hand): filled again it "
        "writes as much WAL, and a server stopped by a full disk does not empty it as it "
        "starts again (an unlogged one is emptied first), so it may stay down; have its owner "
        f"({row[8]}) run `TRUNCATE {TABLE}; ALTER TABLE {TABLE} SET UNLOGGED` (the next run "
        "fills it again)")
    if size >= 0:
        lacking = [right for right, has in zip(("SELECT", "INSERT", "TRUNCATE"), rights,
                                               strict=True) if not has]
        if not lacking:
            return size, None, logged
        why = f"user {user} lacks {', '.join(lacking)} on table {TABLE}"
    elif may_create:
        return 0, None, None
    else:
        why = f"user {user} may not create tables in schema {schema}"
    return max(size, 0), (
        f"{why}: have the database's owner run `CREATE UNLOGGED TABLE IF NOT EXISTS {TABLE} "
        f"({_COLUMN}); GRANT SELECT, INSERT, TRUNCATE ON {TABLE} TO {user}`"), logged


def _fill(conn: Conn, size: int) -> None:
    with conn.transaction():
        conn.execute(_LOCK_WAIT)
        conn.execute(f"LOCK TABLE {TABLE} IN EXCLUSIVE MODE")
        have = int(conn.execute(f"SELECT pg_relation_size('{TABLE}')").fetchone()[0])
        if have < size:
            pages = -(-(size - have) // _PAGE)
            conn.execute(f"INSERT INTO {TABLE} (filler) SELECT repeat('x', {_FILLER}) "
                         "FROM generate_series(1, ?)", (pages * _ROWS_A_PAGE,))


def free(conn: Conn) -> bool:
    """Empty ``labloom_reserve``, its room back to the disk; whether it was."""
    with suppress(Exception):
        with conn.transaction():
            conn.execute(_LOCK_WAIT)
            conn.execute(f"TRUNCATE {TABLE}")
        return True
    return False
