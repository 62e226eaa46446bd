"""The store's two backends behind one small seam: SQLite (the default, the standard library's
``sqlite3``) and PostgreSQL (``psycopg`` 3 with ``psycopg_pool``), chosen by a database URL.

Where the URL comes from, strongest first: ``labloom --database-url URL`` (the CLI sets the
environment variable, so the runs ``labloom serve`` starts inherit it), ``LABLOOM_DATABASE_URL``,
``c.Labloom.database_url`` in a kernel; with none, ``LABLOOM_HOME/labloom.db``.

Why psycopg with a seam, not SQLAlchemy Core: the store is a few dozen hand-written statements
that both databases accept as they are once placeholders are written ``%s`` for psycopg and the
migrations' column types are mapped (``REAL`` is 4 bytes in PostgreSQL; SQLite's implicit
``rowid`` becomes a column). That mapping is ``Conn`` below and ``ddl.translate_ddl``,
tested on both backends by the whole store suite; ``Conn.insert_rows`` and ``Conn.stage`` add
PostgreSQL's ``COPY`` where the writer's batches need it. SQLAlchemy would put a large import on
every kernel that records a run and every ``labloom`` command, a second way of writing queries
beside the SQL the team already reads, and a mandatory dependency for SQLite users, who need
nothing beyond the standard library. PostgreSQL users install ``labloom[postgres]``.

Locking differs and is said once here: a write transaction on SQLite is ``BEGIN IMMEDIATE``
(one writer per file); on PostgreSQL, row locks (``Conn.for_update``) and advisory locks
serialize only the rows that matter, so two hosts claim slots and limits without a global lock.

A URL's password is never printed or logged: everything shows ``Database.display``.
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..core.errors import DatabaseURLError, StoreUnreachableError
from . import postgres
from .multirow import many_rows
from .postgres import URL_ENV as URL_ENV
from .postgres import pg_sql as pg_sql
from .postgres import row_factory
from .postgres import tables_refused as tables_refused
from .settings import StoreSettings
from .sqlite_urls import sqlite_path
from .storable import is_storable, storable

_PG_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_PASSING_SQLITE = ("locked", "busy", "database or disk is full", "disk I/O error")


def auto_migrate() -> bool:
    """``LABLOOM_AUTO_MIGRATE=0``: never upgrade the schema on first use; a store older than
    this labloom is then refused until ``labloom db upgrade`` runs (a team's DBA step)."""
    return os.environ.get("LABLOOM_AUTO_MIGRATE", "1").strip().lower() not in (
        "0", "false", "no", "off"
    )


def database_url() -> str:
    """The URL in force: ``LABLOOM_DATABASE_URL``, else the SQLite file under LABLOOM_HOME."""
    url = os.environ.get(URL_ENV, "").strip()
    if url:
        return url
    from .home import db_path

    return f"sqlite:///{db_path()}"


def redact(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: safe to print and log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable database URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def kind_of(url: str) -> str:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        return "sqlite"
    if scheme in _PG_SCHEMES:
        return "postgresql"
    raise DatabaseURLError(
        f"[labloom] database URL {redact(url)!r} is not one labloom knows: use "
        "postgresql://user@host/dbname, or sqlite:///path/to/labloom.db (the default)")


def file_identity(path: Path, stamp: bool = False) -> Any:
    """Which file is at ``path`` now (a store file replaced under a writer is another one):
    (device, inode), and with ``stamp`` its size and modification time too; None if none."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_dev, found.st_ino, *((found.st_size, found.st_mtime_ns) if stamp else ()))


def tables_gone(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc)


def short_error(exc: BaseException, most: int = 300) -> str:
    """``exc`` in one line of at most about ``most`` characters: its start and its end, which
    ours give to what to do ("...: check that the server runs"), cut between words."""
    text = " ".join(str(exc).split()).removeprefix("[labloom] ")
    if len(text) > most:
        head = text[:most * 2 // 3].rsplit(" ", 1)[0]
        tail = text[-(most // 3):].split(" ", 1)[-1]
        text = f"{head} ... {tail}"
    return text or type(exc).__name__


def is_transient(exc: BaseException) -> bool:
    """A failure that passes: a busy SQLite file, a full disk (``SQLITE_FULL``, "database or
    disk is full"; space comes back when someone deletes a file), a PostgreSQL server
    restarting or away."""
    if isinstance(exc, sqlite3.OperationalError):
        return any(word in str(exc) for word in _PASSING_SQLITE)
    if isinstance(exc, StoreUnreachableError):
        return True
    module = type(exc).__module__
    if module.startswith(("psycopg", "psycopg_pool")):
        name = type(exc).__name__
        return name in ("OperationalError", "PoolTimeout", "InterfaceError", "AdminShutdown",
                        "CannotConnectNow", "ConnectionTimeout", "SerializationFailure",
                        "DeadlockDetected", "DiskFull")
    return False


def is_disk_trouble(exc: BaseException) -> bool:
    """A write refused for want of room: a full disk, a file size limit (SQLite says "disk
    I/O error" for EFBIG), PostgreSQL's DiskFull."""
    if isinstance(exc, sqlite3.OperationalError):
        return "disk is full" in str(exc) or "disk I/O error" in str(exc)
    return type(exc).__name__ == "DiskFull"


def is_integrity_error(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.IntegrityError) or type(exc).__name__ in (
        "IntegrityError", "UniqueViolation"
    )


def settle_schema(conn: Conn, make: bool = True) -> None:
    """Bring ``conn``'s store to this labloom's schema (``make``) or check it is (closed on
    failure); a user who may not create tables gets the one line naming the fix."""
    from .schema import check_schema, ensure_schema

    try:
        (ensure_schema if make else check_schema)(conn, where=conn.database.display)
    except BaseException as exc:
        conn.close()
        refused = tables_refused(exc, conn.database.display)
        if refused is not None:
            raise refused from None
        raise


class Conn:
    """One connection of either backend, with the same methods as ``sqlite3.Connection``'s
    that the store uses, plus ``transaction()``. Autocommit outside transactions."""

    def __init__(self, database: Database, raw: Any, named_rows: bool) -> None:
        self.database = database
        self.kind = database.kind
        self.raw = raw
        self._named = named_rows
        if named_rows and self.kind == "sqlite":
            raw.row_factory = sqlite3.Row
        self.for_update = " FOR UPDATE" if self.kind == "postgresql" else ""
        # The SQLite file this connection opened: a file deleted or replaced under it (a
        # restored backup, a clean-up script) is written no more, though writes still succeed.
        self.file_stamp = stamp = database.file_stamp()  # also its size and time
        self.file_id = None if stamp is None else (stamp[0], stamp[1])
        self.closed = False

    @property
    def broken(self) -> bool:
        """PostgreSQL: the server dropped this connection (a restart); it never works again."""
        return self.kind == "postgresql" and bool(self.raw.closed or self.raw.broken)

    def file_changed(self) -> bool:
        """SQLite: whether the file at the path is not as opened (``Database.file_stamp``)."""
        return self.kind == "sqlite" and self.database.file_stamp() != self.file_stamp

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        # A tag, a name filtered by, a run id from argv may hold what the store cannot take
        # (a lone surrogate; NUL on PostgreSQL): escaped as the writer escaped what it wrote,
        # so the statement matches that text instead of raising in the flow or the command.
        if any(type(p) is str and not is_storable(p) for p in params):
            params = [storable(p) if type(p) is str else p for p in params]
        if self.kind == "sqlite":
            return self.raw.execute(sql, params)
        cursor = self.raw.cursor(row_factory=row_factory) if self._named else self.raw.cursor()
        return cursor.execute(pg_sql(sql), params or None)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        if self.kind == "sqlite":
            return self.raw.executemany(sql, rows)
        if not rows:
            return None
        cursor = self.raw.cursor()
        cursor.executemany(pg_sql(sql), rows)
        return cursor

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
        on_conflict: str = "",
    ) -> None:
        """Insert many rows: a few multi-row statements on SQLite (``multirow.py``); on
        PostgreSQL a ``COPY`` (several times faster for the writer's batches of thousands of
        rows), through a temporary staging table when ``on_conflict`` (e.g. ``ON CONFLICT
        (id) DO NOTHING``) applies. Inside a transaction."""
        if not rows:
            return
        names = ", ".join(columns)
        if self.kind == "sqlite":  # few statements, each taking the GIL back once
            many_rows(self.raw, f"INSERT INTO {table} ({names})", len(columns), rows,
                      on_conflict)
            return
        if len(rows) < 50:
            marks = ",".join("?" * len(columns))
            self.executemany(
                f"INSERT INTO {table} ({names}) VALUES ({marks}) {on_conflict}".rstrip(), rows
            )
            return
        if not on_conflict:
            self._copy(table, names, rows)
            return
        stage = self.stage(table, columns, rows)
        self.raw.execute(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} {on_conflict}"
        )

    def stage(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
        """PostgreSQL, inside a transaction: ``rows`` copied into a temporary table shaped
        like ``table``'s ``columns`` and emptied at commit; returns its name, for an
        ``INSERT ... SELECT`` or ``UPDATE ... FROM`` of thousands of rows in one statement."""
        names = ", ".join(columns)
        # Named by shape: a batch may stage new task runs and updates of others, both eight
        # columns wide but not the same eight.
        stage = f"labloom_stage_{table}_{zlib.crc32(names.encode()):08x}"
        self.raw.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
            f"SELECT {names} FROM {table} WITH NO DATA"
        )
        self._copy(stage, names, rows)
        return stage

    def _copy(self, table: str, names: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.raw.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    @contextmanager
    def transaction(self) -> Iterator[Conn]:
        """One write transaction; on SQLite taken at once (``BEGIN IMMEDIATE``)."""
        if self.kind == "postgresql":
            with self.raw.transaction():
                yield self
            return
        try:
            # In it: a Ctrl-C as BEGIN returned locked the file for good (interrupt_dask_slots)
            self.raw.execute("BEGIN IMMEDIATE")
            yield self
            self.raw.execute("COMMIT")
        except BaseException:
            # A full disk can fail the COMMIT itself, and SQLite may have rolled back already:
            # the error to raise is the first one, never "no transaction is active".
            if self.raw.in_transaction:
                with suppress(sqlite3.Error):
                    self.raw.execute("ROLLBACK")
            raise

    def lock(self, *keys: str) -> None:
        """Inside a transaction: serialize with every other transaction locking a same key
        (PostgreSQL advisory locks, sorted so two lockers never wait on each other in a
        cycle; SQLite's ``BEGIN IMMEDIATE`` already holds the whole file)."""
        if self.kind == "postgresql":
            for key in sorted(set(keys)):
                self.raw.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))

    def close(self) -> None:  # once: a pool given a connection back twice lends it twice
        if not self.closed:
            self.closed = True
            self.database._release(self)

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Database:
    """One store: a URL, its backend, its connections (pooled on PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.kind = kind_of(url)
        self.display = redact(url)
        self.path: Path | None = None
        if self.kind == "sqlite":
            self.path = sqlite_path(url)  # sqlite:///relative.db or sqlite:////absolute.db
        # Raise here, in the caller's thread, not in the writer's, which uses these.
        self.postgres, self.settings = postgres.Settings.read(self.kind), StoreSettings.read()
        self._pool: Any = None
        self._lock = threading.Lock()
        self._ready = False
        self._ready_id: tuple[int, int] | None = None

    def connect(self, named_rows: bool = False, migrate: bool = True,
                timeout: float = 30.0) -> Conn:
        """A connection, the schema brought up to date first (once per process). ``timeout``:
        how long SQLite waits for another process's write lock."""
        conn = Conn(self, self._raw(timeout), named_rows)
        if migrate and (not self._ready or conn.file_id != self._ready_id):
            settle_schema(conn, make=auto_migrate())
            self._ready, self._ready_id = True, conn.file_id
        return conn

    def forget_schema(self) -> None:
        """Check the schema again at the next ``connect``: the file may be another one."""
        self._ready = False

    def file_id(self) -> tuple[int, int] | None:
        """The SQLite file's identity (device, inode); None when missing, or on PostgreSQL."""
        return None if self.path is None else file_identity(self.path)

    def file_stamp(self) -> tuple[int, ...] | None:
        """``file_id``, size and modification time: a backup copied over the file (``cp``:
        the same inode) changes these, and a connection open on it would answer from its cached
        pages of the file as it was. In WAL mode SQLite writes the file only at a checkpoint."""
        return None if self.path is None else file_identity(self.path, stamp=True)

    def _raw(self, timeout: float) -> Any:
        if self.kind == "sqlite":
            from .home import connect

            assert self.path is not None
            return connect(self.path, timeout=timeout)
        with self._lock:
            if self._pool is None:
                self._pool = postgres.open_pool(self.url, self.display, self.postgres)
        try:
            return self._pool.getconn(timeout=self.postgres.wait)
        except Exception as exc:
            if not is_transient(exc):
                raise
            raise postgres.diagnose(self.url, self.display, self.postgres.wait) from None

    def _release(self, conn: Conn) -> None:
        if self.kind == "sqlite":
            conn.raw.close()
        elif self._pool is not None:
            self._pool.putconn(conn.raw)  # a broken connection is discarded by the pool
        else:  # its pool was closed meanwhile (``forget``)
            conn.raw.close()

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


_databases: dict[str, Database] = {}
_databases_lock = threading.Lock()


def get_database(url: str | None = None) -> Database:
    """The ``Database`` for ``url`` (default: the one in force), one per URL and process."""
    url = url or database_url()
    with _databases_lock:
        database = _databases.get(url)
        if database is None:
            database = _databases[url] = Database(url)
        return database


def known_urls() -> list[str]:
    """The stores this process holds a ``Database`` for (its pool, a writer): each is what
    ``forget`` lets go of; a test's teardown lets go of those its test opened."""
    with _databases_lock:
        return list(_databases)


# What else keeps connections of its own per URL (``concurrency_slots.py``): told by ``forget``.
_forgetters: list[Callable[[str], None]] = []


def on_forget(close: Callable[[str], None]) -> None:
    """Have ``forget(url)`` call ``close(url)``: a module holding its own connections to a
    store (``concurrency_slots.py``) registers here, so the store need not know it."""
    _forgetters.append(close)


def forget(url: str) -> None:
    """Close and drop everything this process holds for ``url`` (its pool, the limiter's
    connection, its writer: see ``writer.Writer.retire``): for a store that goes away, as a
    test's database does (``labloom.store.stop_writing``)."""
    with _databases_lock:
        database = _databases.pop(url, None)
    for close in list(_forgetters):
        close(url)
    if database is not None:
        database.close()


@atexit.register
def _close_pools() -> None:
    for database in list(_databases.values()):
        database.close()
