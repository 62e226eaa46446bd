"""The store's timings and bounds, read from the environment: how long without a heartbeat a
run counts as crashed, how long the writer waits out an outage and a process at its exit, how
many events may wait in memory, the room kept for states. Apart from the writer, so that
readers (``reader.py``, ``limits.py``, the scheduler) ask them without importing it.

They are read through ``core/env_numbers.env_number``: a bad value raises, naming the
variable, the value and the fix. ``StoreSettings.read`` reads them all once as a store's
``Database`` is made, in the caller's thread, before anything is recorded; the writer's
threads (the writer, its disk room, the limiter) use those checked values and read nothing,
as raising there would lose records (before, a bad value fell back to its default in
silence)."""

from __future__ import annotations

import os
from typing import NamedTuple

from ..core.env_numbers import env_number

_INF = float("inf")


def heartbeat_timeout() -> float:
    """Seconds without a heartbeat after which a run counts as crashed
    (``LABLOOM_HEARTBEAT_TIMEOUT``, default 60, at least 1); runs beat 12 times per timeout,
    at most every 5 s."""
    return max(1.0, env_number("LABLOOM_HEARTBEAT_TIMEOUT", 60.0, "a number of seconds above 0",
                               lambda s: 0 < s < _INF,
                               meaning="how long without a heartbeat a run counts as crashed"))


def heartbeat_interval() -> float:
    return _interval(heartbeat_timeout())


def _interval(timeout: float) -> float:
    """Seconds between a run's heartbeats for ``timeout``: 12 per timeout, at most every 5 s."""
    return min(5.0, timeout / 12)


def outage_patience() -> float:
    return env_number("LABLOOM_STORE_OUTAGE", 600.0, "a number of seconds >= 0",
                      lambda s: 0 <= s < _INF,
                      meaning="how long the writer retries what it cannot write")


def _exit_wait() -> float | None:  # None: unset, the default (which depends on the store)
    if not os.environ.get("LABLOOM_STORE_EXIT_WAIT", "").strip():
        return None
    return env_number("LABLOOM_STORE_EXIT_WAIT", 5.0, "a number of seconds >= 0",
                      lambda s: 0 <= s < _INF,
                      meaning="how long a process waits at its exit for a store that is away")


def backlog_cap() -> int:
    """Events that may wait in memory while the store cannot be written."""
    return int(env_number("LABLOOM_STORE_BACKLOG", 100_000, "a whole number >= 1",
                          lambda n: n >= 1, whole=True,
                          meaning="events that may wait in memory while the store cannot be "
                                  "written"))


def reserve_size(least: int = 0) -> int:
    """Bytes kept free on the store's disk for the runs' states (``room.py``;
    ``LABLOOM_STORE_RESERVE``, in MB, default 8, or ``least`` bytes when more; 0: none)."""
    return _reserve(_reserve_mb(), least)


def _reserve_mb() -> float | None:  # None: unset, the default (which depends on ``least``)
    if not os.environ.get("LABLOOM_STORE_RESERVE", "").strip():
        return None
    return env_number("LABLOOM_STORE_RESERVE", 8.0, "a number of MB >= 0 (0: none)",
                      lambda mb: 0 <= mb < _INF,
                      meaning="room kept free on the store's disk for the runs' states")


def _reserve(mb: float | None, least: int) -> int:
    return int((max(8 * 2**20, least) / 2**20 if mb is None else mb) * 2**20)


class StoreSettings(NamedTuple):
    """A store's settings, checked once where it opens (``Database``), for its threads."""

    heartbeat_timeout: float
    outage: float  # seconds the writer retries what it cannot write (LABLOOM_STORE_OUTAGE)
    backlog: int  # events that may wait in memory (LABLOOM_STORE_BACKLOG)
    reserve_mb: float | None  # LABLOOM_STORE_RESERVE; None: unset
    exit_wait: float | None = None  # LABLOOM_STORE_EXIT_WAIT; None: unset

    @classmethod
    def read(cls) -> StoreSettings:
        return cls(heartbeat_timeout(), outage_patience(), backlog_cap(), _reserve_mb(),
                   _exit_wait())

    def exit_seconds(self, kind: str) -> float:
        """Seconds a process waits at its exit for a store of ``kind`` that is away: by
        default a database server gets longer (one restarting), a SQLite file less (one
        locked)."""
        if self.exit_wait is not None:
            return self.exit_wait
        return 5.0 if kind == "sqlite" else 15.0

    def heartbeat_interval(self) -> float:
        return _interval(self.heartbeat_timeout)

    def reserve_size(self, least: int = 0) -> int:
        return _reserve(self.reserve_mb, least)
