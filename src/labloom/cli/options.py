"""The argparse types of every numeric option of the command, one rule each
(``core/numbers.py``): a value out of range is one line naming the range, exit status 2, not an
OverflowError from the store three layers down nor argparse's usage block."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.numbers import MAX_COUNT, is_count, is_seconds


def _checked(option: str, rule: str, read: Callable[[str], Any],
             ok: Callable[[Any], bool]) -> Callable[[str], Any]:
    """An argparse type: ``read`` the text, then refuse it in one line naming ``rule`` unless
    it reads and is ``ok``."""

    def parse(text: str) -> Any:
        from . import CLIError

        try:
            value = read(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise CLIError(f"{option} must be {rule}, got {text!r}")
        return value

    return parse


def count(option: str, low: int = 1, high: int = MAX_COUNT) -> Callable[[str], int]:
    """A whole number from ``low`` to ``high``: ``type=count("--limit")``."""
    return _checked(option, f"a whole number from {low} to {high}", int,
                    lambda value: is_count(value, low, high))


def seconds(option: str, zero: bool = True) -> Callable[[str], float]:
    """A finite number of seconds, >= 0 (``zero=False``: > 0)."""
    return _checked(option, f"a finite number of seconds {'>= 0' if zero else '> 0'}", float,
                    lambda value: is_seconds(value, zero=zero))


def days(option: str) -> Callable[[str], float]:
    """A finite number of days > 0 (0.5: twelve hours)."""
    return _checked(option, "a finite number of days > 0", float,
                    lambda value: is_seconds(value, zero=False))
