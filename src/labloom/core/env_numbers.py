"""One reader for labloom's settings that are numbers in the environment (``LABLOOM_...``):
a value that is not one, or out of its range, raises an error naming the variable, the value
and the fix, as soon as the setting is read (each reader reads it before anything depends on
it). Before, each setting parsed its own way, and one (``LABLOOM_DASHBOARD_PORT``) warned and
went on with its default where the others raised.

>>> env_number("LABLOOM_SCHEDULE_LOG_DAYS", 30.0, "a number of days >= 0", lambda days: days >= 0)
30.0
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .errors import LabloomError


def env_number(name: str, default: float, kind: str, fits: Callable[[float], bool],
               error: type[LabloomError] = LabloomError, meaning: str = "",
               whole: bool = False) -> float:
    """The number ``name`` holds, or ``default`` when it is unset or empty. ``kind`` says what
    it must be ("a number of seconds above 0"), ``fits`` checks it (NaN never fits),
    ``meaning`` (optional) what it sets; ``whole``: an int (``1_000`` allowed)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        number: float = int(text.replace("_", "")) if whole else float(text)
    except ValueError:
        number = float("nan")
    if not (number == number and fits(number)):  # (NaN is not equal to itself)
        said = f" ({meaning})" if meaning else ""
        raise error(f"[labloom] {name} must be {kind}{said}, got {text!r}: set it to one, or "
                    f"unset it for the default ({default:g})")
    return number
