"""``since``, one reading of a time bound for every surface that takes one:
``labloom.experiments(since=...)``, ``labloom experiments --since``, ``GET experiments?since=``
and ``GET runs?since=&until=``.

Text is seconds since the epoch (``1764547200``, as the REST API's other times), a time ago in
the schedules' grammar (``12h``, ``7d``, ``1h30m``: ``core.numbers.duration_of``) or a date or
time (``2026-12-01``, ``2026-12-01T08:00``, local unless it says its zone). From Python, a
number is epoch seconds, a datetime that moment and a timedelta that long ago.

    >>> since_epoch("2026-12-01T08:00Z")
    1796112000.0
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta
from typing import Any

from ..core.numbers import duration_of

FORMS = ("seconds since the epoch (1764547200), a date or time ('2026-12-01', "
         "'2026-12-01T08:00', local unless it says its zone) or a time ago ('12h', '7d')")


def since_of(text: str) -> float:
    """The moment ``text`` names; ValueError naming the forms it may take (``FORMS``)."""
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        if math.isnan(number):  # a NaN bound keeps nothing: no run's time compares with it
            raise ValueError(f"{text!r} is not a time: give {FORMS}")
        return number
    ago = duration_of(text)
    if ago is not None and 0 < ago < math.inf:
        return time.time() - ago
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise ValueError(f"{text!r} is neither a date nor a time ago: give {FORMS}") from None


def since_epoch(since: Any) -> float | None:
    """``since`` as epoch seconds (None: no bound): text read by ``since_of``, a number as
    it is, a datetime as that moment, a timedelta as that long ago."""
    if since is None or (isinstance(since, (int, float)) and not isinstance(since, bool)):
        return since
    if isinstance(since, timedelta):
        return time.time() - since.total_seconds()
    if isinstance(since, datetime):
        return since.timestamp()
    if isinstance(since, str):
        try:
            return since_of(since)
        except ValueError as exc:
            raise ValueError(f"[labloom] since={exc}, a datetime or a timedelta (that long "
                             "ago: timedelta(days=7) for the last week)") from None
    raise TypeError(
        f"[labloom] since must be a datetime, a timedelta (that long ago), epoch seconds or "
        f"text ({FORMS}), got a {type(since).__name__}"
    )


__all__ = ["FORMS", "since_epoch", "since_of"]
