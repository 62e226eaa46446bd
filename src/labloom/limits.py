"""Concurrency limits by tag: at most ``n`` task runs carrying ``tag`` run at once.

>>> import labloom
>>> labloom.limits.set("database", 3)
>>> labloom.limits.list()
{'database': 3}
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable

_lock = threading.Lock()
_limits: dict[str, int] = {}


def set(tag: str, n: int) -> None:  # noqa: A001 - the contract's name
    """At most ``n`` task runs tagged ``tag`` run at once."""
    if not isinstance(tag, str) or not tag:
        raise TypeError(f"a limit's tag must be a non-empty string, got {tag!r}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(
            f"limit for {tag!r} must be a whole number >= 1, got {n!r}; "
            "to remove the limit use labloom.limits.delete(tag)"
        )
    with _lock:
        _limits[tag] = n


def get(tag: str) -> int | None:
    """The limit for ``tag``, or None when it has none."""
    with _lock:
        return _limits.get(tag)


def delete(tag: str) -> None:
    """Remove the limit for ``tag`` (a KeyError names the tags that have limits)."""
    with _lock:
        if tag not in _limits:
            raise KeyError(f"no limit for tag {tag!r}; limits exist for: {sorted(_limits) or 'none'}")
        del _limits[tag]


def list() -> dict[str, int]:  # noqa: A001 - the contract's name
    """Every limit, by tag."""
    with _lock:
        return dict(sorted(_limits.items()))


def lookup(tags: Iterable[str]) -> builtins.dict[str, int]:
    """The limits that apply to a task run carrying ``tags`` (used by the engine)."""
    with _lock:
        return {tag: _limits[tag] for tag in tags if tag in _limits}
