"""Concurrency limits in the store: the limits, who holds a slot now, and who waits, in order.

Every process on the store, on any host and with any executor, counts its slots in
``concurrency_slots``; a task run that finds its tags full queues in ``concurrency_waiters``,
whose ``seq`` is its arrival order across processes and hosts. A slot goes to a waiter only
when fewer waiters of the same tag arrived before it than there are free slots, so one busy
process cannot take every slot that frees up while another's task runs wait.

Rows carry their host, pid and a heartbeat (refreshed by the owning ``StoreLimiter``). When a
tag looks full, rows whose process died on this host, or whose heartbeat is older than
``LABLOOM_HEARTBEAT_TIMEOUT`` (any host), are removed: a crash never leaks a slot for good.
Slots are swept at every refusal (a tag has few); the line at most every ``SWEEP_EVERY``
seconds per tag and process, since sweeping it reads all of it.
Each take is one transaction: ``BEGIN IMMEDIATE`` on SQLite, per-tag advisory locks on
PostgreSQL (``Conn.lock``).

A take reads no more of the line than the tag's slots: its own place by holder (an index), and
how many stand ahead of it counted up to the free slots only. So a long line (a map of 10,000
task runs behind 4 slots) costs each take the same as a short one.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable

from . import home as _home
from . import store_clock
from .db import Conn, get_database, on_forget
from .unanswered_commits import brief, has_row, lock_briefly, written_once

_lock = threading.RLock()
_connections: dict[str, Conn] = {}

SWEEP_EVERY = 1.0  # seconds between two sweeps of a tag's line for dead waiters, per process
_swept: dict[tuple[str, str], float] = {}  # (store url, tag): when this process last swept


def _host() -> str:
    return _home.host_name()


_urls: dict[tuple[str | None, ...], str] = {}  # the environment naming a store: its URL


def connection() -> Conn:
    """This process's connection to the current store (LABLOOM_HOME may change, as in tests)."""
    # The URL is looked up by the variables that name it, read at every call: building it
    # (the home folder's path) was a tenth of a limited task run's time, asked 5 times each.
    url = _url()
    conn = _connections.get(url)
    if conn is not None and conn.broken:  # the server restarted: this one never works again
        del _connections[url]
        conn.close()
        conn = None
    if conn is None:
        conn = _connections[url] = get_database(url).connect()
    return conn


def _url() -> str:
    env = os.environ
    key = (env.get("LABLOOM_DATABASE_URL"), env.get("LABLOOM_HOME"), env.get("HOME"))
    url = _urls.get(key)
    if url is None:
        url = _urls[key] = get_database().url
    return url


def close(url: str) -> None:
    """Close this process's limits connection to ``url`` (``db.forget`` calls it)."""
    conn = _connections.pop(url, None)
    if conn is not None:
        conn.close()


on_forget(close)


def set_limit(tag: str, n: int) -> None:
    # Its answer lost (a server crash, a network cut), asked whether it landed: not an error.
    with _lock:
        written_once(connection(), lambda conn: conn.execute(
            "INSERT INTO concurrency_limits (tag, slots, updated) VALUES (?, ?, ?) "
            "ON CONFLICT(tag) DO UPDATE SET slots = excluded.slots, updated = excluded.updated",
            (tag, n, time.time())),
            lambda again, xid: has_row(again, "concurrency_limits", "tag", tag, xid))


def delete_limit(tag: str) -> bool:
    with _lock:  # the same: not "no limit for tag" when its delete landed
        return written_once(connection(), lambda conn: bool(conn.execute(
            "DELETE FROM concurrency_limits WHERE tag = ?", (tag,)).rowcount > 0),
            lambda again, _: not again.execute(
                "SELECT 1 FROM concurrency_limits WHERE tag = ?", (tag,)).fetchone())


def all_limits() -> dict[str, int]:
    with _lock:
        rows = connection().execute("SELECT tag, slots FROM concurrency_limits ORDER BY tag")
        return {tag: slots for tag, slots in rows}


