"""The argparse types of every numeric option of the command, one rule each
(``core/numbers.py``): a value out of range is one line naming the range, exit status 2, not an
OverflowError from the store three layers down nor argparse's usage block."""

from __future__ import annotations

from collections.abc import Callable

from ..core.numbers import MAX_COUNT, is_count, is_seconds


def _refuse(option: str, rule: str, text: str) -> Exception:
    from . import CLIError

    return CLIError(f"{option} must be {rule}, got {text!r}")


def count(option: str, low: int = 1, high: int = MAX_COUNT) -> Callable[[str], int]:
    """A whole number from ``low`` to ``high``: ``type=count("--limit")``."""
    rule = f"a whole number from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise _refuse(option, rule, text) from None
        if not is_count(value, low, high):
            raise _refuse(option, rule, text)
        return value

    return parse


def seconds(option: str, zero: bool = True) -> Callable[[str], float]:
    """A finite number of seconds, >= 0 (``zero=False``: > 0)."""
    rule = f"a finite number of seconds {'>= 0' if zero else '> 0'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise _refuse(option, rule, text) from None
        if not is_seconds(value, zero=zero):
            raise _refuse(option, rule, text)
        return value

    return parse
