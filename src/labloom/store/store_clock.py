"""The clock heartbeats are written and judged by, and schedules fire by: the database
server's, where there is one.

Hosts sharing a PostgreSQL store judge each other's runs, concurrency slots, places in line
and schedulers (``labloom serve``) by heartbeat age, and claim schedule slots once due. Each by
its own clock, one host running a couple of minutes ahead (a laptop without NTP, a VM resumed
from a snapshot) saw every other host's live runs as silent past ``LABLOOM_HEARTBEAT_TIMEOUT``:
it marked them Crashed (their task runs Cancelled) and swept their slots, so a limit of 1 let
two task runs in at once; it saw the other hosts' schedulers gone, settling their slots of live
runs as crashed; and it started every scheduled run early. By the server's clock, the hosts'
clocks no longer matter. Each process measures its offset to the server once, and again every
``REMEASURE`` seconds (clocks drift) or as soon as this host's clock is set (an NTP step: its
clock moved against its monotonic one), so a step never shows in the store's time. On SQLite
the store is on this machine and its clock is this one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

REMEASURE = 600.0
# How far this host's clock may move against its monotonic clock before it counts as set: the
# two run together but for a step (NTP, a hand, a VM resumed, a machine woken from sleep).
STEP = 0.25

SERVER_TIME = "extract(epoch from clock_timestamp())"  # PostgreSQL's clock, as epoch seconds


@dataclass(frozen=True)
class _Measured:
    offset: float
    wall: float  # this host's clock when measured
    mono: float  # its monotonic clock then

    def holds(self) -> bool:
        wall, mono = time.time(), time.monotonic()
        stepped = abs((wall - self.wall) - (mono - self.mono)) > STEP
        return not stepped and mono - self.mono <= REMEASURE


_offsets: dict[str, _Measured] = {}  # url -> the last measurement
_lock = threading.Lock()


def remember(conn: Any, before: float, after: float, server: float) -> float:
    """Keep the offset of a server time read between this host's ``before`` and ``after``
    (a statement that also reads ``SERVER_TIME`` measures it with no round trip of its own);
    returns it."""
    measured = _Measured((before + after) / 2 - server, time.time(), time.monotonic())
    with _lock:
        _offsets[conn.database.url] = measured
    return measured.offset


def measure(conn: Any) -> float:
    """This host's clock minus the database server's, in seconds (0 on SQLite), read now."""
    if conn.kind == "sqlite":
        return 0.0
    before = time.time()
    (server,) = conn.execute(f"SELECT {SERVER_TIME}").fetchone()
    return remember(conn, before, time.time(), float(server))


def offset(conn: Any) -> float:
    """This host's clock minus the store's as last measured through ``conn`` (0 on SQLite):
    ``time.time() - offset(conn)`` is the store's time; so is a clock given to judge by."""
    if conn.kind == "sqlite":
        return 0.0
    with _lock:
        known = _offsets.get(conn.database.url)
    if known is None or not known.holds():
        return measure(conn)
    return known.offset


def now(conn: Any) -> float:
    """The store's time now (seconds since the epoch): this clock, set right by its offset to
    the server's as last measured through ``conn``."""
    return time.time() - offset(conn)
