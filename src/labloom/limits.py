"""Concurrency limits by tag: at most ``n`` task runs carrying ``tag`` run at once, across
every flow run sharing the store (``LABLOOM_HOME``) or the Dask scheduler.

Limits persist in the store, so ``labloom limit set database 3`` on the command line and
``labloom.limits.set("database", 3)`` in a notebook are the same setting.

>>> import labloom
>>> labloom.limits.set("database", 3)
>>> labloom.limits.list()
{'database': 3}
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable

from .core.numbers import MAX_COUNT, is_count
from .store import concurrency_slots as store


def set(tag: str, n: int) -> None:  # the contract's name shadows a builtin
    """At most ``n`` task runs tagged ``tag`` run at once."""
    if not isinstance(tag, str) or not tag:
        raise TypeError(f"a limit's tag must be a non-empty string, got {tag!r}")
    if not is_count(n):
        raise ValueError(
            f"limit for {tag!r} must be a whole number from 1 to {MAX_COUNT}, got {n!r}; "
            "to remove the limit use labloom.limits.delete(tag)"
        )
    store.set_limit(tag, n)


def get(tag: str) -> int | None:
    """The limit for ``tag``, or None when it has none."""
    return store.limits_for([tag]).get(tag)


def delete(tag: str) -> None:
    """Remove the limit for ``tag`` (a KeyError names the tags that have limits)."""
    if not store.delete_limit(tag):
        raise KeyError(
            f"no limit for tag {tag!r}; limits exist for: {sorted(store.all_limits()) or 'none'}"
        )


def list() -> dict[str, int]:  # the contract's name shadows a builtin
    """Every limit, by tag."""
    return store.all_limits()


def lookup(tags: Iterable[str]) -> builtins.dict[str, int]:
    """The limits that apply to a task run carrying ``tags`` (used by the engine)."""
    return store.limits_for(tags)
