"""The numbers people give labloom, checked by one rule wherever they arrive: ``@task`` options,
``%%tasks`` lines, the ``labloom`` command's options and ``labloom.limits``.

A number of seconds must be finite: ``float("nan")`` compares false with everything, so
``timeout <= 0`` let it through and every call then failed; ``inf`` overflows the timers it
reaches. A count must fit the store's INTEGER column (PostgreSQL's is 32 bits)."""

from __future__ import annotations

import math
import numbers
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
