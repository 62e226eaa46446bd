"""The files holding each scheduled run's output (``schedule-logs`` in labloom's home, one per
run, named in ``daemon.ScheduleServer._launch``): kept ``LABLOOM_SCHEDULE_LOG_DAYS`` days (30 by
default; 0 keeps them all), then deleted by ``labloom serve``. A schedule every minute made
over 40,000 files a month, never deleted. The run's own record, task logs included, stays in
the store: these hold what the run process printed around it (why a target did not load)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..core.env_numbers import env_number
from ..core.errors import ScheduleError

DAYS = 30.0
PRUNE_EVERY = 3600.0  # seconds between two looks of a serve process


def kept_days() -> float:
    return env_number("LABLOOM_SCHEDULE_LOG_DAYS", DAYS, "a number of days >= 0",
                      lambda days: days >= 0, ScheduleError, "0 keeps every run's log file")


def prune(folder: Path, days: float, now: float | None = None) -> int:
    """Delete the ``.log`` files in ``folder`` last written more than ``days`` days ago (none
    when ``days`` is 0); how many went. A run still going writes to its file: never old."""
    if not days:
        return 0
    oldest = (time.time() if now is None else now) - days * 86400
    gone = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if not entry.name.endswith(".log") or not entry.is_file(follow_symlinks=False):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime < oldest:
                    os.unlink(entry.path)
                    gone += 1
            except FileNotFoundError:  # another serve on this home deleted it first
                continue
    return gone
