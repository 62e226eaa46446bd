"""Concurrency limits in the store: the limits themselves and who holds a slot right now.

Local and thread runs in every process sharing ``LABLOOM_HOME`` count their slots in
``concurrency_slots``. A holder row names its host and process; rows of processes that died on
this host are removed whenever a tag looks full, so a crash never leaks a slot for good.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from . import home as _home
from .schema import ensure_schema

_HOST = socket.gethostname()
_lock = threading.RLock()
_connections: dict[Path, sqlite3.Connection] = {}


def connection() -> sqlite3.Connection:
    """This process's connection to the current store (LABLOOM_HOME may change, as in tests)."""
    path = _home.db_path()
    conn = _connections.get(path)
    if conn is None:
        conn = _home.connect(path)
        ensure_schema(conn, where=str(path))
        _connections[path] = conn
    return conn


def set_limit(tag: str, n: int) -> None:
    with _lock:
        connection().execute(
            "INSERT INTO concurrency_limits (tag, slots, updated) VALUES (?, ?, ?) "
            "ON CONFLICT(tag) DO UPDATE SET slots = excluded.slots, updated = excluded.updated",
            (tag, n, time.time()),
        )


def delete_limit(tag: str) -> bool:
    with _lock:
        cursor = connection().execute("DELETE FROM concurrency_limits WHERE tag = ?", (tag,))
        return cursor.rowcount > 0


def all_limits() -> dict[str, int]:
    with _lock:
        rows = connection().execute("SELECT tag, slots FROM concurrency_limits ORDER BY tag")
        return {tag: slots for tag, slots in rows}


def limits_for(tags: Iterable[str]) -> dict[str, int]:
    tags = list(tags)
    if not tags:
        return {}
    with _lock:
        rows = connection().execute(
            f"SELECT tag, slots FROM concurrency_limits WHERE tag IN ({','.join('?' * len(tags))})",
            tags,
        )
        return {tag: slots for tag, slots in rows}


def holders(tag: str) -> int:
    with _lock:
        row = connection().execute(
            "SELECT COUNT(*) FROM concurrency_slots WHERE tag = ?", (tag,)
        ).fetchone()
        return int(row[0])


def try_take(limits: dict[str, int], holder: str) -> bool:
    """Take a slot of every tag in ``limits`` for ``holder``, all or none."""
    with _lock:
        conn = connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            full = _full_tags(conn, limits)
            if full:
                _remove_dead_holders(conn, full)
                full = _full_tags(conn, limits)
            if not full:
                now = time.time()
                conn.executemany(
                    "INSERT OR REPLACE INTO concurrency_slots VALUES (?, ?, ?, ?, ?)",
                    [(tag, holder, _HOST, os.getpid(), now) for tag in limits],
                )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return not full


def give_back(holder: str) -> None:
    with _lock:
        connection().execute("DELETE FROM concurrency_slots WHERE holder = ?", (holder,))


def _full_tags(conn: sqlite3.Connection, limits: dict[str, int]) -> list[str]:
    full = []
    for tag, n in limits.items():
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM concurrency_slots WHERE tag = ?", (tag,)
        ).fetchone()
        if count >= n:
            full.append(tag)
    return full


def _remove_dead_holders(conn: sqlite3.Connection, tags: list[str]) -> None:
    rows = conn.execute(
        f"SELECT DISTINCT pid FROM concurrency_slots WHERE host = ? AND tag IN "
        f"({','.join('?' * len(tags))})",
        [_HOST, *tags],
    ).fetchall()
    dead = [pid for (pid,) in rows if pid != os.getpid() and not _home.pid_alive(pid)]
    if dead:
        conn.executemany(
            "DELETE FROM concurrency_slots WHERE host = ? AND pid = ?",
            [(_HOST, pid) for pid in dead],
        )
