"""The clock heartbeats are written and judged by: the database server's, where there is one.

Hosts sharing a PostgreSQL store judge each other's runs, concurrency slots, places in line
and schedulers (``labloom serve``) by heartbeat age. Each stamped by its own clock, one host running a couple of minutes ahead (a
laptop without NTP, a VM resumed from a snapshot) saw every other host's live runs as silent
past ``LABLOOM_HEARTBEAT_TIMEOUT``: it marked them Crashed (their task runs Cancelled) and
swept their slots, so a limit of 1 let two task runs in at once; and it saw the other hosts'
schedulers gone, settling their slots of live runs as crashed. Stamped and judged by the
server's clock, the hosts' clocks no longer matter. Each process measures its offset to the
server once, and again every ``REMEASURE`` seconds (clocks drift); on SQLite the store is on
this machine and its clock is this one.
"""

from __future__ import annotations

import threading
import time
from typing import Any

REMEASURE = 600.0

_offsets: dict[str, tuple[float, float]] = {}  # url -> (offset, when measured: monotonic)
_lock = threading.Lock()


def measure(conn: Any) -> float:
    """This host's clock minus the database server's, in seconds (0 on SQLite)."""
    if conn.kind == "sqlite":
        return 0.0
    before = time.time()
    (server,) = conn.execute("SELECT extract(epoch from clock_timestamp())").fetchone()
    after = time.time()
    return (before + after) / 2 - float(server)


def offset(conn: Any) -> float:
    """This host's clock minus the store's as last measured through ``conn`` (0 on SQLite):
    ``time.time() - offset(conn)`` is the store's time; so is a clock given to judge by."""
    if conn.kind == "sqlite":
        return 0.0
    url = conn.database.url
    with _lock:
        known = _offsets.get(url)
    if known is None or time.monotonic() - known[1] > REMEASURE:
        known = (measure(conn), time.monotonic())
        with _lock:
            _offsets[url] = known
    return known[0]


def now(conn: Any) -> float:
    """The store's time now (seconds since the epoch): this clock, set right by its offset to
    the server's as last measured through ``conn``."""
    return time.time() - offset(conn)
