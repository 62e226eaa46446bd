"""Connecting to a PostgreSQL store: the pool, a bounded wait, and one clear line on failure.

A server that cannot be reached costs at most ``LABLOOM_DB_CONNECT_TIMEOUT`` seconds (default 5)
per attempt, and the failure names its cause once: the server refused the credentials (SQLSTATE
28P01 / 28000: fix the URL, waiting will not help), or it could not be reached (down, wrong
host or port, a network cut: passing, so the writer waits it out). The pool's own retries are
not logged one by one (``psycopg.pool`` would print each); the store says once what happened.
Nor is psycopg's "error ignored terminating <psycopg.Pipeline [BAD]>: the connection is lost"
(or a ``Copy``'s, a transaction's rollback's), said when a statement batch, a COPY or a
transaction of labloom's broke with its connection (a server's crash): the error that broke it
is raised, and the store reports it.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from ..core.env_numbers import env_number
from ..core.errors import DatabaseURLError, StoreUnavailableError, StoreUnreachableError
from .psycopg_internals import pool_name_of

URL_ENV = "LABLOOM_DATABASE_URL"
POSTGRES_HINT = "pip install 'labloom[postgres]' (psycopg and psycopg-pool)"
POOL_NAME = "labloom"
APPLICATION = "labloom"  # its connections' application_name: how they are known (_quiet_exit)
OLDEST = 100000  # PostgreSQL 10 (``server_version_num``)
_AUTH_STATES = ("28P01", "28000")  # invalid password; invalid authorization (pg_hba, role)


class Settings(NamedTuple):
    """A PostgreSQL store's settings, read once as its ``Database`` is made: a bad value
    raises there, naming the fix, never in the writer's thread, which may make the first
    connection (before, a bad timeout fell back to 5 and a bad pool size raised a bare
    ValueError from wherever the pool was opened)."""

    wait: float  # seconds to wait for a connection
    pool: int  # connections the pool may hold

    @classmethod
    def read(cls, kind: str) -> Settings:
        """Those of a store of ``kind``; a SQLite store reads none (the defaults, unused)."""
        if kind != "postgresql":
            return cls(5.0, 8)
        inf = float("inf")
        wait = env_number("LABLOOM_DB_CONNECT_TIMEOUT", 5.0, "a number of seconds >= 0.5",
                          lambda wait: 0.5 <= wait < inf,
                          meaning="how long to wait for a PostgreSQL connection")
        pool = env_number("LABLOOM_DB_POOL", 8, "a whole number >= 1", lambda size: size >= 1,
                          meaning="connections the store's pool may hold", whole=True)
        return cls(wait, int(pool))


def without_secret(text: str, url: str) -> str:
    # Drivers do not echo passwords, but a message is shown to people: make sure.
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return text.replace(password, "***") if password else text


class _QuietPool(logging.Filter):
    """Drops the pool's per-attempt connection warnings for labloom's pool: the store says
    once what happened instead of the 14 lines a 90-second outage used to print. Some name
    the pool; others name a connection of it ("discarding closed connection: <psycopg.
    Connection [BAD] at 0x...>", one per connection a server restart broke)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.levelno != logging.WARNING or not args:
            return True
        first = args[0]
        ours = first == POOL_NAME or pool_name_of(first) == POOL_NAME
        return not ours


_quiet = _QuietPool()


class _QuietBrokenExit(logging.Filter):
    """Drops psycopg's warning that leaving a block failed too, after the error that ended it
    ("error ignored terminating <psycopg.Pipeline [BAD]>" or ``Copy``, "error ignored in
    rollback of <psycopg.Transaction ...>" or "on <psycopg.Connection ...>"), when the
    connection is labloom's and broken: the error raised in the block is the one labloom
    reports ("the store cannot be written"). Any other connection's, or one still working, is
    shown, and so is all else psycopg says."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if (record.levelno != logging.WARNING or not args
                or not str(record.msg).startswith("error ignored ")):
            return True
        import psycopg

        first = args[0]
        if isinstance(first, psycopg.Copy):
            first = first.connection
        elif not isinstance(first, (psycopg.Pipeline, psycopg.Transaction, psycopg.Connection)):
            return True
        pgconn: Any = getattr(first, "pgconn", None)  # public on each; absent: shown
        try:
            broken = pgconn.status == psycopg.pq.ConnStatus.BAD
            ours = pgconn.parameter_status(b"application_name") == APPLICATION.encode()
        except Exception:  # a record is shown rather than lost
            return True
        return not (broken and ours)


_quiet_exit = _QuietBrokenExit()


def _conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def open_pool(url: str, display: str, settings: Settings) -> Any:
    """A connection pool for ``url``, opened after one direct connection succeeded: a server
    that is away or refuses the credentials is reported at once, with its cause."""
    try:
        import psycopg
        from psycopg_pool import ConnectionPool
    except ImportError:
        raise DatabaseURLError(
            f"[labloom] the store {display} is PostgreSQL, which needs psycopg: {POSTGRES_HINT}"
        ) from None
    logging.getLogger("psycopg.pool").addFilter(_quiet)
    for name in ("psycopg", "psycopg.transaction"):  # the rollback's is said on the latter
        logging.getLogger(name).addFilter(_quiet_exit)
    wait = settings.wait
    try:
        first = psycopg.connect(_conninfo(url), connect_timeout=max(1, round(wait)),
                                application_name=APPLICATION)
    except psycopg.Error as exc:
        raise failure(exc, url, display) from None
    version = first.info.server_version  # told as it connected: no round trip
    first.close()
    if version < OLDEST:
        raise DatabaseURLError(
            f"[labloom] the store {display} is on PostgreSQL {version // 10000}."
            f"{version // 100 % 100}, and labloom needs PostgreSQL 10 or later (its tables' "
            "identity columns, and txid_status, which tells whether a write whose answer was "
            "lost landed); name a newer server in LABLOOM_DATABASE_URL")
    pool = ConnectionPool(
        _conninfo(url), min_size=1, max_size=settings.pool, open=False, name=POOL_NAME,
        kwargs={"autocommit": True, "connect_timeout": max(1, round(wait)),
                "application_name": APPLICATION},
        check=ConnectionPool.check_connection, timeout=30,
    )
    pool.open(wait=False)
    return pool


def diagnose(url: str, display: str, wait: float) -> StoreUnavailableError:
    """Why the pool gave no connection: one direct attempt tells the cause."""
    import psycopg

    try:
        psycopg.connect(_conninfo(url), connect_timeout=max(1, round(wait)),
                        application_name=APPLICATION).close()
    except psycopg.Error as exc:
        return failure(exc, url, display)
    return StoreUnreachableError(
        f"[labloom] cannot reach the store {display}: no connection within "
        f"{wait:g}s (LABLOOM_DB_CONNECT_TIMEOUT); the server may be overloaded"
    )


def failure(exc: BaseException, url: str, display: str) -> StoreUnavailableError:
    """The error a failed connection becomes: refused credentials, or an unreachable server."""
    text = without_secret(" ".join(str(exc).split()), url)
    state = getattr(exc, "sqlstate", None) or getattr(getattr(exc, "diag", None), "sqlstate",
                                                       None)
    if state in _AUTH_STATES or "authentication failed" in text or (
            "no pg_hba.conf entry" in text) or ("role" in text and "does not exist" in text):
        return StoreUnavailableError(
            f"[labloom] the store {display} refused the credentials ({text}): check the user "
            f"and password in {URL_ENV} (or --database-url); waiting will not help"
        )
    missing = re.search(r'database "([^"]+)" does not exist', text)
    if state == "3D000" or missing:
        name = missing.group(1) if missing else urlsplit(url).path.lstrip("/")
        return StoreUnavailableError(
            f"[labloom] the server of the store {display} has no database '{name}': have its "
            f"owner create it (createdb {name}, or CREATE DATABASE), or fix the name in "
            f"{URL_ENV} (or --database-url); waiting will not help"
        )
    return StoreUnreachableError(
        f"[labloom] cannot reach the store {display} ({text}): check that the server runs and "
        f"that {URL_ENV} (or --database-url) names it"
    )


def tables_refused(exc: BaseException, display: str) -> StoreUnavailableError | None:
    """The one-line error for a PostgreSQL user who may not create labloom's tables (None
    for any other failure)."""
    if getattr(exc, "sqlstate", None) != "42501":  # insufficient privilege
        return None
    return StoreUnavailableError(
        f"[labloom] the store {display} refused labloom's tables "
        f"({' '.join(str(exc).split())}): grant this user the right to create "
        "them (GRANT CREATE ON SCHEMA public TO ...), or have the database's owner run "
        "`labloom db upgrade` once"
    )


class Row(tuple):  # type: ignore[type-arg]
    """A PostgreSQL row read by position or by name, as ``sqlite3.Row`` is."""

    _names: tuple[str, ...] = ()

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names.index(key))
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def row_factory(cursor: Any) -> Any:
    names = tuple(col.name for col in cursor.description or ())
    kind = type("Row", (Row,), {"_names": names})
    return lambda values: kind(values)


@functools.lru_cache(maxsize=512)
def pg_sql(sql: str) -> str:
    # The store's SQL holds no '?' or '%' in literals; escape '%' all the same.
    return sql.replace("%", "%%").replace("?", "%s")