def limits_for(tags: Iterable[str]) -> dict[str, int]:
    tags = list(tags)
    if not tags:
        return {}
    sql = f"SELECT tag, slots FROM concurrency_limits WHERE tag IN ({','.join('?' * len(tags))})"
    with _lock:
        try:
            rows = connection().execute(sql, tags).fetchall()
        except Exception:
            if not connection_broken():
                raise
            rows = connection().execute(sql, tags).fetchall()  # once more, on a new connection
        return {tag: slots for tag, slots in rows}


def connection_broken() -> bool:
    """Whether this process's limits connection was dropped by the server (it is replaced at
    the next ``connection()``): the first statement after a restart fails on it."""
    return any(conn.broken for conn in _connections.values())


def holders(tag: str) -> int:
    with _lock:
        row = connection().execute(
            "SELECT COUNT(*) FROM concurrency_slots WHERE tag = ?", (tag,)
        ).fetchone()
        return int(row[0])


def waiting(tag: str) -> int:
    with _lock:
        row = connection().execute(
            "SELECT COUNT(*) FROM concurrency_waiters WHERE tag = ?", (tag,)
        ).fetchone()
        return int(row[0])


def places(tags: Iterable[str]) -> dict[str, int]:
    """Each holder's place in the line of any of ``tags`` (its earliest ``seq``)."""
    names = sorted(set(tags))
    if not names:
        return {}
    marks = ",".join("?" * len(names))
    with _lock:
        return dict(connection().execute(
            f"SELECT holder, MIN(seq) FROM concurrency_waiters WHERE tag IN ({marks}) "
            "GROUP BY holder", names).fetchall())


def line_heads(depths: dict[str, int]) -> dict[str, int]:
    """The first ``depths[tag]`` places of each tag's line, as each holder's earliest ``seq``
    among them. Only those can be granted now (``try_take`` grants a waiter only when fewer
    stand ahead of it than there are free slots), so a pass over a long line reads these."""
    place: dict[str, int] = {}
    with _lock:
        conn = connection()
        for tag, depth in sorted(depths.items()):
            for holder, seq in conn.execute(
                "SELECT holder, seq FROM concurrency_waiters WHERE tag = ? ORDER BY seq LIMIT ?",
                (tag, depth),
            ):
                place[holder] = min(seq, place.get(holder, seq))
    return place


def try_take(limits: dict[str, int], holder: str, queue: bool = False) -> bool:
    """Take a slot of every tag in ``limits`` for ``holder``, all or none, unless waiters that
    arrived earlier stand in line for them. With ``queue``, a holder that cannot take them now
    joins the line (once: its place is kept across tries)."""
    with _lock:
        conn = connection()
        with conn.transaction():
            lock_briefly(conn, *(f"labloom-limit:{tag}" for tag in limits))
            full = _full_tags(conn, limits, holder)
            if full and _remove_dead(conn, full):
                full = _full_tags(conn, limits, holder)
            if full and _holds(conn, holder, full):
                full = []  # taken already: a take whose COMMIT went unanswered but landed
            now = store_clock.now(conn)
            if not full:
                conn.executemany(
                    "INSERT INTO concurrency_slots (tag, holder, host, pid, acquired, beat) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tag, holder) DO NOTHING",
                    [(tag, holder, _host(), os.getpid(), now, now) for tag in limits],
                )
                conn.execute("DELETE FROM concurrency_waiters WHERE holder = ?", (holder,))
            elif queue:
                queued = {tag for (tag,) in conn.execute(
                    "SELECT tag FROM concurrency_waiters WHERE holder = ?", (holder,)
                )}
                # One statement a tag (a task has few), not executemany: after psycopg's
                # pipeline the server never ends the transaction idle (lock_briefly's timeout).
                for tag in sorted(set(limits) - queued):
                    conn.execute("INSERT INTO concurrency_waiters (tag, holder, host, pid, beat)"
                                 " VALUES (?, ?, ?, ?, ?)", (tag, holder, _host(), os.getpid(), now))
        return not full


def give_back(holder: str) -> None:
    """Free ``holder``'s slots, or its place in the line if it was still waiting."""
    with _lock:
        conn = connection()
        with conn.transaction():  # one commit, not two
            brief(conn)  # cut unnoticed, its slots counted, and their rows locked, for hours
            conn.execute("DELETE FROM concurrency_slots WHERE holder = ?", (holder,))
            conn.execute("DELETE FROM concurrency_waiters WHERE holder = ?", (holder,))


