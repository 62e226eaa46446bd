"""The numbers people give labloom, checked by one rule wherever they arrive: ``@task`` options,
``%%tasks`` lines, the ``labloom`` command's options and ``labloom.limits``; and durations
typed as text (``1h30m``: a schedule's ``--every``, any ``since``: ``7d``).

A number of seconds must be finite: ``float("nan")`` compares false with everything, so
``timeout <= 0`` let it through and every call then failed; ``inf`` overflows the timers it
reaches. A count must fit the store's INTEGER column (PostgreSQL's is 32 bits)."""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

# The largest whole number the store keeps in an INTEGER column on both backends.
MAX_COUNT = 2**31 - 1


def is_number(value: Any) -> bool:
    """A real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_seconds(value: Any, *, zero: bool = False) -> bool:
    """A finite number of seconds, > 0 (``zero=True``: >= 0)."""
    if not is_number(value) or not math.isfinite(value):
        return False
    return bool(value >= 0) if zero else bool(value > 0)


def is_count(value: Any, low: int = 1, high: int = MAX_COUNT) -> bool:
    """A whole number (not a bool) from ``low`` to ``high``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration_of(text: str) -> float | None:
    """``30s``, ``5m``, ``2h``, ``1d``, ``1h30m`` (or plain seconds) as seconds, unchecked
    (zero, NaN, huge); None when ``text`` is not one.

    >>> duration_of("1h30m")
    5400.0
    """
    cleaned = text.strip().lower().replace(" ", "")
    try:
        return float(cleaned)
    except ValueError:
        parts = _DURATION.findall(cleaned)
        if not parts or "".join(n + u for n, u in parts) != cleaned:
            return None
        return sum(float(n) * _UNIT[u] for n, u in parts)
