"""``since`` typed as text, one reading for every surface that takes it so (``labloom
experiments --since``, ``GET experiments?since=``, ``GET runs?since=&until=``): here because it reads the schedules'
durations (``parse_duration``) besides ``labloom.experiments``'s dates (``since_epoch``).

A bare number is seconds since the epoch, as ``labloom.experiments(since=1764547200)`` and the
REST API's other times take it; ``12h`` or ``7d`` is that long ago; a date or time
(``2026-12-01``, ``2026-12-01T08:00``, local unless it says its zone) is that moment.
"""

from __future__ import annotations

import math
import time

from ..core.errors import ScheduleError
from ..store.experiments import since_epoch
from .stored_schedules import parse_duration

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
    try:
        return time.time() - parse_duration(text)
    except ScheduleError:
        pass
    try:
        when = since_epoch(text)
    except ValueError:
        when = None
    if when is None:
        raise ValueError(f"{text!r} is neither a date nor a time ago: give {FORMS}")
    return when