def beat_every() -> float:
    """Seconds between beats of this process's slots: its store's setting, checked as the
    store opened (the limiter reads it as its thread starts; the thread reads none). No
    connection is asked for: the limiter starts its thread as it gives back a slot the store
    could not take, the server away."""
    return get_database(_url()).settings.heartbeat_interval()


def beat(holders: Iterable[str]) -> None:
    """Refresh the heartbeat of this process's slots and places in line."""
    names = list(holders)
    if not names:
        return
    with _lock:
        conn = connection()
        now = store_clock.now(conn)
        for table in ("concurrency_slots", "concurrency_waiters"):
            conn.executemany(
                f"UPDATE {table} SET beat = ? WHERE holder = ?", [(now, h) for h in names]
            )


def _holds(conn: Conn, holder: str, tags: list[str]) -> bool:
    """Whether ``holder`` holds a slot of each of ``tags``: a take on PostgreSQL whose COMMIT
    went unanswered (the server crashed, the network went) is asked again, and its slots, if
    it landed, counted against it: a tag of one slot was full of itself, and its holder, put in
    line behind the task runs that waited for that slot, waited for ever with them."""
    marks = ",".join("?" * len(tags))
    (held,) = conn.execute(
        f"SELECT COUNT(*) FROM concurrency_slots WHERE holder = ? AND tag IN ({marks})",
        [holder, *tags]).fetchone()
    return bool(held == len(tags))


def _full_tags(conn: Conn, limits: dict[str, int], holder: str) -> list[str]:
    full = []
    for tag, n in limits.items():
        (held,) = conn.execute(
            "SELECT COUNT(*) FROM concurrency_slots WHERE tag = ?", (tag,)
        ).fetchone()
        free, ahead = n - held, 0
        if free > 0:
            # Those ahead are counted up to ``free`` only: more than that refuses all the same,
            # and counting the whole line made each take cost as much as the line is long.
            mine = conn.execute(
                "SELECT seq FROM concurrency_waiters WHERE holder = ? AND tag = ?", (holder, tag)
            ).fetchone()
            if mine is None:  # not in line yet: everyone in line is ahead
                (ahead,) = conn.execute(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM concurrency_waiters WHERE tag = ? "
                    "LIMIT ?) AS ahead", (tag, free),
                ).fetchone()
            else:
                (ahead,) = conn.execute(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM concurrency_waiters WHERE tag = ? "
                    "AND seq < ? LIMIT ?) AS ahead", (tag, mine[0], free),
                ).fetchone()
        if ahead >= free:
            full.append(tag)
    return full


def _remove_dead(conn: Conn, tags: list[str]) -> bool:
    """Remove dead holders' slots of ``tags`` (every time: a tag has few) and their dead waiters
    (at most every ``SWEEP_EVERY`` s per tag: that reads the whole line). True if any went."""
    removed = _sweep(conn, "concurrency_slots", "COALESCE(beat, acquired)", tags)
    now, url = time.monotonic(), conn.database.url
    due = [tag for tag in tags if now - _swept.get((url, tag), -math.inf) >= SWEEP_EVERY]
    if due:
        _swept.update(((url, tag), now) for tag in due)
        removed = _sweep(conn, "concurrency_waiters", "beat", due) or removed
    return removed


def _sweep(conn: Conn, table: str, since: str, tags: list[str]) -> bool:
    marks = ",".join("?" * len(tags))
    oldest = store_clock.now(conn) - conn.database.settings.heartbeat_timeout
    rows = conn.execute(
        f"SELECT DISTINCT host, pid FROM {table} WHERE tag IN ({marks})", tags
    ).fetchall()
    here, me = _host(), os.getpid()
    dead = [(host, pid) for host, pid in rows
            if host == here and pid != me and not _home.pid_alive(int(pid))]
    if dead:
        conn.executemany(f"DELETE FROM {table} WHERE host = ? AND pid = ?", dead)
    cursor = conn.execute(f"DELETE FROM {table} WHERE tag IN ({marks}) AND {since} < ?",
                          [*tags, oldest])
    return bool(dead) or cursor.rowcount > 0
