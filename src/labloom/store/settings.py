"""The store's timings and bounds, read from the environment: how long without a heartbeat a
run counts as crashed, how long the writer waits out an outage, how many events may wait in
memory. Apart from the writer, so that readers (``reader.py``, ``limits.py``, the scheduler)
ask them without importing it."""

from __future__ import annotations

import os


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def heartbeat_timeout() -> float:
    """Seconds without a heartbeat after which a run counts as crashed
    (``LABLOOM_HEARTBEAT_TIMEOUT``, default 60); runs beat 12 times per timeout, at most
    every 5 s."""
    return max(1.0, _env_number("LABLOOM_HEARTBEAT_TIMEOUT", 60.0))


def heartbeat_interval() -> float:
    return min(5.0, heartbeat_timeout() / 12)


def outage_patience() -> float:
    return _env_number("LABLOOM_STORE_OUTAGE", 600.0)


def backlog_cap() -> int:
    """Events that may wait in memory while the store cannot be written."""
    return max(1, int(_env_number("LABLOOM_STORE_BACKLOG", 100_000)))


def reserve_size(least: int = 0) -> int:
    """Bytes kept free on the store's disk for the runs' states (``room.py``;
    ``LABLOOM_STORE_RESERVE``, in MB, default 8, or ``least`` bytes when more; 0: none)."""
    default = max(8 * 2**20, least) / 2**20
    return max(0, int(_env_number("LABLOOM_STORE_RESERVE", default) * 2**20))
